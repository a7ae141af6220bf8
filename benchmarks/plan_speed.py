"""How fast the planner answers: `fluxplan explain` in a fresh process, and `plan()` over the whole space.

    .venv/bin/python benchmarks/plan_speed.py            # prints a Markdown table (docs/BENCHMARKS.md)

Each figure is the median of N runs on the machine it runs on.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

GPUS = ["h100", "a100", "4090", "a10", "l4", "4070", "3060", "4060 laptop"]
N_PROCESS = 11
N_PLAN = 30


def fresh_process_explain() -> list[float]:
    exe = Path(sys.executable).with_name("fluxplan")
    times = []
    for _ in range(N_PROCESS):
        t = time.perf_counter()
        subprocess.run([str(exe), "explain", "--gpu", "4090", "--json"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return times


def plan_calls() -> dict[str, list[float]]:
    from fluxplan import plan

    out = {}
    for gpu in GPUS:
        plan(gpu)  # warm: catalog and profiles loaded once per process
        times = []
        for _ in range(N_PLAN):
            t = time.perf_counter()
            p = plan(gpu)
            times.append(time.perf_counter() - t)
        out[f"{gpu} ({p.considered} configurations, {p.feasible} feasible)"] = times
    return out


def main() -> None:
    proc = fresh_process_explain()
    plans = plan_calls()
    print(f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'}: {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {len(__import__('os').sched_getaffinity(0))} cores.\n")
    print("| what | median | max |\n|---|---|---|")
    print(f"| `fluxplan explain --gpu 4090 --json`, fresh process (n={N_PROCESS}) | {statistics.median(proc):.3f} s "
          f"| {max(proc):.3f} s |")
    for name, ts in plans.items():
        print(f"| `plan('{name.split(' (')[0]}')`: {name.split(' (')[1][:-1]} (n={N_PLAN}) | "
              f"{1000 * statistics.median(ts):.1f} ms | {1000 * max(ts):.1f} ms |")


if __name__ == "__main__":
    main()
