"""The Python API: plan, build and run a FLUX pipeline in one call, and record what it really cost.

    import fluxplan.api as fp
    report = fp.generate("a red fox", model="dev", seed=1, out="out/")      # probe, plan, build, run, save, record
    built = fp.load(model="synthetic:tiny", device="cpu")                  # plan + build only
    report.images, report.plan.why, report.measured, report.predicted

Each step is its own function: `target` (where it runs), `decide` (the plan), `resolve_model` (what to load),
`build_plan` (the pipeline), `run` (generate and measure), `save` (PNGs), `record` (the store).

Out of GPU memory, `generate` recovers unless strict=True (run.recovery): it frees the pipeline, records the failure
in the store, and runs the next-best plan that fits what is free (at most 3 re-plans), or, in VAE decode, decodes
again with VAE tiling switched on; `Report.recovery` lists what happened.

On a machine without a CUDA GPU the plan is made for a named card (`--gpu`, else DEFAULT_GPU) but the
pipeline runs on the CPU in float32; the planner's estimates are for that GPU, so the report marks them as not
applicable rather than comparing them with CPU timings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from fluxplan.catalog.families import Family, find_family
from fluxplan.errors import BadInput, FluxplanError, MissingPackage, ModelLoadError, UnknownModel
from fluxplan.models import Candidate, Plan
from fluxplan.run.measure import (MAX_SEQUENCE_LENGTH, DecodeOOM, Measurement, OutOfMemory, Progress,
                                  is_out_of_memory)
from fluxplan.run.record import _open_store, observations, previous_failure, run_record
from fluxplan.run.recovery import RecoveryEvent, one_line as _one_line, run_with_recovery
from fluxplan.run.report import Report, measured as _measured, predicted as _predicted

CANDIDATE_PHASES = ("load", "encode", "denoise", "decode")  # failures the store keeps against the plan


@dataclass(frozen=True)
class Target:
    """Where the pipeline runs."""

    device: str  # "cuda", "cuda:1" or "cpu"
    dtype: str  # "bfloat16" on a GPU, "float32" on the CPU
    name: str  # the CUDA device's name, or "cpu"
    driver: str | None = None

    @property
    def on_cpu(self) -> bool:
        return not self.device.startswith("cuda")


# --------------------------------------------------------------------------- probe


def target(device: str | None = None) -> Target:
    """The device to run on (default: CUDA when there is one) and its identity."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            from fluxplan.errors import NoGPU

            raise NoGPU(f"device {device!r}: no CUDA GPU is available to torch")
        from fluxplan.run.memory import init_device

        init_device(device)  # before anything allocates: the CUDA context baseline
        driver = None
        try:
            from fluxplan.probe import probe_gpu

            driver = probe_gpu(torch.device(device).index or 0).driver
        except FluxplanError:
            pass
        return Target(device, "bfloat16", torch.cuda.get_device_name(torch.device(device)), driver)
    if device != "cpu":
        raise BadInput(f"device {device!r}: use cuda, cuda:N or cpu")
    return Target("cpu", "float32", "cpu")


# --------------------------------------------------------------------------- decide


def family_of(model: str | Path) -> tuple[Family, list[str]]:
    """The model family the planner plans for, from a name, a hub id or a local pipeline directory."""
    text = str(model)
    path = Path(text).expanduser()
    marker = path / "fluxplan_synthetic.json"
    if marker.is_file():
        return find_family(json.loads(marker.read_text())["kind"]), []
    try:
        return find_family(text), []
    except UnknownModel:
        config = path / "transformer" / "config.json"
        if not config.is_file():
            raise
    guided = json.loads(config.read_text()).get("guidance_embeds", True)
    fam = find_family("dev" if guided else "schnell")
    return fam, [f"{text}: family not named; planned as {fam.title} (its transformer "
                 f"{'has' if guided else 'lacks'} a guidance embedding)"]


