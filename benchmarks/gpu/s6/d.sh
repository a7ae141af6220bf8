# session 6, the second call on each machine: held-out compiled pipelines (validate.py set "compiled": bf16, NF4
# and GGUF Q8_0 compiled regionally, the first shape's warm-up timing the cold compile), `fluxplan profile --quick`
# timed, and the host-bound check with the host recorded.
source benchmarks/gpu/setup.sh
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out .devcache/s6 --configs compiled --deadline ${VDEADLINE:-330} 2>&1 | grep "^{\|Error\|deadline" | cut -c1-300
cp .devcache/s6/validate.jsonl $OUT/ 2>/dev/null
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --quick --results .devcache/s6/quick --out .devcache/s6/quick_profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "quick profile command: $((SECONDS-t)) s"
mkdir -p $OUT/quick; cp .devcache/s6/quick/* $OUT/quick/ 2>/dev/null
python3 benchmarks/gpu/hostbound.py --model .devcache/synthetic/dev-s0 --out .devcache/s6 --formats bf16,bnb-nf4 2>&1 | grep "^{\|Error" | cut -c1-300
cp .devcache/s6/hostbound.jsonl $OUT/ 2>/dev/null
echo "done at $SECONDS s"
