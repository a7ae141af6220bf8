"""Run the measurements of `fluxplan profile` on this machine's GPU, each stage in its own process, into a
results folder, printing how long each stage took:

0. full only: the synthetic FLUX.1-dev the pipelines run, built (if missing) in a process of its own while the
   usable formats are checked, neither of which times anything;
1. blocks (fluxplan.profiling.blocks): one double- and one single-stream block per format; --quick: bf16 and
   fp8 layerwise casting; otherwise every format the doctor finds usable here but the slow-loading ones;
2. full only: encode and decode (fluxplan.profiling.sweep --parts encode,decode): T5 and the VAE alone, and the
   CUDA context (--quick takes the context from the blocks' process, encode and decode from the reference);
3. full only: a few whole pipelines (fluxplan.profiling.matrix, bf16 resident and under each offload mode) on
   full-size synthetic FLUX.1-dev, to confirm the blocks and to measure what blocks cannot show (offload
   transfers, allocator carry-over), until T5_FORMATS_S + COMPILE_RESERVE_S before the deadline;
4. full only: T5 in every other usable T5 format (fluxplan.profiling.sweep --parts t5formats), loaded from that
   synthetic checkpoint through its backend: load time, weights, encode at 256 and 512 text tokens; at most
   T5_FORMATS_S, never into the compile stage's reserve (a format not reached: see below);
5. full only, with what is left: formats compiled regionally at block level, one process each (COMPILE_ORDER;
   a cold compile takes 16-23 s, a task 40-60 s on an H100), as many as the deadline allows (a fresh H100 with the
   default deadline: bf16). Then the slow-loading formats' blocks (SLOW_TO_LOAD), if any time is left. Full compile
   (`FORMAT@full`, 73-119 s a format) is left to explicit `python -m fluxplan.profiling.blocks` calls.

A format or compile mode not reached takes its step relative to bf16's, and its compile status and time, from the
profile being replaced or a bundled one that measured it, and a T5 format not reached its encode relative to bf16's
and its weights (fluxplan.profiling.build, labelled derived); one measured nowhere keeps the catalog's figures (an
unverified compile is not planned unless pinned).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from fluxplan.errors import NoGPU, ProfileError
from fluxplan.run.backends.base import TEXT_ENCODER_2, TRANSFORMER

QUICK_FORMATS = ("bf16", "fp8-layerwise")
CONFIRM = "bf16=none,model,group-leaf,sequential,group-block"  # pipeline rows of the full profile
# quantized on load on the host: past a minute per block model on both GPUs measured (docs/BENCHMARKS.md
# section 7). Measured at the very end, after the compile tasks: at the end of the blocks stage they took its last
# 100 s of a fresh H100's full run (45 s limit, then the stage's deadline) and the pipelines had 84 s for 2 of 5
SLOW_TO_LOAD = ("quanto-fp8", "quanto-int4")
# Compiled at block level after the pipelines, in this order as far as the deadline allows (H100, 2026-11-22, a
# fresh process each: bf16 compiled in 23 s, bnb-nf4 in 22, gguf-q8_0 in 16, torchao-int8wo not within 150 s;
# fp8 layerwise casting fails at once under Dynamo): the formats plans use most, each backend once, then the rest.
COMPILE_ORDER = ("bf16", "fp8-layerwise", "gguf-q8_0", "bnb-nf4", "torchao-fp8dq", "quanto-int8", "gguf-q4_k",
                 "bnb-fp4", "torchao-fp8wo", "bnb-int8", "gguf-q4_0", "torchao-int8wo")
COMPILE_LIMIT_S = 90  # one compile task: load, the cold compile, the timed forwards (bf16: 40 s on an H100)
COMPILE_RESERVE_S = 60  # the pipelines stop this long before the deadline, so that bf16 at least is compiled
# T5 in the other formats, after the pipelines (which stop this much earlier still): one process for all of them,
# its start (CUDA, imports) included; no format begins in its last T5_LAST_S, and the process is stopped at the end
# of it (the rows measured by then are kept). On an H100 the process took 41 s for bf16 and four formats (torchao
# int8 12 s of it, quantizing on load); quanto int8 took 104 s to load T5 on an H200, more than the stage has: it
# is left out (measured by calling the sweep).
T5_FORMATS_S, T5_MIN_S, T5_LAST_S = 45, 20, 10
T5_ORDER = ("fp8-layerwise", "bnb-nf4", "bnb-int8", "torchao-int8wo")
T5_SLOW = ("quanto-int8",)


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


def usable_formats(device: str = "cuda", role: str = TRANSFORMER) -> list[str]:
    """Formats of `role` (the transformer's, or T5's: the catalog's text_encoder_2 formats) whose backend the
    doctor found working here and whose own checks pass (torchao int4 needs mslk, fp8 dynamic activations compute
    capability 8.9, bitsandbytes a GPU)."""
    from fluxplan.errors import FluxplanError
    from fluxplan.run import backends
    from fluxplan.run.doctor import usable_backends

    if role == TRANSFORMER:
        from fluxplan.profiling.matrix import GGUF, NON_GGUF

        candidates = NON_GGUF + GGUF
    else:
        from fluxplan.profiling.sweep import t5_formats

        candidates = t5_formats()
    usable = usable_backends(device)
    keep = []
    for fmt in candidates:
        backend, _ = backends.resolve(fmt, role)
        if backend.package is not None and backend.package not in usable:
            continue
        try:
            backend.check(fmt, role, device)
        except FluxplanError:
            continue
        keep.append(fmt)
    return keep


def block_tasks(formats: list[str]) -> list[str]:
    """The blocks stage's tasks in order: each format eager but the slow-loading ones (the last stage's)."""
    return [f for f in formats if f not in SLOW_TO_LOAD]


def compile_tasks(formats: list[str]) -> list[str]:
    """The compile stage's tasks: each usable format compiled regionally, COMPILE_ORDER first, then the rest."""
    order = sorted((f for f in formats if f not in SLOW_TO_LOAD),
                   key=lambda f: COMPILE_ORDER.index(f) if f in COMPILE_ORDER else len(COMPILE_ORDER))
    return [f"{f}@regional" for f in order]


