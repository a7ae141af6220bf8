# session 6, the first call on each machine (a fresh H100: h100; a fresh H200: h200): the whole `fluxplan profile`
# as a user runs it on a fresh machine (the synthetic model built inside it), timed. On the H100 the compile tasks
# still ran in the blocks stage, in the blocks' process (all timed out); on the H200 they ran last, each in a
# process of its own (src/fluxplan/profiling/run.py as committed with the H200 results).
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s6
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --deadline ${DEADLINE:-555} --results .devcache/s6/full --out .devcache/s6/full_profile.json 2>&1 | grep "^\[profile\]\|^{\|wrote\|Error" | cut -c1-300
echo "profile command: $((SECONDS-t)) s"
mkdir -p $OUT/full; cp .devcache/s6/full/* $OUT/full/ 2>/dev/null; cp .devcache/s6/full_profile.json $OUT/ 2>/dev/null
