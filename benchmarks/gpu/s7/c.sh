# session 7 (H200, after b.sh): T5 encode and weights per T5 format (fluxplan.profiling.sweep --parts t5formats)
# on the full-size synthetic FLUX.1-dev checkpoint.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7/t5
t=$SECONDS; MODEL=$(python3 -c "from fluxplan.run.synth import ensure_synthetic; print(ensure_synthetic('dev', device='cuda'))" 2>/dev/null | tail -1); echo "synth $((SECONDS-t)) s: $MODEL"
python3 -m fluxplan.profiling.sweep --out .devcache/s7/t5 --parts encode,t5formats --model $MODEL --deadline 300 --t5-formats bf16,fp8-layerwise,bnb-nf4,torchao-int8wo,bnb-int8,quanto-int8 2>&1 | grep -v Warning | tail -20 | cut -c1-400
mkdir -p $OUT/t5; cp .devcache/s7/t5/* $OUT/t5/
echo "done at $SECONDS s"
