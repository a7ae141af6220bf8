# session 8, data for the next step (not used by the cost model yet): bf16 resident and under group-leaf offload
# at 2048x2048, where compute (0.86 s) exceeds the transfer (0.36-0.43 s), so that group-leaf's step less the
# resident one is the part the streams leave unhidden on this machine (GROUP_UNHIDDEN_S, 0.31 s, was fitted on one
# H100). Run on a fresh H200 and a fresh H100.
source benchmarks/gpu/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out $OUT/unhidden --side 2048 --only "bf16=none,group-leaf" --deadline 300 2>&1 | grep "^{" | cut -c1-220
echo "done at $SECONDS s"
