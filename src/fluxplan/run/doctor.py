"""What can run here: each quantization backend imported and exercised on a tiny real operation, plus the
versions and memory of this machine.

A backend is usable when its package imports *and* a 64x64 Linear quantized with it runs and gives finite
output close to the unquantized one: on the GPU when there is one, else on the CPU (bitsandbytes is unusable
without a GPU, since diffusers refuses to quantize with it there). `usable_backends()` returns the package
names the catalog uses (`torchao`, `bitsandbytes`, `optimum-quanto`, `gguf`, and `mslk` for torchao int4) so
that `fluxplan.plan(..., installed=usable_backends())` only offers what works. Results are cached per process.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable

GIB = 1024**3


@dataclass(frozen=True)
class BackendCheck:
    name: str  # what is checked, e.g. "torchao int8 weight-only"
    package: str | None  # the catalog's package name; None for fp8 layerwise casting (torch + diffusers only)
    ok: bool
    reason: str  # one line: what ran, or why it failed
    version: str | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class Environment:
    gpu: str | None
    driver: str | None
    cuda: str | None
    torch: str | None
    diffusers: str | None
    transformers: str | None
    vram_total_gib: float | None
    vram_free_gib: float | None
    ram_total_gib: float | None
    ram_available_gib: float | None
    gpu_error: str | None = None


class Unusable(RuntimeError):
    """A check that ran and found the backend unusable: its message is the reason, shown as is."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, Unusable):
        return text
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _linear(device: str, dtype):
    import torch

    gen = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(64, 64, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(64, 64, generator=gen) * 0.05)
        layer.bias.zero_()
    x = torch.randn(4, 64, generator=gen)
    return layer.to(device=device, dtype=dtype), x.to(device=device, dtype=dtype)


def _compare(out, ref, tol: float) -> None:
    import torch

    out, ref = out.float(), ref.float()
    if not torch.isfinite(out).all():
        raise Unusable("non-finite output")
    err = ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
    if err > tol:
        raise Unusable(f"output differs from the unquantized layer by {err:.3f} (limit {tol})")


def _dtype(device: str):
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _torchao_quantizes(device: str, dtype, config, tolerance: float) -> None:
    """torchao's quantize_ with `config` on a small linear layer, whose output must stay near the original's."""
    import torch
    from torchao.quantization import quantize_

    layer, x = _linear(device, dtype)
    with torch.no_grad():
        ref = layer(x)
        model = torch.nn.Sequential(layer)
        quantize_(model, config)
        _compare(model(x), ref, tolerance)


def _torchao(device: str) -> None:
    from torchao.quantization import Int8WeightOnlyConfig

    _torchao_quantizes(device, _dtype(device), Int8WeightOnlyConfig(), 0.05)


def _mslk(device: str) -> None:
    """torchao int4 weight-only: its kernels come from the separate mslk package."""
    import torch
    from torchao.quantization import Int4WeightOnlyConfig

    if not device.startswith("cuda"):
        raise Unusable("torchao int4 weight-only runs on a CUDA GPU only")
    _torchao_quantizes(device, torch.bfloat16, Int4WeightOnlyConfig(), 0.2)


def _bitsandbytes(device: str) -> None:
    import bitsandbytes as bnb
    import torch

    if not device.startswith("cuda"):
        raise Unusable("no CUDA GPU: diffusers quantizes with bitsandbytes on a GPU only")
    layer, x = _linear("cpu", torch.float32)
    q = bnb.nn.Linear4bit(64, 64, bias=True, compute_dtype=torch.bfloat16, quant_type="nf4")
    q.load_state_dict(layer.state_dict())
    q = q.to(device)  # quantizes here
    with torch.no_grad():
        _compare(q(x.to(device, torch.bfloat16)), layer.to(device, torch.bfloat16)(x.to(device, torch.bfloat16)), 0.3)


def _quanto(device: str) -> None:
    import torch
    from optimum.quanto import freeze, qint8, quantize

    layer, x = _linear(device, _dtype(device))
    with torch.no_grad():
        ref = layer(x)
        model = torch.nn.Sequential(layer)
        quantize(model, weights=qint8)
        freeze(model)
        _compare(model(x), ref, 0.05)


def _gguf(device: str) -> None:
    """Quantize with gguf-py, dequantize with diffusers' torch kernels (what GGUF layers run), then a matmul."""
    import gguf
    import numpy as np
    import torch
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    layer, x = _linear("cpu", torch.float32)
    w = layer.weight.detach().numpy()
    qtype = gguf.GGMLQuantizationType.Q8_0
    blocks = torch.from_numpy(np.ascontiguousarray(gguf.quants.quantize(w, qtype))).to(device)
    weight = dequantize_gguf_tensor(GGUFParameter(blocks, quant_type=qtype)).to(_dtype(device))
    with torch.no_grad():
        out = torch.nn.functional.linear(x.to(device, _dtype(device)), weight)
        _compare(out, layer.to(device, _dtype(device))(x.to(device, _dtype(device))), 0.05)


