"""Measure the cost curves of a GPU with full-size random FLUX.1-dev modules built in GPU memory (no disk):
transformer forward time and activation memory against image tokens, text tokens and batch; VAE decode against
image size (tiled and not); T5 encode; the CUDA context. Writes OUT/sweep.json in the profile schema's terms.

    python -m fluxplan.profiling.sweep --out $OUT        # on the GPU machine, about 2 minutes
    python -m fluxplan.profiling.sweep --out $OUT --parts encode,decode --quick   # what `fluxplan profile` runs

`fluxplan profile` takes the transformer's curves from blocks (fluxplan.profiling.blocks) and runs only the
encode and decode parts here (the context is always measured: it comes first and costs nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

GIB = 1024**3


def timed(fn, reps: int = 3) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def peak_above(fn, base: int) -> tuple[float, float]:
    """(allocated, reserved) peak above `base` bytes during fn, GiB."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / GIB, (torch.cuda.max_memory_reserved() - base) / GIB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="forward,decode,encode", help="which of forward, decode, encode")
    ap.add_argument("--quick", action="store_true", help="decode at 768 and 1024 (and 1536 tiled) only")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    out = Path(args.out)
    t_start = time.perf_counter()
    import torch

    from fluxplan.profiling.blocks import cuda_context_gib

    context = cuda_context_gib()
    from fluxplan.catalog.families import find_family

    fam = find_family("dev")
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "context_gib": context,
              "date": time.strftime("%Y-%m-%d"), "forward": [], "decode": [], "encode": []}
    import diffusers
    result["diffusers"] = diffusers.__version__
    print(f"context {context:.2f} GiB", flush=True)
    if "forward" in parts:
        forward_sweep(result, fam.transformer)
    decode_sizes = ([(768, False), (1024, False), (1536, True)] if args.quick else
                    [(512, False), (768, False), (1024, False), (1536, False), (2048, False), (1536, True),
                     (2048, True)])
    if parts & {"decode", "encode"}:
        decode_encode(result, fam, decode_sizes if "decode" in parts else [], "encode" in parts)
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    print(f"sweep ({','.join(sorted(parts))}): {time.perf_counter() - t_start:.1f} s", flush=True)


def forward_sweep(result: dict, transformer_cfg: dict) -> None:
    """bf16 forward points of the full-size transformer (older profiles; blocks measure this now)."""
    import torch
    from diffusers import FluxTransformer2DModel

    from fluxplan.run.synth import init_weights_

    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        tr = FluxTransformer2DModel(**strip(transformer_cfg)).eval()
    init_weights_(tr)
    torch.set_default_dtype(torch.float32)
    weights = torch.cuda.memory_allocated()
    print(f"transformer {weights / GIB:.2f} GiB", flush=True)

    def forward(side: int, text: int, batch: int):
        n = (side // 16) ** 2
        x = torch.randn(batch, n, 64, device="cuda", dtype=torch.bfloat16)
        ctx = torch.randn(batch, text, 4096, device="cuda", dtype=torch.bfloat16)
        pooled = torch.randn(batch, 768, device="cuda", dtype=torch.bfloat16)
        t = torch.full((batch,), 0.5, device="cuda", dtype=torch.bfloat16)
        g = torch.full((batch,), 3.5, device="cuda", dtype=torch.bfloat16)
        img_ids = torch.zeros(n, 3, device="cuda")
        txt_ids = torch.zeros(text, 3, device="cuda")

        def run():
            with torch.inference_mode():
                tr(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t, guidance=g,
                   img_ids=img_ids, txt_ids=txt_ids, return_dict=False)
        return run, n

    for side, text, batch in [(512, 512, 1), (768, 512, 1), (1024, 512, 1), (1024, 256, 1), (1024, 512, 2),
                              (1536, 512, 1), (2048, 512, 1), (768, 512, 2), (1536, 256, 1)]:
        run, n = forward(side, text, batch)
        base = torch.cuda.memory_allocated()
        alloc, reserved = peak_above(run, base)
        secs = timed(run)
        result["forward"].append({"format": "bf16", "compile": "none", "image_tokens": n, "text_tokens": text,
                                  "batch": batch, "seconds": secs, "weights_gib": weights / GIB,
                                  "activation_gib": alloc, "reserved_gib": reserved})
        print(result["forward"][-1], flush=True)
        torch.cuda.empty_cache()
    tr = None  # frees the weights (the closures above share this name, so it is rebound, not deleted)
    torch.cuda.empty_cache()


def decode_encode(result: dict, fam, decode_sizes: list[tuple[int, bool]], encode: bool) -> None:
    """VAE decode at `decode_sizes` and T5 encode at 256 and 512 tokens, modules built in GPU memory."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import T5Config, T5EncoderModel

    from fluxplan.run.synth import init_weights_

    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        vae = AutoencoderKL(**strip(fam.vae)).eval()
        t5 = T5EncoderModel(T5Config(**fam.text_encoder_2)).eval() if encode else None
    init_weights_(vae)
    if t5 is not None:
        init_weights_(t5)
    torch.set_default_dtype(torch.float32)
    for side, tiled in decode_sizes:
        z = torch.randn(1, 16, side // 8, side // 8, device="cuda", dtype=torch.bfloat16)
        (vae.enable_tiling if tiled else vae.disable_tiling)()

        def dec():
            with torch.inference_mode():
                vae.decode(z, return_dict=False)
        base = torch.cuda.memory_allocated()
        try:
            alloc, reserved = peak_above(dec, base)
            secs = timed(dec, reps=2)
            result["decode"].append({"height": side, "width": side, "batch": 1, "tiled": tiled, "seconds": secs,
                                     "activation_gib": alloc, "reserved_gib": reserved})
        except torch.OutOfMemoryError as e:
            result["decode"].append({"height": side, "width": side, "tiled": tiled, "error": str(e)[:200]})
        print(result["decode"][-1], flush=True)
        torch.cuda.empty_cache()
    for tokens in (256, 512) if encode else ():
        ids = torch.randint(0, 32000, (1, tokens), device="cuda")

        def enc():
            with torch.inference_mode():
                t5(ids)
        base = torch.cuda.memory_allocated()
        alloc, reserved = peak_above(enc, base)
        result["encode"].append({"text_tokens": tokens, "seconds": timed(enc), "activation_gib": alloc,
                                 "reserved_gib": reserved})
        print(result["encode"][-1], flush=True)


if __name__ == "__main__":
    main()
