"""The weight formats the planner searches: bits per weight by layer kind, speed, quality, compatibility.

Every number comes from data/formats.json with its source. Compatibility is data too: each entry says a set
of offload modes or compile choices is `ok` (with its evidence), `fails` (with the error) or `unverified`
(not yet run on a GPU: the planner does not offer it unless the user pins it).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fluxplan.catalog import data
from fluxplan.catalog.families import GIB, LayerCounts
from fluxplan.errors import UnknownFormat

Status = Literal["ok", "fails", "unverified"]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Speed(_Data):
    eager: float = Field(gt=0)
    compiled: float | None = Field(default=None, gt=0)
    source: str


class Lpips(_Data):
    value: float = Field(ge=0, le=1)
    kind: Literal["measured", "published", "derived"]
    source: str


class CompileTime(_Data):
    regional: float | None = None
    full: float | None = None
    source: str


class Compat(_Data):
    offload: tuple[str, ...] = ()
    compile: tuple[str, ...] = ()
    status: Status
    reason: str = ""
    source: str = ""


class Format(_Data):
    key: str
    family: Literal["none", "layerwise", "torchao", "bnb", "quanto", "gguf"]
    title: str
    aliases: tuple[str, ...] = ()
    applies_to: tuple[Literal["transformer", "text_encoder_2"], ...]
    bits: dict[str, float]
    bits_source: str
    packages: tuple[str, ...] = ()
    min_cc: float | None = None
    compute: Literal["bf16", "fp8", "int8"]
    needs_gpu_to_quantize: bool = False
    speed: Speed
    lpips: Lpips | None
    compile_s: CompileTime | None
    quantize_s_per_gparam: float = 0.0
    unavailable: str | None = None
    gguf_type: str | None = None
    compat: tuple[Compat, ...] = ()

    def weight_bytes(self, counts: LayerCounts) -> float:
        return sum(n * self.bits.get(kind, 16.0) / 8 for kind, n in counts.items())

    def weight_gib(self, counts: LayerCounts) -> float:
        return self.weight_bytes(counts) / GIB

    @property
    def bits_per_weight(self) -> float:
        """Bits per weight of the quantized Linear layers (what GGUF level names are about)."""
        return self.bits.get("linear", 16.0)

    def status(self, *, offload: str | None = None, compile: str | None = None) -> Compat:
        """Compatibility with one offload mode or compile choice ("none" is always ok)."""
        axis, value = ("offload", offload) if offload is not None else ("compile", compile)
        if value == "none":
            return Compat(status="ok", source="no offload or compile")
        for entry in self.compat:
            if value in getattr(entry, axis):
                return entry
        return Compat(status="unverified", reason=f"{self.key} with {axis} {value} not yet run on a GPU")


class LpipsCurve(_Data):
    """LPIPS = a * exp(-b * bits), fitted by `python -m fluxplan.cost.fit` through the anchored formats."""

    anchors: tuple[str, ...]
    source: str
    a: float = Field(gt=0)
    b: float = Field(gt=0)


class Rule(_Data):
    """Compatibility of an offload mode with a compile choice, whatever the format."""

    offload: tuple[str, ...]
    compile: tuple[str, ...]
    status: Status
    reason: str
    source: str = ""


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    formats: dict[str, Format]
    lpips_curve: LpipsCurve
    rules: tuple[Rule, ...] = ()
    cpu_text_encoder_formats: tuple[str, ...] = ("bf16",)

    def rule(self, offload: str, compile: str) -> Rule | None:
        return next((r for r in self.rules if offload in r.offload and compile in r.compile), None)

    def get(self, name: str, component: str = "transformer") -> Format:
        key = name.strip().lower()
        found = self.formats.get(key) or next((f for f in self.formats.values() if key in f.aliases), None)
        if found is None:
            known = ", ".join(f.key for f in self.for_component(component))
            raise UnknownFormat(f"unknown {component} format {name!r}: known formats are {known}")
        if component not in found.applies_to:
            known = ", ".join(f.key for f in self.for_component(component))
            raise UnknownFormat(f"format {found.key!r} does not apply to {component}: use one of {known}")
        return found

    def for_component(self, component: str) -> list[Format]:
        return [f for f in self.formats.values() if component in f.applies_to]


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    raw = json.loads(data.read("formats.json"))
    return Catalog(formats={f["key"]: Format.model_validate(f) for f in raw["formats"]},
                   lpips_curve=LpipsCurve.model_validate(raw["lpips_curve"]),
                   rules=tuple(Rule.model_validate(r) for r in raw.get("rules", ())),
                   cpu_text_encoder_formats=tuple(raw["text_encoder_rules"][0]["formats"]))
