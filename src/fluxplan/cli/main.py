"""The `fluxplan` command: the typer app, and the one place that turns known exceptions into one-line errors."""

from __future__ import annotations

import os
import sys

import typer

from fluxplan.cli import explain as explain_cmd
from fluxplan.cli import gpus as gpus_cmd
from fluxplan.cli.output import error_line
from fluxplan.errors import FluxplanError

app = typer.Typer(
    name="fluxplan", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Plan, explain and run FLUX text-to-image pipelines at the best quality your GPU can hold.",
)
app.command("explain")(explain_cmd.explain)
app.command("gpus")(gpus_cmd.gpus)


def _register_optional() -> None:
    """Commands whose modules belong to the run layer (they import torch only when they run)."""
    for name, module, attr in (("auto", "fluxplan.cli.auto", "auto"), ("synth", "fluxplan.cli.synth", "synth"),
                               ("doctor", "fluxplan.cli.doctor", "doctor")):
        try:
            mod = __import__(module, fromlist=[attr])
        except ImportError:
            continue
        app.command(name)(getattr(mod, attr))


_register_optional()


def main(argv: list[str] | None = None) -> int:
    import click

    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("FLUXPLAN_DEBUG") == "1"
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--debug"]
    try:
        app(args=args, prog_name="fluxplan", standalone_mode=False)
        return 0
    except FluxplanError as e:
        if debug:
            raise
        error_line(str(e))
        return e.exit_code
    except click.exceptions.NoArgsIsHelpError:
        return 0
    except click.UsageError as e:
        error_line(e.format_message().replace("\n", " "))
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        error_line("aborted")
        return 130
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except Exception as e:  # an internal error: still one line, unless --debug
        if debug:
            raise
        error_line(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
