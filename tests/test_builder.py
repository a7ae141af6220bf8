"""The builder on the CPU with the tiny synthetic model: each format builds, runs, and really is that format."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fluxplan.errors import BadInput, MissingPackage, ModelLoadError, NoGPU, UnknownFormat  # noqa: E402
from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement  # noqa: E402
from fluxplan.run import backends  # noqa: E402
from fluxplan.run.builder import Built, build  # noqa: E402
from fluxplan.run.synth import ensure_synthetic  # noqa: E402

TINY_GGUF = ("Q8_0", "Q4_0", "Q4_K", "Q6_K")
PROMPT = "a photo of a cat"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    # Same root and levels as test_synth's fixture: whichever runs first builds, the other finds the cache.
    return ensure_synthetic("tiny", root=tmp_path_factory.getbasetemp() / "fluxplan-cache", gguf_levels=TINY_GGUF)


def candidate(transformer="bf16", t5="bf16", offload=Offload.NONE, compile=Compile.NONE, tiling=False,
              placement=TextEncoderPlacement.RESIDENT) -> Candidate:
    return Candidate(transformer=transformer, text_encoder_2=t5, text_encoder_placement=placement,
                     offload=offload, compile=compile, vae_tiling=tiling)


def generate(pipe) -> np.ndarray:
    out = pipe(PROMPT, height=256, width=256, num_inference_steps=2, max_sequence_length=32, output_type="np",
               generator=torch.Generator("cpu").manual_seed(0))
    return out.images[0]


@pytest.fixture(scope="session")
def reference_image(tiny) -> np.ndarray:
    return generate(build(candidate(), tiny, device="cpu").pipe)


def named_linears(module) -> list[tuple[str, object]]:
    """Every Linear-like layer of the repeated blocks (quantizers replace nn.Linear by their own classes)."""
    return [(n, m) for n, m in module.named_modules()
            if ("transformer_blocks." in n or "encoder.block." in n) and getattr(m, "in_features", None)]


def linears(module) -> list:
    return [m for _, m in named_linears(module)]


# --------------------------------------------------------------------------- what each backend must leave behind


def is_fp32(w):
    return type(w) is torch.nn.Parameter and w.dtype == torch.float32


def is_quanto_int8(w):
    from optimum.quanto import QBytesTensor, qint8

    return isinstance(w, QBytesTensor) and w.qtype == qint8


def is_torchao_int8(w):
    from torchao.quantization import Int8Tensor

    return isinstance(w, Int8Tensor) and w.qdata.dtype == torch.int8


def is_fp8_storage(w):
    return w.dtype == torch.float8_e4m3fn


def gguf_of(level):
    def check(w):
        from diffusers.quantizers.gguf.utils import GGUFParameter
        from gguf import GGMLQuantizationType

        return isinstance(w, GGUFParameter) and w.quant_type == GGMLQuantizationType[level]
    return check


CASES = [  # (transformer format, check on every block Linear, output close to the unquantized image)
    ("bf16", is_fp32, True),
    ("quanto-int8", is_quanto_int8, True),
    ("torchao-int8wo", is_torchao_int8, True),
    ("fp8-layerwise", is_fp8_storage, True),
    ("gguf-q8_0", gguf_of("Q8_0"), True),   # real quantization of the synthetic weights
    ("gguf-q4_0", gguf_of("Q4_0"), True),
    ("gguf-q4_k", gguf_of("Q4_K"), False),  # random format-valid blocks
    ("gguf-q6_k", gguf_of("Q6_K"), False),
]


@pytest.mark.parametrize(("fmt", "check", "close"), CASES, ids=[c[0] for c in CASES])
def test_transformer_format_builds_runs_and_is_that_format(tiny, reference_image, fmt, check, close):
    built = build(candidate(fmt), tiny, device="cpu")
    assert isinstance(built, Built) and built.load_s > 0 and built.setup_s >= 0
    layers = named_linears(built.pipe.transformer)
    assert len(layers) >= 10
    if fmt == "fp8-layerwise":  # diffusers keeps the modulation layers (`norm*.linear`) in the compute dtype
        assert all(is_fp32(m.weight) for n, m in layers if "norm" in n)
        layers = [(n, m) for n, m in layers if "norm" not in n]
        assert len(layers) >= 10
    bad = [f"{n}: {type(m.weight).__name__}/{m.weight.dtype}" for n, m in layers if not check(m.weight)]
    assert not bad, f"{fmt}: {bad[:3]}"
    assert all(is_fp32(m.weight) for m in linears(built.pipe.text_encoder_2))  # T5 left alone
    image = generate(built.pipe)
    assert image.shape == (256, 256, 3)
    assert np.isfinite(image).all() and image.std() > 0.01
    diff = np.abs(image - reference_image).mean()
    if close:  # the quantized weights are the synthetic model's own
        assert diff < 0.03, diff
    else:
        assert diff > 0.0, diff


def test_mixed_backends_t5_quanto_transformer_torchao(tiny):
    built = build(candidate("torchao-int8wo", "quanto-int8"), tiny, device="cpu")
    assert all(is_torchao_int8(m.weight) for m in linears(built.pipe.transformer))
    t5 = named_linears(built.pipe.text_encoder_2)
    # transformers keeps T5's `wo` out of quantization (T5's _keep_in_fp32_modules); everything else is int8
    assert all(is_quanto_int8(m.weight) for n, m in t5 if not n.endswith(".wo"))
    assert all(is_fp32(m.weight) for n, m in t5 if n.endswith(".wo"))
    assert len([n for n, _ in t5 if not n.endswith(".wo")]) >= 10
    assert all(is_fp32(p) for p in built.pipe.text_encoder.parameters() if p.ndim == 2)  # CLIP untouched
    image = generate(built.pipe)
    assert np.isfinite(image).all() and image.std() > 0.01


def test_t5_layerwise_casting_keeps_embeddings_and_wo_high_precision(tiny):
    built = build(candidate(t5="fp8-layerwise"), tiny, device="cpu")
    t5 = built.pipe.text_encoder_2
    assert t5.encoder.block[0].layer[0].SelfAttention.q.weight.dtype == torch.float8_e4m3fn
    assert t5.encoder.block[0].layer[1].DenseReluDense.wi_0.weight.dtype == torch.float8_e4m3fn
    assert t5.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert t5.shared.weight.dtype == torch.float32
    assert np.isfinite(generate(built.pipe)).all()


def test_gguf_file_argument_overrides_the_default_location(tiny, tmp_path):
    other = tmp_path / "elsewhere.gguf"
    shutil.copy(tiny / "gguf" / "transformer-Q4_0.gguf", other)
    built = build(candidate("gguf-q4_0"), tiny, device="cpu", gguf_file=other)
    assert all(gguf_of("Q4_0")(m.weight) for m in linears(built.pipe.transformer))


def test_every_listed_format_key_resolves_to_a_backend():
    expected_transformer = {"bf16", "fp8-layerwise", "torchao-int8wo", "torchao-fp8wo", "torchao-fp8dq",
                            "torchao-int4wo", "bnb-nf4", "bnb-fp4", "bnb-int8", "quanto-int8", "quanto-int4",
                            "quanto-fp8", "gguf-q8_0", "gguf-q6_k", "gguf-q5_k", "gguf-q5_1", "gguf-q5_0",
                            "gguf-q4_k", "gguf-q4_1", "gguf-q4_0", "gguf-q3_k", "gguf-q2_k"}
    expected_t5 = {"bf16", "fp8-layerwise", "bnb-nf4", "bnb-int8", "torchao-int8wo", "quanto-int8"}
    assert expected_transformer <= set(backends.formats("transformer"))
    assert expected_t5 <= set(backends.formats("text_encoder_2"))
    assert backends.resolve("gguf-q4_k", "transformer")[0].family is backends.BackendFamily.GGUF
    assert backends.resolve("torchao-fp8dq", "transformer")[1] == "fp8dq"
    with pytest.raises(UnknownFormat, match="gguf-q4_k"):
        backends.resolve("gguf-q4_k", "text_encoder_2")


# --------------------------------------------------------------------------- placement on the CPU


def test_vae_tiling_and_regional_compile_are_applied(tiny):
    built = build(candidate(compile=Compile.REGIONAL, tiling=True), tiny, device="cpu")
    assert built.pipe.vae.use_tiling
    assert built.pipe.vae.use_slicing  # one image at a time, as the cost model's tiled decode assumes
    blocks = list(built.pipe.transformer.transformer_blocks) + list(built.pipe.transformer.single_transformer_blocks)
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert built.pipe.transformer._compiled_call_impl is None


def test_full_compile_wraps_the_whole_transformer(tiny):
    built = build(candidate(compile=Compile.FULL), tiny, device="cpu")
    assert built.pipe.transformer._compiled_call_impl is not None
    assert not built.pipe.vae.use_tiling


def test_t5_on_the_cpu_runs_in_the_hosts_dtype_and_hands_over_the_pipelines(tiny):
    """Placement cpu on a CPU without fast bf16: T5 is cast to float32 there, while the rest of the pipeline stays
    in bf16, and the prompt embeddings reach the transformer in the pipeline's dtype."""
    import torch

    from fluxplan.run.measure import encode

    built = build(candidate(placement=TextEncoderPlacement.CPU), tiny, device="cpu", dtype=torch.bfloat16,
                  t5_cpu_dtype="float32")
    pipe = built.pipe
    assert {p.dtype for p in pipe.text_encoder_2.parameters()} == {torch.float32}
    assert {p.dtype for p in pipe.transformer.parameters()} == {torch.bfloat16}
    embeds, pooled, _ = encode(pipe, "a red fox", batch=1, max_sequence_length=32,
                               placement=TextEncoderPlacement.CPU, device="cpu")
    assert embeds.dtype == pooled.dtype == torch.bfloat16


