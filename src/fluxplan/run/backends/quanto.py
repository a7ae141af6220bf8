"""optimum-quanto weight quantization through diffusers' / transformers' QuantoConfig."""

from __future__ import annotations

from typing import Any

from fluxplan.run.backends.base import Backend, BackendFamily


class Quanto(Backend):
    family = BackendFamily.QUANTO
    package = "optimum-quanto"
    import_name = "optimum.quanto"
    transformer_formats = {"quanto-int8": "int8", "quanto-int4": "int4", "quanto-fp8": "float8"}
    text_encoder_formats = {"quanto-int8": "int8"}

    def transformer_config(self, variant: str, dtype: Any) -> Any:
        from diffusers import QuantoConfig

        return QuantoConfig(weights_dtype=variant)

    def text_encoder_config(self, variant: str, dtype: Any) -> Any:
        from transformers import QuantoConfig

        return QuantoConfig(weights=variant)
