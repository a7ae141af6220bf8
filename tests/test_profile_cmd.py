"""`fluxplan profile`: a profile rebuilt from measurements is valid and used by the planner; bad measurements
are refused with one line and never replace the previous profile."""

import json
import shutil
from pathlib import Path

import pytest

from fluxplan.cli.main import main
from fluxplan.cost.profile import load_profile_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h100-2026-11-22"
COMMITTED = ROOT / "profiles" / "nvidia-h100-80gb-hbm3.json"


@pytest.mark.parametrize("name", ["nvidia-h100-80gb-hbm3", "nvidia-h200"])
def test_rebuilding_a_committed_profile_from_its_measurements_gives_the_same_numbers(tmp_path, capsys, name):
    committed = json.loads((ROOT / "profiles" / f"{name}.json").read_text())
    words = committed["provenance"]["command"].split()  # fluxplan profile --from-results A --from-results B ...
    folders = [words[i + 1] for i, w in enumerate(words) if w == "--from-results"]
    assert folders and all((ROOT / f).is_dir() for f in folders)
    out = tmp_path / "p.json"
    args = [a for f in folders for a in ("--from-results", str(ROOT / f))]
    assert main(["profile", *args, "--out", str(out)]) == 0
    rebuilt = json.loads(out.read_text())
    for part in ("forward", "offload", "encode", "decode", "memory", "compile"):
        assert rebuilt.get(part, []) == committed.get(part, []), part
    assert load_profile_file(out).gpu == committed["gpu"]