def last_tasks(formats: list[str]) -> list[str]:
    """The last stage's tasks: the compile tasks, then the slow-loading formats eager, as far as time allows."""
    return compile_tasks(formats) + [f for f in formats if f in SLOW_TO_LOAD]


def t5_tasks(formats: list[str]) -> list[str]:
    """The T5 stage's formats: the usable ones but bf16 (the encode stage measured it) and the slow-loading ones,
    T5_ORDER first."""
    return sorted((f for f in formats if f != "bf16" and f not in T5_SLOW),
                  key=lambda f: T5_ORDER.index(f) if f in T5_ORDER else len(T5_ORDER))


def _usable_in_child(role: str = TRANSFORMER) -> list[str]:
    """usable_formats of `role`, asked of a child process: the doctor's checks run on the GPU (cached on disk after
    the first time), and this process should not hold a CUDA context while the others measure."""
    t = time.monotonic()
    code = f"from fluxplan.profiling.run import usable_formats; print(','.join(usable_formats('cuda', {role!r})))"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    formats = [f for f in (r.stdout.strip().splitlines() or [""])[-1].split(",") if f] or list(QUICK_FORMATS)
    print(f"[profile] usable {role} formats ({time.monotonic() - t:.1f} s): {', '.join(formats)}", flush=True)
    return formats