@pytest.mark.parametrize("offload", [o for o in Offload if o is not Offload.NONE])
def test_offload_on_the_cpu_is_refused_before_loading(offload, tmp_path):
    with pytest.raises(BadInput, match="needs an accelerator"):
        build(candidate(offload=offload, placement=TextEncoderPlacement.FOLLOWS_OFFLOAD), tmp_path / "absent",
              device="cpu")


# --------------------------------------------------------------------------- clean errors


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize(("fmt", "t5"), [("bnb-nf4", "bf16"), ("bnb-fp4", "bf16"), ("bnb-int8", "bf16"),
                                         ("bf16", "bnb-nf4"), ("bf16", "bnb-int8")])
def test_bitsandbytes_without_a_gpu_is_a_clean_error(tiny, fmt, t5):
    with pytest.raises(NoGPU) as e:
        build(candidate(fmt, t5), tiny, device="cpu")
    assert "CUDA" in one_line(e)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.parametrize(("fmt", "t5"), [("bnb-nf4", "bf16"), ("bf16", "bnb-int8"), ("bf16", "bf16")])
def test_cuda_asked_for_on_a_machine_without_one_is_no_gpu(tiny, fmt, t5):
    with pytest.raises(NoGPU) as e:
        build(candidate(fmt, t5), tiny, device="cuda")
    assert "no CUDA GPU" in one_line(e)


