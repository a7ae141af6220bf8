# session 6, last call (a fresh H200): bf16, NF4 and GGUF Q8_0 compiled at block level at 1024x1024 and 512x512
# (the H200's profile had compile at 1024x1024 only; compile's gain changes with the size).
source benchmarks/gpu/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/s6/comp3 --deadline ${CDEADLINE:-170} --limit 45 --compile-limit 80 --compile-tokens 4096,1024 --formats bf16@regional,bnb-nf4@regional,gguf-q8_0@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp3; cp .devcache/s6/comp3/* $OUT/comp3/
echo "done at $SECONDS s"
