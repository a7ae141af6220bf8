"""`fluxplan profile`: measure this GPU's cost profile (or rebuild one from measurements) for the planner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# the full run overshoots its deadline by a few seconds (the last stage's process ending, the build): with 555 s it
# took 553-558 s on fresh machines (docs/BENCHMARKS.md section 7), so the default keeps half a minute in hand
QUICK_DEADLINE, FULL_DEADLINE = 55.0, 565.0


def profile(
    out: Annotated[Optional[Path], typer.Option("--out", help="Profile file to write (default: $FLUXPLAN_CACHE/profiles/<gpu>.json, which the planner reads first).")] = None,
    from_results: Annotated[Optional[list[Path]], typer.Option("--from-results", help="Build the profile from a folder of earlier measurements (blocks.json; sweep.json, matrix.jsonl) instead of measuring. Repeat it for several folders of one GPU: each format's blocks (and compile) the median of the folders that measured them, each sweep part from the last folder that measured it, the pipeline runs of all (a configuration run more than once: the median).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Under a minute: blocks alone (bf16 and fp8 layerwise casting) and the CUDA context; no whole pipeline (offload, T5 encode, VAE decode and the decode carry-over are then derived from the previous or the bundled profile, and say so).")] = False,
    results: Annotated[Optional[Path], typer.Option("--results", help="Folder for the raw measurements (default: a new folder in the cache).")] = None,
    deadline: Annotated[Optional[float], typer.Option("--deadline", help=f"Seconds all measurements may take together (default {QUICK_DEADLINE:.0f} with --quick, else {FULL_DEADLINE:.0f}).")] = None,
) -> None:
    """Measure this GPU's costs with synthetic FLUX.1-dev (or rebuild a profile from earlier measurements).

    Every format the doctor finds usable is measured at the block level: one double-stream and one single-stream block at several token counts and batches, loaded through the same backends as `fluxplan auto`, their forward with the blocks called as often as the full model's 19 + 38. T5 encode, VAE decode and the CUDA context are measured alone; then a few whole bf16 pipelines (resident and under each offload mode) confirm the blocks and measure offload transfers and the allocator's carry-over; then T5 in every other usable format, loaded from the synthetic checkpoint (its weights and encode time; at most 45 s); with the time left, formats are compiled regionally at block level, one process each (whether each compiles, its cold compile time, its compiled step).

    Each stage's time is printed. A format or compile mode the run did not reach takes its step relative to bf16's, and whether it compiles, from the profile it replaces or a bundled one that measured it (labelled derived). The profile (fitted, validated, written atomically) is what the planner then uses first for this GPU.
    """
    from fluxplan.profiling.build import build_from_results, check_folders
    from fluxplan.profiling.run import measure, profile_path

    if not from_results:
        limit = deadline if deadline is not None else (QUICK_DEADLINE if quick else FULL_DEADLINE)
        from_results = [measure(results, quick=quick, deadline=limit)]
    check_folders(from_results)  # before the default target is read from them
    target = out or profile_path(from_results[-1])
    written = build_from_results(from_results, target)
    typer.echo(f"wrote {written}")
