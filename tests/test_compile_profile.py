"""Compile measured per format at block level (fluxplan.profiling.blocks `FORMAT@regional` tasks): what the
profiler records, how a profile carries it, and how the planner uses it in place of the catalog's guesses."""

import json
from pathlib import Path

import pytest

import fluxplan
from fluxplan.catalog.formats import load_catalog
from fluxplan.cli.main import main
from fluxplan.cost.profile import load_profile_file
from fluxplan.errors import Infeasible
from fluxplan.profiling.build import merge_blocks
from fluxplan.profiling.run import block_tasks, last_tasks

H100 = "NVIDIA H100 80GB HBM3"
DOUBLE_B, SINGLE_B, REST_B = 679_500_000, 283_200_000, 230_000_000
STACK = {"double": 19, "single": 38}


def _eager(fmt, scale=1.0):
    points = []
    for image, text, batch in [(1024, 512, 1), (4096, 512, 1), (9216, 512, 1)]:
        k = (image + text) / 4608 * batch
        points.append({"image_tokens": image, "text_tokens": text, "batch": batch, "double_s": 0.0055 * k * scale,
                       "single_s": 0.002 * k * scale, "rest_s": 0.001, "total_s": 0.0085 * k * scale,
                       "activation_gib": 0.45 * k, "reserved_gib": 1.0 * k, "stacked_s": 0.19 * k * scale,
                       "stacked_cpu_s": 0.1 * k})
    return {"format": fmt, "ok": True, "load_s": 1.0, "stacked": STACK,
            "weights_bytes": {"double": DOUBLE_B / scale, "single": SINGLE_B / scale, "rest": REST_B / scale},
            "points": points}


def _compiled(fmt, compile_s, step_4096, reserved=0.8, mode="regional", sizes=2):
    return {"format": f"{fmt}@{mode}", "base": fmt, "compile": mode, "ok": True, "compile_s": compile_s,
            "stacked": STACK, "points": [
                {"image_tokens": 4096, "text_tokens": 512, "batch": 1, "first_s": compile_s + step_4096,
                 "stacked_s": step_4096, "stacked_cpu_s": 0.05, "reserved_gib": reserved},
                {"image_tokens": 1024, "text_tokens": 512, "batch": 1, "first_s": 9.0, "stacked_s": step_4096 / 3,
                 "stacked_cpu_s": 0.05, "reserved_gib": reserved / 3}][:sizes]}


def _failed(fmt, error):
    return {"format": f"{fmt}@regional", "base": fmt, "compile": "regional", "ok": False, "error": error}


def _doc(formats, compiled):
    return {"kind": "dev", "device": "cuda", "date": "2026-11-22", "command": "python -m fluxplan.profiling.blocks",
            "gpu": H100, "driver": "580.1", "cuda": "13.0", "versions": {"torch": "2.11.0", "diffusers": "0.42.1"},
            "blocks": STACK, "formats": formats, "compiled": compiled}


@pytest.fixture()
def profile(tmp_path, capsys):
    d = tmp_path / "results"
    d.mkdir()
    doc = _doc([_eager("bf16"), _eager("gguf-q8_0", 1.3), _eager("fp8-layerwise", 1.2), _eager("torchao-int8wo", 1.1)],
               [_compiled("bf16", 21.0, 0.13), _compiled("gguf-q8_0", 33.0, 0.16),
                _failed("fp8-layerwise", "Unsupported: Attempted to use `torch.nn.Parameter()` constructor with Dynamo"),
                _failed("torchao-int8wo", "timeout: past the 75 s limit per compile"),
                _failed("bnb-nf4", "skipped: past the deadline"),
                _compiled("gguf-q8_0", 140.0, 0.15, mode="full"), _compiled("bf16", 80.0, 0.12, mode="full", sizes=1),
                _compiled("quanto-int8", 25.0, 0.17, sizes=1)])
    (d / "blocks.json").write_text(json.dumps(doc))
    out = tmp_path / "p.json"
    assert main(["profile", "--from-results", str(d), "--out", str(out)]) == 0
    return load_profile_file(out)


@pytest.fixture()
def measured(profile, tmp_path):
    """The profile as measured: without what the build took from the bundled (reference) profile for the formats
    and compile modes these blocks did not measure."""
    raw = json.loads((tmp_path / "p.json").read_text())
    for part in ("forward", "compile"):
        raw[part] = [p for p in raw[part] if p["kind"] == "measured"]
    (tmp_path / "measured.json").write_text(json.dumps(raw))
    return load_profile_file(tmp_path / "measured.json")


