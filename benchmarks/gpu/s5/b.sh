# session 5, call 2 (same machine): held-out runs of the offload modes and settings not yet validated there
source benchmarks/gpu/setup.sh
python3 benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out .devcache/s5 --configs 11,7,8,9 --deadline 540 2>&1 | grep "^{\|Error\|deadline" | cut -c1-300
cp .devcache/s5/validate.jsonl $OUT/
