"""`fluxplan doctor`: which quantization backends are installed and work here, and what this machine has."""

from __future__ import annotations

import typer


def _gib(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} GiB"


def doctor(json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables.")) -> None:
    """Check each backend with a tiny real quantized layer (on the GPU when there is one) and show versions."""
    from fluxplan.cli.auto import quiet_libraries
    from fluxplan.cli.output import Output
    from fluxplan.run.doctor import report

    quiet_libraries()
    data = report()

    def human(console):
        from rich.table import Table

        env = data["environment"]
        gpu = env["gpu"] or f"none ({env['gpu_error']})"
        console.print(f"GPU: {gpu}" + (f" · driver {env['driver']}" if env["driver"] else ""))
        console.print(f"VRAM free {_gib(env['vram_free_gib'])} of {_gib(env['vram_total_gib'])} · host RAM "
                      f"available {_gib(env['ram_available_gib'])} of {_gib(env['ram_total_gib'])}")
        console.print(f"torch {env['torch']} (CUDA {env['cuda'] or 'none'}) · diffusers {env['diffusers']} · "
                      f"transformers {env['transformers']}")
        table = Table(title=f"backends, checked on {data['device']}")
        for col in ("backend", "package", "version", "status", "detail"):
            table.add_column(col)
        for c in data["backends"]:
            status = "[green]ok[/]" if c["ok"] else "[red]failed[/]"
            table.add_row(c["name"], c["package"] or "(diffusers)", c["version"] or "-", status, c["reason"])
        console.print(table)
        console.print(f"usable for planning: {', '.join(data['usable']) or 'none'}")

    Output(json_out).emit(data, human)
