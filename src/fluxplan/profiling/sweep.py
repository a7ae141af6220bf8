"""Measure the cost curves of a GPU with full-size random FLUX.1-dev modules built in GPU memory (no disk):
transformer forward time and activation memory against image tokens, text tokens and batch; VAE decode against
image size (tiled and not); T5 encode; the CUDA context. Writes OUT/sweep.json in the profile schema's terms.

    python -m fluxplan.profiling.sweep --out $OUT        # on the GPU machine, about 2 minutes
    python -m fluxplan.profiling.sweep --out $OUT --parts encode,decode --quick   # what `fluxplan profile` runs

The part `t5formats` (`encode_formats` in sweep.json) measures T5 (text_encoder_2) per weight format from a
synthetic checkpoint on disk, loaded through the builder's backends as users get it: per format its load time, its
weights as the allocator holds them (tensor bytes on the CPU), and at 256 and 512 text tokens its encode seconds
(and activation and reserve peaks on a GPU). A format that cannot load or run here is a row with its error.

    python -m fluxplan.profiling.sweep --out $OUT --append --parts t5formats --model MODEL_DIR \
        --t5-formats fp8-layerwise,torchao-int8wo,bnb-nf4,bnb-int8,quanto-int8

(MODEL_DIR: `ensure_synthetic("dev", device="cuda")`; `--device cpu` with the tiny one measures on the CPU;
`--append` keeps the parts OUT/sweep.json already holds and this run does not measure.)

`fluxplan profile` takes the transformer's curves from blocks (fluxplan.profiling.blocks) and runs the encode and
decode parts here, then, after its pipelines, `t5formats` for the other usable T5 formats (the context is always
measured on a GPU: it comes first and costs nothing).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from fluxplan.profiling.blockpoints import error_line

GIB = 1024**3
PARTS = ("forward", "decode", "encode", "t5formats")
T5_TOKENS = (256, 512)
UNFINISHED = "not finished: the process ended or was stopped while measuring it"


def timed(fn, reps: int = 3, cuda: bool = True) -> float:
    """Median seconds of `reps` calls of fn after one warm-up, waiting for the GPU (`cuda`) around each."""
    import torch

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()
    sync()
    ts = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
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
    ap.add_argument("--parts", default="forward,decode,encode", help=f"which of {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="decode at 768 and 1024 (and 1536 tiled) only")
    ap.add_argument("--model", help="t5formats: the synthetic pipeline directory (default: synthetic FLUX.1-dev, "
                    "the tiny one on the CPU; built if missing)")
    ap.add_argument("--t5-formats", help="t5formats: comma-separated T5 formats (default: every T5 format of the "
                    "catalog)")
    ap.add_argument("--device", default="cuda", help="t5formats: where to measure (cpu: t5formats only)")
    ap.add_argument("--deadline", type=float, help="t5formats: start no format after this many seconds (from the "
                    "process's start)")
    ap.add_argument("--append", action="store_true", help="keep the parts OUT/sweep.json holds that this run "
                    "does not measure")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        ap.error(f"unknown parts {', '.join(sorted(parts - set(PARTS)))}; choose from {', '.join(PARTS)}")
    cuda = args.device.startswith("cuda")
    if not cuda and parts != {"t5formats"}:
        ap.error(f"--device {args.device} measures the part t5formats only")
    out = Path(args.out)
    t_start = time.perf_counter()
    import torch

    result: dict[str, Any] = {"gpu": "cpu", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                              "forward": [], "decode": [], "encode": []}
    if cuda:
        from fluxplan.profiling.blocks import cuda_context_gib

        result["context_gib"] = cuda_context_gib()
        result["gpu"] = torch.cuda.get_device_name()
        print(f"context {result['context_gib']:.2f} GiB", flush=True)
    from fluxplan.catalog.families import find_family

    fam = find_family("dev")
    import diffusers
    result["diffusers"] = diffusers.__version__
    path = out / "sweep.json"
    earlier = json.loads(path.read_text()) if args.append and path.is_file() else {}

    def write() -> None:  # atomically: a process stopped while writing leaves the previous file
        kept = {k: v for k, v in earlier.items() if v and not result.get(k)}  # parts this run does not measure
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({**earlier, **result, **kept}, indent=1))
        tmp.replace(path)

    if "forward" in parts:
        forward_sweep(result, fam.transformer)
    decode_sizes = ([(768, False), (1024, False), (1536, True)] if args.quick else
                    [(512, False), (768, False), (1024, False), (1536, False), (2048, False), (1536, True),
                     (2048, True)])
    if parts & {"decode", "encode"}:
        decode_encode(result, fam, decode_sizes if "decode" in parts else [], "encode" in parts)
    if "t5formats" in parts:
        from fluxplan.run.synth import ensure_synthetic

        model = Path(args.model) if args.model else ensure_synthetic("dev" if cuda else "tiny", device=args.device)
        formats = args.t5_formats.split(",") if args.t5_formats else t5_formats()

        def progress(rows: list[dict]) -> None:  # on disk as it goes: a process stopped midway keeps its rows
            result["encode_formats"] = rows
            write()
        left = None if args.deadline is None else args.deadline - (time.perf_counter() - t_start)
        encode_formats(model, formats, device=args.device, deadline=left, progress=progress)
    write()
    print(f"sweep ({','.join(sorted(parts))}): {time.perf_counter() - t_start:.1f} s", flush=True)


def t5_formats() -> list[str]:
    """The catalog's T5 (text_encoder_2) formats."""
    from fluxplan.catalog.formats import load_catalog

    return [f.key for f in load_catalog().for_component("text_encoder_2")]


