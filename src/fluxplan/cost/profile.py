"""Cost profiles: measured (or published) points for one GPU, validated, and the curves fitted through them.

A profile file (profiles/<gpu>.json) holds raw points, each labelled with where it came from. Curves are fitted
here with scipy when the profile is loaded, so the file stays the record of what was seen.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fluxplan.errors import ProfileError

SCHEMA = 1
Kind = Literal["measured", "published", "derived"]


class _Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kind: Kind
    source: str

    @model_validator(mode="after")
    def _finite(self):
        for name, value in self:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} is not finite")
        return self


class ForwardPoint(_Point):
    """One transformer forward (one denoising step)."""

    format: str = "bf16"
    compile: Literal["none", "regional", "full"] = "none"
    image_tokens: int = Field(gt=0)
    text_tokens: int = Field(gt=0)
    batch: int = Field(default=1, gt=0)
    seconds: float = Field(gt=0)
    weights_gib: float | None = Field(default=None, gt=0, description="reserved for the transformer's weights")
    activation_gib: float | None = Field(default=None, ge=0, description="reserved above the weights during the step")


class EncodePoint(_Point):
    """T5 (text_encoder_2) encoding one prompt, in one weight format; bf16's points are the reference that formats
    without their own are scaled from."""

    format: str = "bf16"
    text_tokens: int = Field(gt=0)
    seconds: float = Field(gt=0)
    weights_gib: float | None = Field(default=None, gt=0, description="T5's weights as the allocator held them")


class DecodePoint(_Point):
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    batch: int = Field(default=1, gt=0)
    tiled: bool = False
    seconds: float = Field(gt=0)
    activation_gib: float = Field(ge=0)


class OffloadPoint(_Point):
    mode: Literal["model", "group-block", "group-leaf", "sequential"]
    format: str = "bf16"
    moved_gib: float = Field(gt=0, description="bytes moved to the GPU per transfer round")
    extra_seconds: float = Field(gt=0, description="time the transfers added per round")
    per: Literal["step", "image"]
    overlapped: bool = Field(description="transfers run on a side stream, overlapping compute")
    resident_gib: float | None = Field(default=None, ge=0, description="weights of the offloaded model on the GPU at once")
    compute_seconds: float | None = Field(default=None, gt=0, description="compute time per round, where overlapped")

    @property
    def gib_per_s(self) -> float:
        """Effective transfer rate: overlapped transfers hide behind compute, so the whole round counts."""
        busy = self.extra_seconds + (self.compute_seconds or 0.0) if self.overlapped else self.extra_seconds
        return self.moved_gib / busy


class CompileMeasure(_Point):
    """A format compiled on the profiled machine (block level, as run.placement compiles a pipeline): whether it
    compiled (`fails`: with the error; `timeout`: not within the profiler's limit) and the cold compile's seconds."""

    format: str
    mode: Literal["regional", "full"]
    status: Literal["ok", "fails", "timeout"]
    seconds: float | None = Field(default=None, ge=0, description="first call less a steady one, where ok; the "
                                  "limit it did not finish within, where timeout (a lower bound)")
    error: str = ""

    @model_validator(mode="after")
    def _seconds_if_ok(self):
        if self.status == "ok" and self.seconds is None:
            raise ValueError(f"compile of {self.format} ({self.mode}) is ok but has no seconds")
        return self


class Scalar(_Point):
    value: float = Field(ge=0)


class Memory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    context_gib: Scalar
    decode_carry_factor: Scalar  # share of the denoise activations still reserved while the VAE decodes
    encode_activation_gib: Scalar


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    summary: str
    date: str
    command: str | None = None
    versions: dict[str, str] = {}


class ForwardFit(BaseModel):
    """bf16 eager seconds per batch item against total tokens T: c0 + c1*T + c2*T^2 (fitted by cost.fit)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    c0: float = Field(ge=0)
    c1: float = Field(ge=0)
    c2: float = Field(ge=0)
    points: int
    max_rel_err: float | None = None

    def seconds(self, tokens: int) -> float:
        return self.c0 + self.c1 * tokens + self.c2 * tokens * tokens


class Fits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    forward_bf16: ForwardFit


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    schema_version: int = Field(alias="schema")
    gpu: str
    provenance: Provenance
    forward: list[ForwardPoint]
    encode: list[EncodePoint]
    decode: list[DecodePoint]
    offload: list[OffloadPoint]
    memory: Memory
    fits: Fits
    compile: list[CompileMeasure] = []

    def compiled(self, fmt: str, mode: str) -> CompileMeasure | None:
        """What this profile measured of `fmt` under compile `mode` (None: not measured)."""
        return next((c for c in self.compile if c.format == fmt and c.mode == mode), None)

    @field_validator("schema_version")
    @classmethod
    def _schema(cls, v: int) -> int:
        if v != SCHEMA:
            raise ValueError(f"schema {v} is not the supported schema {SCHEMA}")
        return v

    @model_validator(mode="after")
    def _has_reference(self):
        if not any(p.format == "bf16" and p.compile == "none" and p.activation_gib is not None for p in self.forward):
            raise ValueError("forward needs a bf16 eager point with activation_gib (the reference every format scales from)")
        if not any(p.mode == "model" for p in self.offload) or not any(not d.tiled for d in self.decode):
            raise ValueError("offload needs a model-offload point and decode an untiled point")
        if not self.decode or not any(e.format == "bf16" for e in self.encode):
            raise ValueError("decode needs at least one point, and encode one of bf16")
        for p in self.forward:
            if p.weights_gib is not None and p.activation_gib is not None and p.activation_gib > 4 * p.weights_gib:
                raise ValueError(f"forward point {p.format} at {p.image_tokens} tokens: activations above 4x weights")
        return self


def _where(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(x) for x in first["loc"]) or "(top level)"
    return f"field {field}: {first['msg']}"


def load_profile_file(path: Path) -> Profile:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ProfileError(f"profile {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"profile {path}: not valid JSON ({e})") from None
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(f"profile {path}: {_where(e)}") from None


def profile_dirs(include_local: bool = True) -> list[Path]:
    """Where profiles live, first found first: this machine's own (`fluxplan profile` writes them to
    $FLUXPLAN_CACHE/profiles), then the bundled ones (inside the wheel, or profiles/ in a checkout)."""
    import os

    here = Path(__file__).resolve()
    cache = Path(os.environ.get("FLUXPLAN_CACHE") or Path.home() / ".cache" / "fluxplan") / "profiles"
    dirs = ([cache] if include_local else []) + [here.parents[1] / "_profiles", here.parents[3] / "profiles"]
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=None)
def bundled_profiles() -> tuple[Profile, ...]:
    seen: dict[str, Profile] = {}
    for d in profile_dirs():
        for path in sorted(d.glob("*.json")):
            prof = load_profile_file(path)
            seen.setdefault(prof.gpu, prof)
    return tuple(seen.values())