def test_torchao_fp8_dynamic_needs_a_recent_gpu(tiny):
    with pytest.raises(NoGPU) as e:
        build(candidate("torchao-fp8dq"), tiny, device="cpu")
    assert "8.9" in one_line(e)


def test_torchao_int4_without_its_kernel_package_is_missing_package(tiny):
    from fluxplan.run.backends.base import has_module

    if has_module("mslk"):
        pytest.skip("mslk is installed here")
    with pytest.raises(MissingPackage) as e:
        build(candidate("torchao-int4wo"), tiny, device="cpu")
    assert "mslk" in one_line(e)


def test_missing_optional_package_is_missing_package(tiny, monkeypatch):
    import fluxplan.run.backends.base as base

    monkeypatch.setattr(base, "has_module", lambda name: False)
    with pytest.raises(MissingPackage) as e:
        build(candidate("quanto-int8"), tiny, device="cpu")
    assert "optimum-quanto" in one_line(e)


def test_unknown_format_is_bad_input(tiny):
    with pytest.raises(UnknownFormat) as e:
        build(candidate("int3-magic"), tiny, device="cpu")
    assert "int3-magic" in one_line(e)


def test_missing_model_directory(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as e:
        build(candidate(), missing, device="cpu")
    assert str(missing) in one_line(e)


@pytest.fixture
def copy_of_tiny(tiny, tmp_path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(tiny, dst, ignore=shutil.ignore_patterns("gguf"))
    return dst


def test_model_directory_without_transformer(copy_of_tiny):
    shutil.rmtree(copy_of_tiny / "transformer")
    with pytest.raises(ModelLoadError) as e:
        build(candidate(), copy_of_tiny, device="cpu")
    text = one_line(e)
    assert "transformer/" in text and str(copy_of_tiny) in text


def test_directory_that_is_not_a_pipeline(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        build(candidate(), tmp_path, device="cpu")


def test_truncated_safetensors_names_the_file(copy_of_tiny):
    f = copy_of_tiny / "vae" / "diffusion_pytorch_model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as e:
        build(candidate(), copy_of_tiny, device="cpu")
    assert str(f) in one_line(e)


@pytest.mark.parametrize("damage", ["magic", "truncate"])
def test_broken_gguf_names_the_file(tiny, tmp_path, damage):
    data = (tiny / "gguf" / "transformer-Q8_0.gguf").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + data[4:] if damage == "magic" else data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as e:
        build(candidate("gguf-q8_0"), tiny, device="cpu", gguf_file=bad)
    assert str(bad) in one_line(e)


def test_missing_gguf_level_names_the_expected_path(tiny):
    with pytest.raises(ModelLoadError) as e:
        build(candidate("gguf-q5_1"), tiny, device="cpu")
    assert str(tiny / "gguf" / "transformer-Q5_1.gguf") in one_line(e)


def test_gguf_file_with_a_non_gguf_format_is_bad_input(tiny):
    with pytest.raises(BadInput):
        build(candidate("bf16"), tiny, device="cpu", gguf_file=tiny / "gguf" / "transformer-Q8_0.gguf")
