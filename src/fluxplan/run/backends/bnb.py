"""bitsandbytes nf4 / fp4 / int8 through diffusers' and transformers' BitsAndBytesConfig (CUDA only)."""

from __future__ import annotations

from typing import Any

from fluxplan.run.backends.base import Backend, BackendFamily


def bnb_kwargs(variant: str, dtype: Any) -> dict[str, Any]:
    if variant == "int8":
        return {"load_in_8bit": True}
    return {"load_in_4bit": True, "bnb_4bit_quant_type": variant, "bnb_4bit_compute_dtype": dtype}


class BitsAndBytes(Backend):
    family = BackendFamily.BNB
    package = "bitsandbytes"
    import_name = "bitsandbytes"
    needs_cuda = True  # diffusers: "No GPU found. A GPU is needed for quantization."
    transformer_formats = {"bnb-nf4": "nf4", "bnb-fp4": "fp4", "bnb-int8": "int8"}
    text_encoder_formats = {"bnb-nf4": "nf4", "bnb-int8": "int8"}

    def transformer_config(self, variant: str, dtype: Any) -> Any:
        from diffusers import BitsAndBytesConfig

        return BitsAndBytesConfig(**bnb_kwargs(variant, dtype))

    def text_encoder_config(self, variant: str, dtype: Any) -> Any:
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(**bnb_kwargs(variant, dtype))
