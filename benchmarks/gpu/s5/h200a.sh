# session 5, H200 call 1: held-out runs (the scaling set, sequential and block-level group offload), on the
# machine the profile of call 2 measures
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s5
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out .devcache/s5 --configs scaling,11,7 --deadline $((580 - SECONDS)) 2>&1 | grep "^{\|Error\|deadline" | cut -c1-300
cp .devcache/s5/validate.jsonl $OUT/
echo "done at $SECONDS s"