def test_a_profile_carries_each_measured_compile_and_not_the_ones_never_reached(profile):
    got = {c.format: c for c in profile.compile if c.mode == "regional" and c.kind == "measured"}
    assert set(got) == {"bf16", "gguf-q8_0", "fp8-layerwise", "torchao-int8wo", "quanto-int8"}  # not bnb-nf4: never reached
    nf4 = profile.compiled("bnb-nf4", "regional")  # what the bundled profile measured stands in, and says so
    assert nf4.kind == "derived" and nf4.source.startswith("derived: NVIDIA H100 80GB HBM3's point (measured)")
    assert (got["bf16"].status, got["bf16"].seconds) == ("ok", 21.0)
    assert got["fp8-layerwise"].status == "fails" and "Parameter" in got["fp8-layerwise"].error
    assert got["torchao-int8wo"].status == "timeout" and got["torchao-int8wo"].seconds == 75.0  # at least
    compiled = {(p.format, p.image_tokens): p for p in profile.forward if p.compile == "regional"}
    assert compiled[("gguf-q8_0", 4096)].seconds == 0.16 and compiled[("gguf-q8_0", 4096)].activation_gib == 0.8
    assert compiled[("bf16", 1024)].kind == "measured"


def test_the_planner_steps_and_compiles_as_measured(profile):
    p = fluxplan.plan(H100, transformer="bf16", compile="regional", offload="none", resolution="1024x1024",
                      text_tokens=512, profiles=[profile])
    assert p.estimate.latency.denoise_step_s == pytest.approx(0.13)  # the compiled stacked forward at 4096+512
    eager = fluxplan.plan(H100, transformer="bf16", compile="none", offload="none", resolution="1024x1024",
                          text_tokens=512, profiles=[profile])
    assert p.estimate.latency.one_off_s - eager.estimate.latency.one_off_s == pytest.approx(21.0)
    src = p.estimate.sources["compile"]
    assert src.kind == "measured" and "cold compile 21.0 s" in src.source


def test_a_compiled_step_between_two_measured_sizes_is_interpolated_in_log_tokens(profile):
    import math

    fit = profile.fits.forward_bf16.seconds
    # bf16 compiled at 1024+512 tokens (0.13 / 3 s) and 4096+512 (0.13 s); 768x768 is 2304+512 tokens
    lo, hi = (0.13 / 3) / fit(1536), 0.13 / fit(4608)
    t = math.log(2816 / 1536) / math.log(4608 / 1536)
    p = fluxplan.plan(H100, transformer="bf16", compile="regional", offload="none", resolution="768x768",
                      text_tokens=512, profiles=[profile])
    assert p.estimate.latency.denoise_step_s == pytest.approx(fit(2816) * (lo * (1 - t) + hi * t))
    assert "interpolated between 1536 and 4608 tokens" in p.estimate.sources["denoise_step"].source


def test_a_compile_mode_measured_at_one_size_changes_with_the_size_as_the_other_mode_measured_it(profile):
    """bf16 full compile measured at 1024x1024 alone (0.12 s against regional's 0.13 s); regional at two sizes: at
    768x768 full keeps its ratio to regional (the nearest point alone gave full +13.2 % on an H100's 768x768)."""
    def step(mode, resolution):
        return fluxplan.plan(H100, transformer="bf16", compile=mode, offload="none", resolution=resolution,
                             text_tokens=512, profiles=[profile]).estimate.latency.denoise_step_s
    assert step("full", "1024x1024") == pytest.approx(0.12)
    assert step("full", "768x768") == pytest.approx(step("regional", "768x768") * 0.12 / 0.13)
    p = fluxplan.plan(H100, transformer="bf16", compile="full", offload="none", resolution="768x768",
                      text_tokens=512, profiles=[profile])
    assert "as regional compile changes between 1536 and 4608 tokens" in p.estimate.sources["denoise_step"].source


