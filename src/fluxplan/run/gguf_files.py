"""GGUF transformer files for synthetic FLUX checkpoints, written with `gguf.GGUFWriter`.

Which levels hold real quantizations and which hold random, format-valid blocks:
- tiny, Q8_0 Q5_1 Q5_0 Q4_1 Q4_0: the synthetic transformer's own weights, quantized with `gguf.quants.quantize`
  (the only levels gguf-py 0.19 can quantize), so a GGUF pipeline approximates the bf16 one.
- tiny, Q6_K Q5_K Q4_K Q3_K Q2_K: random blocks (gguf-py has no K-quant quantizer).
- dev / schnell (full size), every level: random blocks (quantizing 12 B weights in numpy takes far too long).
A random block is uniform random bytes whose fp16 scale (and min) fields are then overwritten with finite values
chosen so that the dequantized weights have mean ~0 and std ~0.02: every block dequantizes to finite numbers.

Layout. Full-size files use city96's layout: the original BFL tensor names (`double_blocks.0.img_attn.qkv.weight`,
fused qkv, `single_blocks.N.linear1` = q|k|v|mlp), which diffusers' `convert_flux_transformer_checkpoint_to_diffusers`
converts. That converter hard-codes FLUX.1's width (inner_dim 3072), so the tiny files use diffusers' own tensor
names instead (`from_single_file` skips conversion when the names already match the model).
1-D tensors (biases, norm scales) are F32; a matrix whose row length is not a multiple of the level's block size
is F16 (as quantizers do); every other matrix is stored at the level.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

LEVELS = ("Q8_0", "Q6_K", "Q5_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0", "Q3_K", "Q2_K")
REAL_QUANT_LEVELS = frozenset({"Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0"})
# Byte offsets of the fp16 fields in one block: (scale d, min m or None); see ggml-common.h block_* structs.
SCALE_FIELDS: dict[str, tuple[int, int | None]] = {
    "Q8_0": (0, None), "Q5_1": (0, 2), "Q5_0": (0, None), "Q4_1": (0, 2), "Q4_0": (0, None),
    "Q6_K": (208, None), "Q5_K": (0, 2), "Q4_K": (0, 2), "Q3_K": (108, None), "Q2_K": (80, 82),
}
WEIGHT_STD = 0.02


def normalize_level(level: str) -> str:
    up = level.upper()
    if up not in LEVELS:
        raise ValueError(f"unknown GGUF level {level!r}; known: {', '.join(LEVELS)}")
    return up


def gguf_path(model_dir: Path, level: str) -> Path:
    return Path(model_dir) / "gguf" / f"transformer-{normalize_level(level)}.gguf"


def storage_type(shape: tuple[int, ...], level: str):
    """The GGML type a tensor of this shape is stored as at this level."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

    if len(shape) < 2:
        return T.F32
    qt = T[normalize_level(level)]
    return T.F16 if shape[-1] % GGML_QUANT_SIZES[qt][0] else qt


