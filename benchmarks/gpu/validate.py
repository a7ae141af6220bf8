"""Held-out validation: run pipelines at shapes and settings the profile was not built from, and record what
they cost, to compare with the planner's predictions (benchmarks/accuracy.py -> docs/ACCURACY.md).

Each configuration is built once (in its own process) and run at several shapes, smallest first, with the
allocator's cache emptied between shapes. Before the first shape each build runs once, unrecorded, at 512x512
for one step (`--no-warmup` leaves that out, as the H100 run of 2026-11-22 did: its first row of each build
carries CUDA and cuBLAS warm-up in the encode and the first step).

    python benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out $OUT --deadline 540
    python benchmarks/gpu/validate.py --model .devcache/synthetic/dev-s0 --out $OUT --configs scaling --deadline 290

`--configs` picks configurations by index into CONFIGS ("0,1,2") or by a name of SETS ("scaling").
Each row records the GPU, the versions, and `elapsed_s` (seconds since its build's process started), for
planning subsets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# (transformer, T5 format, T5 placement, offload, VAE tiling, [(width, height, batch, text tokens), ...][, compile])
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
    # compiled regionally (session 6): the profile's compiled points are block-level, at 1024x1024
    ("bf16", "bf16", "resident", "none", False, [S1024, S768, S1536], "regional"),
    ("bnb-nf4", "bf16", "resident", "none", False, [S1024, S768], "regional"),
    ("gguf-q8_0", "bf16", "resident", "none", False, [S1024, S768], "regional"),
    # session 7: full compile (the profile's compiled points are block-level, the stacked forward traced whole)
    ("bf16", "bf16", "resident", "none", False, [S1024, S768], "full"),
    ("bnb-nf4", "bf16", "resident", "none", False, [S1024], "full"),
    # session 7: T5 in formats whose encode and weights the profile now measures per format
    ("bf16", "bnb-int8", "resident", "none", False, [S1024, S768]),
    ("gguf-q4_k", "fp8-layerwise", "resident", "none", False, [S1024, S768]),
    # session 8: quantized transformers offloaded (the profile's offload transfers are measured with bf16 and
    # scaled by the weights' bytes for other formats)
    ("bnb-nf4", "bf16", "resident", "group-block", False, [S1024, S1536]),
    ("gguf-q8_0", "bf16", "offload", "model", False, [S1024, S768]),
    ("torchao-int8wo", "bf16", "free", "group-leaf", False, [S768, S1024]),
]
STEPS = 3
STARTED = time.monotonic()  # rows' elapsed_s counts from here: this process's start, imports included
# Named subsets. "scaling" (checking a GPU predicted from another GPU's profile): resident bf16 and NF4 at every
# shape, and group-leaf offload (PCIe-bound): 12 rows. Estimated from the H100 rows of 2026-11-22 (which carry no
# wall clock): loads of 23 + 28 + 21 s, 10 to 15 s of stage time per build, plus each process's start and
# imports: about 3 minutes. Model offload (config 3) adds about 10 s per shape moving the transformer in; its
# 2048x2048 shape did not finish before that run's deadline.
SETS = {"all": list(range(len(CONFIGS))), "scaling": [0, 1, 2], "resident": [0, 1], "offload": [2, 3, 7],
        "compiled": [12, 13, 14], "full": [15, 16], "t5": [17, 18], "qoffload": [19, 20, 21]}


def select(spec: str | None) -> list[int]:
    """Config indices from "0,1,2", a name of SETS, or a mix ("scaling,3"); None: all."""
    if spec is None:
        return list(range(len(CONFIGS)))
    picked: list[int] = []
    for part in (x.strip() for x in spec.split(",")):
        if not part:
            continue
        if part in SETS:
            picked += SETS[part]
        elif part.isdigit() and int(part) < len(CONFIGS):
            picked.append(int(part))
        else:
            raise SystemExit(f"--configs {spec!r}: {part!r} is neither an index below {len(CONFIGS)} "
                             f"nor one of {', '.join(SETS)}")
    return list(dict.fromkeys(picked))


def child(index: int, model: Path, out: Path, warmup: bool = True) -> None:
    import gc

    import diffusers
    import torch

    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.builder import build
    from fluxplan.run.measure import generate_images
    from fluxplan.run.hostprobe import host
    from fluxplan.run.synth import ensure_gguf

    tf, t5, placement, offload, tiling, shapes, *rest = CONFIGS[index]
    compile_mode = rest[0] if rest else "none"
    gguf = ensure_gguf(model, "dev", tf.split("-", 1)[1].upper(), device="cuda") if tf.startswith("gguf-") else None
    c = Candidate(tf, t5, TextEncoderPlacement(placement), Offload(offload), Compile(compile_mode), tiling)
    base = {"transformer": tf, "text_encoder_2": t5, "text_encoder_placement": placement, "offload": offload,
            "vae_tiling": tiling, "compile": compile_mode, "steps": STEPS, "config": index,
            "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "warmup": warmup, "host": host()}
    if compile_mode != "none":
        torch._inductor.config.force_disable_caches = True  # a user's first compile, as the profile measures it
    try:
        built = build(c, model, device="cuda")
    except Exception as e:
        _write(out, {**base, "ok": False, "error": f"build: {type(e).__name__}: {e}"[:300],
                     "elapsed_s": time.monotonic() - STARTED})
        return
    if warmup:  # not recorded; "free" would release the text encoders, so the warm-up keeps them
        # compiled: at the first shape, two steps, so that its first step is the cold compile (recorded)
        w0, h0 = (shapes[0][0], shapes[0][1]) if compile_mode != "none" else (512, 512)
        try:
            _, wm = generate_images(built, "warm-up", height=h0, width=w0, steps=2 if compile_mode != "none" else 1,
                                    guidance=3.5, seed=0, placement="resident" if placement == "free" else placement,
                                    device="cuda")
            if compile_mode != "none":
                base["compile_s"] = wm.steps_flat[0] - wm.steps_flat[1]
        except Exception as e:
            base.update(warmup=False, warmup_error=f"{type(e).__name__}: {e}"[:200])
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
        row["elapsed_s"] = time.monotonic() - STARTED
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
    ap.add_argument("--start", type=int, default=0, help="skip configurations below this index")
    ap.add_argument("--configs", help=f"indices into CONFIGS and/or names of sets ({', '.join(SETS)}), "
                                      "comma-separated; default all")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, Path(args.model), Path(args.out), args.warmup)
        return
    deadline = time.monotonic() + args.deadline
    for i in [i for i in select(args.configs) if i >= args.start]:
        left = deadline - time.monotonic()
        if left < 45:
            print(f"deadline: stopping before config {i}", flush=True)
            break
        try:
            code = subprocess.run([sys.executable, __file__, "--child", str(i), "--model", args.model, "--out",
                                   args.out] + ([] if args.warmup else ["--no-warmup"]), timeout=left).returncode
        except subprocess.TimeoutExpired:
            _write(Path(args.out), {"config": i, "ok": False, "error": "timeout"})
            continue
        if code != 0:  # the child died before writing its own failure (session 8: NF4 under group-block left none)
            _write(Path(args.out), {"config": i, "ok": False, "error": f"process ended with {code}"})


if __name__ == "__main__":
    main()
