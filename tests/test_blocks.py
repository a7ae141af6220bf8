"""Block-level profiling (fluxplan.profiling.blocks, .blockpoints, .build): what the block profiler records on the
CPU with the tiny family, the extrapolation to the full model, and profiles built from block measurements."""

import json
import math
import shutil
import time
from pathlib import Path

import pytest

from fluxplan.cli.main import main
from fluxplan.cost.profile import load_profile_file
from fluxplan.profiling import blockpoints as bp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h100-2026-11-22"
GIB = 1024**3
H100 = "NVIDIA H100 80GB HBM3"

# bytes and seconds of one block of each kind, shaped like FLUX.1-dev in bf16 on an H100
DOUBLE_B, SINGLE_B, REST_B = 679_500_000, 283_200_000, 230_000_000


def _row(fmt="bf16", scale=1.0, **changes):
    points = []
    for image, text, batch in [(1024, 512, 1), (4096, 512, 1), (9216, 512, 1), (4096, 256, 1), (4096, 512, 2)]:
        k = (image + text) / 4608 * batch
        points.append({"image_tokens": image, "text_tokens": text, "batch": batch, "double_s": 0.0055 * k * scale,
                       "single_s": 0.002 * k * scale, "rest_s": 0.001, "total_s": 0.0085 * k * scale,
                       "activation_gib": 0.45 * k, "reserved_gib": 1.0 * k})
    row = {"format": fmt, "ok": True, "load_s": 1.0,
           "weights_bytes": {"double": DOUBLE_B / scale, "single": SINGLE_B / scale, "rest": REST_B / scale},
           "points": points}
    row.update(changes)
    return row


def _blocks_doc(rows):
    return {"kind": "dev", "device": "cuda", "date": "2026-11-23", "command": "python -m fluxplan.profiling.blocks",
            "gpu": H100, "driver": "580.1", "cuda": "13.0",
            "versions": {"torch": "2.11.0+cu130", "diffusers": "0.42.1", "torchao": "0.15"},
            "blocks": {"double": 19, "single": 38}, "formats": rows}


def _folder(tmp_path, rows, with_legacy=False):
    d = tmp_path / "results"
    if with_legacy:
        shutil.copytree(RESULTS, d)
    else:
        d.mkdir()
    (d / "blocks.json").write_text(json.dumps(_blocks_doc(rows)))
    return d


# --------------------------------------------------------------------------- arithmetic


def test_extrapolation_counts_the_rest_once_and_each_block_as_often_as_the_full_model_has_it():
    assert bp.extrapolate(1.0, 2.0, 3.0, 19, 38) == 1.0 + 19 * 2.0 + 38 * 3.0
    doc = _blocks_doc([_row(), {"format": "bnb-nf4", "ok": False, "error": "NoGPU: no GPU"}])
    pts = bp.forward_points(doc)
    assert {p["format"] for p in pts} == {"bf16"}  # the failed format makes no point
    at = next(p for p in pts if (p["image_tokens"], p["text_tokens"], p["batch"]) == (4096, 512, 1))
    raw = next(p for p in _row()["points"] if (p["image_tokens"], p["batch"]) == (4096, 1) and p["text_tokens"] == 512)
    assert at["seconds"] == pytest.approx(raw["rest_s"] + 19 * raw["double_s"] + 38 * raw["single_s"])
    assert at["weights_gib"] == pytest.approx((REST_B + 19 * DOUBLE_B + 38 * SINGLE_B) / GIB)
    assert at["activation_gib"] == raw["reserved_gib"]  # activations are not multiplied by the block count
    assert "extrapolated to 19+38 blocks" in at["source"]
    assert bp.failed(doc) == {"bnb-nf4": "NoGPU: no GPU"}