def _check_pins_usable(plan_options: dict, device: str) -> None:
    """A pinned format whose backend cannot run here is a one-line error naming the reason (fluxplan doctor)."""
    from fluxplan.catalog.formats import load_catalog
    from fluxplan.run.doctor import unusable_reasons

    reasons = unusable_reasons(device)
    for option, component in (("transformer", "transformer"), ("text_encoder", "text_encoder_2")):
        name = plan_options.get(option)
        if not name:
            continue
        fmt = load_catalog().get(name, component)
        for pkg in fmt.packages:
            if pkg in reasons:
                raise BadInput(f"{component} format {fmt.key} cannot run here: {pkg}: {reasons[pkg]} "
                               "(see fluxplan doctor)")


def decide(model: str | Path, where: Target, **plan_options) -> tuple[Plan, list[str]]:
    """The plan for `model` on `where` (on the CPU: for the card named by gpu=, else DEFAULT_GPU), and notes."""
    from fluxplan.planner import DEFAULT_GPU, plan
    from fluxplan.run.doctor import usable_backends

    fam, notes = family_of(model)
    gpu = plan_options.pop("gpu", None)
    if where.on_cpu:
        if gpu in (None, "auto"):
            gpu = DEFAULT_GPU
        notes.append(f"no CUDA GPU here: planned for {gpu}, running on the CPU in float32; "
                     "the plan's estimates are for that GPU and are not compared with this run")
    elif gpu is None:
        gpu = "auto"
    _check_pins_usable(plan_options, where.device)
    if not where.on_cpu and "observations" not in plan_options:
        plan_options["observations"] = observations(where.name)
    if not where.on_cpu and "cpu_tflops" not in plan_options:  # T5 placed on the CPU: how fast it really is here
        from fluxplan.run.hostprobe import cpu_rate

        plan_options["cpu_tflops"], plan_options["cpu_dtype"] = cpu_rate() or (None, None)
    p = plan(gpu, model=fam.key, installed=usable_backends(where.device), **plan_options)
    return p, notes


# --------------------------------------------------------------------------- build


def resolve_model(model: str | Path, candidate: Candidate, fam: Family) -> str | Path:
    """What the builder loads: a synthetic directory (built if missing, with the GGUF level the plan needs),
    a family's hub id, a local directory, or a hub id as given."""
    text = str(model)
    if text.lower().startswith("synthetic:"):
        from fluxplan.run.synth import KINDS, ensure_synthetic

        kind = text.split(":", 1)[1].lower()
        if kind not in KINDS:
            raise UnknownModel(f"unknown synthetic model {text!r}; choose synthetic:{'|'.join(KINDS)}")
        levels = [candidate.transformer.split("-", 1)[1].upper()] if candidate.transformer.startswith("gguf-") else []
        return ensure_synthetic(kind, gguf_levels=levels)  # type: ignore[arg-type]
    if Path(text).expanduser().exists():
        return Path(text).expanduser()
    if text.lower() in (fam.key, *fam.aliases) and fam.hub_id:
        return fam.hub_id
    return text


def build_plan(p: Plan, model: str | Path, where: Target, *, gguf_file: Path | None = None):
    from fluxplan.run.builder import build

    fam, _ = family_of(model)
    return build(p.choice, resolve_model(model, p.choice, fam), device=where.device, gguf_file=gguf_file,
                 t5_cpu_dtype=p.host.cpu_dtype)


def plan_for(model: str | Path = "dev", *, device: str | None = None, **plan_options) -> tuple[Plan, Target, list[str]]:
    """Probe and decide only: the plan `generate` would run, where it would run, and notes. With vram= on a GPU,
    this process is held to that much memory from here on (run.memory.cap_memory)."""
    where = target(device)
    capped = hold_to(where, plan_options.get("vram"))
    p, notes = decide(model, where, **plan_options)
    return p, where, capped + notes


def hold_to(where: Target, vram: float | None) -> list[str]:
    """A pinned VRAM on a GPU is a promise: cap the allocator there, so the run cannot take more."""
    if vram is None or where.on_cpu:
        return []
    from fluxplan.run.memory import cap_memory

    note = cap_memory(where.device, vram)
    return [note] if note else []


