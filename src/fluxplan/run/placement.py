"""Where the pipeline's components live and how they run: offload, T5 placement, compile, VAE tiling.

Only diffusers' own APIs: `enable_model_cpu_offload`, `enable_sequential_cpu_offload`, `enable_group_offload`
(diffusers models) / `diffusers.hooks.apply_group_offloading` (T5, a transformers model), `compile_repeated_blocks`,
`enable_tiling` with `enable_slicing`. The weight format is the backends' business; this module is the same for every format.
"""

from __future__ import annotations

import gc
from typing import Any

from fluxplan.errors import BadInput
from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement

GROUP_TYPES = {Offload.GROUP_BLOCK: "block_level", Offload.GROUP_LEAF: "leaf_level"}


def _group_kwargs(offload: Offload, device: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"onload_device": device, "offload_device": "cpu",
                              "offload_type": GROUP_TYPES[offload], "use_stream": True}
    if offload is Offload.GROUP_BLOCK:
        kwargs["num_blocks_per_group"] = 1
    return kwargs


def check(candidate: Candidate, device: str) -> None:
    """Refuse, before anything loads, what cannot work on this device: offloading needs an accelerator."""
    if candidate.offload is not Offload.NONE and device.split(":")[0] in ("cpu", "meta"):
        raise BadInput(f"offload {candidate.offload.value!r} needs an accelerator; the device is {device!r}")


def place(pipe: Any, candidate: Candidate, device: str, t5_cpu_dtype: str = "bfloat16") -> list[str]:
    """Apply the offload mode and the T5 placement (on the CPU in `t5_cpu_dtype`: float32 where the CPU has no fast
    bf16 path). Returns notes on anything that was adjusted."""
    notes: list[str] = []
    offload, placement = candidate.offload, candidate.text_encoder_placement
    if offload in (Offload.MODEL, Offload.SEQUENTIAL):
        if placement is not TextEncoderPlacement.FOLLOWS_OFFLOAD:
            notes.append(f"T5 placement {placement.value!r} ignored: {offload.value} offload moves the text encoders")
        if offload is Offload.MODEL:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
        return notes

    if offload in GROUP_TYPES:
        pipe.transformer.enable_group_offload(**_group_kwargs(offload, device))
    else:
        pipe.transformer.to(device)
    for name in ("text_encoder", "vae"):
        getattr(pipe, name).to(device)

    t5 = pipe.text_encoder_2
    if placement is TextEncoderPlacement.CPU:
        import torch

        t5.to("cpu", dtype=getattr(torch, t5_cpu_dtype))  # only an unquantized T5 is placed on the CPU
        notes.append(f"T5 stays on the CPU (encode the prompt there, in {t5_cpu_dtype})")
    elif placement is TextEncoderPlacement.FOLLOWS_OFFLOAD and offload in GROUP_TYPES:
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(t5, **_group_kwargs(Offload.GROUP_LEAF, device))  # diffusers' guide: leaf level
        notes.append("T5 streamed from host memory leaf by leaf when encoding (group offload, leaf level, streams)")
    else:
        if placement is TextEncoderPlacement.FOLLOWS_OFFLOAD:
            notes.append("T5 placement 'offload' without an offload mode: T5 kept on the device")
        t5.to(device)
        if placement is TextEncoderPlacement.FREE_AFTER_ENCODE:
            notes.append("T5 and CLIP leave the device after encoding (call free_text_encoders)")
    return notes


def compile_transformer(pipe: Any, mode: Compile) -> list[str]:
    """Wrap the transformer for torch.compile; the compilation itself happens on the first call."""
    if mode is Compile.REGIONAL:
        pipe.transformer.compile_repeated_blocks(fullgraph=True)
    elif mode is Compile.FULL:
        pipe.transformer.compile(fullgraph=False)
    else:
        return []
    return [f"compile {mode.value}: compiles on the first denoising step"]


def setup(pipe: Any, candidate: Candidate, device: str, *, t5_cpu_dtype: str = "bfloat16") -> list[str]:
    """Everything after loading: placement and offload, compile wrapping, VAE tiling."""
    notes = place(pipe, candidate, device, t5_cpu_dtype)
    notes += compile_transformer(pipe, candidate.compile)
    if candidate.vae_tiling:
        set_vae_tiling(pipe, True)
    return notes


def set_vae_tiling(pipe: Any, on: bool) -> None:
    """VAE tiling with slicing (tiles, one image at a time: what the cost model's tiled decode assumes), or neither."""
    if on:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    else:
        pipe.vae.disable_tiling()
        pipe.vae.disable_slicing()


def _on_accelerator(module: Any) -> bool:
    return any(p.device.type != "cpu" for p in module.parameters())


def free_text_encoders(pipe: Any) -> list[str]:
    """Placement `free`: once the prompt is encoded, move CLIP and T5 off the accelerator (drop them where they
    cannot move) and give the memory back to the driver. Returns what was done."""
    import torch

    notes = []
    for name in ("text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is None or not _on_accelerator(module):
            continue
        try:
            module.to("cpu")
            notes.append(f"{name} moved to the CPU")
        except (ValueError, RuntimeError, NotImplementedError) as e:  # e.g. quantized tensors that cannot move
            pipe.register_modules(**{name: None})
            del module
            notes.append(f"{name} dropped (cannot move to the CPU: {str(e).splitlines()[0] if str(e) else type(e).__name__})")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return notes
