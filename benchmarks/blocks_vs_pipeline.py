"""Blocks against whole pipelines (docs/BENCHMARKS.md section 7): for each format with a resident pipeline row
(1024x1024, 512 text tokens, batch 1), the step `fluxplan.profiling.blocks` measured on one double- and one
single-stream block, extrapolated to 19 + 38 blocks and (where measured) stacked (the block model's forward with
its blocks called 19 and 38 times), against the pipeline's measured step; and the transformer weights
extrapolated from the blocks' tensors. Each further folder adds its blocks.json as more columns.

    .venv/bin/python benchmarks/blocks_vs_pipeline.py benchmarks/results/h100-2026-11-22 \
        benchmarks/results/h100-2026-11-22-s5/full benchmarks/results/h100-2026-11-22-s5/repeat
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fluxplan.profiling.blockpoints import extrapolate

AT = (4096, 512, 1)


def _err(x: float | None, pipe: dict | None) -> str:
    if x is None:
        return ""
    return f"{x:.3f}" + (f" ({(x / pipe['step_s'] - 1) * 100:+.1f}%)" if pipe else "")


def table(results: Path, *more: Path) -> str:
    """`results`: the folder of the pipeline rows (matrix.jsonl) and of the first blocks.json; `more`: folders of
    further blocks.json files, compared with the same pipeline rows."""
    sources = [results, *more]
    docs = [json.loads((f / "blocks.json").read_text()) for f in sources]
    pipes = {r["format"]: r for r in map(json.loads, (results / "matrix.jsonl").read_text().splitlines())
             if r.get("offload") == "none" and r.get("compile", "none") == "none" and r.get("ok")}
    stacked = [any("stacked_s" in p for r in d["formats"] if r.get("ok") for p in r["points"]) for d in docs]
    head = ["format", "pipeline"]
    for f, has in zip(sources, stacked):
        head += [f"{f.name}: extrapolated"] + ([f"{f.name}: stacked"] if has else [])
    head.append("weights GiB (blocks)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    formats = [f["format"] for f in docs[0]["formats"] if f.get("ok")]
    for fmt in formats:
        pipe = pipes.get(fmt)
        cells = [fmt, f"{pipe['step_s']:.3f}" if pipe else ""]
        weights = None
        for doc, has in zip(docs, stacked):
            nd, ns = doc["blocks"]["double"], doc["blocks"]["single"]
            row = next((r for r in doc["formats"] if r["format"] == fmt and r.get("ok")), None)
            if row is None:
                cells += [""] * (1 + has)
                continue
            p = next(p for p in row["points"] if (p["image_tokens"], p["text_tokens"], p["batch"]) == AT)
            cells += [_err(extrapolate(p["rest_s"], p["double_s"], p["single_s"], nd, ns), pipe)]
            cells += [_err(p.get("stacked_s"), pipe)] if has else []
            w = row["weights_bytes"]
            weights = extrapolate(w["rest"], w["double"], w["single"], nd, ns) / 2**30
        cells.append(f"{weights:.2f}" if weights is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(*(Path(a) for a in sys.argv[1:])))
