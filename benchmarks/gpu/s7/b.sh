# session 7 (H200, after a.sh): the formats not yet compiled on any GPU, regionally at 1024x1024, then GGUF Q4_K
# and quanto int8 under full compile.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s7
python3 -m fluxplan.profiling.blocks --out .devcache/s7/comp3 --deadline ${D1:-330} --compile-limit 70 --formats bnb-fp4@regional,bnb-int8@regional,torchao-fp8wo@regional,gguf-q4_0@regional,gguf-q6_k@regional,gguf-q5_k@regional,gguf-q3_k@regional,gguf-q2_k@regional 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/comp3; cp .devcache/s7/comp3/* $OUT/comp3/
echo "comp3 done at $SECONDS s"
python3 -m fluxplan.profiling.blocks --out .devcache/s7/full2 --deadline ${D2:-240} --compile-limit 150 --formats gguf-q4_k@full,quanto-int8@full 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/full2; cp .devcache/s7/full2/* $OUT/full2/
echo "done at $SECONDS s"
