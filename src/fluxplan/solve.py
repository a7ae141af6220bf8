"""The solver: enumerate the space, drop what cannot run or does not fit (with a structured reason), rank.

It sees the world only through a Provider (the candidates, a static check, the cost terms, a full estimate),
so it knows nothing of GPUs, profiles or formats. Failure is an `Infeasible` carrying the binding constraints.
"""

from __future__ import annotations

from typing import Iterable, Protocol

from fluxplan.cost.model import CostModel, Terms
from fluxplan.errors import Infeasible
from fluxplan.models import (Budget, Candidate, Constraint, Estimate, Objective, Pins, Rejection, RejectedCandidate,
                             Request, Scored)

QUALITY_TIE = 1e-6
N_ALTERNATIVES = 5


class Provider(Protocol):
    request: Request

    def candidates(self) -> Iterable[tuple[Candidate, Rejection | None, int]]:
        """Every point of the space that the pins admit: (point, what rules it out on any budget or None,
        how many points of the space it stands for)."""

    def terms(self, c: Candidate) -> Terms: ...

    def estimate(self, c: Candidate) -> Estimate: ...

    def quality(self, c: Candidate) -> float:
        """Quality alone (it does not depend on the budget), also for points that cannot run."""

    def host_ram_gib(self) -> float | None: ...


class _Row:
    """One evaluated point. A physical miss is kept as numbers and turned into a Rejection only if shown."""

    __slots__ = ("c", "t", "latency", "static", "miss")

    def __init__(self, c: Candidate, t: Terms | None, latency: float, static: Rejection | None, miss: tuple | None):
        self.c, self.t, self.latency, self.static, self.miss = c, t, latency, static, miss

    @property
    def ok(self) -> bool:
        return self.static is None and self.miss is None

    @property
    def rejection(self) -> Rejection | None:
        return self.static if self.static is not None else (_explain_miss(*self.miss) if self.miss else None)


def _miss(t: Terms, latency: float, budget: Budget, ram: float | None) -> tuple | None:
    if t.peak > budget.usable_gib:
        return Constraint.VRAM, t.peak, budget.usable_gib, budget
    if ram is not None and t.host_gib > ram:
        return Constraint.HOST_RAM, t.host_gib, ram, budget
    if budget.latency_s is not None and latency > budget.latency_s:
        return Constraint.LATENCY, latency, budget.latency_s, budget
    if budget.objective is Objective.SPEED and t.quality < budget.quality_floor:
        return Constraint.QUALITY_FLOOR, budget.quality_floor, t.quality, budget
    return None


def _explain_miss(constraint: Constraint, needed: float, limit: float, budget: Budget) -> Rejection:
    reason = {
        Constraint.VRAM: f"needs {needed:.1f} GiB of VRAM; {limit:.1f} GiB is usable "
                         f"({budget.vram_gib:.1f} less a {budget.margin_gib:.1f} GiB margin)",
        Constraint.HOST_RAM: f"needs {needed:.1f} GiB of host RAM for offloaded weights; the host has {limit:.1f}",
        Constraint.LATENCY: f"takes {needed:.1f} s per image; the budget is {limit:.1f} s",
        Constraint.QUALITY_FLOOR: f"quality {limit:.3f} is under the floor {needed:.2f}",
    }[constraint]
    unit = "s" if constraint is Constraint.LATENCY else ("" if constraint is Constraint.QUALITY_FLOOR else "GiB")
    return Rejection.model_construct(constraint=constraint, needed=needed, limit=limit, unit=unit, reason=reason)


def _rank_key(objective: Objective):
    if objective is Objective.SPEED:
        return lambda r: (r.latency, -r.t.quality)
    return lambda r: (-round(r.t.quality / QUALITY_TIE), r.latency)


def solve(provider: Provider, budget: Budget, pins: Pins) -> dict:
    """Returns the pieces of a Plan: choice, estimate, alternatives, pareto, rejected, counts, why."""
    rows: list[_Row] = []
    considered = 0
    request, latency_of = provider.request, CostModel.latency
    ram = provider.host_ram_gib()
    for c, static, n in provider.candidates():
        considered += n
        if static is not None:
            rows.append(_Row(c, None, float("inf"), static, None))
            continue
        t = provider.terms(c)
        latency = latency_of(t, request)[0]
        rows.append(_Row(c, t, latency, None, _miss(t, latency, budget, ram)))
    if not rows:
        raise Infeasible(f"the pins {pins.pinned()} admit no configuration")
    feasible = [r for r in rows if r.ok]
    if not feasible:
        raise _infeasible(rows, budget, pins)
    feasible.sort(key=_rank_key(budget.objective))
    best = feasible[0]
    return {
        "choice": best.c,
        "estimate": provider.estimate(best.c),
        "alternatives": _alternatives(provider, feasible),
        "pareto": _pareto(provider, feasible),
        "rejected": _main_rejections(provider, rows, best),
        "considered": considered,
        "feasible": len(feasible),
        "why": _why(best, rows, budget),
    }