def test_a_stacked_forward_is_the_step_time_where_it_called_the_blocks_as_often_as_the_full_model():
    row = _row(stacked={"double": 19, "single": 38})
    for p in row["points"]:  # the host could not keep the GPU fed: longer than the blocks added up
        p["stacked_s"] = 1.3 * bp.extrapolate(p["rest_s"], p["double_s"], p["single_s"], 19, 38)
    at = {(p["image_tokens"], p["text_tokens"], p["batch"]): p for p in bp.forward_points(_blocks_doc([row]))}
    for p in row["points"]:
        assert at[(p["image_tokens"], p["text_tokens"], p["batch"])]["seconds"] == p["stacked_s"]
    assert "blocks called as often as the full model's" in at[(4096, 512, 1)]["source"]
    # stacked with other counts (a tiny model's) is not the full model's step: extrapolate
    other = _row(stacked={"double": 1, "single": 1})
    for p in other["points"]:
        p["stacked_s"] = 99.0
    assert all(p["seconds"] < 99 for p in bp.forward_points(_blocks_doc([other])))


# --------------------------------------------------------------------------- profiles from blocks


def test_a_blocks_only_folder_makes_a_profile_the_planner_uses(tmp_path, capsys):
    import fluxplan

    results = _folder(tmp_path, [_row(), _row("fp8-layerwise", scale=0.8)])
    out = tmp_path / "p.json"
    assert main(["profile", "--from-results", str(results), "--out", str(out)]) == 0
    prof = load_profile_file(out)
    assert prof.gpu == H100
    assert {p.format for p in prof.forward} >= {"bf16", "fp8-layerwise"}
    mine = ("bf16", "fp8-layerwise")
    assert all(p.kind == "measured" for p in prof.forward if p.format in mine and p.compile == "none")
    assert all(p.kind == "derived" for p in prof.forward if p.format not in mine)  # the bundled profile's formats
    # what blocks cannot show comes from the bundled profile, labelled as derived
    assert {o.mode for o in prof.offload} == set(bp.OFFLOAD_MODES)
    assert all(o.kind == "derived" for o in prof.offload)
    assert prof.memory.decode_carry_factor.kind == "derived" and prof.decode[0].kind == "derived"
    v = prof.provenance.versions
    assert v["torch"] == "2.11.0+cu130" and v["cuda"] == "13.0" and v["nvidia-driver"] == "580.1"
    assert prof.provenance.date == "2026-11-23"

    p = fluxplan.plan(H100, transformer="bf16", offload="none", compile="none", resolution="1024x1024",
                      profiles=[prof])
    raw = _row()["points"][1]
    assert p.estimate.latency.denoise_step_s == pytest.approx(raw["rest_s"] + 19 * raw["double_s"] + 38 * raw["single_s"],
                                                              rel=1e-6)
    assert "extrapolated to 19+38 blocks" in p.estimate.sources["denoise_step"].source
    assert p.estimate.memory.weights_gib.transformer == pytest.approx((REST_B + 19 * DOUBLE_B + 38 * SINGLE_B) / GIB)