def bfl_transformer_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a FLUX.1 transformer in the original BFL layout (as in city96's GGUF files)."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    hd, mlp = cfg["attention_head_dim"], 4 * d
    out = cfg.get("out_channels") or cfg["in_channels"]
    s: dict[str, tuple[int, ...]] = {}

    def lin(name: str, o: int, i: int) -> None:
        s[f"{name}.weight"], s[f"{name}.bias"] = (o, i), (o,)

    lin("img_in", d, cfg["in_channels"] * cfg.get("patch_size", 1) ** 2)
    lin("txt_in", d, cfg["joint_attention_dim"])
    embedders = [("time_in", 256), ("vector_in", cfg["pooled_projection_dim"])]
    if cfg.get("guidance_embeds"):
        embedders.append(("guidance_in", 256))
    for name, width in embedders:
        lin(f"{name}.in_layer", d, width)
        lin(f"{name}.out_layer", d, d)
    for i in range(cfg["num_layers"]):
        b = f"double_blocks.{i}"
        for side in ("img", "txt"):
            lin(f"{b}.{side}_mod.lin", 6 * d, d)
            lin(f"{b}.{side}_attn.qkv", 3 * d, d)
            lin(f"{b}.{side}_attn.proj", d, d)
            s[f"{b}.{side}_attn.norm.query_norm.scale"] = (hd,)
            s[f"{b}.{side}_attn.norm.key_norm.scale"] = (hd,)
            lin(f"{b}.{side}_mlp.0", mlp, d)
            lin(f"{b}.{side}_mlp.2", d, mlp)
    for i in range(cfg["num_single_layers"]):
        b = f"single_blocks.{i}"
        lin(f"{b}.modulation.lin", 3 * d, d)
        lin(f"{b}.linear1", 3 * d + mlp, d)
        lin(f"{b}.linear2", d, d + mlp)
        s[f"{b}.norm.query_norm.scale"] = (hd,)
        s[f"{b}.norm.key_norm.scale"] = (hd,)
    lin("final_layer.linear", cfg.get("patch_size", 1) ** 2 * out, d)
    lin("final_layer.adaLN_modulation.1", 2 * d, d)
    return s


@lru_cache(maxsize=None)
def block_fields(level: str) -> tuple[np.float16, np.float16 | None]:
    """fp16 (scale, min) that give random blocks of this level mean ~0 and std ~WEIGHT_STD when dequantized.

    Dequantization is linear in (d, m) for fixed block bytes, so dequantize a fixed sample once with (1, 0) and
    once with (0, 1) using gguf-py's own dequantizer and solve for the pair."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
    from gguf.quants import dequantize

    qt = T[level]
    _, type_size = GGML_QUANT_SIZES[qt]
    d_off, m_off = SCALE_FIELDS[level]
    sample = np.random.default_rng(1234).integers(0, 256, size=(512, type_size), dtype=np.uint8)

    def deq(d: float, m: float) -> np.ndarray:
        blocks = sample.copy()
        _set_fields(blocks, d_off, m_off, np.float16(d), np.float16(m))
        return dequantize(blocks, qt).astype(np.float64).ravel()

    x = deq(1.0, 0.0)
    if m_off is None:
        return np.float16(WEIGHT_STD / x.std()), None
    y = deq(0.0, 1.0)
    r = -x.mean() / y.mean()
    d = WEIGHT_STD / (x + r * y).std()
    return np.float16(d), np.float16(r * d)


def _set_fields(blocks, d_off: int, m_off: int | None, d, m) -> None:
    """Write fp16 values into the (d, m) byte fields of every block (numpy uint8 array or torch uint8 tensor)."""
    for off, val in ((d_off, d), (m_off, m)):
        if off is None:
            continue
        raw = np.frombuffer(np.float16(val).tobytes(), dtype=np.uint8)
        if isinstance(blocks, np.ndarray):
            blocks[:, off:off + 2] = raw
        else:
            import torch

            blocks[:, off:off + 2] = torch.from_numpy(raw.copy()).to(blocks.device)


def random_blocks(shape: tuple[int, ...], level: str, generator) -> np.ndarray:
    """Format-valid random bytes for a matrix of `shape` at `level`, as GGUFWriter wants them: (rows, bytes/row)."""
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

    block, type_size = GGML_QUANT_SIZES[T[level]]
    rows, cols = shape
    n_blocks = rows * cols // block
    blocks = torch.randint(0, 256, (n_blocks, type_size), dtype=torch.uint8, generator=generator,
                           device=generator.device)
    d, m = block_fields(level)
    _set_fields(blocks, *SCALE_FIELDS[level], d, m)
    return blocks.cpu().numpy().reshape(rows, cols // block * type_size)


class Entry(NamedTuple):
    name: str
    shape: tuple[int, ...]  # logical shape (torch order)
    qtype: object  # gguf.GGMLQuantizationType
    data: Callable[[], np.ndarray]  # produces the bytes / values, called once, in order


def write_gguf(path: Path, entries: Iterable[Entry], meta: dict[str, str]) -> Path:
    """Stream tensors into a GGUF file (one tensor in host memory at a time); atomic: temp file, then os.replace."""
    from gguf import GGML_QUANT_VERSION, GGUFWriter, GGMLQuantizationType as T

    entries = list(entries)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(None, arch="flux")
    writer.add_quantization_version(GGML_QUANT_VERSION)
    for key, value in meta.items():
        writer.add_string(key, value)
    for e in entries:
        if e.qtype in (T.F32, T.F16):
            dt = np.float32 if e.qtype == T.F32 else np.float16
            writer.add_tensor_info(e.name, e.shape, np.dtype(dt), int(np.prod(e.shape)) * np.dtype(dt).itemsize)
        else:
            from gguf import GGML_QUANT_SIZES

            block, type_size = GGML_QUANT_SIZES[e.qtype]
            byte_shape = (*e.shape[:-1], e.shape[-1] // block * type_size)
            writer.add_tensor_info(e.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=e.qtype)
    try:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for e in entries:
            writer.write_tensor_data(np.ascontiguousarray(e.data()))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_random_transformer(path: Path, cfg: dict, level: str, *, seed: int, device: str = "cpu") -> Path:
    """A full-size (or any-size) transformer GGUF in the BFL layout with random format-valid blocks."""
    import torch
    from gguf import GGMLQuantizationType as T

    level = normalize_level(level)
    gen = torch.Generator(device=device).manual_seed(seed * 1000 + LEVELS.index(level))

    def values(name: str, shape: tuple[int, ...], qt) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            if qt == T.F32:  # biases zero, norm scales one
                return np.full(shape, 1.0 if name.endswith(".scale") else 0.0, dtype=np.float32)
            if qt == T.F16:
                w = torch.empty(shape, dtype=torch.float16, device=device).normal_(0, WEIGHT_STD, generator=gen)
                return w.cpu().numpy()
            return random_blocks(shape, level, gen)
        return make

    entries = [Entry(n, s, storage_type(s, level), values(n, s, storage_type(s, level)))
               for n, s in bfl_transformer_shapes(cfg).items()]
    return write_gguf(path, entries, {"fluxplan.synthetic": f"random format-valid {level} blocks, BFL names"})


def write_quantized_transformer(path: Path, state_dict: dict, level: str, *, seed: int) -> Path:
    """A GGUF of a (tiny) transformer state dict under diffusers' names: real quantization where gguf-py can do
    it, random format-valid blocks for the K-quants."""
    import torch
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quantize

    level = normalize_level(level)
    gen = torch.Generator().manual_seed(seed * 1000 + LEVELS.index(level))

    def values(w, qt) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            a = w.detach().float().cpu().numpy()
            if qt == T.F32:
                return a
            if qt == T.F16:
                return a.astype(np.float16)
            if level in REAL_QUANT_LEVELS:
                return quantize(a, qt)
            return random_blocks(tuple(a.shape), level, gen)
        return make

    entries = [Entry(n, tuple(w.shape), storage_type(tuple(w.shape), level), values(w, storage_type(tuple(w.shape), level)))
               for n, w in sorted(state_dict.items())]
    how = "quantized synthetic weights" if level in REAL_QUANT_LEVELS else "random format-valid blocks"
    return write_gguf(path, entries, {"fluxplan.synthetic": f"{level}: {how}, diffusers names"})
