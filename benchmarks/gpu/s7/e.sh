# session 7, first H100 call: bf16 and NF4 under full compile, NF4 compiled regionally at a second size (its
# 512x512 point came from a slow-host H100), the formats not yet compiled on an H100, then the synthetic model
# for f.sh.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/s7/full --deadline ${D1:-250} --compile-limit 150 --formats bf16@full,bnb-nf4@full 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/full; cp .devcache/s7/full/* $OUT/full/
echo "full done at $SECONDS s"
python3 -m fluxplan.profiling.blocks --out .devcache/s7/comp512 --compile-tokens 4096,1024 --deadline ${D2:-90} --compile-limit 85 --formats bnb-nf4@regional 2>&1 | grep "^{\|Error" | cut -c1-300
python3 -m fluxplan.profiling.blocks --out .devcache/s7/comp512 --append --deadline ${D3:-170} --compile-limit 60 --formats bnb-fp4@regional,bnb-int8@regional,gguf-q4_0@regional,gguf-q6_k@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp; cp .devcache/s7/comp512/* $OUT/comp/
echo "comp done at $SECONDS s"
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
echo "done at $SECONDS s"
