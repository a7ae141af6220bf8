"""The catalog's numbers: parameter counts against the real modules, weight sizes against measurements,
fitted coefficients against a refit."""

import json

import pytest

from fluxplan.catalog.families import GIB, find_family, load_families
from fluxplan.catalog.formats import load_catalog
from fluxplan.errors import UnknownModel


@pytest.mark.parametrize("key", ["tiny", "dev", "schnell"])
def test_parameter_counts_match_the_real_modules(key):
    torch = pytest.importorskip("torch")
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    fam = load_families()[key]
    strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
    with torch.device("meta"):
        modules = {
            "transformer": FluxTransformer2DModel(**strip(fam.transformer)),
            "t5": T5EncoderModel(T5Config(**fam.text_encoder_2)),
            "clip": CLIPTextModel(CLIPTextConfig(**fam.text_encoder)),
            "vae": AutoencoderKL(**strip(fam.vae)),
        }
    count = {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}
    assert count["transformer"] == fam.transformer_params.total
    assert count["t5"] == fam.t5_params.total
    assert count["clip"] == fam.clip_params
    assert count["vae"] == fam.vae_params
    # and the layer kinds: what layerwise casting skips (names containing "norm") is `modulation` + norms
    tr = modules["transformer"]
    norm_linear = sum(m.weight.numel() for n, m in tr.named_modules()
                      if isinstance(m, torch.nn.Linear) and "norm" in n)
    assert norm_linear == fam.transformer_params.modulation


@pytest.mark.parametrize("component,gib", [("transformer", 22.17), ("t5", 8.87), ("clip", 0.23), ("vae", 0.16)])
def test_bf16_sizes_match_the_measured_components(component, gib):
    # ANCHORS section 6, measured on an H100 with torch's allocator
    fam = find_family("dev")
    params = {"transformer": fam.transformer_params.total, "t5": fam.t5_params.total, "clip": fam.clip_params,
              "vae": fam.vae_params}[component]
    assert params * 2 / GIB == pytest.approx(gib, rel=0.01, abs=0.005)  # ANCHORS rounds to 0.01 GiB


@pytest.mark.parametrize("fmt,gib", [("torchao-int8wo", 11.13), ("quanto-int8", 11.13), ("bnb-nf4", 5.85),
                                     ("fp8-layerwise", 14.14), ("torchao-fp8dq", 11.12)])
def test_format_sizes_reproduce_the_measured_transformer_weights(fmt, gib):
    fam = find_family("dev")
    assert load_catalog().get(fmt).weight_gib(fam.transformer_params) == pytest.approx(gib, rel=0.02)


def test_published_pipeline_memory_after_load_is_reproduced():
    # ANCHORS section 1 (seed article, H100): memory after load with transformer and T5 in the same format.
    # Their "GB" are GiB: bf16 31.447 = 22.17 + 8.87 + 0.23 + 0.16. NF4's 12.584 and torchao int8's 17.020 are
    # left out: with the library versions here T5's wo stays bf16 under bitsandbytes (fp32 in that article's run) and
    # is quantized by torchao (kept bf16 there), as pipelines with those T5 formats measured on the H100 show; those
    # runs are held to the accuracy bounds by tests/test_accuracy.py instead.
    fam, cat = find_family("dev"), load_catalog()
    rest = (fam.clip_params + fam.vae_params) * 2 / GIB
    for fmt, published in (("bf16", 31.447), ("quanto-int8", 17.330)):
        f = cat.get(fmt)
        ours = f.weight_gib(fam.transformer_params) + f.weight_gib(fam.t5_params) + rest
        assert ours == pytest.approx(published, rel=0.06), fmt


def test_every_number_has_a_source():
    for f in load_catalog().formats.values():
        assert f.bits_source and f.speed.source
        assert f.lpips is None or f.lpips.source
        for c in f.compat:
            assert c.status == "ok" and c.source or c.status != "ok" and (c.reason or c.source)


def test_gguf_bits_follow_the_published_table():
    published = {"q8_0": 8.5, "q6_k": 6.5625, "q5_1": 6.0, "q5_k": 5.5, "q4_1": 5.0, "q4_k": 4.5, "q4_0": 4.5,
                 "q3_k": 3.4375, "q2_k": 2.625}
    cat = load_catalog()
    for level, bits in published.items():
        assert cat.get(level).bits_per_weight == bits


def test_gguf_quality_is_ordered_by_bits():
    from fluxplan.cost.quality import transformer_lpips

    cat = load_catalog()
    ggufs = sorted((f for f in cat.formats.values() if f.family == "gguf"), key=lambda f: f.bits_per_weight)
    lp = [transformer_lpips(f)[0] for f in ggufs]
    assert all(a >= b for a, b in zip(lp, lp[1:]))
    # and placed between the anchors: Q8_0 (8.5 bits) beats int8 (8.04 bits), Q4_0 sits near NF4 (4.25 bits)
    assert transformer_lpips(cat.get("q8_0"))[0] < cat.get("torchao-int8wo").lpips.value
    assert transformer_lpips(cat.get("q4_0"))[0] < cat.get("bnb-nf4").lpips.value


def test_stored_fits_are_current():
    """The coefficients in formats.json and the profiles are what scipy fits from their points today."""
    pytest.importorskip("scipy")
    from fluxplan.cost import fit
    from fluxplan.cost.profile import profile_dirs

    for d in profile_dirs(include_local=False):
        for path in d.glob("*.json"):
            raw = json.loads(path.read_text())
            fresh = fit.profile_fits(raw)["forward_bf16"]
            for k in ("c0", "c1", "c2"):
                assert raw["fits"]["forward_bf16"][k] == pytest.approx(fresh[k], rel=1e-6, abs=1e-12), (path, k)
    cat_path = d.parents[0] / "src" / "fluxplan" / "catalog" / "data" / "formats.json"
    raw = json.loads(cat_path.read_text())
    fresh = fit.catalog_curve(raw)
    assert raw["lpips_curve"]["a"] == pytest.approx(fresh["a"], rel=1e-6)
    assert raw["lpips_curve"]["b"] == pytest.approx(fresh["b"], rel=1e-6)


@pytest.mark.parametrize("name,key", [("dev", "dev"), ("FLUX.1-schnell", "schnell"),
                                      ("black-forest-labs/FLUX.1-dev", "dev"), ("synthetic:tiny", "tiny"),
                                      ("/models/FLUX.1-schnell", "schnell"), ("flux.1-krea-dev", "dev")])
def test_model_names_resolve(name, key):
    assert find_family(name).key == key


def test_unknown_model():
    with pytest.raises(UnknownModel):
        find_family("stable-diffusion-xl")
