"""Predicted against measured: every row of a validation run (benchmarks/gpu/validate.py) next to what the
planner's cost model predicts for it from the committed profile. Writes the Markdown of docs/ACCURACY.md.

    .venv/bin/python benchmarks/accuracy.py benchmarks/results/h100-2026-11-22/validate.jsonl > docs/ACCURACY.md

tests/test_accuracy.py recomputes the same comparison and fails when the errors exceed the bounds below.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

PEAK_OVER = 0.05  # predicted peak at most 5 % above the measurement
PEAK_UNDER = 0.03  # ... and at most 3 % below it (an under-prediction is an out-of-memory crash)
STEP_ERR = 0.15  # step time within 15 % on a measured GPU


def compare(path: Path) -> list[dict]:
    from fluxplan.catalog.gpus import find_gpu
    from fluxplan.cost.model import CostModel
    from fluxplan.cost.profile import bundled_profiles
    from fluxplan.models import Candidate, Compile, Host, Offload, Request, TextEncoderPlacement

    rows = [json.loads(x) for x in path.read_text().splitlines()]
    prof = next(p for p in bundled_profiles() if p.gpu.startswith("NVIDIA H100"))
    gpu = find_gpu(prof.gpu)
    out = []
    for r in rows:
        if not r.get("ok"):
            continue
        c = Candidate(r["transformer"], r["text_encoder_2"], TextEncoderPlacement(r["text_encoder_placement"]),
                      Offload(r["offload"]), Compile.NONE, r["vae_tiling"])
        req = Request(width=r["width"], height=r["height"], batch=r["batch"], text_tokens=r["text_tokens"], steps=28)
        t = CostModel(req, gpu, Host(), prof, gpu).terms(c)
        out.append({**r, "label": c.label(), "pred_peak": t.peak, "pred_step": t.step_s,
                    "peak_err": t.peak / r["peak_nvml_gib"] - 1, "step_err": t.step_s / r["step_s"] - 1})
    return out


def within(row: dict) -> bool:
    return -PEAK_UNDER <= row["peak_err"] <= PEAK_OVER and abs(row["step_err"]) <= STEP_ERR


def report(rows: list[dict], source: Path) -> str:
    lines = [
        "# Accuracy: predicted against measured",
        "",
        f"Held-out pipeline runs ({source.as_posix()}, made by `benchmarks/gpu/validate.py` on an H100 80GB HBM3,",
        "torch 2.11.0+cu130, diffusers 0.42.1, full-size synthetic FLUX.1-dev, 3 steps) against the cost model's",
        "predictions from the committed H100 profile. None of these shapes or settings (other resolutions, batch 2,",
        "256 text tokens, quantized T5, T5 released after encoding, tiled decode) was used to build the profile,",
        "which holds 1024x1024 pipeline runs with bf16 T5 and the transformer-only sweep.",
        "",
        "Regenerate: `.venv/bin/python benchmarks/accuracy.py " + source.as_posix() + " > docs/ACCURACY.md`.",
        f"Bounds (tests/test_accuracy.py): peak within -{PEAK_UNDER:.0%}/+{PEAK_OVER:.0%}, step time within ±{STEP_ERR:.0%}.",
        "",
        "| configuration | size | batch | text tokens | peak predicted | peak measured | error | s/step predicted | s/step measured | error | in bounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['width']}x{r['height']} | {r['batch']} | {r['text_tokens']} | "
                     f"{r['pred_peak']:.2f} | {r['peak_nvml_gib']:.2f} | {r['peak_err']:+.1%} | {r['pred_step']:.3f} | "
                     f"{r['step_s']:.3f} | {r['step_err']:+.1%} | {'yes' if within(r) else '**no**'} |")
    pe = [abs(r["peak_err"]) for r in rows]
    se = [abs(r["step_err"]) for r in rows]
    under = [r for r in rows if r["peak_err"] < -PEAK_UNDER]
    lines += ["", f"Summary over {len(rows)} runs: peak error median {statistics.median(pe):.1%}, worst "
              f"{max(pe):.1%}; {len(under)} under-predicted by more than {PEAK_UNDER:.0%}. Step time error median "
              f"{statistics.median(se):.1%}, worst {max(se):.1%}. {sum(within(r) for r in rows)} of {len(rows)} in bounds."]
    return "\n".join(lines) + "\n"


def main() -> None:
    path = Path(sys.argv[1])
    print(report(compare(path), path), end="")


if __name__ == "__main__":
    main()
