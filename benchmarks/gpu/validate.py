"""Held-out validation: run pipelines at shapes and settings the profile was not built from, and record what
they cost, to compare with the planner's predictions (benchmarks/accuracy.py -> docs/ACCURACY.md).

Each configuration is built once (in its own process) and run at several shapes, smallest first, with the
allocator's cache emptied between shapes.

    python benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out $OUT --deadline 540
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# (transformer, T5 format, T5 placement, offload, VAE tiling, [(width, height, batch, text tokens), ...])
S768, S1024x1536, S1536, S2048 = (768, 768, 1, 512), (1024, 1536, 1, 512), (1536, 1536, 1, 512), (2048, 2048, 1, 512)
B2, T256, S1024 = (1024, 1024, 2, 512), (1024, 1024, 1, 256), (1024, 1024, 1, 512)
CONFIGS = [
    ("bf16", "bf16", "resident", "none", False, [S768, T256, S1024x1536, B2, S1536, S2048]),
    ("bnb-nf4", "bf16", "resident", "none", False, [S768, S1024x1536, B2, S1536, S2048]),
    ("bf16", "bf16", "free", "group-leaf", False, [S768, S1024, S1536]),
    ("bf16", "bf16", "offload", "model", False, [S768, S1536, S2048]),
    ("gguf-q8_0", "bf16", "resident", "none", False, [S768, B2, S1536]),
    ("fp8-layerwise", "bf16", "resident", "group-leaf", False, [S768, B2, S1536]),
    ("bnb-nf4", "bnb-nf4", "resident", "none", False, [S1024, S1536]),
    ("bf16", "bf16", "resident", "group-block", False, [S1536, B2]),
    ("torchao-int8wo", "bf16", "resident", "none", False, [S1024x1536, S1536]),
    ("bf16", "bf16", "resident", "none", True, [S2048]),
    ("gguf-q4_0", "torchao-int8wo", "free", "group-leaf", False, [S1024, S1536]),
    ("bf16", "bf16", "offload", "sequential", False, [S768]),
]
STEPS = 3


def child(index: int, model: Path, out: Path) -> None:
    import gc

    import torch

    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.builder import build
    from fluxplan.run.measure import generate_images
    from fluxplan.run.synth import ensure_gguf

    tf, t5, placement, offload, tiling, shapes = CONFIGS[index]
    gguf = ensure_gguf(model, "dev", tf.split("-", 1)[1].upper(), device="cuda") if tf.startswith("gguf-") else None
    c = Candidate(tf, t5, TextEncoderPlacement(placement), Offload(offload), Compile.NONE, tiling)
    base = {"transformer": tf, "text_encoder_2": t5, "text_encoder_placement": placement, "offload": offload,
            "vae_tiling": tiling, "steps": STEPS}
    try:
        built = build(c, model, device="cuda")
    except Exception as e:
        _write(out, {**base, "ok": False, "error": f"build: {type(e).__name__}: {e}"[:300]})
        return
    for w, h, batch, tokens in shapes:
        row = {**base, "width": w, "height": h, "batch": batch, "text_tokens": tokens, "load_s": built.load_s}
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            _, m = generate_images(built, "a red fox in the snow, photograph", height=h, width=w, steps=STEPS,
                                   guidance=3.5, seed=0, batch=batch, images=batch, max_sequence_length=tokens,
                                   placement=placement, device="cuda")
            row.update(ok=True, step_s=m.step_s, encode_s=m.encode_s, decode_s=m.decode_s,
                       first_step_s=m.steps_flat[0], peak_nvml_gib=m.peak_nvml_gib,
                       peak_reserved_gib=m.peak_reserved_gib, phase_peak_reserved_gib=m.phase_peak_reserved_gib,
                       context_gib=m.context_gib)
        except Exception as e:
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:300])
        _write(out, row)
        print(json.dumps({k: row.get(k) for k in ("transformer", "offload", "width", "height", "batch", "ok",
                                                  "step_s", "peak_nvml_gib", "error")}), flush=True)
        if placement == "free":
            break  # the text encoders are gone after the first shape: one shape per build
    if gguf is not None:
        gguf.unlink(missing_ok=True)


def _write(out: Path, row: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "validate.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, default=540)
    ap.add_argument("--child", type=int)
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, Path(args.model), Path(args.out))
        return
    deadline = time.monotonic() + args.deadline
    for i in range(args.start, len(CONFIGS)):
        left = deadline - time.monotonic()
        if left < 45:
            print(f"deadline: stopping before config {i}", flush=True)
            break
        try:
            subprocess.run([sys.executable, __file__, "--child", str(i), "--model", args.model, "--out", args.out],
                           timeout=left)
        except subprocess.TimeoutExpired:
            _write(Path(args.out), {"config": i, "ok": False, "error": "timeout"})


if __name__ == "__main__":
    main()
