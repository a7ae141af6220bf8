"""T5 (text_encoder_2) measured per weight format (fluxplan.profiling.sweep's `t5formats` part): what the sweep
records on the CPU with the tiny family, how a profile carries it (build), and how the planner uses it in place of
bf16's encode x the catalog's factor and of bits per weight."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

import fluxplan
from fluxplan.catalog.families import find_family
from fluxplan.catalog.formats import load_catalog
from fluxplan.cli.main import main
from fluxplan.cost.profile import load_profile_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h100-2026-11-22"
H100 = "NVIDIA H100 80GB HBM3"
GIB = 1024**3


# --------------------------------------------------------------------------- the measurement on the CPU


@pytest.fixture(scope="module")
def tiny_model():
    pytest.importorskip("diffusers")
    from fluxplan.run.synth import ensure_synthetic

    return ensure_synthetic("tiny")


def test_t5_is_measured_per_format_from_the_tiny_checkpoint_on_the_cpu(tiny_model, tmp_path, monkeypatch):
    """The sweep's CLI on the CPU: bf16 (float32 there) and torchao int8 weight-only load and encode at 256 and
    512 tokens with their weights as stored; bitsandbytes cannot quantize without a GPU: a row with its error. With
    --append, the parts sweep.json already held stay."""
    import torch

    from fluxplan.profiling import sweep
    from fluxplan.run.synth import family, make_module

    earlier = {"gpu": H100, "date": "2026-11-22", "forward": [], "decode": [{"height": 1024, "seconds": 0.1}],
               "encode": [{"text_tokens": 512, "seconds": 0.03}]}
    (tmp_path / "sweep.json").write_text(json.dumps(earlier))
    monkeypatch.setattr(sys, "argv", ["sweep", "--out", str(tmp_path), "--append", "--parts", "t5formats",
                                      "--device", "cpu", "--model", str(tiny_model),
                                      "--t5-formats", "bf16,torchao-int8wo,bnb-nf4"])
    sweep.main()
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["decode"] == earlier["decode"] and doc["encode"] == earlier["encode"]  # kept beside the new part
    rows = {r["format"]: r for r in doc["encode_formats"]}
    assert list(rows) == ["bf16", "torchao-int8wo", "bnb-nf4"]

    with torch.device("meta"):
        ref = make_module("text_encoder_2", family("tiny")["text_encoder_2"])
    n_all = sum(p.numel() for p in ref.parameters())
    n_linear = sum(m.weight.numel() for m in ref.modules() if isinstance(m, torch.nn.Linear))
    bf16, int8 = rows["bf16"], rows["torchao-int8wo"]
    assert bf16["ok"] and bf16["dtype"] == "float32"  # unquantized on the CPU: float32
    assert bf16["weights_gib"] * GIB == 4 * n_all
    assert 1.0 < (int8["weights_gib"] * GIB - 4 * (n_all - n_linear)) / n_linear < 1.1  # int8 + row scales
    for row in (bf16, int8):
        assert row["load_s"] > 0
        assert [p["text_tokens"] for p in row["points"]] == [256, 512]
        assert all(p["seconds"] > 0 and "reserved_gib" not in p for p in row["points"])  # no allocator on the CPU
    nf4 = rows["bnb-nf4"]
    assert nf4["ok"] is False and "GPU" in nf4["error"] and "\n" not in nf4["error"]


def test_a_format_that_fails_to_run_or_is_not_reached_is_a_row_not_a_crash(tiny_model, monkeypatch):
    from fluxplan.profiling import sweep

    load = sweep.load_t5

    def broken(fmt, *a, **k):
        t5 = load(fmt, *a, **k)
        if fmt == "fp8-layerwise":
            t5.forward = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no kernel\nsecond line"))
        return t5

    monkeypatch.setattr(sweep, "load_t5", broken)
    seen = []
    rows = sweep.encode_formats(tiny_model, ["fp8-layerwise", "bf16"], device="cpu",
                                progress=lambda r: seen.append([x["format"] for x in r]))
    assert rows[0]["ok"] is False and rows[0]["error"] == "RuntimeError: no kernel"
    assert rows[1]["ok"] is True
    assert seen[0] == ["fp8-layerwise"]  # on disk before it is measured (a stopped process keeps its rows)
    late = sweep.encode_formats(tiny_model, ["bf16"], device="cpu", deadline=-1.0)
    assert late == [{"format": "bf16", "ok": False, "error": "skipped: past the deadline"}]


def test_the_t5_stage_measures_the_t5_formats_that_work_here():
    pytest.importorskip("diffusers")
    from fluxplan.profiling.run import TEXT_ENCODER_2, usable_formats

    formats = usable_formats("cpu", TEXT_ENCODER_2)
    assert {"bf16", "fp8-layerwise", "torchao-int8wo"} <= set(formats)
    assert set(formats) <= {f.key for f in load_catalog().for_component("text_encoder_2")}
    assert not {"bnb-nf4", "bnb-int8"} & set(formats)  # bitsandbytes quantizes on a GPU only


# --------------------------------------------------------------------------- profiles carrying them

INT8 = {256: 0.021, 512: 0.047}  # seconds; not bf16's (0.0329 / 0.0320) x the catalog's factor
INT8_GIB, FP8_GIB = 4.71, 5.03
BF16 = {256: 0.031, 512: 0.036}  # bf16 T5 loaded from the checkpoint (the sweep's encode part built it in memory)


def _row(fmt, seconds: dict, weights: float, ok=True):
    return {"format": fmt, "ok": ok, "device": "cuda", "dtype": "bfloat16", "load_s": 9.0, "weights_gib": weights,
            "points": [{"text_tokens": n, "seconds": s, "activation_gib": 0.1, "reserved_gib": 0.1}
                       for n, s in seconds.items()]}


def _folder(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    d = tmp_path / name
    shutil.copytree(RESULTS, d)
    doc = json.loads((d / "sweep.json").read_text())
    (d / "sweep.json").write_text(json.dumps({**doc, "encode_formats": rows}))
    return d


def _build(folders: list[Path], out: Path):
    assert main(["profile", *[a for f in folders for a in ("--from-results", str(f))], "--out", str(out)]) == 0
    return load_profile_file(out)


@pytest.fixture()
def profile(tmp_path, capsys):
    rows = [_row("torchao-int8wo", INT8, INT8_GIB), _row("fp8-layerwise", {512: 0.04}, FP8_GIB),
            _row("bf16", BF16, 8.9), {"format": "bnb-nf4", "ok": False, "error": "NoGPU: x"}]
    return _build([_folder(tmp_path, "results", rows)], tmp_path / "p.json")


@pytest.fixture()
def measured(profile, tmp_path):
    """The profile as measured: without the T5 formats the build took from the bundled profiles."""
    raw = json.loads((tmp_path / "p.json").read_text())
    raw["encode"] = [e for e in raw["encode"] if e["kind"] == "measured"]
    (tmp_path / "measured.json").write_text(json.dumps(raw))
    return load_profile_file(tmp_path / "measured.json")


def test_a_profile_carries_t5_points_per_format_bf16s_with_its_weights(profile, tmp_path, capsys):
    plain = _build([RESULTS], tmp_path / "plain.json")
    mine = [e for e in plain.encode if e.kind == "measured"]
    assert all(e.format == "bf16" and e.weights_gib is None for e in mine)  # T5 built in memory: no weights
    assert all(e.kind == "derived" for e in plain.encode if e.format != "bf16")  # the bundled profiles' formats
    by = {(e.format, e.text_tokens): e for e in profile.encode if e.kind == "measured"}
    # bf16 loaded from the checkpoint like the others wins over T5 built in memory, and brings its weights
    assert [(e.text_tokens, e.seconds, e.weights_gib) for e in profile.encode if e.format == "bf16"] == [
        (256, BF16[256], 8.9), (512, BF16[512], 8.9)]
    for n, s in INT8.items():
        e = by["torchao-int8wo", n]
        assert (e.seconds, e.weights_gib, e.kind) == (s, INT8_GIB, "measured")
        assert "fluxplan.profiling.sweep" in e.source and f"{tmp_path.name}/results" in e.source
    assert by["fp8-layerwise", 512].weights_gib == FP8_GIB and ("fp8-layerwise", 256) not in by
    assert ("bnb-nf4", 512) not in by  # a failed row makes no point (the bundled profiles' stands in, derived)
    assert "T5 loaded from the checkpoint in 3 formats" in profile.provenance.summary


def test_a_later_folder_wins_per_format_and_text_tokens(tmp_path, capsys):
    first = _folder(tmp_path, "first", [_row("torchao-int8wo", INT8, INT8_GIB)])
    second = _folder(tmp_path, "second", [_row("torchao-int8wo", {512: 0.06}, 4.8),
                                          {"format": "fp8-layerwise", "ok": False, "error": "timeout"}])
    prof = _build([first, second], tmp_path / "p.json")
    by = {(e.format, e.text_tokens): e for e in prof.encode}
    assert (by["torchao-int8wo", 512].seconds, by["torchao-int8wo", 512].weights_gib) == (0.06, 4.8)
    assert by["torchao-int8wo", 256].seconds == INT8[256] and "first" in by["torchao-int8wo", 256].source


@pytest.mark.parametrize("row,needle", [
    (_row("torchao-int8wo", {512: math.nan}, INT8_GIB), "seconds is nan"),
    (_row("torchao-int8wo", {512: -0.01}, INT8_GIB), "seconds is -0.01"),
    (_row("torchao-int8wo", INT8, -1.0), "weights_gib is -1.0"),
    (_row("torchao-int8wo", INT8, None), "weights_gib is None"),
])
def test_impossible_t5_measurements_are_refused_and_the_previous_profile_stays(tmp_path, capsys, row, needle):
    out = tmp_path / "p.json"
    out.write_text((ROOT / "profiles" / "nvidia-h100-80gb-hbm3.json").read_text())
    before = out.read_bytes()
    assert main(["profile", "--from-results", str(_folder(tmp_path, "results", [row])), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot make a profile" in err and needle in err
    assert "T5 torchao-int8wo" in err and out.read_bytes() == before


# --------------------------------------------------------------------------- the planner using them


def _plan(profile, t5, gpu=H100, model="dev"):
    return fluxplan.plan(gpu, model=model, transformer="bf16", text_encoder=t5, text_encoder_placement="resident",
                         offload="none", compile="none", resolution="1024x1024", profiles=[profile])


def test_a_t5_format_with_its_own_point_is_timed_by_it_and_one_without_by_bf16s_x_the_catalogs_factor(measured):
    profile = measured
    own = _plan(profile, "torchao-int8wo")
    assert own.estimate.latency.text_encode_s == pytest.approx(INT8[512])  # dev: 512 text tokens, its nearest
    assert own.estimate.sources["text_encode"].kind == "measured"
    assert "fluxplan.profiling.sweep" in own.estimate.sources["text_encode"].source

    factor = load_catalog().formats["bnb-int8"].speed.eager
    other = _plan(profile, "bnb-int8")
    assert other.estimate.latency.text_encode_s == pytest.approx(BF16[512] * factor)
    assert other.estimate.sources["text_encode"].kind == "derived"
    assert _plan(profile, "bf16").estimate.sources["text_encode"].kind == "measured"


def test_a_t5_point_on_another_gpu_is_scaled_by_compute_and_says_derived(profile):
    from fluxplan.catalog.gpus import find_gpu

    h100, h200 = find_gpu(H100), find_gpu("H200")
    p = _plan(profile, "torchao-int8wo", gpu="H200")
    assert p.estimate.latency.text_encode_s == pytest.approx(INT8[512] * h100.bf16_tflops / h200.bf16_tflops)
    assert p.estimate.sources["text_encode"].kind == "derived"


def test_t5_weights_are_the_measured_ones_for_full_size_families(measured, profile):
    derived = _plan(profile, "bnb-int8")  # this folder did not measure it; a bundled profile did
    assert derived.estimate.sources["t5_weights"].kind == "derived"
    assert "NVIDIA H100 80GB HBM3's point (measured)" in derived.estimate.sources["t5_weights"].source
    profile = measured
    t5_params = find_family("dev").t5_params
    for model in ("dev", "schnell"):  # one T5-XXL
        p = _plan(profile, "torchao-int8wo", model=model)
        assert p.estimate.memory.weights_gib.text_encoder_2 == pytest.approx(INT8_GIB)
        assert p.estimate.sources["t5_weights"].kind == "measured"
    unmeasured = _plan(profile, "bnb-int8")
    assert unmeasured.estimate.memory.weights_gib.text_encoder_2 == pytest.approx(
        load_catalog().formats["bnb-int8"].weight_gib(t5_params))
    assert unmeasured.estimate.sources["t5_weights"].kind == "derived"
    tiny = _plan(profile, "torchao-int8wo", model="synthetic:tiny")  # its own small T5: bits per weight
    assert tiny.estimate.memory.weights_gib.text_encoder_2 == pytest.approx(
        load_catalog().formats["torchao-int8wo"].weight_gib(find_family("tiny").t5_params))


def test_t5_formats_this_run_did_not_reach_take_the_first_references_ratio_to_bf16():
    """The full run's T5 stage has 45 s (two to four formats): a format it did not reach is the first reference's
    measurement of it, times bf16's encode here over there at the same text tokens, labelled derived."""
    from fluxplan.profiling import blockpoints as bp

    def point(fmt, tokens, seconds, kind="measured", weights=5.0):
        return {"format": fmt, "text_tokens": tokens, "seconds": seconds, "weights_gib": weights, "kind": kind,
                "source": f"{kind}: test"}
    here = [point("bf16", 512, 0.04), point("bnb-nf4", 512, 0.05)]
    first = {"gpu": "GPU A", "encode": [point("bf16", 512, 0.02), point("bnb-nf4", 512, 0.03),
                                        point("quanto-int8", 512, 0.025, weights=5.5),
                                        point("bnb-int8", 512, 0.09, kind="derived")]}
    second = {"gpu": "GPU B", "encode": [point("bf16", 512, 0.01), point("quanto-int8", 512, 0.5),
                                         point("bnb-int8", 512, 0.03)]}
    used: set[str] = set()
    got = {p["format"]: p for p in bp.encode_from_references([first, second], here, used)}
    assert set(got) == {"quanto-int8", "bnb-int8"}  # nf4 measured here; A's bnb-int8 was itself derived
    assert got["quanto-int8"]["seconds"] == pytest.approx(0.025 * 0.04 / 0.02)
    assert got["quanto-int8"]["weights_gib"] == 5.5 and got["quanto-int8"]["kind"] == "derived"
    assert got["bnb-int8"]["seconds"] == pytest.approx(0.03 * 0.04 / 0.01) and "GPU B" in got["bnb-int8"]["source"]
    assert used == {"GPU A", "GPU B"}
