"""`fluxplan gpus`: the GPU spec database the planner knows."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from fluxplan.cli.output import Output


def gpus(
    match: Annotated[Optional[str], typer.Argument(help="Show only GPUs whose name contains this.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the GPUs fluxplan knows: VRAM, throughput, bandwidth, PCIe, compute capability."""
    from fluxplan.catalog.gpus import load_gpus, normalize

    rows = [g for g in load_gpus() if match is None or normalize(match) in normalize(g.name)
            or any(normalize(match) in normalize(a) for a in g.aliases)]

    def human(console):
        from rich.table import Table

        t = Table(header_style="bold")
        for col in ("GPU", "VRAM GiB", "bf16 TFLOP/s", "fp8 TFLOP/s", "GB/s", "PCIe", "CC"):
            t.add_column(col, justify="left" if col == "GPU" else "right")
        for g in rows:
            t.add_row(g.name, f"{g.vram_gib:.1f}", f"{g.bf16_tflops:g}", f"{g.fp8_tflops:g}" if g.fp8_tflops else "-",
                      f"{g.mem_bw_gbs:g}", f"{g.pcie_gen}.0 x{g.pcie_lanes}", f"{g.compute_capability:g}")
        console.print(t)

    Output(json_out).emit({"gpus": [g.model_dump() for g in rows]}, human)
