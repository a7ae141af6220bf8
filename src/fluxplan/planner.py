"""`fluxplan.plan(...)`: turn what the user asked for into a Plan. Estimate (cost.model), fit (solve), explain
(explain) are separate steps; this module wires them and owns the provider the solver sees."""

from __future__ import annotations

import math
import statistics
from typing import Iterable

from pydantic import ValidationError

from fluxplan.catalog.families import find_family
from fluxplan.catalog.formats import Catalog, Compat, load_catalog
from fluxplan.catalog.gpus import find_gpu, load_gpus, match_nvml_name
from fluxplan.cost.model import TILE_PX, CostModel, Terms
from fluxplan.cost.profile import Profile, bundled_profiles
from fluxplan.errors import BadInput, UnknownGPU
from fluxplan.models import (GPU, Budget, Candidate, Compile, Constraint, Estimate, Host, Objective, Observation,
                             Offload, Pins, Plan, Rejection, Request, TextEncoderPlacement)
from fluxplan.solve import solve

DEFAULT_RAM_GIB = 32.0
DEFAULT_GPU = "NVIDIA GeForce RTX 4090"  # what `explain` plans for when there is no GPU to read and none is named
_GROUP = (Offload.GROUP_BLOCK, Offload.GROUP_LEAF)


class PlanningProvider:
    """What the solver may know: the space, what cannot run at all, and the cost of what can."""

    def __init__(self, cost: CostModel, catalog: Catalog, gpu: GPU, host: Host, pins: Pins,
                 installed: frozenset[str] | None, exclude: frozenset[Candidate] = frozenset()):
        self.cost, self.catalog, self.gpu, self.host, self.pins = cost, catalog, gpu, host, pins
        self.request = cost.request
        self.installed = installed
        self.exclude = exclude
        self._cache: dict = {}

    def host_ram_gib(self) -> float | None:
        return self.host.ram_gib

    def candidates(self) -> Iterable[tuple[Candidate, Rejection | None, int]]:
        """The whole space less what the pins exclude: (point, what rules it out on any budget, how many
        points it stands for). A rule that excludes a whole branch (a format that cannot run here, an
        offload mode a format fails with) yields one representative for the branch."""
        p = self.pins

        def axis(values, pinned):
            return [v for v in values if pinned is None or v == pinned]

        tfs = axis([f.key for f in self.catalog.for_component("transformer")], p.transformer)
        t5s = axis([f.key for f in self.catalog.for_component("text_encoder_2")], p.text_encoder_2)
        tilings = axis([False, True], p.vae_tiling)
        # at or under the VAE's tile, one image per call, tiling changes nothing: cost one point for both
        same = (p.vae_tiling is None and self.request.batch == 1
                and max(self.request.height, self.request.width) <= TILE_PX)
        if same:
            tilings = [False]
        comps = axis(list(Compile), p.compile)
        cpu_ok = self.catalog.cpu_text_encoder_formats
        branches = []  # (offload, {t5: its placements}, points per compile choice, a representative (t5, placement))
        for off in axis(list(Offload), p.offload):
            pls = ([TextEncoderPlacement.FOLLOWS_OFFLOAD] if off in (Offload.MODEL, Offload.SEQUENTIAL)
                   else [TextEncoderPlacement.RESIDENT, TextEncoderPlacement.FREE_AFTER_ENCODE, TextEncoderPlacement.CPU])
            if off in _GROUP:  # under group offload T5 can also be streamed from host memory when encoding
                pls.append(TextEncoderPlacement.FOLLOWS_OFFLOAD)
            pls = axis(pls, p.text_encoder_placement)
            per_t5 = {t5: [pl for pl in pls if pl is not TextEncoderPlacement.CPU or t5 in cpu_ok] for t5 in t5s}
            rep = next(((t5, v[0]) for t5, v in per_t5.items() if v), None)
            if rep is not None:
                branches.append((off, per_t5, sum(len(v) for v in per_t5.values()) * len(tilings), rep))
        if not branches or not comps or not tilings:
            return
        k = 2 if same else 1  # points each yielded one stands for, along the tiling axis
        memo = self._memo
        for tf in tfs:
            rej = memo(("fmt", tf), self._format_check, tf)
            if rej is not None:
                off, _, _, (t5, pl) = branches[0]
                yield Candidate(tf, t5, pl, off, comps[0], tilings[0]), rej, sum(b[2] for b in branches) * len(comps) * k
                continue
            for off, per_t5, size, (t5_0, pl_0) in branches:
                rej = memo(("ax", tf, "offload", off), self._axis_check, tf, "offload", off, "transformer")
                if rej is not None:
                    yield Candidate(tf, t5_0, pl_0, off, comps[0], tilings[0]), rej, size * len(comps) * k
                    continue
                for comp in comps:
                    rej = (memo(("ax", tf, "compile", comp), self._axis_check, tf, "compile", comp, "transformer")
                           or memo(("rule", off, comp), self._rule_check, off, comp))
                    if rej is not None:
                        yield Candidate(tf, t5_0, pl_0, off, comp, tilings[0]), rej, size * k
                        continue
                    for t5, pls in per_t5.items():
                        if not pls:
                            continue
                        rej = memo(("fmt", t5), self._format_check, t5)
                        if rej is None and off in (Offload.MODEL, Offload.SEQUENTIAL):  # these move T5 too
                            rej = memo(("ax", t5, "offload", off), self._axis_check, t5, "offload", off, "text_encoder_2")
                        if rej is not None:
                            yield Candidate(tf, t5, pls[0], off, comp, tilings[0]), rej, len(pls) * len(tilings) * k
                            continue
                        for pl in pls:
                            for tiling in tilings:
                                c = Candidate(tf, t5, pl, off, comp, tiling)
                                yield c, (self._failed if c in self.exclude else None), 2 if same else 1

    _failed = Rejection.model_construct(
        constraint=Constraint.FAILED_BEFORE, needed=None, limit=None, unit="",
        reason="failed on this GPU at this shape before (recorded in the run store)")

    def _memo(self, key, fn, *args):
        try:
            return self._cache[key]
        except KeyError:
            self._cache[key] = value = fn(*args)
            return value

    def _format_check(self, key: str) -> Rejection | None:
        fmt = self.catalog.formats[key]
        if fmt.unavailable:
            return Rejection(constraint=Constraint.UNAVAILABLE, reason=f"{fmt.key}: {fmt.unavailable}")
        if self.installed is not None:
            missing = [p for p in fmt.packages if p not in self.installed]
            if missing:
                return Rejection(constraint=Constraint.UNAVAILABLE,
                                 reason=f"{fmt.key} needs {', '.join(missing)}, not usable here (fluxplan doctor)")
        if fmt.min_cc is not None and self.gpu.compute_capability < fmt.min_cc:
            return Rejection(constraint=Constraint.COMPUTE_CAPABILITY, needed=fmt.min_cc,
                             limit=self.gpu.compute_capability,
                             reason=f"{fmt.key} needs compute capability {fmt.min_cc}; "
                                    f"{self.gpu.name} has {self.gpu.compute_capability}")
        return None

    def _axis_check(self, key: str, axis: str, value, component: str) -> Rejection | None:
        fmt = self.catalog.formats[key]
        status = fmt.status(**{axis: value.value})
        if axis == "compile":  # what the profile's machine measured wins over the catalog (a timeout does not)
            measured = self.cost.profile.compiled(key, value.value)
            if measured is not None and measured.status != "timeout":
                on = (f"measured on {self.cost.profile.gpu}" if measured.kind == "measured"
                      else measured.source.split(";")[0])  # derived: the reference GPU's measurement
                why = f"{measured.error} ({on})" if measured.status == "fails" else ""
                status = Compat(status=measured.status, reason=why, source=measured.source)
        if status.status == "fails":
            return Rejection(constraint=Constraint.INCOMPATIBLE,
                             reason=f"{fmt.key} with {axis} {value.value}: {status.reason}")
        pinned = getattr(self.pins, component) is not None and getattr(self.pins, axis) is not None
        if status.status == "unverified" and not pinned:
            return Rejection(constraint=Constraint.UNVERIFIED, reason=f"{status.reason} (pin both to try it)")
        return None

    def _rule_check(self, offload: Offload, compile: Compile) -> Rejection | None:
        rule = self.catalog.rule(offload.value, compile.value)
        if rule is None or rule.status == "ok":
            return None
        pinned = self.pins.offload is not None and self.pins.compile is not None
        if rule.status == "fails" or not pinned:
            return Rejection(constraint=Constraint.INCOMPATIBLE if rule.status == "fails" else Constraint.UNVERIFIED,
                             reason=f"offload {offload.value} with compile {compile.value}: {rule.reason}")
        return None

    def terms(self, c: Candidate) -> Terms:
        return self.cost.terms(c)

    def estimate(self, c: Candidate) -> Estimate:
        return self.cost.estimate(c)

    def quality(self, c: Candidate) -> float:
        from fluxplan.cost.quality import quality

        cat = self.catalog.formats
        return self._memo(("q", c.transformer, c.text_encoder_2), quality, cat[c.transformer], cat[c.text_encoder_2])[0]


