"""torchao weight quantization through diffusers' / transformers' TorchAoConfig (config objects, not strings)."""

from __future__ import annotations

from typing import Any

from fluxplan.errors import MissingPackage, NoGPU
from fluxplan.run.backends.base import Backend, BackendFamily, has_module


def ao_config(variant: str) -> Any:
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int4WeightOnlyConfig,
        Int8WeightOnlyConfig,
        PerRow,
    )

    return {
        "int8wo": Int8WeightOnlyConfig,
        "fp8wo": Float8WeightOnlyConfig,
        "fp8dq": lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
        "int4wo": Int4WeightOnlyConfig,
    }[variant]()


class TorchAo(Backend):
    family = BackendFamily.TORCHAO
    package = "torchao"
    import_name = "torchao"
    transformer_formats = {"torchao-int8wo": "int8wo", "torchao-fp8wo": "fp8wo", "torchao-fp8dq": "fp8dq",
                           "torchao-int4wo": "int4wo"}
    text_encoder_formats = {"torchao-int8wo": "int8wo"}

    def check(self, key: str, role: str, device: str) -> None:
        super().check(key, role, device)
        # torchao's int4 weight-only kernels come from the separate `mslk` package in this torchao generation.
        if key.endswith("int4wo") and not has_module("mslk"):
            raise MissingPackage("mslk", f"{role} format {key}")
        if key.endswith("fp8dq"):  # torchao asserts this deep inside quantize_; say it up front
            import torch

            cc = torch.cuda.get_device_capability(device) if device.startswith("cuda") and torch.cuda.is_available() else None
            if cc is None or cc < (8, 9):
                where = f"compute capability {cc[0]}.{cc[1]}" if cc else f"device {device!r}"
                raise NoGPU(f"{role} format {key} needs a CUDA GPU of compute capability 8.9 or newer; {where}")

    def transformer_config(self, variant: str, dtype: Any) -> Any:
        from diffusers import TorchAoConfig

        return TorchAoConfig(ao_config(variant))

    def text_encoder_config(self, variant: str, dtype: Any) -> Any:
        from transformers import TorchAoConfig

        return TorchAoConfig(quant_type=ao_config(variant))

    def describe(self, role: str, variant: str) -> str:
        return f"{role}: torchao {type(ao_config(variant)).__name__}"
