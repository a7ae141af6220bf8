# session 5, repeatability (one call per GPU): the blocks again with the fastest-of-three stacked forward, then
# bf16 under group-leaf and sequential offload run twice more at 1024x1024, and the host-bound check (NF4 and bf16
# pipelines at 512..1024), all on one machine. The last matrix call asked for 768x768, but matrix did not pass
# --side to its child then (fixed since): it ran resident and sequential at 1024x1024 once more, and its rows were
# appended to repeat/matrix.jsonl as what they are.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/r
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/r --deadline 200 --limit 45 --formats bf16,fp8-layerwise,torchao-int8wo,torchao-fp8wo,torchao-fp8dq,bnb-nf4,bnb-fp4,bnb-int8,quanto-int8,gguf-q8_0,gguf-q6_k,gguf-q5_k,gguf-q5_1,gguf-q5_0,gguf-q4_k,gguf-q4_1,gguf-q4_0,gguf-q3_k,gguf-q2_k 2>&1 | grep "Error\|error\": \"" | cut -c1-200
cp .devcache/r/blocks.json .devcache/r/blocks.jsonl $OUT/
echo "blocks done at $SECONDS s"
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 benchmarks/gpu/hostbound.py --model .devcache/synthetic/dev-s0 --out .devcache/r --formats bnb-nf4,bf16 2>&1 | grep "^{" | cut -c1-300
cp .devcache/r/hostbound.jsonl $OUT/
for i in 1 2; do python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out .devcache/r --deadline $((585 - SECONDS)) --only "bf16=group-leaf,sequential" 2>&1 | grep "^{" | cut -c1-200; done
mkdir -p .devcache/r768; python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out .devcache/r768 --side 768 --deadline $((590 - SECONDS)) --only "bf16=none,sequential" 2>&1 | grep "^{" | cut -c1-200
cp .devcache/r/matrix.jsonl $OUT/; cp .devcache/r768/matrix.jsonl $OUT/matrix768.jsonl
echo "done at $SECONDS s"