def test_a_format_compiled_nowhere_here_steps_and_compiles_as_its_compiled_siblings(measured):
    """GGUF Q4_K has no compiled point in this profile, Q8_0 (the same backend, computing in bf16) has: Q4_K's
    compiled step is Q8_0's (measured on an H200: every GGUF type compiled regionally at 0.140-0.170 s, eager
    0.242-0.500 s), not its eager factor times bf16's compile gain; its cold compile is Q8_0's."""
    def plan(fmt, comp):
        return fluxplan.plan(H100, transformer=fmt, compile=comp, offload="none", resolution="1024x1024",
                             text_tokens=512, profiles=[measured])
    q4k, q8 = plan("gguf-q4_k", "regional"), plan("gguf-q8_0", "regional")
    assert q4k.estimate.latency.denoise_step_s == pytest.approx(q8.estimate.latency.denoise_step_s)
    assert q4k.estimate.latency.denoise_step_s < 0.5 * plan("gguf-q4_k", "none").estimate.latency.denoise_step_s
    src = q4k.estimate.sources
    assert src["denoise_step"].kind == "derived" and "gguf-q8_0" in src["denoise_step"].source
    assert (q4k.estimate.latency.one_off_s - plan("gguf-q4_k", "none").estimate.latency.one_off_s
            == pytest.approx(33.0))
    assert src["compile"].kind == "derived" and "gguf-q8_0" in src["compile"].source


def test_a_format_whose_backend_compiled_nothing_here_keeps_the_catalogs_compile_gain(measured):
    p = fluxplan.plan(H100, transformer="torchao-fp8wo", compile="regional", offload="none", resolution="1024x1024",
                      text_tokens=512, profiles=[measured])  # torchao-int8wo's compile timed out: nothing compiled
    src = p.estimate.sources["denoise_step"].source
    assert src.startswith("derived: full-compile factor") and "published" in src  # the catalog's compiled factor


def test_a_format_compiled_in_one_mode_steps_in_the_other_as_bf16_changes_between_them(measured):
    """quanto int8 compiled regionally alone (0.17 s), bf16 both ways (0.13 regional, 0.12 full): quanto int8
    compiled fully is 0.17 x 0.12 / 0.13, and quanto fp8 (its sibling, compiled nowhere) the same."""
    def step(fmt, mode):
        p = fluxplan.plan(H100, transformer=fmt, compile=mode, offload="none", resolution="1024x1024",
                          text_tokens=512, profiles=[measured])
        return p.estimate.latency.denoise_step_s, p.estimate.sources["denoise_step"].source
    full, src = step("quanto-int8", "full")
    assert full == pytest.approx(0.17 * 0.12 / 0.13) and "its regional-compiled step" in src
    assert step("quanto-fp8", "full")[0] == pytest.approx(full)
    assert step("quanto-fp8", "regional")[0] == pytest.approx(0.17)


def test_a_compile_measured_ok_is_planned_where_the_catalog_had_it_unverified(profile):
    assert load_catalog().formats["gguf-q8_0"].status(compile="regional").status == "unverified"
    # many images: the 33 s compile pays for itself at 0.16 s against 0.247 s a step
    p = fluxplan.plan(H100, transformer="gguf-q8_0", offload="none", resolution="1024x1024", text_tokens=512,
                      images=50, profiles=[profile])
    assert p.choice.compile.value == "regional"
    one = fluxplan.plan(H100, transformer="gguf-q8_0", offload="none", resolution="1024x1024", text_tokens=512,
                        images=1, profiles=[profile])
    assert one.choice.compile.value == "none"  # for one image the compile costs more than it saves


def test_a_full_compile_is_measured_apart_from_the_regional_one(profile):
    full, regional = profile.compiled("gguf-q8_0", "full"), profile.compiled("gguf-q8_0", "regional")
    assert (full.status, full.seconds, regional.seconds) == ("ok", 140.0, 33.0)
    assert load_catalog().formats["gguf-q8_0"].status(compile="full").status == "unverified"
    # planned when the cheaper regional compile is not allowed (pinned full): its own step and its own compile time
    p = fluxplan.plan(H100, transformer="gguf-q8_0", compile="full", offload="none", resolution="1024x1024",
                      steps=28, profiles=[profile])
    assert p.estimate.latency.denoise_step_s == pytest.approx(0.15)
    assert "cold compile 140.0 s" in p.estimate.sources["compile"].source
    # many images: both compile, the regional one is both faster to compile and measured faster per step here
    many = fluxplan.plan(H100, transformer="gguf-q8_0", offload="none", resolution="1024x1024", steps=28, images=50,
                         profiles=[profile])
    assert many.choice.compile.value == "regional"


def test_a_compile_measured_to_fail_is_refused_with_the_measured_error_even_when_pinned(profile):
    with pytest.raises(Infeasible) as e:
        fluxplan.plan(H100, transformer="fp8-layerwise", compile="regional", offload="none", profiles=[profile])
    assert "nn.Parameter()" in str(e.value) + " ".join(str(b) for b in e.value.binding)


