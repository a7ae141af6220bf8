"""Turn a Plan into words: the JSON contract, plain text, and rich tables. Reads a Plan; decides nothing."""

from __future__ import annotations

from fluxplan.models import Estimate, Offload, Plan, RejectedCandidate, Scored

# Where the host bounds a step, the same run measured again on other machines of one GPU kind spread by up to
# (max / min; docs/ACCURACY.md "Repeatability", tests/test_accuracy.py ties these to the committed runs):
HOST_BOUND_SPREAD = {"sequential offload": 1.54, "group offload's host-to-GPU transfers": 1.85,
                     "a small image (the CPU launching kernels)": 1.91}
SMALL_IMAGE_TOKENS = 2304  # 768x768 and smaller


def host_bound(offload: Offload, image_tokens: int) -> str | None:
    """What bounds a plan's step on the host, if anything: its key in HOST_BOUND_SPREAD."""
    if offload is Offload.SEQUENTIAL:
        return "sequential offload"
    if offload in (Offload.GROUP_LEAF, Offload.GROUP_BLOCK):
        return "group offload's host-to-GPU transfers"
    if image_tokens <= SMALL_IMAGE_TOKENS:
        return "a small image (the CPU launching kernels)"
    return None


def _gib(x: float) -> str:
    return f"{x:.1f} GiB"


def _secs(x: float) -> str:
    return f"{x:.1f} s" if x < 600 else f"{x / 60:.1f} min"


def estimate_json(e: Estimate) -> dict:
    m, lat = e.memory, e.latency
    return {
        "peak_vram_gib": round(e.peak_vram_gib, 3), "latency_s": round(e.latency_s, 3),
        "first_image_s": round(e.first_image_s, 3), "quality": round(e.quality, 4),
        "expected_lpips": round(e.expected_lpips, 4), "quality_source": e.quality_source,
        "host_ram_gib": round(e.host_ram_gib, 2),
        "breakdown": {
            "weights_gib": {k: round(v, 3) for k, v in m.weights_gib.model_dump().items()},
            "denoise_activations_gib": round(m.denoise_activations_gib, 3),
            "vae_decode_gib": round(m.vae_decode_gib, 3), "overhead_gib": round(m.overhead_gib, 3),
            "peak_phase": m.peak_phase,
        },
        "latency_breakdown": {k: round(v, 4) for k, v in lat.model_dump().items()},
        "sources": {k: v.model_dump() for k, v in e.sources.items()},
    }


def uncertainty(plan: Plan) -> dict:
    """How far to trust the estimate: from the held-out validation (docs/ACCURACY.md) where the costs were
    measured on this GPU, and the looser bound of spec scaling where they were not."""
    bound = host_bound(plan.choice.offload, plan.request.image_tokens)
    host = (f"; this plan's step is bound by the host ({bound}): the same run has differed by up to "
            f"{HOST_BOUND_SPREAD[bound]:.2f}x between machines of one GPU kind" if bound else "")
    if plan.profile_measured_here:
        return {"peak_vram": "within -3 % / +5 % (measured on this GPU; held-out runs: -1.9 % to +4.8 %)",
                "latency": f"within +-15 % per step (measured on this GPU; 98 of 105 held-out runs){host}"}
    return {"peak_vram": f"weights and activations as measured on {plan.profile}, about +-5 %; not measured on this GPU",
            "latency": f"scaled from {plan.profile} by the spec database: expect +-30 % or worse{host}"}


def plan_contract(plan: Plan) -> dict:
    """The JSON object of DESIGN.md's contract (`fluxplan explain --json`)."""
    return {
        "gpu": {**plan.gpu.model_dump(exclude={"aliases"}), "profile": plan.profile,
                "profile_measured_here": plan.profile_measured_here},
        "host": plan.host.model_dump(),
        "request": {**plan.request.model_dump(), "image_tokens": plan.request.image_tokens},
        "budget": {**plan.budget.model_dump(mode="json"), "usable_gib": plan.budget.usable_gib},
        "pins": plan.pins.pinned(),
        "plan": plan.choice.as_dict(),
        "why": plan.why,
        "estimate": {**estimate_json(plan.estimate), "uncertainty": uncertainty(plan)},
        "alternatives": [{"plan": a.candidate.as_dict(), "estimate": estimate_json(a.estimate)}
                         for a in plan.alternatives],
        "pareto": [{"plan": a.candidate.as_dict(), "quality": round(a.estimate.quality, 4),
                    "latency_s": round(a.estimate.latency_s, 3), "peak_vram_gib": round(a.estimate.peak_vram_gib, 3)}
                   for a in plan.pareto],
        "rejected": [{"plan": r.candidate.as_dict(), "constraint": r.rejection.constraint.value,
                      "needed": r.rejection.needed, "limit": r.rejection.limit, "reason": rejection_words(r)}
                     for r in plan.rejected],
        "considered": plan.considered, "feasible": plan.feasible, "notes": plan.notes,
    }


def rejection_words(r: RejectedCandidate) -> str:
    """'bf16 needs 36.8 GiB, the card has 24': the format first, then why."""
    return f"{r.candidate.transformer} ({r.candidate.label()}): {r.rejection.reason}"


