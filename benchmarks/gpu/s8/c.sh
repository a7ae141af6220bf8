# session 8, H200: the GGUF types never compiled on a GPU (Q5_1, Q5_0, Q4_1), compiled regionally at block level,
# each in a process of its own; then the synthetic model and the held-out runs of quantized transformers under
# offload (validate.py's set "qoffload": NF4 group-block, Q8_0 model offload, torchao int8 group-leaf).
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s8
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/s8/comp --deadline ${D1:-200} --compile-limit 70 --formats gguf-q5_1@regional,gguf-q5_0@regional,gguf-q4_1@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp; cp .devcache/s8/comp/* $OUT/comp/
echo "comp done at $SECONDS s"
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out $OUT --configs qoffload --deadline $((575-SECONDS)) 2>&1 | tail -4 | cut -c1-300
echo "done at $SECONDS s"
