# session 5, call 1 (H100): do the blocks, stacked as the full model calls them, read a small image's step as the
# pipeline does? Stacked blocks of the formats whose blocks read fast of their pipelines, then the host-bound
# diagnostic on full-size pipelines (benchmarks/gpu/hostbound.py).
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s5
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/s5/diag --deadline 150 --limit 45 --formats bf16,bnb-nf4,gguf-q5_k,gguf-q2_k,torchao-fp8dq,gguf-q4_0 2>&1 | grep "^{\|Error" | cut -c1-300
cp .devcache/s5/diag/blocks.json $OUT/blocks_diag.json
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 benchmarks/gpu/hostbound.py --model .devcache/synthetic/dev-s0 --out .devcache/s5 --formats bf16,bnb-nf4,gguf-q5_k 2>&1 | grep "^{\|Error" | cut -c1-400
cp .devcache/s5/hostbound.jsonl $OUT/
echo "done at $SECONDS s"
