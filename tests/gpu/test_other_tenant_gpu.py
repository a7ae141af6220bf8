"""GPU, issue 5 "Other tenants of the GPU": while a second process holds most of the GPU's memory, `fluxplan auto`
plans against what is free (NVML), says so, and its run stays within it.

Run on the device machine:  pytest -m gpu tests/gpu/test_other_tenant_gpu.py -s
The synthetic dev (~34 GB on disk) is built once under $FLUXPLAN_GPU_CACHE (default: pytest's temp dir).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from fluxplan.run.synth import ensure_synthetic  # noqa: E402

LEAVE_GIB = 14.0  # what the other tenant leaves free: bf16 fits only with offload


@pytest.fixture(scope="module")
def dev_dir(tmp_path_factory) -> Path:
    root = Path(os.environ.get("FLUXPLAN_GPU_CACHE") or tmp_path_factory.getbasetemp() / "gpu-cache")
    return ensure_synthetic("dev", root=root, device="cuda")


@pytest.fixture
def tenant():
    """A second process holding all but LEAVE_GIB of the GPU; yields the GiB it holds."""
    free, _ = torch.cuda.mem_get_info()
    hold = free / 2**30 - LEAVE_GIB
    code = ("import sys, time, torch; x = torch.empty(int(float(sys.argv[1]) * 2**30), dtype=torch.uint8, "
            "device='cuda'); print('held', flush=True); time.sleep(1800)")
    p = subprocess.Popen([sys.executable, "-c", code, str(hold)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield hold
    finally:
        p.kill()
        p.wait()


def test_auto_fits_what_another_process_leaves(dev_dir, tenant, tmp_path):
    env = {**os.environ, "FLUXPLAN_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", "from fluxplan.cli.main import main; main()", "auto", "a red fox",
                        "--model", str(dev_dir), "--steps", "2", "--out", str(tmp_path / "out"), "--json"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(r.stdout)
    run = data["run"]
    assert any("planning against free memory" in n for n in run["notes"])
    assert data["budget"]["vram_gib"] < LEAVE_GIB + 1.0  # planned for what was free, not the card
    assert data["plan"]["offload"] != "none"  # bf16 resident (36.8 GiB) cannot fit in what is left
    assert run["measured"]["peak_gib"] <= data["budget"]["vram_gib"]
    assert not run["recovery"]