def test_a_compile_that_timed_out_leaves_the_catalog_in_charge(profile):
    # torchao int8 weight-only: the catalog's regional status is unverified, so an unpinned plan does not take it
    p = fluxplan.plan(H100, transformer="torchao-int8wo", offload="none", images=50, profiles=[profile])
    assert p.choice.compile.value != "regional"
    # pinned, its compile costs at least the limit it did not finish within (the catalog has no regional figure)
    pinned = fluxplan.plan(H100, transformer="torchao-int8wo", offload="none", compile="regional", profiles=[profile])
    eager = fluxplan.plan(H100, transformer="torchao-int8wo", offload="none", compile="none", profiles=[profile])
    assert pinned.estimate.latency.one_off_s - eager.estimate.latency.one_off_s >= 75.0


def test_a_later_folder_keeps_an_earlier_compile_it_could_not_repeat():
    earlier = _doc([_eager("bf16")], [_compiled("gguf-q8_0", 33.0, 0.16)])
    later = _doc([_eager("bf16")], [_failed("gguf-q8_0", "timeout: past the 75 s limit per compile"),
                                     _compiled("bf16", 20.0, 0.12)])
    merged = {r["format"]: r for r in merge_blocks([earlier, later])["compiled"]}
    assert merged["gguf-q8_0@regional"]["ok"] and merged["bf16@regional"]["compile_s"] == 20.0


def test_a_later_folder_that_never_reached_a_task_keeps_the_earlier_failure():
    """A task skipped at a later run's deadline measured nothing: the earlier run's timeout and failure stay (the
    fresh H100's full run of session 7 had dropped torchao's two measured timeouts from the H100 profile)."""
    from fluxplan.profiling.blockpoints import compiled_points

    earlier = _doc([_eager("bf16")], [_failed("torchao-int8wo", "timeout: past the 150 s limit per compile"),
                                      _failed("fp8-layerwise", "Unsupported: nn.Parameter with Dynamo")])
    later = _doc([_eager("bf16")], [_failed("torchao-int8wo", "skipped: past the deadline"),
                                    _failed("fp8-layerwise", "timeout: past the deadline")])
    _, measures = compiled_points(merge_blocks([earlier, later]))
    assert {(m["format"], m["status"], m["seconds"]) for m in measures} == {
        ("torchao-int8wo", "timeout", 150.0), ("fp8-layerwise", "fails", None)}


def test_the_profiler_measures_eager_blocks_then_compiles_in_order_and_the_slow_loaders_at_the_very_end():
    formats = ["bf16", "quanto-int4", "gguf-q2_k", "torchao-int8wo", "gguf-q8_0"]
    # quanto int4 quantizes on load past the per-format limit: not in the blocks stage, whose time the pipelines share
    assert block_tasks(formats) == ["bf16", "gguf-q2_k", "torchao-int8wo", "gguf-q8_0"]
    # compile: the formats plans use most first, torchao int8 (no compile within 150 s on an H100) after them,
    # formats COMPILE_ORDER does not name last; then the slow-loading ones eager, with what time is left
    assert last_tasks(formats) == ["bf16@regional", "gguf-q8_0@regional", "torchao-int8wo@regional",
                                   "gguf-q2_k@regional", "quanto-int4"]


@pytest.fixture(scope="module")
def block_model():
    pytest.importorskip("diffusers")
    from fluxplan.run.synth import ensure_block_model

    return ensure_block_model("tiny")


def test_a_compile_task_times_the_cold_compile_and_records_a_failing_one(block_model, tmp_path):
    """Real torch.compile (Inductor on the CPU) of the tiny block model, regional and full: about a minute."""
    from fluxplan.profiling.blocks import parent

    path = parent(["bf16@regional", "fp8-layerwise@regional", "bf16@full"], tmp_path, kind="tiny", device="cpu",
                  quick=True, limit=120, deadline=400)
    doc = json.loads(Path(path).read_text())
    assert doc["formats"] == []
    rows = {r["format"]: r for r in doc["compiled"]}
    bf16 = rows["bf16@regional"]
    assert bf16["ok"] and bf16["base"] == "bf16" and bf16["compile"] == "regional"
    p = bf16["points"][0]
    # the first call compiled (seconds), the timed ones ran the compiled graphs (milliseconds)
    assert bf16["compile_s"] > 50 * p["stacked_s"] and p["first_s"] > bf16["compile_s"]
    fp8 = rows["fp8-layerwise@regional"]
    assert not fp8["ok"] and "Dynamo" in fp8["error"] and fp8["base"] == "fp8-layerwise"
    full = rows["bf16@full"]  # the whole stacked forward traced and compiled: a compile task of its own
    assert full["ok"] and full["compile"] == "full" and full["compile_s"] > 50 * full["points"][0]["stacked_s"]


