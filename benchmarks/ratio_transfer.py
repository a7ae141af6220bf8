"""How well a format's step relative to bf16's carries from one GPU's profile to the other's (what a profile takes
from a bundled one for a format or compile mode it did not measure, fluxplan.profiling.blockpoints
.forward_from_references): for each format both committed profiles measured at 1024x1024 (4096 image + 512 text
tokens, batch 1), eager and compiled regionally, the step predicted as the other GPU's step x the ratio of the two
GPUs' bf16 steps in the same mode, against the measured one.

    .venv/bin/python benchmarks/ratio_transfer.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPUS = {"H100": "nvidia-h100-80gb-hbm3.json", "H200": "nvidia-h200.json"}
POINT = (4096, 512, 1)


def _steps(profile: dict, mode: str) -> dict[str, float]:
    steps: dict[str, float] = {}
    for p in profile["forward"]:  # measured only; the first of a format (a pipeline's point before the blocks')
        if p["kind"] == "measured" and p["compile"] == mode and (p["image_tokens"], p["text_tokens"], p["batch"]) == POINT:
            steps.setdefault(p["format"], p["seconds"])
    return steps


def main() -> None:
    profiles = {g: json.loads((ROOT / "profiles" / f).read_text()) for g, f in GPUS.items()}
    print("| mode | predicted | from | formats | median error | worst (beyond 8 %) |")
    print("|---|---|---|---|---|---|")
    for mode in ("none", "regional"):
        for src, dst in (("H200", "H100"), ("H100", "H200")):
            a, b = _steps(profiles[src], mode), _steps(profiles[dst], mode)
            ratio = b["bf16"] / a["bf16"]
            errs = {f: a[f] * ratio / b[f] - 1 for f in sorted(set(a) & set(b) - {"bf16"})}
            worst = ", ".join(f"{f} {e:+.1%}" for f, e in errs.items() if abs(e) > 0.08) or "none"
            print(f"| {mode} | {dst} | {src} | {len(errs)} | {statistics.median(abs(e) for e in errs.values()):.1%} "
                  f"| {worst} |")


if __name__ == "__main__":
    main()
