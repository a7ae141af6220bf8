# session 7 (H200, after c.sh, the machine's last minutes): GGUF Q2_K regionally (b.sh's deadline stopped it as it
# started) and quanto int8 under full compile with a longer limit.
source benchmarks/gpu/setup.sh
python3 -m fluxplan.profiling.blocks --out .devcache/s7/full3 --deadline ${D1:-330} --compile-limit 200 --formats gguf-q2_k@regional,quanto-int8@full 2>&1 | grep "^{\|Error" | cut -c1-300
mkdir -p $OUT/full3; cp .devcache/s7/full3/* $OUT/full3/
echo "done at $SECONDS s"