def _start_synthetic(py: str) -> subprocess.Popen | None:
    """Build full-size synthetic FLUX.1-dev (the pipelines' model) in a process of its own, if it is not built yet:
    on a fresh H100 it took 68 s, and the usable-format check, which times nothing either, 30 s (session 8). A build
    that fails here is built again, with its error shown, where the pipelines need it."""
    from fluxplan.run.synth import synthetic_dir

    if synthetic_dir("dev", 0).is_dir():
        return None
    code = "from fluxplan.run.synth import ensure_synthetic; ensure_synthetic('dev', device='cuda')"
    return subprocess.Popen([py, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stage(name: str, cmd: list[str], started: float, timings: list[str], timeout: float | None = None) -> None:
    """Run one stage's process to its end (or stop it after `timeout` seconds) and record how long it took."""
    t = time.monotonic()
    try:
        code = subprocess.run(cmd, check=False, timeout=timeout).returncode
        ended = "" if code == 0 else f", ended with {code}"
    except subprocess.TimeoutExpired:
        ended = f", stopped at its {timeout:.0f} s limit"
    line = f"{name}: {time.monotonic() - t:.1f} s (total {time.monotonic() - started:.1f} s)"
    timings.append(line + ended)
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
    synth = None if quick else _start_synthetic(py)
    formats = list(QUICK_FORMATS) if quick else _usable_in_child()
    if synth is not None:  # built beside the usable-format check, before anything is timed
        synth.wait()
        timings.append(f"synthetic FLUX.1-dev, beside the usable-format check: {time.monotonic() - started:.1f} s")
        print(f"[profile] {timings[-1]}", flush=True)
    left = lambda: deadline - (time.monotonic() - started)
    # blocks get what the other stages leave them: with --quick all of it, else the pipelines' share is kept
    blocks_deadline = left() - 5 if quick else min(left() * 0.5, 320)
    blocks = [py, "-m", "fluxplan.profiling.blocks", "--out", str(out)]
    eager = block_tasks(formats)
    _stage(f"blocks ({len(eager)} formats)",
           blocks + ["--formats", ",".join(eager), "--deadline", f"{blocks_deadline:.0f}",
                     "--limit", "30" if quick else "45"] + (["--quick"] if quick else []),
           started, timings)
    # --quick calibrates from blocks alone (the blocks' process measures the CUDA context as it starts): this stage
    # took 25-27 s of a quick run on an H100 and an H200, most of it a second process starting CUDA and building
    # the VAE and T5; encode and decode come from the previous or the bundled profile, scaled, and say so
    if not quick:
        _stage("T5 encode, VAE decode, context",
               [py, "-m", "fluxplan.profiling.sweep", "--out", str(out), "--parts", "encode,decode"], started, timings)
    model = None
    if not quick and left() > 120:
        from fluxplan.run.synth import ensure_synthetic

        t = time.monotonic()
        model = ensure_synthetic("dev", device="cuda")
        timings.append(f"synthetic FLUX.1-dev: {time.monotonic() - t:.1f} s")
        print(f"[profile] {timings[-1]}", flush=True)
        reserve = COMPILE_RESERVE_S + T5_FORMATS_S  # what the T5 formats and the compile stage need after them
        _stage("confirming pipelines", [py, "-m", "fluxplan.profiling.matrix", "--model", str(model), "--out",
                                        str(out), "--deadline", f"{max(0.0, left() - reserve):.0f}",
                                        "--only", CONFIRM], started, timings)
    if model is not None and left() - COMPILE_RESERVE_S > T5_MIN_S:
        t0 = time.monotonic()
        t5 = t5_tasks(_usable_in_child(TEXT_ENCODER_2))
        budget = min(T5_FORMATS_S - (time.monotonic() - t0), left() - COMPILE_RESERVE_S)
        if t5 and budget > T5_MIN_S:
            _stage(f"T5 formats ({len(t5)})",
                   [py, "-m", "fluxplan.profiling.sweep", "--out", str(out), "--append", "--parts", "t5formats",
                    "--model", str(model), "--t5-formats", ",".join(t5), "--deadline", f"{budget - T5_LAST_S:.0f}"],
                   started, timings, timeout=budget)
    if not quick and left() > 30:
        _stage("compiled blocks", blocks + ["--append", "--formats", ",".join(last_tasks(formats)),
                                            "--deadline", f"{left() - 5:.0f}", "--limit", "45",
                                            "--compile-limit", str(COMPILE_LIMIT_S)], started, timings)
    (out / "timings.txt").write_text("\n".join(timings) + "\n")
    if not (out / "blocks.json").is_file():
        raise ProfileError(f"the block measurements wrote nothing to {out} (see the output above)")
    return out
