# session 6, call 2 (same H100): `fluxplan profile --quick` timed; the offload pipelines the full run had no time
# for (bf16 under group-leaf, sequential, group-block); the host-bound check with the host recorded.
source benchmarks/gpu/setup.sh
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --quick --results .devcache/s6/quick --out .devcache/s6/quick_profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "quick profile command: $((SECONDS-t)) s"
mkdir -p $OUT/quick; cp .devcache/s6/quick/* $OUT/quick/ 2>/dev/null
mkdir -p .devcache/s6/more
python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out .devcache/s6/more --deadline 200 --only "bf16=group-leaf,sequential,group-block" 2>&1 | grep "^{" | cut -c1-200
mkdir -p $OUT/more; cp .devcache/s6/more/matrix.jsonl $OUT/more/
python3 benchmarks/gpu/hostbound.py --model .devcache/synthetic/dev-s0 --out .devcache/s6 --formats bf16,bnb-nf4,gguf-q4_0 2>&1 | grep "^{\|Error" | cut -c1-300
cp .devcache/s6/hostbound.jsonl $OUT/
echo "done at $SECONDS s"
