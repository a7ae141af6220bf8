"""The `fluxplan` command: the typer app, and the one place that turns known exceptions into one-line errors."""

from __future__ import annotations

import os
import sys

# This process is ours: skip pydantic's scan of every installed package for plugins (about 30 ms of the
# half second `fluxplan explain` may take). Set before pydantic is first imported (typer imports it).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer  # noqa: E402

from fluxplan.cli.output import error_line  # noqa: E402
from fluxplan.errors import FluxplanError  # noqa: E402

app = typer.Typer(
    name="fluxplan", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Plan, explain and run FLUX text-to-image pipelines at the best quality your GPU can hold.",
)

# name -> (module, function). A run only imports the module of the command it runs: `explain` must answer
# in well under a second, and the run-layer commands pull in heavier modules.
COMMANDS = {
    "explain": ("fluxplan.cli.explain", "explain"),
    "gpus": ("fluxplan.cli.gpus", "gpus"),
    "auto": ("fluxplan.cli.auto", "auto"),
    "synth": ("fluxplan.cli.synth", "synth"),
    "doctor": ("fluxplan.cli.doctor", "doctor"),
    "profile": ("fluxplan.cli.profile", "profile"),
}


def _register(names) -> None:
    import importlib

    for name in names:
        module, attr = COMMANDS[name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # a command not built yet in this checkout
        app.command(name)(getattr(mod, attr))


@app.callback()
def _group() -> None:
    """Plan, explain and run FLUX text-to-image pipelines at the best quality your GPU can hold."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("FLUXPLAN_DEBUG") == "1"
    args = [a for a in argv if a != "--debug"]
    first = next((a for a in args if not a.startswith("-")), None)
    _register([first] if first in COMMANDS else list(COMMANDS))
    try:
        app(args=args, prog_name="fluxplan", standalone_mode=False)
        return 0
    except FluxplanError as e:
        if debug:
            raise
        error_line(str(e))
        return e.exit_code
    except typer.Exit as e:
        return getattr(e, "exit_code", 0)
    except (typer.Abort, KeyboardInterrupt):
        error_line("interrupted")
        return 130
    except Exception as e:
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # a usage error from typer / click
            if type(e).__name__ == "NoArgsIsHelpError":
                return 0
            error_line(e.format_message().replace("\n", " "))
            return 2
        if debug:
            raise
        error_line(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