def plan_text(plan: Plan) -> str:
    e, m, lat = plan.estimate, plan.estimate.memory, plan.estimate.latency
    w = m.weights_gib
    trust = uncertainty(plan)
    lines = [
        f"GPU: {plan.gpu.name}, {plan.budget.vram_gib:.1f} GiB ({plan.budget.usable_gib:.1f} usable); "
        f"{plan.request.width}x{plan.request.height}, {plan.request.steps} steps, batch {plan.request.batch}, "
        f"{plan.request.images} image(s), model {plan.request.model}",
        f"Plan: {plan.choice.label()}",
        f"Why: {plan.why}",
        f"Peak VRAM {_gib(e.peak_vram_gib)} at {m.peak_phase}: weights transformer {w.transformer:.2f} + T5 "
        f"{w.text_encoder_2:.2f} + CLIP {w.text_encoder:.2f} + VAE {w.vae:.2f}, denoise activations "
        f"{m.denoise_activations_gib:.2f}, VAE decode {m.vae_decode_gib:.2f}, overhead {m.overhead_gib:.2f}",
        f"Latency {_secs(e.latency_s)} per image (first image {_secs(e.first_image_s)}): encode "
        f"{lat.text_encode_s:.2f} s, denoise {lat.denoise_s:.2f} s ({lat.denoise_step_s:.3f} s/step), decode "
        f"{lat.vae_decode_s:.2f} s, offload transfers {lat.offload_transfer_s:.2f} s, one-off {lat.one_off_s:.1f} s "
        f"({lat.one_off_per_image_s:.1f} s per image)",
        f"Quality {e.quality:.3f} (expected LPIPS vs bf16 {e.expected_lpips:.3f}): {e.quality_source}",
        f"Costs from the profile of {plan.profile}: memory {trust['peak_vram']}; time {trust['latency']}",
    ]
    if plan.alternatives:
        lines.append("Alternatives:")
        lines += [f"  {a.candidate.label()}: quality {a.estimate.quality:.3f}, {_secs(a.estimate.latency_s)}/image, "
                  f"peak {_gib(a.estimate.peak_vram_gib)}" for a in plan.alternatives]
    if plan.rejected:
        lines.append("Better or faster plans that do not run here:")
        lines += [f"  {rejection_words(r)}" for r in plan.rejected[:8]]
    lines += [f"Note: {n}" for n in plan.notes]
    return "\n".join(lines)


def render(plan: Plan, console) -> None:
    """Rich tables of the plan for a terminal."""
    from rich.table import Table

    e, m, lat = plan.estimate, plan.estimate.memory, plan.estimate.latency
    console.print(f"[bold]{plan.gpu.name}[/] · {plan.budget.vram_gib:.1f} GiB ({plan.budget.usable_gib:.1f} usable) · "
                  f"FLUX {plan.request.model} {plan.request.width}x{plan.request.height} · {plan.request.steps} steps · "
                  f"batch {plan.request.batch} · {plan.request.images} image(s)")
    console.print(f"[bold green]Plan:[/] {plan.choice.label()}")
    console.print(f"[dim]{plan.why}[/]")
    t = Table(title="Estimate", show_header=True, header_style="bold")
    t.add_column("memory (peak at " + m.peak_phase + ")")
    t.add_column("GiB", justify="right")
    t.add_column("time per image")
    t.add_column("s", justify="right")
    w = m.weights_gib
    mem_rows = [("transformer weights", w.transformer), ("T5 weights", w.text_encoder_2), ("CLIP weights", w.text_encoder),
                ("VAE weights", w.vae), ("denoise activations", m.denoise_activations_gib),
                ("VAE decode", m.vae_decode_gib), ("context + allocator", m.overhead_gib), ("peak", e.peak_vram_gib)]
    time_rows = [("text encode", lat.text_encode_s), (f"denoise ({lat.denoise_step_s:.3f}/step)", lat.denoise_s),
                 ("VAE decode", lat.vae_decode_s), ("offload transfers", lat.offload_transfer_s),
                 ("load/quantize/compile", lat.one_off_per_image_s), ("per image", e.latency_s),
                 ("first image", e.first_image_s), ("", None)]
    for (ml, mv), (tl, tv) in zip(mem_rows, time_rows):
        t.add_row(ml, f"{mv:.2f}", tl, "" if tv is None else f"{tv:.2f}")
    console.print(t)
    console.print(f"Quality [bold]{e.quality:.3f}[/] (expected LPIPS vs bf16 {e.expected_lpips:.3f}) — {e.quality_source}")
    u = uncertainty(plan)
    console.print(f"[dim]Costs from the profile of {plan.profile}: memory {u['peak_vram']}; time {u['latency']}.[/]")
    if plan.alternatives:
        _scored_table(console, "Alternatives", plan.alternatives)
    if plan.rejected:
        r = Table(title="Better or faster plans that do not run here", header_style="bold")
        r.add_column("transformer")
        r.add_column("quality", justify="right")
        r.add_column("why not")
        for rej in plan.rejected[:8]:
            q = f"{rej.quality:.3f}"
            r.add_row(rej.candidate.transformer, q, rej.rejection.reason)
        console.print(r)
    for n in plan.notes:
        console.print(f"[yellow]note:[/] {n}")


def _scored_table(console, title: str, rows: list[Scored]) -> None:
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for col, just in (("plan", "left"), ("quality", "right"), ("s/image", "right"), ("peak GiB", "right")):
        t.add_column(col, justify=just)
    for a in rows:
        t.add_row(a.candidate.label(), f"{a.estimate.quality:.3f}", f"{a.estimate.latency_s:.1f}",
                  f"{a.estimate.peak_vram_gib:.1f}")
    console.print(t)
