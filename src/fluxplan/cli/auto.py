"""`fluxplan auto PROMPT`: plan, build, run and save, with progress on stderr and the plan's reason up front."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from fluxplan.cli import options as o

Seed = Annotated[int, typer.Option("--seed", help="Seed of the first image; image i uses seed + i.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="A .png file, or a directory (default ./out).")]
Guidance = Annotated[Optional[float], typer.Option("--guidance", help="Guidance scale (default: the model's, 3.5 for dev).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Stop after planning and print the plan.")]
Device = Annotated[Optional[str], typer.Option("--device", help="Run on cuda, cuda:N or cpu (default: the GPU if any).")]
Strict = Annotated[bool, typer.Option("--strict", help="No recovery: out of GPU memory is an error (by default "
                                                        "the run frees it, re-plans or tiles the VAE, and goes on).")]
AutoGpu = Annotated[str, typer.Option("--gpu", help="GPU to plan for: a name from `fluxplan gpus`, or auto (this GPU; "
                                                     "without one, an RTX 4090 while the run itself uses the CPU).")]

QUIET_LOGGERS = ("torchao", "diffusers", "transformers", "torch.utils._pytree", "optimum")


def quiet_libraries() -> None:
    """The command draws its own progress: silence the libraries' progress bars and import-time chatter."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
    except ImportError:
        pass
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:
        pass


class StageProgress:
    """rich progress on stderr for the api's `progress(stage, done, total)` callbacks."""

    LABELS = {"load": "load + quantize", "encode": "encode prompt", "denoise": "denoise", "decode": "decode"}

    def __init__(self, console, compile_mode: str = "none"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.compile_mode = compile_mode
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False,
                                 disable=not console.is_terminal)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        label = self.LABELS.get(stage, stage)
        if stage == "denoise" and done == 0 and self.compile_mode != "none":
            label += f" (first step compiles: {self.compile_mode})"
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total,
                             description=label if done == 0 else self.LABELS.get(stage, stage))


def auto(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: o.Model = "dev", seed: Seed = 0, out: Out = None, steps: o.Steps = None, guidance: Guidance = None,
    resolution: o.Resolution = "1024x1024", batch: o.Batch = 1, images: o.Images = 1, dry_run: DryRun = False,
    json_out: o.Json = False, gpu: AutoGpu = "auto", vram: o.Vram = None, ram: o.Ram = None,
    text_tokens: o.TextTokens = None, latency_budget: o.Budget = None, objective: o.ObjectiveOpt = "quality",
    quality_floor: o.Floor = 0.70, margin: o.Margin = 0.5, transformer: o.Transformer = None,
    text_encoder: o.TextEncoder = None, text_encoder_placement: o.Placement = None, offload: o.OffloadOpt = None,
    compile: o.CompileOpt = None, vae_tiling: o.Tiling = None, device: Device = None, strict: Strict = False,
) -> None:
    """Pick the best way to run FLUX on this machine, run it, save the PNGs (with their plan and timings)."""
    from rich.console import Console

    from fluxplan import api
    from fluxplan.errors import BadInput

    if not prompt.strip():
        raise BadInput("the prompt is empty")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    quiet_libraries()
    kwargs = o.plan_kwargs(gpu=gpu, vram=vram, ram=ram, model=model, resolution=resolution, steps=steps,
                           batch=batch, images=images, text_tokens=text_tokens, latency_budget=latency_budget,
                           objective=objective, quality_floor=quality_floor, margin=margin, transformer=transformer,
                           text_encoder=text_encoder, placement=text_encoder_placement, offload=offload,
                           compile=compile, vae_tiling=vae_tiling)
    kwargs.pop("model")
    if dry_run:
        _dry_run(api, model, device, kwargs, json_out)
        return

    shown: set[str] = set()

    def on_plan(p, notes):
        err.print(f"[bold]plan:[/] {p.choice.label()} [dim]- {p.why}[/]")
        for note in notes + list(p.notes):
            err.print(f"[dim]note: {note}[/]")
            shown.add(note)

    def show_warning(message, category, *args, **kw):
        # DeprecationWarning, FutureWarning, SyntaxWarning (a library's source compiled on import): the libraries'
        # own business, not the user's
        if not issubclass(category, (DeprecationWarning, FutureWarning, SyntaxWarning)):
            err.print(f"[yellow]warning:[/] {message}")

    compile_mode = compile or "none"
    with warnings.catch_warnings(), StageProgress(err, compile_mode) as progress:
        warnings.showwarning = show_warning
        report = api.generate(prompt, model=model, seed=seed, out=out, device=device, guidance=guidance,
                              progress=progress, on_plan=on_plan, strict=strict, **kwargs)
    if json_out:
        from fluxplan.explain import plan_contract

        data = plan_contract(report.plan)  # what `explain --json` prints, plus what the run did
        data["run"] = report.model_dump(mode="json")
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    for event in report.recovery:
        err.print(f"[yellow]recovered:[/] {event.line()}")
        shown.add(f"recovered: {event.line()}")
    for path in report.paths:
        typer.echo(f"saved {path}")
    err.print(report.summary())
    for note in report.notes:
        if note not in shown:
            err.print(f"[dim]note: {note}[/]")


def _dry_run(api, model: str, device: str | None, kwargs: dict, json_out: bool) -> None:
    from fluxplan.cli.output import Output
    from fluxplan.explain import plan_contract, render

    p, where, notes = api.plan_for(model, device=device, **kwargs)
    data = plan_contract(p)
    data["run"] = {"dry_run": True, "device": where.device, "dtype": where.dtype, "notes": notes}

    def human(console):
        console.print(f"[bold]plan:[/] {p.choice.label()} [dim]- {p.why}[/]")
        for note in notes:
            console.print(f"[dim]note: {note}[/]")
        render(p, console)

    Output(json_out).emit(data, human)