@pytest.mark.parametrize("args", [["--formats", "bf16@sideways"], ["--compile-tokens", "4k"]])
def test_the_block_profilers_mistyped_task_is_a_usage_error_before_anything_is_written(args, tmp_path, capsys):
    from fluxplan.profiling.blocks import main as blocks_main

    with pytest.raises(SystemExit) as e:
        blocks_main(["--out", str(tmp_path / "out"), *args])
    assert e.value.code == 2
    assert "error: " in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_formats_and_compile_modes_not_measured_here_take_the_references_ratio_to_bf16(tmp_path):
    """--quick measures bf16 and fp8 layerwise casting alone, and the full run compiles what its deadline reaches:
    every other format and compile mode the bundled profile measured is carried over as its ratio to that profile's
    bf16 at the same tokens and mode, times bf16 here (bf16's eager ratio where bf16 was not compiled here),
    labelled derived; what was measured here is kept as measured."""
    d = tmp_path / "quick"
    d.mkdir()
    (d / "blocks.json").write_text(json.dumps(_doc([_eager("bf16", 0.9), _eager("gguf-q8_0", 1.3)],
                                                   [_compiled("bf16", 20.0, 0.11, sizes=1)])))
    out = tmp_path / "p.json"
    assert main(["profile", "--from-results", str(d), "--out", str(out)]) == 0
    from fluxplan.cost.profile import profile_dirs

    bundled = [json.loads(p.read_text()) for f in profile_dirs(include_local=False) for p in sorted(f.glob("*.json"))]
    refs = {r["gpu"]: r for r in bundled}
    got = json.loads(out.read_text())
    mine = {(p["format"], p["compile"]) for p in got["forward"] if p["kind"] == "measured"}
    assert mine == {("bf16", "none"), ("gguf-q8_0", "none"), ("bf16", "regional")}

    def bf16(points, mode, tokens):
        return next(p["seconds"] for p in points if p["format"] == "bf16" and p["compile"] == mode
                    and p["kind"] == "measured" and (p["image_tokens"], p["text_tokens"], p["batch"]) == tokens)
    derived = [p for p in got["forward"] if p["kind"] == "derived"]
    assert {p["format"] for p in derived} >= {"bnb-nf4", "torchao-int8wo", "gguf-q4_0"}
    assert not any((p["format"], p["compile"]) in mine for p in derived)
    checked = 0
    for p in derived:  # from the first bundled profile that measured the format and mode (sorted by name)
        ref = refs[p["source"].removeprefix("derived: ").split("'s point")[0]]
        assert ref is next(r for r in bundled if any(q["kind"] == "measured" and (q["format"], q["compile"]) ==
                                                     (p["format"], p["compile"]) for q in r["forward"]))
        tokens = (p["image_tokens"], p["text_tokens"], p["batch"])
        there = next(q for q in ref["forward"] if q["kind"] == "measured" and (q["format"], q["compile"]) ==
                     (p["format"], p["compile"]) and (q["image_tokens"], q["text_tokens"], q["batch"]) == tokens)
        mode = p["compile"] if (p["compile"], tokens) == ("regional", (4096, 512, 1)) else "none"
        assert p["seconds"] == pytest.approx(there["seconds"] * bf16(got["forward"], mode, tokens)
                                             / bf16(ref["forward"], mode, tokens))
        checked += 1
    assert checked == len(derived) > 20
    carried = {(c["format"], c["mode"]): c for c in got["compile"] if c["kind"] == "derived"}
    assert carried[("fp8-layerwise", "regional")]["status"] == "fails"
    assert "derived from NVIDIA H100 80GB HBM3" in got["provenance"]["summary"]
    with pytest.raises(Infeasible) as e:  # whether a format compiles, as the reference measured it, says so
        fluxplan.plan(H100, transformer="fp8-layerwise", compile="regional", offload="none",
                      profiles=[load_profile_file(out)])
    assert "derived: NVIDIA H100 80GB HBM3's point (measured)" in str(e.value) + " ".join(
        str(b) for b in e.value.binding)
