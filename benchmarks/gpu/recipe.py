"""The documented low-memory recipe that fluxplan's plan is compared with at 8 GiB (issue 5): diffusers' group offload
at leaf level with CUDA streams on every component (transformer, T5, CLIP, VAE), as diffusers' memory guide gives
it, built here directly with diffusers' API (the planner never offers T5 group offload). Sequential CPU offload, the
other recipe, is a plan fluxplan can build and is measured by cards.py. Appends rows to $OUT/cards.jsonl in
cards.py's format (kind "oracle", recipe true), at 1024x1024, 3 steps, twice.

    python3 benchmarks/gpu/recipe.py --model .devcache/synthetic/dev-s0 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PROMPT = "a red fox in the snow, photograph"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    import torch
    from diffusers import FluxPipeline
    from diffusers.hooks import apply_group_offloading

    from fluxplan.run.builder import Built
    from fluxplan.run.measure import generate_images
    from fluxplan.run.memory import init_device

    init_device("cuda")
    t = time.perf_counter()
    pipe = FluxPipeline.from_pretrained(a.model, torch_dtype=torch.bfloat16)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    kw = dict(onload_device=torch.device("cuda"), offload_device=torch.device("cpu"), offload_type="leaf_level",
              use_stream=True)
    pipe.transformer.enable_group_offload(**kw)
    pipe.vae.enable_group_offload(**kw)
    apply_group_offloading(pipe.text_encoder, **kw)
    apply_group_offloading(pipe.text_encoder_2, **kw)
    built = Built(pipe, load_s, time.perf_counter() - t, ["group offload, leaf level, streams: every component"])
    label = "recipe: group offload leaf level + streams, every component (diffusers' guide)"
    for rep in range(2):
        _, m = generate_images(built, PROMPT, height=1024, width=1024, steps=3, guidance=3.5, seed=0,
                               placement="offload", device="cuda")
        row = {"kind": "oracle", "recipe": True, "shape": "1024", "label": label, "ok": True, "rep": rep,
               "quality": 1.0, "load_s": load_s, "peak_gib": m.peak_nvml_gib, "encode_s": m.encode_s,
               "step_s": m.step_s, "first_step_s": m.steps_flat[0], "decode_s": m.decode_s, "width": 1024,
               "height": 1024, "batch": 1, "candidate": None}
        print(json.dumps(row), flush=True)
        with (a.out / "cards.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
