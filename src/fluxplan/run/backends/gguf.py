"""GGUF transformer files (city96 layout) loaded with FluxTransformer2DModel.from_single_file + GGUFQuantizationConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluxplan.errors import ModelLoadError
from fluxplan.run.backends.base import Backend, BackendFamily
from fluxplan.run.gguf_files import LEVELS, gguf_path


class Gguf(Backend):
    family = BackendFamily.GGUF
    package = "gguf"
    import_name = "gguf"
    transformer_formats = {f"gguf-{level.lower()}": level for level in LEVELS}

    @staticmethod
    def default_file(model_dir: Path, variant: str) -> Path:
        """Where a pipeline directory keeps its GGUF transformer of one level (as fluxplan's synthetic ones do)."""
        return gguf_path(model_dir, variant)

    @staticmethod
    def validate(file: Path) -> None:
        """Read the file's header and tensor table (memory-mapped): a wrong magic or a truncated file fails here."""
        from gguf import GGUFReader

        if not Path(file).is_file():
            raise ModelLoadError(f"GGUF file not found: {file}")
        try:
            GGUFReader(file)
        except Exception as e:  # gguf raises ValueError / struct.error / IndexError for broken files
            raise ModelLoadError(f"cannot read GGUF file {file}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e

    def load_transformer(self, variant: str, model: str, dtype: Any, file: Path | None) -> Any:
        from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

        assert file is not None
        self.validate(file)
        return FluxTransformer2DModel.from_single_file(
            str(file), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype), config=str(model),
            subfolder="transformer", dtype=dtype)

    def describe(self, role: str, variant: str) -> str:
        return f"{role}: GGUF {variant}"
