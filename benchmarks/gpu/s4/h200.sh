# session 4, H200: whole-pipeline points (1024x1024, resident) for the formats whose H100 blocks read more than 5 %
# off their pipelines (BENCHMARKS.md section 7), most off first, so the H200 profile can be built as the H100's was
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s4h200
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out .devcache/s4h200 --deadline $((575 - SECONDS)) --only "bnb-nf4=none;torchao-fp8dq=none;gguf-q2_k=none;gguf-q5_k=none;gguf-q4_k=none;gguf-q5_0=none;gguf-q5_1=none;gguf-q4_0=none;bnb-int8=none;gguf-q6_k=none;gguf-q3_k=none;fp8-layerwise=none;torchao-int8wo=none" 2>&1 | grep "^{\|deadline\|wrote"
cp .devcache/s4h200/matrix.jsonl $OUT/
