"""The one output sink: tables for a person on stdout, or one JSON object; errors as one line on stderr."""

from __future__ import annotations

import json
import sys


class Output:
    def __init__(self, as_json: bool = False):
        self.as_json = as_json
        self._console = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    def emit(self, data: dict, human) -> None:
        """Print `data` as JSON, or call `human(console)` to draw it."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        else:
            human(self.console)


def error_line(message: str) -> None:
    sys.stderr.write(f"fluxplan: error: {message}\n")
