# session 7, last call (a fresh H100): the full `fluxplan profile` as now committed (blocks, encode/decode, model
# build, pipelines, T5 per format, compile), timed on a fresh machine, the synthetic model's build inside.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --results .devcache/s7/fullrun --out .devcache/s7/fullrun_profile.json --deadline ${DEADLINE:-550} 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "full profile command: $((SECONDS-t)) s"
mkdir -p $OUT/fullrun; cp .devcache/s7/fullrun/*.json* .devcache/s7/fullrun/*.txt $OUT/fullrun/ 2>/dev/null; cp .devcache/s7/fullrun_profile.json $OUT/fullrun/profile.json
ls .devcache/s7/fullrun