def test_folders_of_different_gpus_make_no_profile(tmp_path, capsys):
    out = tmp_path / "p.json"
    h200 = ROOT / "benchmarks" / "results" / "h200-2026-11-22-s5" / "full"
    code = main(["profile", "--from-results", str(RESULTS), "--from-results", str(h200), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "different GPUs" in err and "NVIDIA H200" in err and "H100" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("second,needle", [("missing", "no such folder"), ("empty", "holds no blocks.json")])
def test_a_wrong_folder_among_several_is_refused(tmp_path, capsys, second, needle):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "p.json"
    code = main(["profile", "--from-results", str(RESULTS), "--from-results", str(tmp_path / second), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and str(tmp_path / second) in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_missing_folder_is_refused_before_the_default_target_is_read_from_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    assert main(["profile", "--from-results", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "profiles").exists()


def test_a_format_that_failed_later_keeps_its_earlier_blocks():
    from fluxplan.profiling.build import merge_blocks

    earlier = {"gpu": "G", "date": "1", "formats": [{"format": "a", "ok": True, "n": 1}, {"format": "b", "ok": True, "n": 1},
                                                     {"format": "c", "ok": False, "error": "x"}]}
    later = {"gpu": "G", "date": "2", "formats": [{"format": "a", "ok": True, "n": 2},
                                                   {"format": "b", "ok": False, "error": "timeout"},
                                                   {"format": "c", "ok": False, "error": "y"}]}
    merged = merge_blocks([earlier, later])
    rows = {r["format"]: r for r in merged["formats"]}
    assert merged["date"] == "2" and rows["a"]["n"] == 2 and rows["b"]["n"] == 1 and rows["c"]["error"] == "y"


def test_blocks_measured_in_several_folders_are_their_median_point_by_point():
    from fluxplan.profiling.build import merge_blocks

    def doc(stacked, date, fmt_ok=True):
        points = [{"image_tokens": 1024, "text_tokens": 512, "batch": 1, "stacked_s": stacked, "double_s": stacked / 60,
                   "reserved_gib": 0.3}]
        if stacked > 0.2:  # only the slowest folder measured a second point
            points.append({"image_tokens": 4096, "text_tokens": 512, "batch": 1, "stacked_s": 0.5, "reserved_gib": 1.0})
        return {"gpu": "G", "date": date, "formats": [{"format": "bf16", "ok": fmt_ok, "points": points}]}
    older = doc(0.9, "0")  # a folder from before the stacked forward: its points have no stacked_s
    for p in older["formats"][0]["points"]:
        del p["stacked_s"]
    merged = merge_blocks([older, doc(0.06, "1"), doc(0.3, "2"), doc(0.07, "3")])
    row = merged["formats"][0]
    assert merged["date"] == "3" and row["runs"] == 4
    # stacked_s: the median of the three that measured it (it was the latest's alone when one folder lacked it)
    assert row["points"][0]["stacked_s"] == 0.07
    assert row["points"][0]["double_s"] == pytest.approx((0.07 + 0.3) / 2 / 60)  # of all four
    # a point only an earlier folder measured is kept as measured there (a compile task run at 4096 tokens alone
    # last must not drop an earlier run's 1024: it did, and bf16 compiled at 768x768 went from -1.4 % to +15.4 %)
    assert [(p["image_tokens"], p["stacked_s"]) for p in row["points"]] == [(1024, 0.07), (4096, 0.5)]


def test_several_folders_make_one_profile_with_repeated_runs_as_their_median(tmp_path, capsys):
    from fluxplan.profiling.build import combine

    rows = [{"format": "bf16", "offload": "group-leaf", "ok": True, "step_s": s, "first_step_s": 1.0,
             "phase_peak_reserved_gib": {"encode": 9.0 + k, "denoise": 10.0, "decode": 14.0}}
            for k, s in enumerate([0.5, 0.9, 0.6])]
    rows.append({"format": "bf16", "offload": "sequential", "ok": False, "error": "x"})
    out = combine(rows)
    ok = [r for r in out if r.get("ok")]
    assert len(ok) == 1 and ok[0]["step_s"] == 0.6 and ok[0]["runs"] == 3
    assert ok[0]["phase_peak_reserved_gib"]["encode"] == 10.0
    assert [r for r in out if not r.get("ok")] == rows[3:]


def test_a_profile_in_the_cache_is_what_the_planner_uses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    assert main(["profile", "--from-results", str(RESULTS)]) == 0
    written = tmp_path / "profiles" / "nvidia-h100-80gb-hbm3.json"
    assert written.is_file()
    from fluxplan.cost import profile as prof_mod

    prof_mod.bundled_profiles.cache_clear()
    try:
        found = [p for p in prof_mod.profile_dirs() if p == tmp_path / "profiles"]
        assert found, "the cache's profiles come first"
    finally:
        prof_mod.bundled_profiles.cache_clear()


def _results(tmp_path: Path, mutate) -> Path:
    d = tmp_path / "results"
    shutil.copytree(RESULTS, d)
    mutate(d)
    return d


def _edit_matrix(fn):
    def mutate(d: Path):
        rows = [json.loads(x) for x in (d / "matrix.jsonl").read_text().splitlines()]
        (d / "matrix.jsonl").write_text("\n".join(json.dumps(r) for r in fn(rows)) + "\n")
    return mutate


def _negative_step(rows):
    for r in rows:
        if r["format"] == "bnb-nf4" and r["offload"] == "none":
            r["step_s"] = -0.2
    return rows


def _peak_below_weights(rows):
    for r in rows:
        if r["format"] == "bnb-nf4" and r["offload"] == "none":
            r["peak_reserved_gib"] = 3.0
            r["phase_peak_reserved_gib"] = {k: 3.0 for k in r["phase_peak_reserved_gib"]}
    return rows


@pytest.mark.parametrize("mutate,needle", [
    (_edit_matrix(_peak_below_weights), "below its transformer's weights"),
    (lambda d: [(d / n).unlink() for n in ("sweep.json", "blocks.json")], "no blocks.json, and no sweep.json"),
    (_edit_matrix(lambda rows: [r for r in rows if r["format"] != "bf16"]), "cannot make a profile"),
    (_edit_matrix(_negative_step), "seconds"),
])
def test_bad_measurements_are_refused_and_the_previous_profile_stays(tmp_path, capsys, mutate, needle):
    out = tmp_path / "p.json"
    out.write_text(COMMITTED.read_text())
    before = out.read_bytes()
    rc = main(["profile", "--from-results", str(_results(tmp_path, mutate)), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".p.json.tmp"))


def test_measuring_needs_a_gpu(capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["profile"]) == 2
    assert "--from-results" in capsys.readouterr().err


def test_compiled_rows_are_compile_points_and_leave_the_eager_ones_alone(tmp_path, capsys):
    """A matrix row run with --compile is that format's compiled forward point; the eager point of the same format
    (and what is derived from it: weights, activations, offload) still comes from the eager row."""
    from fluxplan.profiling.build import build

    rows = [json.loads(x) for x in (RESULTS / "matrix.jsonl").read_text().splitlines()]
    compiled = [r for r in rows if r.get("ok") and r.get("compile", "none") != "none" and r["offload"] == "none"]
    eager = next(r for r in rows if r["format"] == "bf16" and r["offload"] == "none" and r.get("ok")
                 and r.get("compile", "none") == "none")
    assert compiled, "the committed matrix holds compiled rows"
    prof = build([RESULTS], {"forward": []})
    points = {(p["format"], p["compile"]): p for p in prof["forward"] if p["image_tokens"] == 4096 and p["batch"] == 1}
    for r in compiled:
        assert points[r["format"], r["compile"]]["seconds"] == r["step_s"]
    assert points["bf16", "none"]["seconds"] == eager["step_s"]


def _stub_stages(tmp_path, monkeypatch, formats, spare, t5_formats=("bf16", "fp8-layerwise")):
    torch = pytest.importorskip("torch")
    from fluxplan.profiling import run as prun
    from fluxplan.run import synth

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(prun, "_usable_in_child",
                        lambda role=prun.TRANSFORMER: list(formats if role == prun.TRANSFORMER else t5_formats))
    monkeypatch.setattr(synth, "ensure_synthetic", lambda *a, **k: tmp_path / "dev-s0")
    monkeypatch.setattr(prun, "_start_synthetic", lambda py: None)  # built already
    stages = []

    def stage(name, cmd, started, timings, timeout=None):
        stages.append((name, cmd, prun.time.monotonic() - started, timeout))
        if name.startswith("confirming"):  # the confirming pipelines use all but `spare` of the deadline
            monkeypatch.setattr(prun.time, "monotonic", lambda: started + 500.0 - spare)
        if name.startswith("blocks"):
            (tmp_path / "r" / "blocks.json").write_text("{}")

    monkeypatch.setattr(prun, "_stage", stage)
    return prun, stages


@pytest.mark.parametrize("spare,compiled", [(200.0, True), (0.0, False)])
def test_a_full_profile_compiles_formats_with_the_time_the_pipelines_leave(tmp_path, monkeypatch, spare, compiled):
    """After the confirming pipelines (which stop COMPILE_RESERVE_S before the deadline), the full profile compiles
    formats regionally at block level, each in a process of its own, into the same results; stages run as their
    own processes (stubbed here)."""
    prun, stages = _stub_stages(tmp_path, monkeypatch, ["bf16", "gguf-q8_0", "quanto-int4"], spare)
    prun.measure(tmp_path / "r", quick=False, deadline=500.0)
    by_name = {n: (cmd, at) for n, cmd, at, _ in stages}
    cmd, at = by_name["confirming pipelines"]
    reserve = prun.COMPILE_RESERVE_S + prun.T5_FORMATS_S  # the T5 formats and the compile stage come after them
    assert float(cmd[cmd.index("--deadline") + 1]) == pytest.approx(500.0 - at - reserve, abs=1)
    assert ("compiled blocks" in by_name) is compiled
    if compiled:
        cmd, _ = by_name["compiled blocks"]
        assert "--append" in cmd  # beside the eager blocks, not in place of them
        # the slow-loading quanto int4 after the compile tasks, not in the blocks stage before the pipelines
        assert cmd[cmd.index("--formats") + 1] == "bf16@regional,gguf-q8_0@regional,quanto-int4"
        blocks_cmd, _ = by_name["blocks (2 formats)"]
        assert blocks_cmd[blocks_cmd.index("--formats") + 1] == "bf16,gguf-q8_0"
        assert float(cmd[cmd.index("--deadline") + 1]) == pytest.approx(spare - 5, abs=1)


@pytest.mark.parametrize("spare,measured", [(200.0, True), (70.0, False), (0.0, False)])
def test_a_full_profile_measures_t5_in_the_other_usable_formats_between_the_pipelines_and_compile(
        tmp_path, monkeypatch, spare, measured):
    """After the confirming pipelines, T5 in every usable T5 format but bf16 (the encode stage measured it) is
    measured from the synthetic checkpoint they used, into the same sweep.json, within T5_FORMATS_S and never into
    the compile stage's reserve; compile comes after it."""
    prun, stages = _stub_stages(tmp_path, monkeypatch, ["bf16", "gguf-q8_0"], spare,
                                t5_formats=["bf16", "quanto-int8", "torchao-int8wo", "fp8-layerwise"])
    prun.measure(tmp_path / "r", quick=False, deadline=500.0)
    names = [n for n, _, _, _ in stages]
    t5 = [(cmd, timeout) for n, cmd, _, timeout in stages if n.startswith("T5 formats")]
    assert bool(t5) is measured
    if measured:
        assert names.index("confirming pipelines") < names.index("T5 formats (2)") < names.index("compiled blocks")
        cmd, timeout = t5[0]
        assert cmd[cmd.index("--parts") + 1] == "t5formats" and "--append" in cmd  # beside encode and decode
        assert cmd[cmd.index("--model") + 1] == str(tmp_path / "dev-s0")
        # quanto int8 loads T5 in 104 s on an H200, past the stage's time: left out
        assert cmd[cmd.index("--t5-formats") + 1] == "fp8-layerwise,torchao-int8wo"
        assert timeout == pytest.approx(prun.T5_FORMATS_S, abs=1) and timeout <= spare - prun.COMPILE_RESERVE_S
        assert float(cmd[cmd.index("--deadline") + 1]) < timeout  # no format begins at the very end


def test_a_full_profile_builds_its_model_beside_the_usable_format_check_before_anything_is_timed(tmp_path,
                                                                                               monkeypatch):
    """On a fresh machine the synthetic FLUX.1-dev (68 s on an H100) is built while the usable formats are checked
    (30 s), neither timing anything, and is waited for before the blocks are timed; --quick builds nothing."""
    prun, stages = _stub_stages(tmp_path, monkeypatch, ["bf16"], 200.0)
    events = []

    class Build:
        def wait(self):
            events.append("built")
    usable = prun._usable_in_child
    monkeypatch.setattr(prun, "_start_synthetic", lambda py: events.append("build started") or Build())
    monkeypatch.setattr(prun, "_usable_in_child", lambda role=prun.TRANSFORMER: events.append(f"usable {role}")
                        or usable(role))
    real_stage = prun._stage
    monkeypatch.setattr(prun, "_stage", lambda name, *a, **k: events.append(name) or real_stage(name, *a, **k))
    prun.measure(tmp_path / "r", quick=False, deadline=500.0)
    assert events[:4] == ["build started", f"usable {prun.TRANSFORMER}", "built", "blocks (1 formats)"]
    events.clear()
    prun.measure(tmp_path / "r", quick=True, deadline=55.0)
    assert "build started" not in events


def test_a_quick_profile_measures_blocks_alone(tmp_path, monkeypatch):
    prun, stages = _stub_stages(tmp_path, monkeypatch, ["bf16"], 0.0)
    prun.measure(tmp_path / "r", quick=True, deadline=55.0)
    assert [n for n, _, _, _ in stages] == ["blocks (2 formats)"]
    cmd = stages[0][1]
    assert cmd[cmd.index("--formats") + 1] == "bf16,fp8-layerwise" and "--quick" in cmd


def test_a_stage_past_its_limit_is_stopped_and_recorded_so():
    import sys
    import time

    from fluxplan.profiling.run import _stage

    timings: list[str] = []
    t = time.monotonic()
    _stage("T5 formats (1)", [sys.executable, "-c", "import time; time.sleep(30)"], t, timings, timeout=1.0)
    assert time.monotonic() - t < 10 and timings[0].startswith("T5 formats (1): ")
    assert timings[0].endswith("stopped at its 1 s limit")