def load(plan: Plan | None = None, *, model: str | Path = "dev", device: str | None = None,
         gguf_file: Path | None = None, **plan_options):
    """A built pipeline (builder.Built) for `plan`, or for the plan made from `plan_options` here."""
    where = target(device)
    hold_to(where, plan_options.get("vram"))
    if plan is None:
        plan, _ = decide(model, where, **plan_options)
    return build_plan(plan, model, where, gguf_file=gguf_file)


# --------------------------------------------------------------------------- run, save, record


def run(built, prompt: str, p: Plan, where: Target, *, seed: int, guidance: float | None = None,
        max_sequence_length: int | None = None, progress: Progress | None = None,
        on_decode_oom: DecodeOOM | None = None):
    """Generate the plan's images on the built pipeline: (PIL images, Measurement). `on_decode_oom`: see
    measure.generate_images (recovery's VAE tiling retry)."""
    from fluxplan.run.measure import generate_images

    fam = find_family(p.request.model)
    r = p.request
    return generate_images(built, prompt, height=r.height, width=r.width, steps=r.steps,
                           guidance=fam.default_guidance if guidance is None else guidance, seed=seed,
                           batch=r.batch, images=r.images,
                           max_sequence_length=max_sequence_length or r.text_tokens or fam.max_sequence_length,
                           placement=p.choice.text_encoder_placement, device=where.device, progress=progress,
                           on_decode_oom=on_decode_oom)


def timings(built, m: Measurement) -> dict[str, Any]:
    return {"device": m.device, "load_s": built.load_s, "setup_s": built.setup_s, "encode_s": m.encode_s,
            "step_s": m.step_s, "steps_s": m.step_seconds, "compile_s": m.compile_s, "decode_s": m.decode_seconds,
            "peak_reserved_gib": m.peak_reserved_gib, "peak_nvml_gib": m.peak_nvml_gib}


def save(images: list, paths: list[Path], *, prompt: str, seed: int, model: str, p: Plan, guidance: float,
         timing: dict[str, Any]) -> list[Path]:
    from fluxplan.run.images import ImageMeta, save_png

    r = p.request
    return [save_png(im, path, ImageMeta(prompt=prompt, seed=seed + i, model=model, width=r.width, height=r.height,
                                         steps=r.steps, guidance=guidance, plan=p.choice.as_dict(), timings=timing))
            for i, (im, path) in enumerate(zip(images, paths))]


def generate(prompt: str, *, model: str | Path = "dev", seed: int = 0, out: str | Path | None = None,
             device: str | None = None, guidance: float | None = None, max_sequence_length: int | None = None,
             gguf_file: Path | None = None, store: Any = True, progress: Progress | None = None,
             on_plan: Callable[[Plan, list[str]], None] | None = None, strict: bool = False,
             **plan_options) -> Report:
    """Probe, plan, build, run, save and record. `plan_options` are `fluxplan.planner.plan`'s keywords (gpu=,
    vram=, resolution=, steps=, batch=, images=, transformer=, offload=, ...). `store`: True (the default store),
    False, a path or a Store. `progress(stage, done, total)` follows load / encode / denoise / decode;
    `on_plan(plan, notes)` is called once the plan is made, before anything is built. Out of memory, the run
    recovers (see run.recovery; Report.recovery) unless `strict`, where the error is raised as it is."""
    from fluxplan.run.images import prepare_outputs

    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInput("the prompt is empty")
    if seed < 0:
        raise BadInput(f"seed {seed}: must be 0 or more")
    if max_sequence_length is not None and not 1 <= max_sequence_length <= MAX_SEQUENCE_LENGTH:
        raise BadInput(f"max_sequence_length {max_sequence_length}: must be between 1 and {MAX_SEQUENCE_LENGTH}")
    p, where, notes = plan_for(model, device=device, **plan_options)
    db = _open_store(store)
    shape = (p.request.height, p.request.width, p.request.batch)
    failed = db.failed_candidates(where.name, shape, p.budget.vram_gib) if db is not None else set()
    if (note := previous_failure(db, where, p)) is not None:  # plan again without what failed here before
        p, where, notes = plan_for(model, device=device, exclude=failed, **plan_options)
        notes.append(note.replace("; trying again", "; planned without it"))
    if on_plan is not None:
        on_plan(p, notes)
    paths = prepare_outputs(out, p.request.images, prompt=prompt, seed=seed)
    guidance = find_family(p.request.model).default_guidance if guidance is None else guidance
    attempt = partial(_attempt, where=where, model=model, prompt=prompt, paths=paths, db=db, seed=seed,
                      guidance=guidance, max_sequence_length=max_sequence_length, gguf_file=gguf_file,
                      progress=progress)

    def replan(exclude: set[Candidate]) -> Plan:  # against what is free now: on a GPU, gpu="auto" reads NVML
        options = {**plan_options, "gpu": plan_options.get("gpu") if where.on_cpu else "auto"}
        return decide(model, where, exclude=exclude | set(options.pop("exclude", ())), **options)[0]

    p, (built, images, m, saved, run_id), events = run_with_recovery(p, attempt, replan, exclude=failed, strict=strict)
    return Report(prompt=prompt, seed=seed, model=str(model), device=where.device, dtype=where.dtype,
                  planned_for=p.gpu.name, predictions_apply=not where.on_cpu, plan=p, choice=p.choice.as_dict(),
                  why=p.why, paths=saved, predicted=_predicted(p), measured=_measured(built, m, p.request.images),
                  measurement=m, load_s=built.load_s, setup_s=built.setup_s,
                  notes=notes + list(p.notes) + built.notes + [f"recovered: {ev.line()}" for ev in events],
                  run_id=run_id, images=images, recovery=events)


