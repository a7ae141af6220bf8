# session 8, second call (the same H100, warm): `fluxplan profile --quick` with its default deadline (55 s), timed.
source benchmarks/gpu/setup.sh
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --quick --results $OUT/quick --out $OUT/quick/profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "quick profile command: $((SECONDS-t)) s"
ls $OUT/quick
