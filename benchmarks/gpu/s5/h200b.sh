# session 5, H200 call 3: the other held-out configurations (quantized T5, GGUF, fp8 layerwise, model offload,
# torchao, tiled decode)
source benchmarks/gpu/setup.sh
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out .devcache/s5 --configs 6,4,5,10,8,3,9 --deadline 570 2>&1 | grep "^{\|Error\|deadline" | cut -c1-300
cp .devcache/s5/validate.jsonl $OUT/
echo "done at $SECONDS s"
