"""No quantization: the component keeps the pipeline dtype (bf16 on a GPU, fp32 on the CPU)."""

from __future__ import annotations

from fluxplan.run.backends.base import Backend, BackendFamily


class NoQuantization(Backend):
    family = BackendFamily.NONE
    transformer_formats = {"bf16": "bf16", "fp32": "fp32"}
    text_encoder_formats = {"bf16": "bf16", "fp32": "fp32"}

    def describe(self, role: str, variant: str) -> str:
        return f"{role}: unquantized"
