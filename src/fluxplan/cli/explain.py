"""`fluxplan explain`: what is the best way to run FLUX on this GPU, and why."""

from __future__ import annotations

from fluxplan.cli import options as o
from fluxplan.cli.output import Output


def explain(
    gpu: o.Gpu = "auto", vram: o.Vram = None, ram: o.Ram = None, model: o.Model = "dev",
    resolution: o.Resolution = "1024x1024", steps: o.Steps = None, batch: o.Batch = 1, images: o.Images = 1,
    text_tokens: o.TextTokens = None, latency_budget: o.Budget = None, objective: o.ObjectiveOpt = "quality",
    quality_floor: o.Floor = 0.70, margin: o.Margin = 0.5, transformer: o.Transformer = None,
    text_encoder: o.TextEncoder = None, text_encoder_placement: o.Placement = None, offload: o.OffloadOpt = None,
    compile: o.CompileOpt = None, vae_tiling: o.Tiling = None, profile: o.ProfileOpt = None, json_out: o.Json = False,
) -> None:
    """Recommend how to run FLUX on a GPU (no GPU or torch needed), with the estimate and the reasons."""
    from fluxplan.cost.profile import load_profile_file
    from fluxplan.explain import plan_contract, render
    from fluxplan.planner import plan

    profiles = [load_profile_file(profile)] if profile else None
    p = plan(**o.plan_kwargs(gpu=gpu, vram=vram, ram=ram, model=model, resolution=resolution, steps=steps,
                             batch=batch, images=images, text_tokens=text_tokens, latency_budget=latency_budget,
                             objective=objective, quality_floor=quality_floor, margin=margin, transformer=transformer,
                             text_encoder=text_encoder, placement=text_encoder_placement, offload=offload,
                             compile=compile, vae_tiling=vae_tiling), profiles=profiles)
    Output(json_out).emit(plan_contract(p), lambda console: render(p, console))
