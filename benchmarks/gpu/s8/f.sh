# session 8, last call (a fresh H200): the held-out configurations the H200's profile misses, run again on another
# machine (validate.py configs 1: NF4 resident at five shapes, 10: GGUF Q4_0 with group-leaf offload, 21: torchao
# int8 with group-leaf offload), for docs/ACCURACY.md's repeatability section.
source benchmarks/gpu/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out $OUT/again --configs 1,10,21 --deadline $((560-SECONDS)) 2>&1 | grep "^{" | cut -c1-200
echo "done at $SECONDS s"
