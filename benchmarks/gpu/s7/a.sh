# session 7, first call (H200): the three formats plans compile most, compiled regionally at a second size
# (512x512: a compiled step between two sizes is interpolated; the H200 had 1024x1024 only), then the same three
# under full compile (`transformer.compile()`, the whole stacked forward traced), each task in a process of its own.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
python3 -m fluxplan.profiling.blocks --out .devcache/s7/comp512 --compile-tokens 4096,1024 --deadline ${D1:-230} --compile-limit 100 --formats bf16@regional,bnb-nf4@regional,gguf-q8_0@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp512; cp .devcache/s7/comp512/* $OUT/comp512/
echo "comp512 done at $SECONDS s"
python3 -m fluxplan.profiling.blocks --out .devcache/s7/full --deadline ${D2:-330} --compile-limit 150 --formats bf16@full,bnb-nf4@full,gguf-q8_0@full 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/full; cp .devcache/s7/full/* $OUT/full/
echo "done at $SECONDS s"
