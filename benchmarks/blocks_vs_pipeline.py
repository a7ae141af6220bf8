"""Blocks extrapolated against whole pipelines (docs/BENCHMARKS.md section 7): for each format with a resident
pipeline row, the step time `fluxplan.profiling.blocks` measured on one double- and one single-stream block and
extrapolated to 19 + 38 blocks, against the pipeline's measured step, at 1024x1024, 512 text tokens, batch 1; and
the transformer weights extrapolated from the blocks' tensors.

    .venv/bin/python benchmarks/blocks_vs_pipeline.py benchmarks/results/h100-2026-11-22
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fluxplan.profiling.blockpoints import extrapolate


def table(results: Path) -> str:
    blocks = json.loads((results / "blocks.json").read_text())
    n_double, n_single = blocks["blocks"]["double"], blocks["blocks"]["single"]
    pipes = {r["format"]: r for r in map(json.loads, (results / "matrix.jsonl").read_text().splitlines())
             if r.get("offload") == "none" and r.get("compile", "none") == "none" and r.get("ok")}
    lines = ["| format | blocks, extrapolated | pipeline | error | weights GiB (blocks) |", "|---|---|---|---|---|"]
    for f in blocks["formats"]:
        if not f.get("ok"):
            continue
        p = next(p for p in f["points"] if (p["image_tokens"], p["text_tokens"], p["batch"]) == (4096, 512, 1))
        step = extrapolate(p["rest_s"], p["double_s"], p["single_s"], n_double, n_single)
        w = f["weights_bytes"]
        weights = extrapolate(w["rest"], w["double"], w["single"], n_double, n_single) / 2**30
        pipe = pipes.get(f["format"])
        if pipe is None:
            lines.append(f"| {f['format']} | {step:.3f} | | | {weights:.2f} |")
        else:
            lines.append(f"| {f['format']} | {step:.3f} | {pipe['step_s']:.3f} | {(step / pipe['step_s'] - 1) * 100:+.1f}% "
                         f"| {weights:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
