# session 7, second H100 call (after e.sh, the synthetic model built): T5 encode and weights per T5 format, then
# the held-out pipelines of validate.py's sets "full" (full compile) and "t5" (quantized T5 formats).
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7/t5
MODEL=.devcache/synthetic/dev-s0
python3 -m fluxplan.profiling.sweep --out .devcache/s7/t5 --parts encode,t5formats --model $MODEL --deadline 60 --t5-formats bf16,fp8-layerwise,bnb-nf4,torchao-int8wo,bnb-int8 2>&1 | grep '^{"format\|sweep' | cut -c1-300
mkdir -p $OUT/t5; cp .devcache/s7/t5/* $OUT/t5/
echo "t5 done at $SECONDS s"
python3 benchmarks/gpu/validate.py --model $MODEL --out .devcache/s7 --configs full,t5 --deadline ${VDEADLINE:-480} 2>&1 | grep "^{\|Error\|deadline" | cut -c1-300
cp .devcache/s7/validate.jsonl $OUT/ 2>/dev/null
echo "done at $SECONDS s"
