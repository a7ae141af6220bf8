"""Recovery from running out of GPU memory: free what the failed try held, then go on with the next-best plan that
fits, or (in VAE decode) decode again with VAE tiling; say what happened.

    plan, result, events = run_with_recovery(p, attempt, replan, exclude=store_failures)

`attempt(plan, on_decode_oom)` builds and runs one plan (recording its failure in the store itself) and raises on
failure; `replan(exclude)` returns the next plan without the candidates that failed. Only out-of-memory errors are
recovered from; anything else, or strict mode, raises at once. At most MAX_REPLANS re-plans, then RecoveryFailed
names every plan tried.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

from fluxplan.errors import FluxplanError
from fluxplan.models import Candidate, Plan
from fluxplan.run.measure import DecodeOOM, is_out_of_memory
from fluxplan.run.placement import set_vae_tiling

MAX_REPLANS = 3
T = TypeVar("T")


class RecoveryEvent(BaseModel):
    """One recovery: where it ran out of memory, with which plan, the error's line, and what was done."""

    phase: str  # load, encode, denoise or decode
    failed: str  # the label of the plan that ran out of memory
    error: str  # the error's first line
    action: str  # "re-planned: <label>" or "decode retried with VAE tiling switched on"

    def line(self) -> str:
        return f"out of memory in {self.phase} with {self.failed} ({self.error}); {self.action}"


class RecoveryFailed(FluxplanError):
    """Out of memory with every plan tried (or no plan left to try)."""

    def __init__(self, attempts: list[tuple[str, str, str]], why: str):
        tried = "; ".join(f"{label} (out of memory in {phase})" for label, phase, _ in attempts)
        super().__init__(f"out of memory with all {len(attempts)} plan(s) tried: {tried}; {why}; "
                         f"last error: {attempts[-1][2]}")
        self.attempts = attempts


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def free_memory() -> None:
    """Give back what a failed try held: its pipeline is unreachable once its exception is gone."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def tile_vae_on_oom(events: list[RecoveryEvent], candidate: Candidate) -> DecodeOOM:
    """measure's decode hook: on an out-of-memory decode, switch VAE tiling on and retry once (once per run:
    with tiling already on, there is nothing more to do here and the error stands)."""

    def hook(pipe: Any, error: BaseException) -> bool:
        vae = getattr(pipe, "vae", None)
        if vae is None or getattr(vae, "use_tiling", False) or not hasattr(vae, "enable_tiling"):
            return False
        set_vae_tiling(pipe, True)  # with slicing, as the builder does for a tiled plan
        free_memory()
        events.append(RecoveryEvent(phase="decode", failed=candidate.label(), error=one_line(error),
                                    action="decode retried with VAE tiling switched on"))
        return True

    return hook


def run_with_recovery(p: Plan, attempt: Callable[[Plan, DecodeOOM | None, list[RecoveryEvent]], T],
                      replan: Callable[[set[Candidate]], Plan], *, exclude: set[Candidate] | None = None,
                      strict: bool = False) -> tuple[Plan, T, list[RecoveryEvent]]:
    """Run `p`; on out of memory, free, re-plan without what failed (this run's and `exclude`) and run again, at
    most MAX_REPLANS times. Returns the plan that ran, what `attempt` returned, and the recovery events."""
    events: list[RecoveryEvent] = []
    tried: list[tuple[str, str, str]] = []
    excluded = set(exclude or ())
    while True:
        try:
            return p, attempt(p, None if strict else tile_vae_on_oom(events, p.choice), events), events
        except Exception as e:
            if strict or not is_out_of_memory(e):
                raise
            tried.append((p.choice.label(), getattr(e, "fluxplan_phase", "load"), one_line(e)))
        # Out of the except block: the exception, its traceback and the frames holding the pipeline are gone.
        free_memory()
        excluded.add(p.choice)
        label, phase, line = tried[-1]
        if len(tried) > MAX_REPLANS:
            raise RecoveryFailed(tried, f"gave up after {MAX_REPLANS} re-plans")
        try:
            p = replan(excluded)
        except FluxplanError as e:  # nothing else fits what is free
            raise RecoveryFailed(tried, f"no other plan fits: {e}") from None
        events.append(RecoveryEvent(phase=phase, failed=label, error=line, action=f"re-planned: {p.choice.label()}"))