def _alternatives(provider: Provider, ranked: list[_Row]) -> list[Scored]:
    """The best plan of each other transformer format, in rank order."""
    seen = {ranked[0].c.transformer}
    out = []
    for r in ranked[1:]:
        if r.c.transformer not in seen:
            seen.add(r.c.transformer)
            out.append(Scored.model_construct(candidate=r.c, estimate=provider.estimate(r.c)))
            if len(out) == N_ALTERNATIVES:
                break
    return out


def _pareto(provider: Provider, feasible: list[_Row]) -> list[Scored]:
    """Quality against latency: each point is the fastest plan of its quality that nothing better-and-faster beats."""
    by_speed = sorted(feasible, key=lambda r: (r.latency, -r.t.quality))
    front, best_q = [], -1.0
    for r in by_speed:
        if r.t.quality > best_q + QUALITY_TIE:
            front.append(r)
            best_q = r.t.quality
    return [Scored.model_construct(candidate=r.c, estimate=provider.estimate(r.c)) for r in front]


def _main_rejections(provider: Provider, rows: list[_Row], best: _Row) -> list[RejectedCandidate]:
    """Why not better: for each transformer format of higher quality than the choice, its closest miss.
    Why not faster: the fastest plan of the chosen quality that was rejected (e.g. the same format without
    offload, which does not fit)."""
    by_format: dict[str, _Row] = {}
    faster = [r for r in rows if r.miss is not None and r.t.quality >= best.t.quality - QUALITY_TIE
              and r.latency < best.latency]
    if faster:
        by_format["(faster)"] = min(faster, key=lambda r: r.latency)
    for r in rows:
        q = r.t.quality if r.t is not None else provider.quality(r.c)
        if r.ok or q <= best.t.quality + QUALITY_TIE:
            continue
        cur = by_format.get(r.c.transformer)
        if cur is None or _closeness(r) < _closeness(cur):
            by_format[r.c.transformer] = r
    ranked = sorted(by_format.values(), key=lambda r: -provider.quality(r.c))
    return [RejectedCandidate.model_construct(candidate=r.c, rejection=r.rejection, quality=provider.quality(r.c),
                              estimate=provider.estimate(r.c) if r.t is not None else None) for r in ranked]


def _closeness(r: _Row) -> tuple:
    """Physical misses (by how much) come before static ones (which no bigger card would fix)."""
    if r.miss is not None and r.miss[2]:
        return (0, r.miss[1] / r.miss[2])
    return (1, 0.0)


def _why(best: _Row, rows: list[_Row], budget: Budget) -> str:
    t = best.t
    better = [r for r in rows if r.t is not None and r.t.quality > t.quality + QUALITY_TIE]
    if budget.objective is Objective.SPEED:
        return (f"fastest plan at or above quality {budget.quality_floor:.2f}: {best.latency:.1f} s per image, "
                f"peak {t.peak:.1f} of {budget.usable_gib:.1f} GiB usable")
    if not better:
        return (f"highest quality ({t.quality:.3f}); fastest of its quality at {best.latency:.1f} s per image, "
                f"peak {t.peak:.1f} of {budget.usable_gib:.1f} GiB usable")
    smallest = min((r for r in better if r.miss and r.miss[0] is Constraint.VRAM),
                   key=lambda r: r.t.peak, default=None)
    tail = f"; anything better needs at least {smallest.t.peak:.1f} GiB" if smallest else ""
    return (f"highest quality that fits: {t.quality:.3f} (expected LPIPS {t.lpips:.3f}) at "
            f"peak {t.peak:.1f} of {budget.usable_gib:.1f} GiB usable{tail}")


def _infeasible(rows: list[_Row], budget: Budget, pins: Pins) -> Infeasible:
    physical = [r for r in rows if r.t is not None]
    pinned = f" with {', '.join(f'{k}={v}' for k, v in pins.pinned().items())}" if pins.pinned() else ""
    if not physical:
        reasons = sorted({r.rejection.reason for r in rows})
        return Infeasible(f"no configuration can run{pinned}: {reasons[0]}", [r.rejection for r in rows[:5]])
    smallest = min(physical, key=lambda r: r.t.peak)
    if smallest.t.peak > budget.usable_gib:
        return Infeasible(f"nothing fits{pinned}: the smallest plan ({smallest.c.label()}) needs "
                          f"{smallest.t.peak:.1f} GiB, {budget.usable_gib:.1f} GiB is usable",
                          [smallest.rejection])
    fits = [r for r in physical if r.t.peak <= budget.usable_gib]
    fastest = min(fits, key=lambda r: r.latency)
    if budget.latency_s is not None and fastest.latency > budget.latency_s:
        return Infeasible(f"nothing meets the latency budget of {budget.latency_s:g} s{pinned}: the fastest plan "
                          f"that fits ({fastest.c.label()}) takes {fastest.latency:.1f} s per image",
                          [fastest.rejection])
    first = next(r for r in fits if not r.ok)
    return Infeasible(f"no plan{pinned} passes every constraint: {first.rejection.reason}", [first.rejection])
