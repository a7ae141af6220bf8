"""Synthetic FLUX.1 checkpoints: diffusers-format pipeline directories with random weights, built offline.

`ensure_synthetic("tiny" | "dev" | "schnell")` returns a directory that `FluxPipeline.from_pretrained` loads:
model_index.json, scheduler/, transformer/, text_encoder/ (CLIPTextModel), text_encoder_2/ (T5EncoderModel),
tokenizer/, tokenizer_2/, vae/ (safetensors, bf16), plus optional gguf/transformer-<LEVEL>.gguf files (see
run.gguf_files for which levels hold real quantizations and which hold random format-valid blocks).

Shapes come from catalog/data/families.json: dev / schnell have the real shapes (11.9 B transformer, 4.76 B T5-XXL,
CLIP-L, the FLUX VAE). Weights are deterministic for a given (seed, device type): torch's RNG is seeded inside
`torch.random.fork_rng`, modules are created under `torch.device(device)` in bf16, and every nn.Linear weight is
re-drawn from N(0, 0.02) (biases zero) so activations stay finite through all 57 blocks. Components are built,
saved and freed one at a time, so host memory holds at most one component plus one save shard.

The cache lives under `$FLUXPLAN_CACHE` (default ~/.cache/fluxplan) in synthetic/<kind>-s<seed>/. It is built in
a hidden temp directory beside it and moved into place with os.replace: a directory at the final path is complete.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import uuid
from importlib import resources
from pathlib import Path
from typing import Iterable, Literal

from fluxplan.run import gguf_files

Kind = Literal["tiny", "dev", "schnell"]
KINDS: tuple[str, ...] = ("tiny", "dev", "schnell")
COMPONENTS = ("transformer", "text_encoder_2", "text_encoder", "vae")
WEIGHT_STD = 0.02

# scheduler/scheduler_config.json of the published repos (not part of families.json).
_DEV_SCHEDULER = {"base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
                  "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True}
SCHEDULER_CONFIGS = {"dev": _DEV_SCHEDULER, "tiny": _DEV_SCHEDULER,
                     "schnell": {**_DEV_SCHEDULER, "shift": 1.0, "use_dynamic_shifting": False}}

MODEL_INDEX_CLASSES = {
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "image_encoder": [None, None],
    "feature_extractor": [None, None],
}


def family(kind: str) -> dict:
    """The family entry of catalog/data/families.json (configs of transformer, text encoders, VAE)."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of {', '.join(KINDS)}")
    text = resources.files("fluxplan.catalog").joinpath("data/families.json").read_text()
    return json.loads(text)["families"][kind]


