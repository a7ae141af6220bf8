"""How fast this machine's CPU runs T5 (placement `cpu` encodes the prompt there): a few bf16 matmuls at T5-XXL's
width, timed once and kept in $FLUXPLAN_CACHE/host.json for this CPU and torch version, so that the
planner (which never imports torch) reads a measured figure instead of a guess.

A 16-core server CPU of the H100 machine ran T5-XXL's 512-token encode in 1.5-1.9 s, where the guess of 0.5 TFLOP/s
predicts 9.8 s: that guess made the planner prefer moving T5 on and off the GPU (about 6 s) to encoding on the CPU.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

TOKENS, D_MODEL, N = 512, 4096, 1024  # T5-XXL's prompt length and width; N columns keep a slow CPU's probe short


def host_path() -> Path:
    from fluxplan.run.store import cache_dir

    return cache_dir() / "host.json"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _key() -> str:
    import torch

    return f"{_cpu_name()} | {os.cpu_count()} threads | torch {torch.__version__}"


def measure_cpu_tflops(budget_s: float = 0.5) -> float:
    """bf16 matmul TFLOP/s of this CPU at T5-XXL's width (d_model 4096). It starts with 8 tokens and grows to T5's
    512 while two matmuls stay well inside `budget_s`, so a CPU without fast bf16 arithmetic (where T5 would be as
    slow) is measured in about `budget_s`, and a fast one in milliseconds."""
    import torch

    k, n = D_MODEL, N
    b = torch.randn(k, n, dtype=torch.bfloat16)
    m = 8
    while True:
        a = torch.randn(m, k, dtype=torch.bfloat16)
        best = float("inf")
        for _ in range(2):  # the first call also warms up
            t = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t)
        if m >= TOKENS or best * 8 > budget_s:
            return 2 * m * k * n / best / 1e12
        m *= 4


def cpu_tflops() -> float | None:
    """This CPU's measured rate, from the cache or measured now (about a second) and cached; None if it cannot be
    measured or stored."""
    path = host_path()
    key = _key()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return float(cached["cpu_tflops"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        value = measure_cpu_tflops()
    except RuntimeError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "cpu_tflops": value, "measured": time.strftime("%Y-%m-%d")}))
        os.replace(tmp, path)
    except OSError:
        pass
    return value


def cached_cpu_tflops() -> float | None:
    """The cached figure only (no torch): for `fluxplan explain`, which must not measure."""
    try:
        value = float(json.loads(host_path().read_text())["cpu_tflops"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if value > 0 else None