def _layerwise(device: str) -> None:
    import torch
    from diffusers.hooks import apply_layerwise_casting

    layer, x = _linear(device, _dtype(device))
    with torch.no_grad():
        ref = layer(x)
        apply_layerwise_casting(layer, storage_dtype=torch.float8_e4m3fn, compute_dtype=_dtype(device))
        if layer.weight.dtype != torch.float8_e4m3fn:
            raise Unusable(f"weights stored as {layer.weight.dtype}, not float8_e4m3fn")
        _compare(layer(x), ref, 0.15)


# (name, catalog package, modules to import, the operation)
CHECKS: tuple[tuple[str, str | None, tuple[str, ...], Callable[[str], None]], ...] = (
    ("torchao int8 weight-only", "torchao", ("torchao",), _torchao),
    ("torchao int4 weight-only (mslk)", "mslk", ("torchao", "mslk"), _mslk),
    ("bitsandbytes nf4", "bitsandbytes", ("bitsandbytes",), _bitsandbytes),
    ("optimum-quanto int8", "optimum-quanto", ("optimum.quanto",), _quanto),
    ("gguf Q8_0", "gguf", ("gguf",), _gguf),
    ("fp8 layerwise casting", None, ("diffusers",), _layerwise),
)


def _version(module_name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"optimum.quanto": "optimum-quanto"}.get(module_name, module_name)
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run_check(name: str, package: str | None, modules: tuple[str, ...], op: Callable[[str], None],
              device: str) -> BackendCheck:
    for mod in modules:
        try:
            importlib.import_module(mod)
        except Exception as e:  # ImportError, or whatever a broken package raises at import
            return BackendCheck(name, package, False, f"import {mod} failed: {_one_line(e)}", None, device)
    version = _version(modules[-1])
    try:
        op(device)
    except Exception as e:
        return BackendCheck(name, package, False, _one_line(e), version, device)
    return BackendCheck(name, package, True, f"ran a quantized 64x64 Linear on {device}", version, device)


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


@lru_cache(maxsize=None)
def check_backends(device: str | None = None, fresh: bool = False) -> tuple[BackendCheck, ...]:
    """Every backend check, on `device` (default: the GPU if there is one). Cached per process, and on disk
    ($FLUXPLAN_CACHE/backends.json) for as long as the device and every package version stay the same: the
    checks import each backend and take seconds, which `fluxplan auto` should not pay on every run.
    `fresh=True` (`fluxplan doctor`) runs them again."""
    device = device or default_device()
    key = _cache_key(device)
    cached = None if fresh else _read_cache().get(key)
    if cached is not None:
        return tuple(BackendCheck(**c) for c in cached)
    checks = tuple(run_check(name, pkg, mods, op, device) for name, pkg, mods, op in CHECKS)
    _write_cache(key, [asdict(c) for c in checks])
    return checks


def _cache_key(device: str) -> str:
    """The device (its name on CUDA) and the versions of everything the checks import, read without importing."""
    name = device
    if device.startswith("cuda"):
        import torch

        name = f"{device}:{torch.cuda.get_device_name(torch.device(device))}"
    mods = sorted({m for _, _, ms, _ in CHECKS for m in ms} | {"torch", "diffusers"})
    return name + "|" + ",".join(f"{m}={_version(m)}" for m in mods)


def _cache_path():
    from fluxplan.run.store import cache_dir

    return cache_dir() / "backends.json"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, checks: list[dict]) -> None:
    """Atomic (temporary file, then rename); a cache that cannot be written is not an error."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**_read_cache(), key: checks}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


def usable_backends(device: str | None = None) -> set[str]:
    """Catalog package names whose check passed here."""
    return {c.package for c in check_backends(device) if c.ok and c.package is not None}


def unusable_reasons(device: str | None = None) -> dict[str, str]:
    """Catalog package name -> why it cannot be used here."""
    return {c.package: c.reason for c in check_backends(device) if not c.ok and c.package is not None}


def _meminfo() -> dict[str, float]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(rest.split()[0]) * 1024 / GIB
    except OSError:
        pass
    return out


def environment() -> Environment:
    from fluxplan.errors import NoGPU
    from fluxplan.probe import probe_gpu

    versions = {m: _version(m) for m in ("torch", "diffusers", "transformers")}
    cuda = None
    try:
        import torch

        cuda = torch.version.cuda
    except ImportError:
        pass
    gpu = driver = total = free = err = None
    try:
        p = probe_gpu()
        gpu, driver, total, free = p.name, p.driver, p.total_gib, p.free_gib
    except NoGPU as e:
        err = str(e)
    mem = _meminfo()
    return Environment(gpu=gpu, driver=driver, cuda=cuda, vram_total_gib=total, vram_free_gib=free,
                       ram_total_gib=mem.get("MemTotal"), ram_available_gib=mem.get("MemAvailable"), gpu_error=err,
                       **versions)


def report(device: str | None = None) -> dict[str, Any]:
    """Everything `fluxplan doctor --json` prints."""
    checks = check_backends(device, fresh=True)
    return {"environment": asdict(environment()), "device": device or default_device(),
            "backends": [asdict(c) for c in checks], "usable": sorted(usable_backends(device)),
            "cpu_count": os.cpu_count()}