def cache_root(root: Path | None = None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("FLUXPLAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fluxplan"


def synthetic_dir(kind: str, seed: int = 0, root: Path | None = None) -> Path:
    return cache_root(root) / "synthetic" / f"{kind}-s{seed}"


def ensure_synthetic(kind: Kind, *, root: Path | None = None, seed: int = 0, gguf_levels: Iterable[str] = (),
                     device: str | None = None) -> Path:
    """Return the synthetic pipeline directory for (kind, seed), building it (and the GGUF files asked for) first
    if missing. `device` is where modules are created ("cuda" makes full-size builds fast); default cpu."""
    family(kind)  # validates kind
    levels = [gguf_files.normalize_level(lv) for lv in gguf_levels]
    device = device or "cpu"
    final = synthetic_dir(kind, seed, root)
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            build_pipeline_dir(kind, tmp, seed=seed, device=device)
            try:
                os.replace(tmp, final)
            except OSError:
                if not final.is_dir():  # not a lost race with another builder
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    for level in levels:
        ensure_gguf(final, kind, level, seed=seed, device=device)
    return final


def ensure_gguf(model_dir: Path, kind: str, level: str, *, seed: int = 0, device: str = "cpu",
                transformer_config: dict | None = None) -> Path:
    """The GGUF transformer file of one level inside a synthetic directory, written (atomically) if missing.
    `transformer_config` replaces the family's transformer config (the block model's 1 + 1 blocks)."""
    path = gguf_files.gguf_path(model_dir, level)
    if path.is_file():
        return path
    if kind == "tiny":
        from safetensors.torch import load_file

        state = {}
        for f in sorted((Path(model_dir) / "transformer").glob("*.safetensors")):
            state.update(load_file(f))
        return gguf_files.write_quantized_transformer(path, state, level, seed=seed)
    cfg = transformer_config or family(kind)["transformer"]
    return gguf_files.write_random_transformer(path, cfg, level, seed=seed, device=device)


# --------------------------------------------------------------------------- the block model

BLOCK_SEED_OFFSET = 7  # the block model's RNG stream differs from the pipeline's transformer


def block_config(kind: str) -> dict:
    """The family's transformer config with one double-stream and one single-stream block."""
    return {**family(kind)["transformer"], "num_layers": 1, "num_single_layers": 1}


def block_model_dir(kind: str, seed: int = 0, root: Path | None = None) -> Path:
    return cache_root(root) / "synthetic" / f"block-{kind}-s{seed}"


def ensure_block_model(kind: Kind, *, root: Path | None = None, seed: int = 0, device: str | None = None) -> Path:
    """A directory holding transformer/ (diffusers config + safetensors, bf16): the family's transformer with the
    real width but one block of each kind (about 0.6 B parameters for dev), random weights, deterministic for
    (kind, seed, device type). Built, if missing, on `device` ("cuda" is fast) and moved into place atomically.
    The block profiler (fluxplan.profiling.blocks) loads it per format through the builder's backends."""
    import torch

    final = block_model_dir(kind, seed, root)
    if final.is_dir():
        return final
    dev = torch.device(device or "cpu")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), _default_dtype(torch.bfloat16), dev:
            torch.manual_seed(seed * 100 + BLOCK_SEED_OFFSET)
            module = make_module("transformer", block_config(kind))
            init_weights_(module)
        module.save_pretrained(tmp / "transformer")
        del module
        (tmp / "fluxplan_synthetic.json").write_text(
            json.dumps({"kind": kind, "seed": seed, "device": dev.type, "block_model": True}) + "\n")
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return final


def ensure_block_gguf(model_dir: Path, kind: str, level: str, *, seed: int = 0, device: str = "cpu") -> Path:
    """The block model's GGUF file of one level (as ensure_gguf does for pipelines: quantized tiny weights, or
    random format-valid blocks in the BFL layout for the full-width families)."""
    return ensure_gguf(model_dir, kind, level, seed=seed, device=device, transformer_config=block_config(kind))


# --------------------------------------------------------------------------- building


def _config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def make_module(component: str, cfg: dict):
    """An nn.Module of one component, created under the current default device and dtype."""
    if component == "transformer":
        from diffusers import FluxTransformer2DModel

        return FluxTransformer2DModel(**_config(cfg))
    if component == "vae":
        from diffusers import AutoencoderKL

        return AutoencoderKL(**_config(cfg))
    if component == "text_encoder_2":
        from transformers import T5Config, T5EncoderModel

        return T5EncoderModel(T5Config(**{k: v for k, v in cfg.items() if k != "model_type"}))
    if component == "text_encoder":
        from transformers import CLIPTextConfig, CLIPTextModel

        # The synthetic CLIP tokenizer puts <|startoftext|>, <|endoftext|> last, as the real one does (49406, 49407).
        ids = {"bos_token_id": cfg["vocab_size"] - 2, "eos_token_id": cfg["vocab_size"] - 1,
               "pad_token_id": cfg["vocab_size"] - 1}
        return CLIPTextModel(CLIPTextConfig(**{**ids, **{k: v for k, v in cfg.items() if k != "model_type"}}))
    raise ValueError(f"unknown component {component!r}")


@contextlib.contextmanager
def _default_dtype(dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def init_weights_(module, std: float = WEIGHT_STD) -> None:
    """N(0, std) on every nn.Linear weight, zero biases: keeps random activations finite through deep stacks."""
    import torch

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()


def build_pipeline_dir(kind: str, out: Path, *, seed: int = 0, device: str = "cpu") -> Path:
    """Write a complete synthetic pipeline into `out` (not atomic by itself; ensure_synthetic wraps it)."""
    import diffusers
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from fluxplan.run.tokenizers import build_clip_tokenizer, build_t5_tokenizer

    fam = family(kind)
    out = Path(out)
    out.mkdir(parents=True)
    dev = torch.device(device)
    rng_devices = [dev] if dev.type == "cuda" else []
    for i, component in enumerate(COMPONENTS):
        with torch.random.fork_rng(devices=rng_devices), _default_dtype(torch.bfloat16), dev:
            torch.manual_seed(seed * 100 + i)
            module = make_module(component, fam[component])
            init_weights_(module)
        module.save_pretrained(out / component)
        del module
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    build_t5_tokenizer(fam["text_encoder_2"]["vocab_size"]).save_pretrained(out / "tokenizer_2")
    build_clip_tokenizer(fam["text_encoder"]["vocab_size"]).save_pretrained(out / "tokenizer")
    FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIGS[kind]).save_pretrained(out / "scheduler")
    index = {"_class_name": "FluxPipeline", "_diffusers_version": diffusers.__version__, **MODEL_INDEX_CLASSES}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "fluxplan_synthetic.json").write_text(json.dumps({"kind": kind, "seed": seed, "device": dev.type}) + "\n")
    return out


def parameter_counts(kind: str) -> dict[str, int]:
    """Parameters of each component of a kind, counted on the meta device (allocates nothing)."""
    import torch

    fam = family(kind)
    counts = {}
    for component in COMPONENTS:
        with torch.device("meta"):
            module = make_module(component, fam[component])
        counts[component] = sum(p.numel() for p in module.parameters())
    return counts
