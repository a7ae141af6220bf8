"""What-if for the next step (the cost model does not do this yet): every held-out group-leaf run against its own
GPU's profile, with the part of a group-leaf step the streams leave unhidden (cost.model.GROUP_UNHIDDEN_S, 0.31 s,
fitted on one H100) replaced by the one measured on each GPU kind: bf16 at 2048x2048, group-leaf step less the
resident step on the same machine (benchmarks/gpu/s8/g.sh; results `unhidden/` in the session-8 folders).

    .venv/bin/python benchmarks/unhidden_whatif.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402

FOLDERS = {"NVIDIA H100 80GB HBM3": "h100-2026-11-23-s8/unhidden", "NVIDIA H200": "h200-2026-11-23-s8/unhidden"}


def measured_unhidden(folder: Path) -> float:
    rows = {r["offload"]: r["step_s"] for r in map(json.loads, (folder / "matrix.jsonl").read_text().splitlines())
            if r.get("ok")}
    return rows["group-leaf"] - rows["none"]


def main() -> None:
    from fluxplan.cost import model as cm
    from fluxplan.models import Offload

    unhidden = {gpu: measured_unhidden(accuracy.ROOT / "benchmarks" / "results" / f) for gpu, f in FOLDERS.items()}
    print(" ".join(f"{gpu}: {u:.3f} s" for gpu, u in unhidden.items()), f"(constant {cm.GROUP_UNHIDDEN_S[Offload.GROUP_LEAF]} s)")
    print("| GPU | results | transformer | size | batch | measured | predicted now | error | with the measured | error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    profiles = accuracy.repo_profiles()
    constant = cm.GROUP_UNHIDDEN_S[Offload.GROUP_LEAF]
    for folder, profile, gpu, scaled in accuracy.pairs(profiles):
        if scaled:
            continue
        try:
            now = [r for r in accuracy.compare(folder, [profiles[profile]], gpu) if r["offload"] == "group-leaf"]
            cm.GROUP_UNHIDDEN_S[Offload.GROUP_LEAF] = unhidden[gpu]
            then = [r for r in accuracy.compare(folder, [profiles[profile]], gpu) if r["offload"] == "group-leaf"]
        finally:
            cm.GROUP_UNHIDDEN_S[Offload.GROUP_LEAF] = constant
        for a, b in zip(now, then):
            print(f"| {gpu} | {folder.name} | {a['transformer']} | {a['width']}x{a['height']} | {a['batch']} | "
                  f"{a['step_s']:.3f} | {a['pred_step']:.3f} | {a['step_err']:+.1%} | {b['pred_step']:.3f} | "
                  f"{b['step_err']:+.1%} |")


if __name__ == "__main__":
    main()
