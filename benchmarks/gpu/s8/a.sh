# session 8, first call (a fresh H100): the full `fluxplan profile` with its default deadline (565 s) and the stage
# order session 7 committed (slow-loading quanto formats after the compile tasks), the synthetic model's build
# inside, timed on a fresh machine; the results folder and the profile are written straight into $OUT.
source benchmarks/gpu/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS
python3 -c "import sys; from fluxplan.cli.main import main; sys.argv=['fluxplan']+sys.argv[1:]; main()" profile --results $OUT/fullrun --out $OUT/fullrun/profile.json 2>&1 | grep "^\[profile\]\|wrote\|Error" | cut -c1-300
echo "full profile command: $((SECONDS-t)) s"
ls $OUT/fullrun
