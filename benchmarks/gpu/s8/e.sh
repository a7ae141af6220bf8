# session 8, last calls (a fresh H100, then a fresh H200): the full `fluxplan profile` with its default deadline
# (565 s), the synthetic model now built beside the usable-format check at the start; the results folder and the
# profile are written straight into $OUT.
source benchmarks/gpu/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --results $OUT/fullrun2 --out $OUT/fullrun2/profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "full profile command: $((SECONDS-t)) s"
ls $OUT/fullrun2
