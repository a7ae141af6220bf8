"""The common base of the weight-format backends the builder uses (one small class per backend family).

A backend turns a format key (`torchao-int8wo`, `gguf-q4_k`, ...) into what diffusers needs to build that format:
a diffusers quantization config for the transformer, a transformers quantization config for T5 (the builder
combines both into one `PipelineQuantizationConfig(quant_mapping=...)`), a transformer loaded some other way
(GGUF), or work after loading (layerwise casting). Optional libraries are imported inside the methods only.
"""

from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from fluxplan.errors import MissingPackage, NoGPU

TRANSFORMER = "transformer"
TEXT_ENCODER_2 = "text_encoder_2"
ROLES = (TRANSFORMER, TEXT_ENCODER_2)


class BackendFamily(str, Enum):
    NONE = "none"
    LAYERWISE = "layerwise"
    TORCHAO = "torchao"
    BNB = "bnb"
    QUANTO = "quanto"
    GGUF = "gguf"


def has_module(name: str) -> bool:
    """Whether `import name` would find the module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


class Backend:
    family: ClassVar[BackendFamily]
    package: ClassVar[str | None] = None  # pip name
    import_name: ClassVar[str | None] = None  # module to look for
    needs_cuda: ClassVar[bool] = False
    # format key -> variant, per role
    transformer_formats: ClassVar[dict[str, str]] = {}
    text_encoder_formats: ClassVar[dict[str, str]] = {}

    def formats(self, role: str) -> dict[str, str]:
        return self.transformer_formats if role == TRANSFORMER else self.text_encoder_formats

    def check(self, key: str, role: str, device: str) -> None:
        """Raise MissingPackage / NoGPU before anything is loaded when this format cannot be built here."""
        if self.import_name and not has_module(self.import_name):
            raise MissingPackage(self.package or self.import_name, f"{role} format {key}")
        if self.needs_cuda and not device.startswith("cuda"):
            raise NoGPU(f"{role} format {key} ({self.family.value}) quantizes on a CUDA GPU only; device is {device!r}")

    # -- what from_pretrained needs
    def transformer_config(self, variant: str, dtype: Any) -> Any | None:
        """A diffusers quantization config for the transformer, or None."""
        return None

    def text_encoder_config(self, variant: str, dtype: Any) -> Any | None:
        """A transformers quantization config for T5 (text_encoder_2), or None."""
        return None

    def load_transformer(self, variant: str, model: str, dtype: Any, file: Path | None) -> Any | None:
        """A transformer loaded outside the pipeline's from_pretrained (GGUF), or None."""
        return None

    # -- work after from_pretrained
    def after_load(self, pipe: Any, role: str, variant: str, dtype: Any) -> list[str]:
        return []

    def describe(self, role: str, variant: str) -> str:
        return f"{role}: {self.family.value} {variant}"