def load_t5(fmt: str, model_dir: Path, device: str, dtype: Any) -> Any:
    """T5 (text_encoder_2) of a pipeline directory in `fmt`, loaded as run.builder loads it (the backend's
    transformers quantization config, then its work after loading), on `device` unless the quantizer placed it."""
    from transformers import T5EncoderModel

    from fluxplan.run import backends
    from fluxplan.run.backends import TEXT_ENCODER_2

    backend, variant = backends.resolve(fmt, TEXT_ENCODER_2)
    backend.check(fmt, TEXT_ENCODER_2, device)
    config = backend.text_encoder_config(variant, dtype)
    kwargs = {"quantization_config": config} if config is not None else {}
    t5 = T5EncoderModel.from_pretrained(model_dir, subfolder="text_encoder_2", dtype=dtype, **kwargs)
    backend.after_load(SimpleNamespace(text_encoder_2=t5), TEXT_ENCODER_2, variant, dtype)
    if all(p.device.type == "cpu" for p in t5.parameters()):  # bitsandbytes quantizes onto the GPU as it loads
        t5.to(device)
    return t5.eval()


def measure_t5(fmt: str, model_dir: Path, *, device: str, tokens: tuple[int, ...] = T5_TOKENS) -> dict:
    """One T5 format's row: load seconds, weights (allocated after loading less before on a GPU; the tensors'
    bytes on the CPU) and per token count the encode seconds (`timed`; with the activation and reserve peaks on a
    GPU). Raises whatever loading or running raises; the caller records it."""
    import torch

    from fluxplan.profiling.blocks import load_measured, module_bytes

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    t5, load_s, allocated = load_measured(lambda: load_t5(fmt, model_dir, device, dtype), cuda)
    tensors = module_bytes(t5)
    weights = allocated if allocated is not None else tensors
    row: dict[str, Any] = {"format": fmt, "ok": True, "device": device, "dtype": str(dtype).removeprefix("torch."),
                           "load_s": load_s, "weights_gib": weights / GIB, "tensors_gib": tensors / GIB, "points": []}
    try:
        for n in tokens:
            ids = torch.randint(0, t5.config.vocab_size, (1, n), device=device)

            def enc():
                with torch.inference_mode():
                    t5(ids)
            point: dict[str, Any] = {"text_tokens": n}
            if cuda:
                point["activation_gib"], point["reserved_gib"] = peak_above(enc, torch.cuda.memory_allocated())
            point["seconds"] = timed(enc, cuda=cuda)
            row["points"].append(point)
    finally:
        t5 = None  # frees the weights (the closure above shares this name, so it is rebound, not deleted)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return row


def encode_formats(model_dir: Path, formats: list[str], *, device: str, deadline: float | None = None,
                   progress: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """measure_t5 for each format in turn: a format that fails to load or run is a row with its error (first
    line), one not begun within `deadline` seconds a row saying so. `progress(rows)` is called before each format
    (its row there says it did not finish, until it has) and once at the end."""
    rows: list[dict] = []
    end = time.monotonic() + deadline if deadline is not None else None
    for fmt in formats:
        if end is not None and time.monotonic() > end:
            rows.append({"format": fmt, "ok": False, "error": "skipped: past the deadline"})
            continue
        if progress:
            progress(rows + [{"format": fmt, "ok": False, "error": UNFINISHED}])
        t = time.perf_counter()
        try:
            row = measure_t5(fmt, model_dir, device=device)
        except Exception as e:  # noqa: BLE001  (a format that cannot load or run here is a result: record it)
            row = {"format": fmt, "ok": False, "error": error_line(e)}
            gc.collect()
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("format", "ok", "load_s", "weights_gib", "wall_s", "error")}),
              flush=True)
    if progress:
        progress(rows)
    return rows


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
