# session 6, a second H100 (fresh): the synthetic model, the held-out compiled pipelines (validate.py set
# "compiled"), then `fluxplan profile --quick` timed on this machine.
source benchmarks/gpu/setup.sh
mkdir -p .devcache/s6
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
t=$SECONDS; python3 -c "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')" 2>/dev/null; echo "synth $((SECONDS-t)) s"
VDEADLINE=${VDEADLINE:-330} bash benchmarks/gpu/s6/d.sh
