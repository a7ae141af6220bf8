"""Registry of weight-format backends, keyed by BackendFamily; `resolve(key, role)` finds the backend of a format."""

from __future__ import annotations

from fluxplan.errors import UnknownFormat
from fluxplan.run.backends.base import ROLES, TEXT_ENCODER_2, TRANSFORMER, Backend, BackendFamily
from fluxplan.run.backends.bnb import BitsAndBytes
from fluxplan.run.backends.gguf import Gguf
from fluxplan.run.backends.layerwise import LayerwiseCasting
from fluxplan.run.backends.none import NoQuantization
from fluxplan.run.backends.quanto import Quanto
from fluxplan.run.backends.torchao import TorchAo

REGISTRY: dict[BackendFamily, type[Backend]] = {
    cls.family: cls for cls in (NoQuantization, LayerwiseCasting, TorchAo, BitsAndBytes, Quanto, Gguf)
}


def formats(role: str) -> list[str]:
    """Every format key the builder accepts for a role ("transformer" or "text_encoder_2")."""
    return [key for cls in REGISTRY.values() for key in cls().formats(role)]


def resolve(key: str, role: str) -> tuple[Backend, str]:
    """(backend, variant) for a format key, or UnknownFormat naming the keys that exist."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    for cls in REGISTRY.values():
        backend = cls()
        variant = backend.formats(role).get(key.lower())
        if variant is not None:
            return backend, variant
    raise UnknownFormat(f"unknown {role} format {key!r}; known: {', '.join(formats(role))}")


__all__ = ["REGISTRY", "ROLES", "TEXT_ENCODER_2", "TRANSFORMER", "Backend", "BackendFamily", "formats", "resolve"]
