"""Known failures. The CLI turns each into one line on stderr and exit code 2 (see cli.main)."""

from __future__ import annotations


class FluxplanError(Exception):
    """A problem the user can act on: bad input, an infeasible request, a missing package."""

    exit_code = 2


class BadInput(FluxplanError):
    pass


class UnknownGPU(BadInput):
    def __init__(self, name: str, suggestions: list[str]):
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else "; see `fluxplan gpus`"
        super().__init__(f"unknown GPU {name!r}{hint}")
        self.name = name
        self.suggestions = suggestions


class UnknownModel(BadInput):
    pass


class UnknownFormat(BadInput):
    pass


class ProfileError(BadInput):
    """A profile file that cannot be used: names the file and the field."""


class NoGPU(FluxplanError):
    pass


class Infeasible(FluxplanError):
    """Nothing in the space satisfies the request; carries the structured reasons."""

    def __init__(self, message: str, binding: list | None = None):
        super().__init__(message)
        self.binding = binding or []


class MissingPackage(FluxplanError):
    def __init__(self, package: str, needed_for: str):
        super().__init__(f"{needed_for} needs the package {package!r}: pip install {package}")
        self.package = package


class ModelLoadError(FluxplanError):
    pass