def _attempt(p: Plan, on_decode_oom: DecodeOOM | None, events: list[RecoveryEvent], *, where: Target,
             model: str | Path, prompt: str, paths: list[Path], db, seed: int, guidance: float,
             max_sequence_length: int | None, gguf_file: Path | None, progress: Progress | None):
    """Build, run, save and record one plan: (built, images, Measurement, saved paths, the store's run id).
    A failure is recorded (in CANDIDATE_PHASES, as a failure of the plan) and raised, tagged with its phase."""
    phase, built, m = "load", None, None
    before = len(events)
    try:
        notify = progress or (lambda stage, done, total: None)
        notify("load", 0, 1)
        try:
            built = build_plan(p, model, where, gguf_file=gguf_file)
        except Exception as e:
            if not is_out_of_memory(e) or isinstance(e, FluxplanError):
                raise
            raise OutOfMemory("loading the pipeline", (str(e).strip() or "out of memory").splitlines()[0]) from e
        notify("load", 1, 1)
        phase = "run"
        images, m = run(built, prompt, p, where, seed=seed, guidance=guidance,
                        max_sequence_length=max_sequence_length, progress=progress, on_decode_oom=on_decode_oom)
        phase = "save"
        timing = timings(built, m)
        if events:
            timing["recovery"] = [ev.model_dump() for ev in events]
        saved = save(images, paths, prompt=prompt, seed=seed, model=str(model), p=p, guidance=guidance,
                     timing=timing)
    except Exception as e:
        phase = getattr(e, "fluxplan_phase", phase)
        e.fluxplan_phase = phase  # type: ignore[attr-defined]
        if db is not None:
            db.record_run(run_record(where, p, str(model), seed=seed, guidance=guidance, built=built, m=m,
                                     error=e, phase=phase))
            # the plan itself failed here (not the prompt, the disk, or the user's model files)
            if phase in CANDIDATE_PHASES and not isinstance(e, (ModelLoadError, MissingPackage, BadInput)):
                db.record_failure(gpu=where.name, shape=p.request, candidate=p.choice, phase=phase,
                                  error=_one_line(e), vram_gib=p.budget.vram_gib)
        raise
    run_id, recovered = None, events[before:]  # this plan's own recoveries (VAE tiling in decode)
    if db is not None:
        for ev in recovered:  # this plan ran out of memory in decode here: never plan it so again
            db.record_failure(gpu=where.name, shape=p.request, candidate=p.choice, phase=ev.phase, error=ev.error,
                              vram_gib=p.budget.vram_gib)
        run_id = db.record_run(run_record(where, p, str(model), seed=seed, guidance=guidance, built=built, m=m,
                                          recovered=recovered))
    return built, images, m, saved, run_id
