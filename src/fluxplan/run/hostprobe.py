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

TOKENS, D_MODEL, N = 512, 4096, 10240  # T5-XXL's prompt length, width and feed-forward width: its largest matmul
PROBE = 3  # bumped when the probe changes, so that a figure cached by an older probe is measured again
DTYPES = ("bfloat16", "float32")  # what T5 may run in on the CPU: bf16 where the CPU has a fast path for it


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

    return f"{_cpu_name()} | {os.cpu_count()} threads | torch {torch.__version__} | probe {PROBE}"


def measure_cpu_tflops(budget_s: float = 0.5, dtype: str = "bfloat16") -> float:
    """bf16 matmul TFLOP/s of this CPU on T5-XXL's feed-forward matmul (512 tokens x 4096 by 4096 x 10240). It
    starts 256 times smaller and grows (x4 tokens, x4 columns) only while the next size's three calls are expected to
    stay inside `budget_s`, so a CPU without fast bf16 arithmetic (where T5 is as slow) is measured in about
    `budget_s`, and a fast one on T5's own shape. The first probe timed 4096 x 1024 columns and read 0.75 TFLOP/s on
    the H100 machine's 16-core CPU, where T5 itself ran at about 3: a narrow matmul leaves most cores idle."""
    import torch

    dt = getattr(torch, dtype)
    sizes = [(TOKENS // 4 ** i, N // 4 ** i) for i in (3, 2, 1, 0)]  # (8, 160) ... (512, 10240)
    for i, (m, n) in enumerate(sizes):
        a, b = torch.randn(m, D_MODEL, dtype=dt), torch.randn(D_MODEL, n, dtype=dt)
        best = float("inf")
        for _ in range(3):  # the first call also warms up
            t = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t)
        if i == len(sizes) - 1 or 3 * 16 * best > budget_s:
            return 2 * m * D_MODEL * n / best / 1e12
    raise AssertionError("unreachable")


def cpu_rate() -> tuple[float, str] | None:
    """(TFLOP/s, dtype) at which this CPU runs T5 fastest: bf16 and float32 are both timed, from the cache or now
    (about a second each at most) and cached; None if it cannot be measured. Without a fast bf16 path (AVX2-only
    CPUs: this 2-core development machine read 0.0013 TFLOP/s in bf16 and 0.12 in float32) T5 runs in float32,
    at twice the host memory."""
    path = host_path()
    key = _key()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return float(cached["cpu_tflops"]), str(cached["cpu_dtype"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        rates = {dtype: measure_cpu_tflops(dtype=dtype) for dtype in DTYPES}
    except RuntimeError:
        return None
    dtype = max(DTYPES, key=rates.__getitem__)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "cpu_tflops": rates[dtype], "cpu_dtype": dtype, "rates": rates,
                                   "measured": time.strftime("%Y-%m-%d")}))
        os.replace(tmp, path)
    except OSError:
        pass
    return rates[dtype], dtype


def cached_cpu_rate() -> tuple[float, str] | None:
    """The cached figure only (no torch): for `fluxplan explain`, which must not measure."""
    try:
        cached = json.loads(host_path().read_text())
        value, dtype = float(cached["cpu_tflops"]), str(cached.get("cpu_dtype", "bfloat16"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (value, dtype) if value > 0 and dtype in DTYPES else None


def dispatch_us(calls: int = 2000, repeats: int = 5) -> float:
    """Microseconds this host takes to run one tiny torch op from Python (the fastest of `repeats` batches of
    `calls`): the per-call cost that bounds a step when the CPU launches kernels no faster than the GPU runs them
    (sequential offload, 4-bit weights at small images: docs/ACCURACY.md, "Repeatability"). Recorded beside GPU
    measurements (`host()`) so that a host-bound step can be related to the host that ran it."""
    import torch

    x = torch.zeros(1)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            x.add_(1.0)
        best = min(best, time.perf_counter() - t)
    return best / calls * 1e6


def host() -> dict:
    """The host beside a measurement: its CPU's name, cores, and `dispatch_us`."""
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "dispatch_us": round(dispatch_us(), 3)}

