"""Run the measurements of `fluxplan profile` on this machine's GPU, each stage in its own process, into a
results folder, printing how long each stage took:

1. blocks (fluxplan.profiling.blocks): one double- and one single-stream block per format; --quick: bf16 and
   fp8 layerwise casting; otherwise every format the doctor finds usable here, then as many of them compiled
   regionally as the stage's share of the deadline allows (COMPILE_ORDER), the slow-loading formats last;
2. encode and decode (fluxplan.profiling.sweep --parts encode,decode): T5 and the VAE alone, and the CUDA context;
3. full only: a few whole pipelines (fluxplan.profiling.matrix, bf16 resident and under each offload mode) on
   full-size synthetic FLUX.1-dev, to confirm the blocks and to measure what blocks cannot show (offload
   transfers, allocator carry-over), until the deadline;
4. full only, if a minute and a half is left: bf16 resident with regional compile (about 40 s on an H100: load,
   a 17 s compile, the steps), which the profile keeps as the measured compiled step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from fluxplan.errors import NoGPU, ProfileError

QUICK_FORMATS = ("bf16", "fp8-layerwise")
CONFIRM = "bf16=none,model,group-leaf,sequential,group-block"  # pipeline rows of the full profile
COMPILED = "bf16=none"  # compiled regionally, after them
COMPILE_NEEDS_S = 90
# quantized on load on the host: past a minute per block model on both GPUs measured (docs/BENCHMARKS.md
# section 7), so measured last, where the deadline rather than the others' time pays for them
SLOW_TO_LOAD = ("quanto-fp8", "quanto-int4")
# Compiled at block level after every format's eager blocks, in this order as far as the deadline allows: bf16 and
# torchao (whose compile the catalog quotes), then one format of each other backend, then the other GGUF types.
# A format not reached keeps the catalog's compatibility (unverified ones are not planned unless pinned).
COMPILE_ORDER = ("bf16", "torchao-int8wo", "torchao-fp8dq", "bnb-nf4", "gguf-q8_0", "fp8-layerwise", "quanto-int8",
                 "torchao-fp8wo", "bnb-int8", "gguf-q4_k", "bnb-fp4", "gguf-q4_0")
COMPILE_LIMIT_S = 75  # bf16's block-level compile: about 20 s expected (the pipeline's regional compile took 17 s)


def results_dir(results: Path | None) -> Path:
    from fluxplan.run.store import cache_dir

    path = results or cache_dir() / "measurements" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def profile_path(results: Path) -> Path:
    """$FLUXPLAN_CACHE/profiles/<gpu>.json for the GPU the results were measured on."""
    from fluxplan.run.store import cache_dir

    head = next(results / n for n in ("sweep.json", "blocks.json") if (results / n).is_file())
    gpu = json.loads(head.read_text())["gpu"]
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu.lower()).strip("-")
    return cache_dir() / "profiles" / f"{slug}.json"


def usable_formats(device: str = "cuda") -> list[str]:
    """Transformer formats whose backend the doctor found working here and whose own checks pass (torchao int4
    needs mslk, fp8 dynamic activations compute capability 8.9)."""
    from fluxplan.errors import FluxplanError
    from fluxplan.profiling.matrix import GGUF, NON_GGUF
    from fluxplan.run import backends
    from fluxplan.run.doctor import usable_backends

    usable = usable_backends(device)
    keep = []
    for fmt in sorted(NON_GGUF + GGUF, key=lambda f: f in SLOW_TO_LOAD):
        backend, _ = backends.resolve(fmt, backends.TRANSFORMER)
        if backend.package is not None and backend.package not in usable:
            continue
        try:
            backend.check(fmt, backends.TRANSFORMER, device)
        except FluxplanError:
            continue
        keep.append(fmt)
    return keep


def block_tasks(formats: list[str]) -> list[str]:
    """The blocks stage's tasks in order: each format eager (the slow-loading ones held back), each format compiled
    regionally (COMPILE_ORDER first, then the rest), then the slow-loading formats."""
    fast = [f for f in formats if f not in SLOW_TO_LOAD]
    order = sorted(fast, key=lambda f: COMPILE_ORDER.index(f) if f in COMPILE_ORDER else len(COMPILE_ORDER))
    return fast + [f"{f}@regional" for f in order] + [f for f in formats if f in SLOW_TO_LOAD]


def _usable_in_child() -> list[str]:
    """usable_formats, asked of a child process: the doctor's checks run on the GPU, and this process should not
    hold a CUDA context while the others measure."""
    t = time.monotonic()
    code = "from fluxplan.profiling.run import usable_formats; print(','.join(usable_formats('cuda')))"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    formats = [f for f in (r.stdout.strip().splitlines() or [""])[-1].split(",") if f] or list(QUICK_FORMATS)
    print(f"[profile] usable formats ({time.monotonic() - t:.1f} s): {', '.join(formats)}", flush=True)
    return formats


def _stage(name: str, cmd: list[str], started: float, timings: list[str]) -> None:
    t = time.monotonic()
    code = subprocess.run(cmd, check=False).returncode
    line = f"{name}: {time.monotonic() - t:.1f} s (total {time.monotonic() - started:.1f} s)"
    timings.append(line + ("" if code == 0 else f", ended with {code}"))
    print(f"[profile] {timings[-1]}", flush=True)


def measure(results: Path | None, *, quick: bool, deadline: float) -> Path:
    """Measure into a results folder within `deadline` seconds (the stages share it) and return the folder."""
    import torch

    if not torch.cuda.is_available():
        raise NoGPU("fluxplan profile measures a CUDA GPU and sees none here; "
                    "use --from-results DIR to build a profile from earlier measurements")
    started = time.monotonic()
    out = results_dir(results)
    py = sys.executable
    timings: list[str] = []
    formats = list(QUICK_FORMATS) if quick else _usable_in_child()
    left = lambda: deadline - (time.monotonic() - started)
    # blocks get what the other stages leave them: ~20 s for encode/decode, and the pipelines' share when full
    blocks_deadline = left() - 20 if quick else min(left() * 0.6, 360)
    tasks = list(formats) if quick else block_tasks(formats)
    _stage(f"blocks ({len(formats)} formats{'' if quick else ', then compiled'})",
           [py, "-m", "fluxplan.profiling.blocks", "--out", str(out), "--formats", ",".join(tasks),
            "--deadline", f"{blocks_deadline:.0f}", "--limit", "30" if quick else "45",
            "--compile-limit", str(COMPILE_LIMIT_S)] + (["--quick"] if quick else []),
           started, timings)
    _stage("T5 encode, VAE decode, context",
           [py, "-m", "fluxplan.profiling.sweep", "--out", str(out), "--parts", "encode,decode"]
           + (["--quick"] if quick else []), started, timings)
    if not quick and left() > 120:
        from fluxplan.run.synth import ensure_synthetic

        t = time.monotonic()
        model = ensure_synthetic("dev", device="cuda")
        timings.append(f"synthetic FLUX.1-dev: {time.monotonic() - t:.1f} s")
        print(f"[profile] {timings[-1]}", flush=True)
        _stage("confirming pipelines", [py, "-m", "fluxplan.profiling.matrix", "--model", str(model), "--out",
                                        str(out), "--deadline", f"{max(0.0, left() - 15):.0f}", "--only", CONFIRM],
               started, timings)
        if left() > COMPILE_NEEDS_S:
            _stage("compiled pipeline", [py, "-m", "fluxplan.profiling.matrix", "--model", str(model), "--out",
                                         str(out), "--deadline", f"{max(0.0, left() - 15):.0f}", "--only", COMPILED,
                                         "--compile", "regional"], started, timings)
    (out / "timings.txt").write_text("\n".join(timings) + "\n")
    if not (out / "blocks.json").is_file():
        raise ProfileError(f"the block measurements wrote nothing to {out} (see the output above)")
    return out
