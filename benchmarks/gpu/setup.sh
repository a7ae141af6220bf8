# Source this on the GPU machine (see benchmarks/gpu/README.md): installs the carried wheels, points
# PYTHONPATH at them and at src/, and keeps fluxplan's cache (synthetic models) in ./.devcache.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | grep -v WARNING | tail -2
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 FLUXPLAN_CACHE=$PWD/.devcache
