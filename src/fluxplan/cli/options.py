"""The options `explain` and `auto` share, declared once. `plan_kwargs` turns them into `fluxplan.plan` keywords."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from fluxplan.errors import BadInput

Gpu = Annotated[str, typer.Option("--gpu", help="GPU name from `fluxplan gpus` (e.g. 4090, 'rtx 4060 laptop', h100), or auto to read it with NVML.")]
Vram = Annotated[Optional[float], typer.Option("--vram", help="VRAM to plan for, GiB (default: the card's; with --gpu auto, what is free). auto on a GPU also holds the run to it.")]
Ram = Annotated[Optional[float], typer.Option("--ram", help="Host RAM, GiB (bounds CPU offload; default: read, or 32 for a named card).")]
Model = Annotated[str, typer.Option("--model", help="dev | schnell | kontext | a local pipeline dir | a hub id | synthetic:tiny|dev|schnell.")]
Resolution = Annotated[str, typer.Option("--resolution", help="WIDTHxHEIGHT, multiples of 16 in 256..4096.")]
Steps = Annotated[Optional[int], typer.Option("--steps", help="Denoising steps (default: the model's, 28 for dev, 4 for schnell).")]
Batch = Annotated[int, typer.Option("--batch", help="Images per pipeline call (at least this many images are made).")]
Images = Annotated[int, typer.Option("--images", help="Images wanted in all (one-off costs are spread over them).")]
TextTokens = Annotated[Optional[int], typer.Option("--text-tokens", help="T5 sequence length (default: the model's max).")]
Budget = Annotated[Optional[float], typer.Option("--latency-budget", help="Seconds per image the plan must meet.")]
ObjectiveOpt = Annotated[str, typer.Option("--objective", help="quality: best quality that fits; speed: fastest above --quality-floor.")]
Floor = Annotated[float, typer.Option("--quality-floor", help="Lowest quality --objective speed accepts (1.0 = bf16).")]
Margin = Annotated[float, typer.Option("--margin", help="VRAM kept free, GiB.")]
Transformer = Annotated[Optional[str], typer.Option("--transformer", help="Pin the transformer format (bf16, fp8-layerwise, nf4, int8wo, q8_0, ...).")]
TextEncoder = Annotated[Optional[str], typer.Option("--text-encoder", help="Pin the T5 format (bf16, fp8-layerwise, bnb-nf4, bnb-int8, torchao-int8wo, quanto-int8).")]
Placement = Annotated[Optional[str], typer.Option("--text-encoder-placement", help="Pin where T5 lives: resident | free (encode, then release) | cpu | offload (with group offload: streamed from host memory when encoding).")]
OffloadOpt = Annotated[Optional[str], typer.Option("--offload", help="Pin offload: none | model | group-block | group-leaf | sequential.")]
CompileOpt = Annotated[Optional[str], typer.Option("--compile", help="Pin compile: none | regional | full.")]
Tiling = Annotated[Optional[str], typer.Option("--vae-tiling", help="Pin VAE tiling and slicing: on | off.")]
ProfileOpt = Annotated[Optional[str], typer.Option("--profile", help="Use this cost profile file (JSON) instead of the bundled ones.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]

_CHOICES = {"objective": ("quality", "speed"), "offload": ("none", "model", "group-block", "group-leaf", "sequential"),
            "compile": ("none", "regional", "full"), "text_encoder_placement": ("resident", "free", "cpu", "offload")}


def _choice(name: str, value: str | None) -> str | None:
    if value is not None and value not in _CHOICES[name]:
        raise BadInput(f"--{name.replace('_', '-')} {value!r}: choose one of {', '.join(_CHOICES[name])}")
    return value


def _on_off(value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("on", "true", "yes", "1"):
        return True
    if value.lower() in ("off", "false", "no", "0"):
        return False
    raise BadInput(f"--vae-tiling {value!r}: choose on or off")


def plan_kwargs(*, gpu, vram, ram, model, resolution, steps, batch, images, text_tokens, latency_budget, objective,
                quality_floor, margin, transformer, text_encoder, placement, offload, compile, vae_tiling) -> dict:
    return dict(gpu=gpu, vram=vram, ram=ram, model=model, resolution=resolution, steps=steps, batch=batch,
                images=images, text_tokens=text_tokens, latency_budget=latency_budget,
                objective=_choice("objective", objective), quality_floor=quality_floor, margin=margin,
                transformer=transformer, text_encoder=text_encoder,
                text_encoder_placement=_choice("text_encoder_placement", placement),
                offload=_choice("offload", offload), compile=_choice("compile", compile), vae_tiling=_on_off(vae_tiling))
