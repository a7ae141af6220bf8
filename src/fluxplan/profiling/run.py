"""Run the measurements of `fluxplan profile` on this machine's GPU: the cost sweep, then the pipeline matrix,
each in its own process, into a results folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from fluxplan.errors import NoGPU


def results_dir(results: Path | None) -> Path:
    from fluxplan.run.store import cache_dir

    path = results or cache_dir() / "measurements" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def profile_path(results: Path) -> Path:
    """$FLUXPLAN_CACHE/profiles/<gpu>.json for the GPU the results were measured on."""
    from fluxplan.run.store import cache_dir

    gpu = json.loads((results / "sweep.json").read_text())["gpu"]
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu.lower()).strip("-")
    return cache_dir() / "profiles" / f"{slug}.json"


def measure(results: Path | None, *, quick: bool, deadline: float) -> Path:
    import torch

    if not torch.cuda.is_available():
        raise NoGPU("fluxplan profile measures a CUDA GPU and sees none here; "
                    "use --from-results DIR to build a profile from earlier measurements")
    out = results_dir(results)
    subprocess.run([sys.executable, "-m", "fluxplan.profiling.sweep", "--out", str(out)], check=True)
    from fluxplan.run.synth import ensure_synthetic

    model = ensure_synthetic("dev", device="cuda")
    matrix = ["--only", "bf16=none,group-leaf,model"] if quick else ["--set", "core"]
    subprocess.run([sys.executable, "-m", "fluxplan.profiling.matrix", "--model", str(model), "--out", str(out),
                    "--deadline", str(deadline), *matrix], check=True)
    return out
