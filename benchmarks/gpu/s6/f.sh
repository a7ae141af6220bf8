# session 6, last call (a fresh H100): `fluxplan profile --quick` as now committed (blocks alone, the CUDA context
# from the blocks' process), timed on a fresh machine; then more formats compiled at block level.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s6
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --quick --results .devcache/s6/quick2 --out .devcache/s6/quick2_profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "quick profile command: $((SECONDS-t)) s"
mkdir -p $OUT/quick2; cp .devcache/s6/quick2/* $OUT/quick2/ 2>/dev/null; cp .devcache/s6/quick2_profile.json $OUT/quick2/profile.json
python3 -m fluxplan.profiling.blocks --out .devcache/s6/comp2 --deadline ${CDEADLINE:-250} --limit 45 --compile-limit 90 --formats fp8-layerwise@regional,quanto-int8@regional,gguf-q4_k@regional,torchao-fp8dq@regional,bnb-fp4@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp2; cp .devcache/s6/comp2/* $OUT/comp2/
echo "done at $SECONDS s"
