"""`fluxplan synth`: build (or find in the cache) a synthetic FLUX pipeline directory and print its path."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fluxplan.errors import BadInput

KINDS = ("tiny", "dev", "schnell")


def synth(
    kind: str = typer.Argument("tiny", help="tiny (CPU tests), dev or schnell (full size: use a GPU machine)"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="cache root; the pipeline lands in OUT/synthetic/KIND-sSEED "
                            "(default $FLUXPLAN_CACHE or ~/.cache/fluxplan)"),
    seed: int = typer.Option(0, "--seed", help="weights are deterministic for a seed (and device type)"),
    gguf: Optional[list[str]] = typer.Option(
        None, "--gguf", help="also write gguf/transformer-LEVEL.gguf; repeat, or 'all' "
                             "(Q8_0 Q6_K Q5_K Q5_1 Q5_0 Q4_K Q4_1 Q4_0 Q3_K Q2_K)"),
) -> None:
    """Create a synthetic FLUX.1 checkpoint with random weights (diffusers layout, offline)."""
    from fluxplan.run.gguf_files import LEVELS

    if kind not in KINDS:
        raise BadInput(f"unknown synthetic kind {kind!r}; choose one of {', '.join(KINDS)}")
    if seed < 0:
        raise BadInput(f"--seed must be 0 or more, got {seed}")
    levels: list[str] = []
    for item in gguf or []:
        for level in item.replace(",", " ").split():
            if level.lower() == "all":
                levels += LEVELS
            elif level.upper() in LEVELS:
                levels.append(level.upper())
            else:
                raise BadInput(f"unknown GGUF level {level!r}; known: {', '.join(LEVELS)} or 'all'")
    if out is not None and out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a directory")

    import torch

    from fluxplan.run.synth import ensure_synthetic

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if kind != "tiny" and device == "cpu":
        typer.echo(f"building full-size {kind} on the CPU: slow, and it needs ~35 GB of free host memory", err=True)
    path = ensure_synthetic(kind, root=out, seed=seed, gguf_levels=dict.fromkeys(levels), device=device)  # type: ignore[arg-type]
    typer.echo(str(path))