def test_a_quick_folder_takes_the_cuda_context_from_the_blocks_process(tmp_path, capsys):
    """`fluxplan profile --quick` runs blocks alone: the context is the one the blocks' process measured plus what a
    pipeline's process holds beyond it (derived); encode and decode come from the reference, derived."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "blocks.json").write_text(json.dumps({**_blocks_doc([_row()]), "context_gib": 0.581}))
    out = tmp_path / "p.json"
    assert main(["profile", "--from-results", str(results), "--out", str(out)]) == 0
    prof = load_profile_file(out)
    assert prof.memory.context_gib.value == pytest.approx(0.581 + 0.092) and prof.memory.context_gib.kind == "derived"
    assert "fluxplan.profiling.blocks" in prof.memory.context_gib.source
    assert all(e.kind == "derived" for e in prof.encode) and all(d.kind == "derived" for d in prof.decode)


def test_pipeline_points_win_over_block_points_of_the_same_shape(tmp_path, capsys):
    results = _folder(tmp_path, [_row(), _row("fp8-layerwise", scale=0.8)], with_legacy=True)
    out = tmp_path / "p.json"
    assert main(["profile", "--from-results", str(results), "--out", str(out)]) == 0
    prof = load_profile_file(out)
    by_key = {}
    for p in prof.forward:
        by_key.setdefault((p.format, p.compile, p.image_tokens, p.text_tokens, p.batch), []).append(p)
    # bf16 at 4096+512 was measured whole (sweep and pipeline): no block point there
    assert all("blocks" not in p.source for p in by_key[("bf16", "none", 4096, 512, 1)])
    fp8 = by_key[("fp8-layerwise", "none", 4096, 512, 1)]
    assert len(fp8) == 1 and "matrix" in fp8[0].source
    # block points fill the shapes the pipelines did not measure
    assert "blocks" in by_key[("fp8-layerwise", "none", 9216, 512, 1)][0].source
    # offload, context and carry-over come from the pipeline rows, measured
    assert all(o.kind == "measured" for o in prof.offload)
    assert prof.memory.decode_carry_factor.kind == "measured"


def _nan(row):
    row["points"][2]["double_s"] = math.nan


def _negative(row):
    row["points"][0]["single_s"] = -0.001


def _no_weights(row):
    row["weights_bytes"]["single"] = 0


@pytest.mark.parametrize("spoil,needle", [(_nan, "double_s"), (_negative, "single_s"), (_no_weights, "single block")])
def test_impossible_block_measurements_are_refused_and_the_previous_profile_stays(tmp_path, capsys, spoil, needle):
    row = _row()
    spoil(row)
    results = _folder(tmp_path, [row])
    out = tmp_path / "p.json"
    out.write_text((ROOT / "profiles" / "nvidia-h100-80gb-hbm3.json").read_text())
    before = out.read_bytes()
    assert main(["profile", "--from-results", str(results), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot make a profile" in err and needle in err
    assert out.read_bytes() == before


def test_a_folder_where_every_format_failed_is_refused(tmp_path, capsys):
    results = _folder(tmp_path, [{"format": "bf16", "ok": False, "error": "OutOfMemoryError: x"}])
    assert main(["profile", "--from-results", str(results), "--out", str(tmp_path / "p.json")]) == 2
    assert "measured no format" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


# --------------------------------------------------------------------------- the profiler on the CPU


@pytest.fixture(scope="module")
def block_model():
    pytest.importorskip("diffusers")
    from fluxplan.run.synth import ensure_block_model

    return ensure_block_model("tiny")


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_block_weights_are_what_each_format_stores(block_model):
    import torch

    from fluxplan.profiling.blocks import TINY_POINTS, measure_format
    from fluxplan.run.synth import block_config, make_module

    with torch.device("meta"):
        ref = make_module("transformer", block_config("tiny"))
    n_double, n_single = _params(ref.transformer_blocks[0]), _params(ref.single_transformer_blocks[0])
    n_rest = _params(ref) - n_double - n_single
    rows = {fmt: measure_format(fmt, block_model, "tiny", device="cpu", points=TINY_POINTS[:1], reps=1)
            for fmt in ("bf16", "torchao-int8wo", "quanto-int8", "fp8-layerwise")}
    full = rows["bf16"]["weights_bytes"]  # unquantized on the CPU: float32
    assert (full["double"], full["single"], full["rest"]) == (4 * n_double, 4 * n_single, 4 * n_rest)
    for fmt in ("torchao-int8wo", "quanto-int8"):  # int8 weights, plus row scales and float biases and norms
        w = rows[fmt]["weights_bytes"]
        assert 1.0 < w["double"] / n_double < 1.15, fmt
        assert 1.0 < w["single"] / n_single < 1.15, fmt
    fp8 = rows["fp8-layerwise"]["weights_bytes"]
    assert 0.3 < fp8["double"] / full["double"] < 0.6  # float8 storage; the norms' linears stay float32
    for row in rows.values():
        p = row["points"][0]
        assert p["double_s"] > 0 and p["single_s"] > 0 and p["rest_s"] >= 0
        assert "activation_gib" not in p  # no allocator statistics on the CPU


def test_the_clock_charges_each_block_with_its_own_time(block_model):
    import torch

    from fluxplan.profiling.blocks import Clock, inputs, load

    model = load("bf16", block_model, "tiny", "cpu", torch.float32)
    clock = Clock(model, cuda=False)
    model.transformer_blocks[0].register_forward_pre_hook(lambda m, a: time.sleep(0.05))
    args = inputs(dict(model.config), 64, 16, 1, "cpu", torch.float32)
    t = clock.run(lambda: model(**args))
    assert t["double"] >= 0.05
    assert t["single"] < 0.04 and t["rest"] < 0.04
    assert t["total"] == pytest.approx(t["double"] + t["single"] + t["rest"])


def test_the_stacked_forward_calls_each_block_as_often_as_asked(block_model, monkeypatch):
    import fluxplan.profiling.blocks as blocks
    from fluxplan.profiling.blocks import TINY_POINTS, measure_format

    calls = {"double": 0, "single": 0}
    loaded = []

    def count(name: str, pause: float):
        def hook(module, args) -> None:
            calls[name] += 1
            time.sleep(pause)
        return hook

    def counting_load(*a, load=blocks.load, **k):
        model = load(*a, **k)
        model.transformer_blocks[0].register_forward_pre_hook(count("double", 0.0))
        model.single_transformer_blocks[0].register_forward_pre_hook(count("single", 0.01))
        loaded.append(model)
        return model

    monkeypatch.setattr(blocks, "load", counting_load)
    row = measure_format("bf16", block_model, "tiny", device="cpu", points=TINY_POINTS[:1], reps=1, stack=(3, 5))
    p = row["points"][0]
    # the 1+1 points: a warm-up and one timed run; then STACKED_REPS forwards of 3 double and 5 single calls
    assert calls == {"double": 2 + 3 * blocks.STACKED_REPS, "single": 2 + 5 * blocks.STACKED_REPS}
    assert p["stacked_s"] >= 5 * 0.01 and p["stacked_cpu_s"] >= 5 * 0.01  # each single call sleeps on the host
    assert row["stacked"] == {"double": 3, "single": 5}
    # afterwards the model has its own blocks again, one of each
    assert len(loaded[0].transformer_blocks) == 1 and len(loaded[0].single_transformer_blocks) == 1


def test_the_parent_records_a_format_that_cannot_run_and_goes_on(block_model, tmp_path):
    from fluxplan.profiling.blocks import parent

    path = parent(["bnb-nf4", "bf16"], tmp_path, kind="tiny", device="cpu", quick=True, limit=120, deadline=300)
    doc = json.loads(path.read_text())
    rows = {r["format"]: r for r in doc["formats"]}
    assert rows["bnb-nf4"]["ok"] is False and "GPU" in rows["bnb-nf4"]["error"]
    assert rows["bf16"]["ok"] is True and len(rows["bf16"]["points"]) == 4
    assert doc["blocks"] == {"double": 1, "single": 1}  # the tiny family is its own block model
    assert doc["versions"]["torch"] and doc["versions"]["diffusers"]
    assert doc["host"]["cpu"] and doc["host"]["cores"] >= 1 and doc["host"]["dispatch_us"] > 0  # the host beside it


def test_the_full_profile_measures_the_formats_that_work_here():
    pytest.importorskip("diffusers")
    from fluxplan.profiling.run import usable_formats

    formats = usable_formats("cpu")
    assert {"bf16", "fp8-layerwise", "torchao-int8wo", "gguf-q8_0"} <= set(formats)
    # bitsandbytes quantizes on a GPU only; fp8 dynamic activations need compute capability 8.9
    assert not {"bnb-nf4", "bnb-int8", "torchao-fp8dq"} & set(formats)


def test_a_task_stopped_by_the_deadline_as_its_process_starts_is_not_measured_and_not_failed(tmp_path):
    """The deadline passes while the child is still importing torch: the task is recorded as not reached, which
    build leaves out (before, it read "process ended with -9", a compile that fails)."""
    from fluxplan.profiling.blockpoints import compiled_points
    from fluxplan.profiling.blocks import parent

    path = parent(["bf16@regional"], tmp_path, kind="tiny", device="cpu", quick=True, limit=120, deadline=0.5)
    doc = json.loads(path.read_text())
    assert [r["error"] for r in doc["compiled"]] == ["timeout: past the deadline"]
    assert compiled_points(doc) == ([], [])
