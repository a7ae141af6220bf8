# session 4, H100 call A: synthetic dev, the streamed-T5 GPU test, then the matrix's missing (format, offload) rows
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s4
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > .devcache/s4/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')"; echo "synth $((SECONDS-t)) s"
t=$SECONDS; FLUXPLAN_GPU_CACHE=$PWD/.devcache timeout 200 python3 -m pytest -m gpu tests/gpu/test_builder_gpu.py -k "placement and offload" -q -x -p no:cacheprovider > .devcache/s4/placement.log 2>&1; echo "placement test rc=$? $((SECONDS-t)) s"; tail -5 .devcache/s4/placement.log
python3 -m fluxplan.profiling.matrix --model .devcache/synthetic/dev-s0 --out .devcache/s4 --set gaps --deadline $((570 - SECONDS)) 2>&1 | grep -v Warning | tail -60
cp .devcache/s4/*.jsonl .devcache/s4/*.log .devcache/s4/*.txt $OUT/ 2>/dev/null; ls $OUT
