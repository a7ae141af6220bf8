# session 5, call 3 (same machine): the whole `fluxplan profile` as a user runs it, timed
source benchmarks/gpu/setup.sh
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --deadline ${DEADLINE:-580} --results .devcache/s5/full --out .devcache/s5/full_profile.json 2>&1 | grep "^\[profile\]\|^{\|wrote\|Error" | cut -c1-300
echo "profile command: $((SECONDS-t)) s"
mkdir -p $OUT/full; cp .devcache/s5/full/* $OUT/full/ 2>/dev/null; cp .devcache/s5/full_profile.json $OUT/ 2>/dev/null
