"""`fluxplan profile`: measure this GPU's cost profile (or rebuild one from measurements) for the planner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def profile(
    out: Annotated[Optional[Path], typer.Option("--out", help="Profile file to write (default: $FLUXPLAN_CACHE/profiles/<gpu>.json, which the planner reads first).")] = None,
    from_results: Annotated[Optional[Path], typer.Option("--from-results", help="Build the profile from a folder of earlier measurements (sweep.json, matrix.jsonl) instead of measuring.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Measure the bf16 curves and bf16 pipeline rows only, not every format.")] = False,
    results: Annotated[Optional[Path], typer.Option("--results", help="Folder for the raw measurements (default: a new folder in the cache).")] = None,
    deadline: Annotated[float, typer.Option("--deadline", help="Seconds the pipeline matrix may take.")] = 540.0,
) -> None:
    """Measure this GPU's costs with synthetic FLUX.1-dev (or rebuild a profile from earlier measurements)."""
    from fluxplan.profiling.run import measure, profile_path
    from fluxplan.profiling.build import build_from_results

    if from_results is None:
        from_results = measure(results, quick=quick, deadline=deadline)
    target = out or profile_path(from_results)
    written = build_from_results(from_results, target)
    typer.echo(f"wrote {written}")