def nearest_profile(gpu: GPU, profiles: Iterable[Profile]) -> tuple[Profile, GPU]:
    """The profile of this GPU, else the measured GPU closest in compute, bandwidth and architecture."""
    best = None
    for prof in profiles:
        if prof.gpu == gpu.name:  # measured here (also for a card the spec database does not know)
            return prof, gpu
        try:
            pg = find_gpu(prof.gpu)
        except UnknownGPU:
            continue  # a profile of a card without specs cannot be scaled to another card
        if pg.name == gpu.name:
            return prof, pg
        d = (abs(math.log(pg.bf16_tflops / gpu.bf16_tflops)) + abs(math.log(pg.mem_bw_gbs / gpu.mem_bw_gbs))
             + abs(pg.compute_capability - gpu.compute_capability))
        if best is None or d < best[0]:
            best = (d, prof, pg)
    if best is None:
        raise BadInput("no cost profile is installed (profiles/*.json)")
    return best[1], best[2]


def _bad(e: ValidationError, what: str) -> BadInput:
    err = e.errors()[0]
    field = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return BadInput(f"{what} {field}: {msg}" if field else f"{what}: {msg}")


def parse_resolution(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        w, h = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (int(parts[0]), int(parts[0]))
    except ValueError:
        raise BadInput(f"resolution {text!r}: expected WIDTHxHEIGHT, e.g. 1024x1024") from None
    return w, h


def resolve_gpu(gpu: str | GPU | None) -> tuple[GPU, float | None, list[str]]:
    """(GPU facts, free GiB where probed, notes)."""
    if isinstance(gpu, GPU):
        return gpu, None, []
    if gpu not in (None, "auto"):
        return find_gpu(gpu), None, []
    from fluxplan.errors import NoGPU
    from fluxplan.probe import probe_gpu

    try:
        p = probe_gpu()
    except NoGPU as e:
        card = find_gpu(DEFAULT_GPU)
        return card, None, [f"{str(e).split(';')[0]}: planning for the default card, {card.name} (name yours with --gpu)"]
    found = match_nvml_name(p.name, p.total_gib * 1024)
    notes = []
    if found is None:
        cc = p.compute_capability or 8.0
        found = min(load_gpus(), key=lambda g: (abs(g.compute_capability - cc), abs(g.vram_gib - p.total_gib)))
        notes.append(f"{p.name} is not in the spec database: using the throughput of {found.name}")
        found = found.model_copy(update={"name": p.name})
    found = found.model_copy(update={"vram_gib": p.total_gib})
    if p.total_gib - p.free_gib > 1.0:
        notes.append(f"planning against free memory: {p.free_gib:.1f} of {p.total_gib:.1f} GiB "
                     f"(other processes hold {p.total_gib - p.free_gib:.1f} GiB)")
    return found, p.free_gib, notes


def plan(gpu: str | GPU | None = "auto", *, vram: float | None = None, ram: float | None = None,
         model: str = "dev", resolution: str | None = None, height: int | None = None, width: int | None = None,
         steps: int | None = None, batch: int = 1, images: int = 1, text_tokens: int | None = None,
         latency_budget: float | None = None, objective: str | Objective = "quality", margin: float = 0.5,
         quality_floor: float = 0.70, transformer: str | None = None, text_encoder: str | None = None,
         text_encoder_placement: str | None = None, offload: str | None = None, compile: str | None = None,
         vae_tiling: bool | None = None, installed: Iterable[str] | None = None,
         profiles: Iterable[Profile] | None = None, exclude: Iterable[Candidate] = (),
         observations: Iterable[Observation] = (), cpu_tflops: float | None = None,
         cpu_dtype: str | None = None) -> Plan:
    """Plan how to run a FLUX model on a GPU. Every argument of `fluxplan explain` has its keyword here.
    `installed`: the backend packages usable here (None: assume all); `exclude`: candidates known to fail on
    this GPU at this shape (the run store's failures), never chosen again; `observations`: runs measured on this
    GPU (the run store's), which correct the predictions for the same configurations at nearby shapes;
    `cpu_tflops`: this CPU's measured rate (run.hostprobe), else the cached measurement when planning for this
    machine (gpu="auto"), else the default guess."""
    catalog = load_catalog()
    family = find_family(model)
    if resolution is not None:
        width, height = parse_resolution(resolution)
    gpu_facts, free, notes = resolve_gpu(gpu)
    if vram is not None:
        if vram <= 0:
            raise BadInput(f"--vram {vram}: must be more than 0 GiB")
        gpu_facts = gpu_facts.model_copy(update={"vram_gib": vram})
    try:
        request = Request(model=family.key, height=height or 1024, width=width or 1024,
                          steps=steps if steps is not None else family.default_steps, batch=batch,
                          images=max(images, batch) if images > 0 else images,  # a batch of N makes N images
                          text_tokens=text_tokens)
        budget = Budget(vram_gib=free if (free is not None and vram is None) else gpu_facts.vram_gib,
                        margin_gib=margin, latency_s=latency_budget, objective=Objective(objective),
                        quality_floor=quality_floor)
        if cpu_tflops is None and gpu in (None, "auto"):
            cpu_tflops, cpu_dtype = _cached_cpu_rate() or (None, None)
        host = Host(ram_gib=ram, **({"cpu_tflops": cpu_tflops} if cpu_tflops else {}),
                    **({"cpu_dtype": cpu_dtype} if cpu_dtype else {}))
        pins = Pins(transformer=catalog.get(transformer).key if transformer else None,
                    text_encoder_2=catalog.get(text_encoder, "text_encoder_2").key if text_encoder else None,
                    text_encoder_placement=TextEncoderPlacement(text_encoder_placement) if text_encoder_placement else None,
                    offload=Offload(offload) if offload else None, compile=Compile(compile) if compile else None,
                    vae_tiling=vae_tiling)
    except ValidationError as e:
        raise _bad(e, "request") from None
    except ValueError as e:
        raise BadInput(str(e)) from None
    if ram is None:
        probed = _probed_ram() if gpu in (None, "auto") else None
        host = host.model_copy(update={"ram_gib": probed or DEFAULT_RAM_GIB})
        notes.append(f"host RAM read: {probed:.1f} GiB" if probed else
                     f"host RAM not given: offload plans assume {DEFAULT_RAM_GIB:g} GiB (set --ram)")
    observations = list(observations)
    observed = observed_cpu_tflops(observations, family)
    if observed is not None:  # T5 encoded on this CPU before: the measured rate beats the probe and the guess
        rate, n = observed
        host = host.model_copy(update={"cpu_tflops": rate})
        notes.append(f"T5 on the CPU costed at {rate:.2f} TFLOP/s, as {n} run(s) here encoded")
    profile, profile_gpu = nearest_profile(gpu_facts, profiles if profiles is not None else bundled_profiles())
    cost = CostModel(request, gpu_facts, host, profile, profile_gpu)
    if observations:
        def predict(o: Observation) -> Terms:
            shape = request.model_copy(update={"height": o.height, "width": o.width, "batch": o.batch,
                                               "text_tokens": o.text_tokens})
            return CostModel(shape, gpu_facts, host, profile, profile_gpu).terms(o.candidate)

        cost.calibrate(observations, predict)
        if cost.corrected_by:
            notes.append(f"predictions corrected by {cost.corrected_by} run(s) measured on this GPU")
    provider = PlanningProvider(cost, catalog, gpu_facts, host, pins,
                                frozenset(installed) if installed is not None else None, frozenset(exclude))
    result = solve(provider, budget, pins)
    if result["choice"].text_encoder_placement is TextEncoderPlacement.CPU and host.cpu_dtype == "float32":
        notes.append("T5 runs on the CPU in float32: this CPU has no fast bf16 path (twice the host memory)")
    return Plan.model_construct(gpu=gpu_facts, host=host, request=request, budget=budget, pins=pins, notes=notes,
                profile=profile.gpu, profile_measured_here=cost.measured_here, **result)


def observed_cpu_tflops(observations: list[Observation], family) -> tuple[float, int] | None:
    """(median rate, runs) at which earlier runs with T5 on the CPU encoded their prompt, or None."""
    rates = [2 * family.t5_params.total * (o.text_tokens or family.max_sequence_length) / o.encode_s / 1e12
             for o in observations
             if o.encode_s and o.candidate.text_encoder_placement is TextEncoderPlacement.CPU]
    return (statistics.median(rates), len(rates)) if rates else None


def _cached_cpu_rate() -> tuple[float, str] | None:
    from fluxplan.run.hostprobe import cached_cpu_rate

    return cached_cpu_rate()


def _probed_ram() -> float | None:
    from fluxplan.probe import host_ram_gib

    return host_ram_gib()
