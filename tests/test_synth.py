"""Synthetic checkpoints: layout, determinism, caching, atomicity, tokenizers, full-size shapes, GGUF files."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
gguf = pytest.importorskip("gguf")

from fluxplan.run import gguf_files, synth  # noqa: E402

PROMPT = "a photo of an astronaut riding a horse on the moon"
KQUANTS = ("Q6_K", "Q5_K", "Q4_K", "Q3_K", "Q2_K")
TINY_GGUF = ("Q8_0", "Q4_0", "Q4_K", "Q6_K")


def families() -> dict:
    """families.json read directly (not through the code under test)."""
    return json.loads(resources.files("fluxplan.catalog").joinpath("data/families.json").read_text())["families"]


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "fluxplan-cache"  # shared with test_builder: built once a session


@pytest.fixture(scope="session")
def tiny(cache_root) -> Path:
    return synth.ensure_synthetic("tiny", root=cache_root, gguf_levels=TINY_GGUF)


def transformer_bytes(model_dir: Path) -> bytes:
    return (model_dir / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()


# --------------------------------------------------------------------------- layout and loading


def test_tiny_layout_is_a_diffusers_flux_dir_of_safetensors(tiny, cache_root):
    assert tiny == cache_root / "synthetic" / "tiny-s0"
    index = json.loads((tiny / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["text_encoder_2"] == ["transformers", "T5EncoderModel"]
    for sub in ("scheduler", "transformer", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae"):
        assert (tiny / sub).is_dir(), sub
    for sub in ("transformer", "text_encoder", "text_encoder_2", "vae"):
        assert list((tiny / sub).glob("*.safetensors")), sub
    assert not list(tiny.rglob("*.bin")) and not list(tiny.rglob("*.pt"))
    # stored as bf16
    from safetensors import safe_open

    with safe_open(str(tiny / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        w = f.get_tensor("transformer_blocks.0.attn.to_q.weight")
    assert w.dtype == torch.bfloat16
    assert 0.015 < w.float().std().item() < 0.025  # re-drawn from N(0, 0.02)


def test_tiny_loads_through_flux_pipeline_with_the_family_configs(tiny):
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    pipe = FluxPipeline.from_pretrained(tiny, dtype=torch.float32)
    fam = families()["tiny"]
    assert isinstance(pipe.transformer, FluxTransformer2DModel)
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    assert isinstance(pipe.text_encoder_2, T5EncoderModel)
    assert isinstance(pipe.vae, AutoencoderKL)
    for key in ("num_attention_heads", "attention_head_dim", "num_layers", "num_single_layers", "joint_attention_dim"):
        assert pipe.transformer.config[key] == fam["transformer"][key]
    assert pipe.text_encoder_2.config.d_model == fam["text_encoder_2"]["d_model"]
    assert pipe.text_encoder.config.hidden_size == fam["text_encoder"]["hidden_size"]
    assert list(pipe.vae.config.block_out_channels) == fam["vae"]["block_out_channels"]
    with torch.no_grad():
        embeds, pooled, _ = pipe.encode_prompt(PROMPT, prompt_2=None, max_sequence_length=32)
    assert torch.isfinite(embeds).all() and torch.isfinite(pooled).all()
    assert embeds.shape == (1, 32, fam["transformer"]["joint_attention_dim"])


def test_tokenizers_round_trip_through_the_real_classes(tiny):
    from transformers import CLIPTokenizer, CLIPTokenizerFast, T5TokenizerFast

    fam = families()["tiny"]
    t5 = T5TokenizerFast.from_pretrained(tiny / "tokenizer_2")
    assert len(t5) == fam["text_encoder_2"]["vocab_size"]
    assert t5.model_max_length == 512
    ids = t5(PROMPT).input_ids
    assert t5.unk_token_id not in ids and ids[-1] == t5.eos_token_id
    assert max(ids) < fam["text_encoder_2"]["vocab_size"]
    assert t5.decode(ids, skip_special_tokens=True) == PROMPT
    for cls in (CLIPTokenizer, CLIPTokenizerFast):
        clip = cls.from_pretrained(tiny / "tokenizer")
        assert len(clip) == fam["text_encoder"]["vocab_size"]
        assert clip.model_max_length == 77
        ids = clip(PROMPT).input_ids
        assert ids[0] == clip.bos_token_id and ids[-1] == clip.eos_token_id
        assert clip.eos_token_id == fam["text_encoder"]["vocab_size"] - 1  # CLIP pools at the highest id
        assert clip.decode(ids, skip_special_tokens=True) == PROMPT


# --------------------------------------------------------------------------- determinism, cache, atomicity


def test_same_seed_same_bytes_other_seed_other_bytes(tiny, tmp_path):
    again = synth.ensure_synthetic("tiny", root=tmp_path / "a", seed=0)
    other = synth.ensure_synthetic("tiny", root=tmp_path / "b", seed=1)
    assert transformer_bytes(again) == transformer_bytes(tiny)
    assert transformer_bytes(other) != transformer_bytes(tiny)
    assert other.name == "tiny-s1"


def test_second_call_returns_the_cache_without_rebuilding(tiny, cache_root, monkeypatch):
    stamp = (tiny / "model_index.json").stat().st_mtime_ns

    def no_rebuild(*a, **k):
        raise AssertionError("rebuilt a cached pipeline")

    monkeypatch.setattr(synth, "build_pipeline_dir", no_rebuild)
    monkeypatch.setattr(gguf_files, "write_quantized_transformer", no_rebuild)
    assert synth.ensure_synthetic("tiny", root=cache_root, gguf_levels=["q8_0"]) == tiny
    assert (tiny / "model_index.json").stat().st_mtime_ns == stamp


def test_cache_root_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    assert synth.synthetic_dir("dev", 3) == tmp_path / "synthetic" / "dev-s3"


def test_failed_build_leaves_no_directory(tmp_path, monkeypatch):
    import fluxplan.run.tokenizers as tokenizers

    def boom(*a, **k):  # fails after the four model components were written
        raise RuntimeError("boom")

    monkeypatch.setattr(tokenizers, "build_clip_tokenizer", boom)
    with pytest.raises(RuntimeError, match="boom"):
        synth.ensure_synthetic("tiny", root=tmp_path)
    assert list((tmp_path / "synthetic").iterdir()) == []
    monkeypatch.undo()
    assert (synth.ensure_synthetic("tiny", root=tmp_path) / "model_index.json").is_file()


def test_unknown_kind_and_level_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic kind"):
        synth.ensure_synthetic("huge", root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown GGUF level"):
        synth.ensure_synthetic("tiny", root=tmp_path, gguf_levels=["Q7_0"])
    assert not (tmp_path / "synthetic").exists()


# --------------------------------------------------------------------------- full-size shapes


@pytest.mark.parametrize("kind", ["dev", "schnell"])
def test_full_size_parameter_counts_on_meta(kind):
    counts = synth.parameter_counts(kind)
    assert counts["transformer"] == pytest.approx(11.9e9, rel=0.01)
    assert counts["text_encoder_2"] == pytest.approx(4.76e9, rel=0.01)
    assert counts["text_encoder"] == pytest.approx(123e6, rel=0.01)  # CLIP-L text model
    assert counts["vae"] == pytest.approx(83.8e6, rel=0.01)


def test_bfl_layout_is_what_diffusers_converts_to_the_dev_transformer():
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    cfg = families()["dev"]["transformer"]
    shapes = gguf_files.bfl_transformer_shapes(cfg)
    assert shapes["double_blocks.0.img_attn.qkv.weight"] == (3 * 3072, 3072)
    assert shapes["single_blocks.37.linear1.weight"] == (3 * 3072 + 4 * 3072, 3072)
    converted = convert_flux_transformer_checkpoint_to_diffusers(
        {k: torch.empty(s, device="meta") for k, s in shapes.items()})
    with torch.device("meta"):
        model = FluxTransformer2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected


# --------------------------------------------------------------------------- GGUF blocks and files


@pytest.mark.parametrize("level", gguf_files.LEVELS)
def test_random_blocks_are_format_valid_and_weight_like(level):
    from gguf.quants import dequantize

    qt = gguf.GGMLQuantizationType[level]
    gen = torch.Generator().manual_seed(0)
    raw = gguf_files.random_blocks((8, 1024), level, gen)
    block, type_size = gguf.GGML_QUANT_SIZES[qt]
    assert raw.shape == (8, 1024 // block * type_size) and raw.dtype == np.uint8
    w = dequantize(raw, qt)
    assert w.shape == (8, 1024) and np.isfinite(w).all()
    assert 0.01 < w.std() < 0.04 and abs(w.mean()) < 0.01
    # The declared fp16 fields are the block's scale (and min): zeroing them zeroes every weight.
    blocks = raw.reshape(-1, type_size).copy()
    for off in gguf_files.SCALE_FIELDS[level]:
        if off is not None:
            blocks[:, off:off + 2] = 0
    assert not dequantize(blocks, qt).any()


def _reader_tensors(path: Path) -> dict:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def test_tiny_gguf_real_levels_hold_the_synthetic_weights(tiny):
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    state = load_file(tiny / "transformer" / "diffusion_pytorch_model.safetensors")
    for level, real in (("Q8_0", True), ("Q4_0", True), ("Q4_K", False), ("Q6_K", False)):
        tensors = _reader_tensors(tiny / "gguf" / f"transformer-{level}.gguf")
        assert set(tensors) == set(state)  # diffusers names (see gguf_files: the converter is FLUX.1-width only)
        qt = gguf.GGMLQuantizationType[level]
        block = gguf.GGML_QUANT_SIZES[qt][0]
        for name, w in state.items():
            t = tensors[name]
            if w.ndim == 1:
                assert t.tensor_type == gguf.GGMLQuantizationType.F32, name
            elif w.shape[-1] % block == 0:
                assert t.tensor_type == qt, name
            else:
                assert t.tensor_type == gguf.GGMLQuantizationType.F16, name
        name = "transformer_blocks.0.attn.to_q.weight"
        deq = dequantize(tensors[name].data, qt).reshape(state[name].shape)
        corr = np.corrcoef(deq.ravel(), state[name].float().numpy().ravel())[0, 1]
        assert (corr > 0.95) if real else (abs(corr) < 0.2), (level, corr)


@pytest.mark.parametrize("level", ["Q8_0", "Q4_K"])
def test_random_transformer_file_has_the_bfl_names_shapes_and_types(tmp_path, level):
    from gguf.quants import dequantize

    cfg = families()["tiny"]["transformer"]
    path = gguf_files.write_random_transformer(tmp_path / "t.gguf", cfg, level, seed=0)
    shapes = gguf_files.bfl_transformer_shapes(cfg)
    tensors = _reader_tensors(path)
    assert set(tensors) == set(shapes)
    assert not list(tmp_path.glob(".*tmp"))
    qt = gguf.GGMLQuantizationType[level]
    for name, shape in shapes.items():
        t = tensors[name]
        assert tuple(int(x) for x in reversed(t.shape)) == shape, name  # GGUF stores dims innermost first
        if len(shape) == 1:
            assert t.tensor_type == gguf.GGMLQuantizationType.F32
            assert (t.data == (1.0 if name.endswith(".scale") else 0.0)).all()
        elif shape[-1] % gguf.GGML_QUANT_SIZES[qt][0] == 0:
            assert t.tensor_type == qt, name
            assert np.isfinite(dequantize(t.data, qt)).all()


def test_gguf_write_failure_leaves_no_file(tmp_path):
    def broken():
        raise RuntimeError("disk full")

    entries = [gguf_files.Entry("a.weight", (4, 32), gguf.GGMLQuantizationType.F32, broken)]
    with pytest.raises(RuntimeError, match="disk full"):
        gguf_files.write_gguf(tmp_path / "x.gguf", entries, {})
    assert list(tmp_path.iterdir()) == []
