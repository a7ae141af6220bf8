"""fp8 layerwise casting: weights stored as float8_e4m3fn, upcast layer by layer to the compute dtype (diffusers hooks)."""

from __future__ import annotations

from typing import Any

from fluxplan.run.backends.base import TRANSFORMER, Backend, BackendFamily

# T5 is a transformers model: it has no `_skip_layerwise_casting_patterns`, so name what stays in high precision.
# `wo` too: T5DenseGatedActDense casts its input to wo.weight.dtype (fp8 here) before calling it, which breaks
# the upcast; transformers keeps wo in fp32 for fp16 (`_keep_in_fp32_modules`) for the same reason. And the token
# embedding: FluxPipeline casts the prompt embeddings to `text_encoder_2.dtype`, the dtype of its first parameter.
T5_SKIP_PATTERNS = ("norm", "relative_attention_bias", r"DenseReluDense\.wo$", "shared", "embed_tokens")


class LayerwiseCasting(Backend):
    family = BackendFamily.LAYERWISE
    transformer_formats = {"fp8-layerwise": "fp8"}
    text_encoder_formats = {"fp8-layerwise": "fp8"}

    def after_load(self, pipe: Any, role: str, variant: str, dtype: Any) -> list[str]:
        import torch

        if role == TRANSFORMER:
            pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        else:
            from diffusers.hooks import apply_layerwise_casting

            apply_layerwise_casting(pipe.text_encoder_2, storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype,
                                    skip_modules_pattern=T5_SKIP_PATTERNS)
        return [f"{role}: float8_e4m3fn storage, {str(dtype).removeprefix('torch.')} compute (layerwise casting)"]
