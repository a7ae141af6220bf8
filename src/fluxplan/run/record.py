"""The run store's side of `fluxplan.api`: a run as a RunRecord, earlier runs as observations for the planner, and
earlier failures of a plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fluxplan.errors import FluxplanError
from fluxplan.models import Plan
from fluxplan.run.measure import Measurement
from fluxplan.run.recovery import RecoveryEvent, one_line as _one_line

if TYPE_CHECKING:
    from fluxplan.api import Target


def observations(gpu: str, store=None) -> list:
    """What earlier runs on this GPU really cost (the run store's successful GPU runs), for the planner to
    correct its predictions with."""
    from fluxplan.models import Observation
    from fluxplan.run.store import Store

    try:
        db = store or Store()
        runs = db.runs(gpu=gpu)
    except FluxplanError:
        return []
    return [Observation(candidate=r.candidate, height=r.height, width=r.width, batch=r.batch,
                        peak_gib=r.peak_nvml_gib, step_s=r.step_s, encode_s=r.encode_s or None)
            for r in runs if r.ok and r.device.startswith("cuda") and r.peak_nvml_gib and r.step_s]


def previous_failure(store, where: Target, p: Plan) -> str | None:
    """A note when the chosen candidate already failed on this device for this shape (the store knows)."""
    if store is None:
        return None
    if p.choice in store.failed_candidates(where.name, p.request, p.budget.vram_gib):
        return (f"this plan failed on {where.name} at {p.request.width}x{p.request.height} before "
                "(see the store's failures); trying again")
    return None


def run_record(where: Target, p: Plan, model: str, *, seed: int, guidance: float | None, built=None,
               m: Measurement | None = None, error: BaseException | None = None, phase: str | None = None,
               recovered: list[RecoveryEvent] = ()):
    """The store's RunRecord of a run (failed when `error` is given). A run that went through after `recovered`
    (VAE tiling switched on in decode) keeps its planned candidate, with phase and error saying what was done."""
    import diffusers
    import torch

    from fluxplan.run.store import RunRecord

    r = p.request
    rec = RunRecord(gpu=where.name, planned_gpu=p.gpu.name, driver=where.driver, device=where.device,
                    torch_version=torch.__version__, diffusers_version=diffusers.__version__, model=model,
                    height=r.height, width=r.width, steps=r.steps, batch=r.batch, images=r.images, seed=seed,
                    guidance=guidance, candidate=p.choice,
                    predicted_peak_gib=None if where.on_cpu else p.estimate.peak_vram_gib,
                    predicted_latency_s=None if where.on_cpu else p.estimate.latency_s,
                    load_s=getattr(built, "load_s", None), setup_s=getattr(built, "setup_s", None),
                    ok=error is None, phase=phase, error=_one_line(error) if error is not None else None)
    if recovered and error is None:
        rec = rec.model_copy(update=dict(phase=recovered[-1].phase,
                                         error="recovered: " + "; ".join(ev.line() for ev in recovered)))
    if m is not None:
        rec = rec.model_copy(update=dict(
            compile_s=m.compile_s, encode_s=m.encode_s, step_s=m.step_s, step_seconds=m.steps_flat,
            decode_s=m.decode_s, peak_reserved_gib=m.peak_reserved_gib, context_gib=m.context_gib,
            peak_nvml_gib=m.peak_nvml_gib))
    return rec


def _open_store(store):
    from fluxplan.run.store import Store

    if store is False or store is None:
        return None
    if store is True:
        return Store()
    return store if isinstance(store, Store) else Store(store)
