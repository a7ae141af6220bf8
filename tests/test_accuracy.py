"""Predictions against held-out measurements: recompute the planner's estimates for every committed
validation run (benchmarks/results/*/validate.jsonl) and hold them to the bounds: against the profile of the
GPU measured (peak -3/+5 %, step time ±15 %), and against another GPU's profile scaled by the spec database
(latency ±30 %, peak -3/+5 %). The scaled path itself is checked on made-up results folders."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402

H100_RESULTS = ROOT / "benchmarks" / "results" / "h100-2026-11-22"
H100_PROFILE = Path("profiles") / "nvidia-h100-80gb-hbm3.json"
H100 = "NVIDIA H100 80GB HBM3"
PROFILES = accuracy.repo_profiles()
PAIRS = accuracy.pairs(PROFILES)
MEASURED = [p for p in PAIRS if not p[3]]
SCALED = [p for p in PAIRS if p[3]]


# Held-out runs outside their bounds, each with its cause, measured (docs/ACCURACY.md, "Repeatability"): the step of
# these configurations is bound by the host or by host-to-GPU transfers, and the same configuration measured
# again on other machines of the same GPU kind spreads wider than the bound. The tests below fail when any other
# run leaves its bounds, and when one of these comes back inside them (then it leaves this list). None of them is
# an under-prediction of memory: that bound has no exceptions.
HOST_BOUND_SEQUENTIAL = "sequential offload's step is host-bound: 3.7-5.5 s for the same run at 1024x1024 on three H100s"
NF4_SMALL = "NF4 at small sizes is host-bound: 0.109-0.143 s at 768x768 on three H200s"
GROUP_LEAF_QUANTIZED = ("group-leaf offload of GGUF Q4_0 or torchao int8 on the H200: what the streams leave "
                        "unhidden (GROUP_UNHIDDEN_S) was fitted on an H100, and three H200s hid more of it (torchao "
                        "int8 at 768x768 0.388-0.394 s, 0.598 s on an H100, where it is within -6 %; Q4_0 at "
                        "1024x1024 0.464-0.520 s, 0.653 s on an H100, +4.8 %)")
KNOWN = {  # (results folder, profile's GPU, what): {(configuration, width, height, batch): cause}
    ("h100-2026-11-22", H100, "step"): {("bf16 + T5 bf16 + offload sequential", 768, 768, 1): HOST_BOUND_SEQUENTIAL},
    ("h200-2026-11-22", "NVIDIA H200", "step"): {("bnb-nf4 + T5 bf16", 768, 768, 1): NF4_SMALL,
                                                  ("bnb-nf4 + T5 bf16", 1024, 1536, 1): NF4_SMALL},
    ("h200-2026-11-22-s5", "NVIDIA H200", "step"): {("gguf-q4_0 + T5 torchao-int8wo (free) + offload group-leaf", 1024, 1024, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-22-s5", H100, "latency"): {("gguf-q4_0 + T5 torchao-int8wo (free) + offload group-leaf", 1024, 1024, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8", "NVIDIA H200", "step"): {
        ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8", H100, "latency"): {
        ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8", "NVIDIA H200", "quick latency"): {
        ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8-again", "NVIDIA H200", "step"): {("gguf-q4_0 + T5 torchao-int8wo (free) + offload group-leaf", 1024, 1024, 1): GROUP_LEAF_QUANTIZED, ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8-again", H100, "latency"): {("gguf-q4_0 + T5 torchao-int8wo (free) + offload group-leaf", 1024, 1024, 1): GROUP_LEAF_QUANTIZED, ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
    ("h200-2026-11-23-s8-again", "NVIDIA H200", "quick latency"): {("gguf-q4_0 + T5 torchao-int8wo (free) + offload group-leaf", 1024, 1024, 1): GROUP_LEAF_QUANTIZED,
                                                                    ("torchao-int8wo + T5 bf16 (free) + offload group-leaf", 768, 768, 1): GROUP_LEAF_QUANTIZED},
}


def _ids(pairs):
    return [f"{folder.name}-from-{Path(profile).stem}" for folder, profile, _, _ in pairs]


def _known(rows, what):
    return set(KNOWN.get((rows.folder, rows.profile_gpu, what), {}))


def _key(r):
    return (r["label"], r["width"], r["height"], r["batch"])


class Rows(list):
    """A pair's compared rows, with the folder and the profile's GPU they came from."""
    folder: str
    profile_gpu: str


def _rows(request, scaled: bool):
    folder, profile, gpu, _ = request.param
    rows = Rows(accuracy.compare(folder, [PROFILES[profile]], gpu))
    rows.folder, rows.profile_gpu = folder.name, PROFILES[profile].gpu
    tried = sum(1 for line in (folder / "validate.jsonl").read_text().splitlines() if line.strip())
    assert len(rows) >= 3 and len(rows) >= tried / 2, "a validation run with too few successful rows"
    assert all(r["scaled"] == scaled for r in rows)
    return rows


@pytest.fixture(scope="module", params=MEASURED, ids=_ids(MEASURED))
def rows(request):
    return _rows(request, scaled=False)


def test_every_known_miss_names_a_committed_run():
    found = {(folder.name, PROFILES[profile].gpu) for folder, profile, _, _ in PAIRS}
    assert {(f, g) for f, g, _ in KNOWN} <= found


def test_the_h100_results_are_compared_with_the_h100_profile():
    assert (H100_RESULTS, H100_PROFILE, H100, False) in PAIRS


def test_peak_memory_is_never_under_predicted_by_more_than_3_percent(rows):
    under = [(r["label"], r["width"], r["height"], r["batch"], round(r["peak_err"], 3)) for r in rows
             if r["peak_err"] < -accuracy.PEAK_UNDER]
    assert not under


def test_peak_memory_is_within_5_percent_over(rows):
    over = {_key(r) for r in rows if r["peak_err"] > accuracy.PEAK_OVER}
    assert over == _known(rows, "peak")


def test_step_time_is_within_15_percent(rows):
    off = {_key(r) for r in rows if abs(r["step_err"]) > accuracy.STEP_ERR}
    assert off == _known(rows, "step")


def test_the_committed_report_is_current():
    assert (ROOT / "docs" / "ACCURACY.md").read_text() == accuracy.document()


# ------------------------------------------------------------------ committed results of a scaled GPU


@pytest.fixture(scope="module", params=SCALED, ids=_ids(SCALED))
def scaled_rows(request):
    return _rows(request, scaled=True)


def test_scaled_latency_is_within_30_percent(scaled_rows):
    off = {_key(r) for r in scaled_rows if not accuracy.latency_within(r)}
    assert off == _known(scaled_rows, "latency")


def test_scaled_peak_memory_is_within_bounds(scaled_rows):
    assert not [r for r in scaled_rows if r["peak_err"] < -accuracy.PEAK_UNDER]
    over = {_key(r) for r in scaled_rows if r["peak_err"] > accuracy.PEAK_OVER}
    assert over == _known(scaled_rows, "peak")


# ------------------------------------------------------------------ the scaled path, on made-up results


def _h100():
    from fluxplan.catalog.gpus import find_gpu

    return find_gpu(H100)


def _profile():
    return PROFILES[H100_PROFILE]


def _fake_results(tmp_path: Path, gpu: str, change=None, name: str = "fake") -> Path:
    """The H100's validation rows, without the first (cold) row of each build, relabelled as measured on `gpu`;
    `change(row)` alters rows."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    seen, rows = set(), []
    for r in accuracy.load_rows(H100_RESULTS):
        if not r.get("ok"):
            continue
        key = (r["transformer"], r["text_encoder_2"], r["text_encoder_placement"], r["offload"])
        if key not in seen or r["text_encoder_placement"] == "free":  # the first shape of a build, cold
            seen.add(key)
            continue
        r = {**r, "gpu": gpu, "warmup": True}  # the cold rows are left out above
        if change is not None:
            change(r)
        rows.append(r)
    (folder / "validate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


NUMBERS = ("pred_peak", "pred_step", "pred_latency", "peak_err", "step_err", "latency_err")


def test_scaling_to_a_gpu_with_the_same_specs_gives_the_unscaled_numbers():
    twin = _h100().model_copy(update={"name": "Twin of the H100"})
    direct = accuracy.compare(H100_RESULTS)
    scaled = accuracy.compare(H100_RESULTS, [_profile()], twin)
    assert len(direct) == len(scaled) >= 10
    assert not any(r["scaled"] for r in direct) and all(r["scaled"] for r in scaled)
    for a, b in zip(direct, scaled):
        assert [b[k] for k in NUMBERS] == pytest.approx([a[k] for k in NUMBERS], rel=1e-12), a["label"]


def test_scaled_predictions_follow_the_specs():
    """Twice the tensor throughput halves compute-bound latency; twice the PCIe halves offload transfers;
    memory does not change."""
    twin = _h100().model_copy(update={"name": "Twin of the H100"})
    fast = twin.model_copy(update={"name": "Fast H100", "bf16_tflops": 2 * twin.bf16_tflops,
                                   "fp8_tflops": 2 * twin.fp8_tflops, "int8_tops": 2 * twin.int8_tops,
                                   "pcie_lanes": 2 * twin.pcie_lanes})
    base = accuracy.compare(H100_RESULTS, [_profile()], twin)
    quick = accuracy.compare(H100_RESULTS, [_profile()], fast)
    for a, b in zip(base, quick):
        assert b["pred_peak"] == pytest.approx(a["pred_peak"], rel=1e-12)
        if a["offload"] in ("none", "group-leaf"):
            assert b["pred_step"] == pytest.approx(a["pred_step"] / 2, rel=1e-9), a["label"]
        if a["offload"] == "none":
            assert b["pred_latency"] == pytest.approx(a["pred_latency"] / 2, rel=1e-9), a["label"]
    assert any(a["offload"] == "model" for a in base)


def test_the_h200_is_predicted_from_the_h100_profile(tmp_path):
    """The results name their GPU; the H200 (same dense throughput as the H100 SXM, more memory bandwidth) gets
    the H100's step times from the H100 profile alone, and the H100's measurements fall within the bounds."""
    folder = _fake_results(tmp_path, "NVIDIA H200")
    assert accuracy.results_gpu(folder) == "NVIDIA H200"
    rows = accuracy.compare(folder, [_profile()])
    h100 = {(r["label"], r["width"], r["height"], r["batch"], r["text_tokens"]): r
            for r in accuracy.compare(H100_RESULTS)}
    assert rows and all(r["scaled"] and r["profile_gpu"] == H100 for r in rows)
    for r in rows:
        same = h100[(r["label"], r["width"], r["height"], r["batch"], r["text_tokens"])]
        assert r["pred_step"] == pytest.approx(same["pred_step"], rel=1e-9)
        assert r["pred_peak"] == pytest.approx(same["pred_peak"], rel=1e-9)
    assert all(accuracy.latency_within(r) and accuracy.peak_within(r) for r in rows)


def test_a_wrong_measurement_exceeds_the_bounds(tmp_path):
    def change(r):
        if (r["transformer"], r["offload"], r["width"], r["height"], r["batch"]) == ("bf16", "none", 1536, 1536, 1):
            r["step_s"] *= 2  # the H200 "measured" twice as slow: predicted latency about -50 %
            r["first_step_s"] *= 2
        if (r["transformer"], r["width"], r["height"]) == ("bnb-nf4", 2048, 2048):
            r["peak_nvml_gib"] *= 1.10  # memory under-predicted by about 9 %

    folder = _fake_results(tmp_path, "NVIDIA H200", change)
    rows = accuracy.compare(folder, [_profile()])
    slow = [r for r in rows if not accuracy.latency_within(r)]
    assert [(r["label"], r["width"], r["height"]) for r in slow] == [("bf16 + T5 bf16", 1536, 1536)]
    assert slow[0]["latency_err"] < -accuracy.SCALED_ERR
    low = [r for r in rows if not accuracy.peak_within(r)]
    assert [(r["label"], r["width"]) for r in low] == [("bnb-nf4 + T5 bf16", 2048)]
    text = accuracy.section(folder, H100_PROFILE, "NVIDIA H200", True, PROFILES)
    table = [line for line in text.splitlines() if line.startswith("| bf16 + T5 bf16 | 1536x1536 |")]
    assert table and table[0].endswith("| **no** | yes |")
    assert f"{len(rows) - 1} of {len(rows)} within ±30%" in text


def test_the_sweep_is_compared_component_by_component(tmp_path):
    sweep = json.loads((H100_RESULTS / "sweep.json").read_text())
    same = accuracy.compare_sweep({**sweep, "gpu": "NVIDIA H200"}, [_profile()])
    forward = [c for c in same if c["what"] == "forward bf16"]
    assert len(forward) == len(sweep["forward"]) and all(abs(c["err"]) < 0.05 for c in forward)
    assert {c["what"] for c in same} >= {"VAE decode", "VAE decode tiled", "T5 encode"}
    slower = {**sweep, "gpu": "NVIDIA H200",
              "forward": [{**p, "seconds": p["seconds"] * 1.6} for p in sweep["forward"]]}
    off = [c for c in accuracy.compare_sweep(slower, [_profile()]) if c["what"] == "forward bf16"]
    assert all(c["err"] < -accuracy.SCALED_ERR for c in off)


def test_the_page_gets_a_scaled_section_once_another_gpu_is_measured(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    shutil.copy(ROOT / H100_PROFILE, tmp_path / H100_PROFILE)
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(H100_RESULTS, results / H100_RESULTS.name)
    monkeypatch.setattr(accuracy, "ROOT", tmp_path)
    assert "## Scaled: a GPU predicted from another GPU's profile" in accuracy.document()
    folder = _fake_results(results, "NVIDIA H200", name="h200-2099-01-01")
    sweep = json.loads((H100_RESULTS / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**sweep, "gpu": "NVIDIA H200"}))
    assert [(p[0].name, p[3]) for p in accuracy.pairs()] == [(H100_RESULTS.name, False), (folder.name, True)]
    page = accuracy.document()
    assert f"## Measured: {H100} against its own profile" in page
    assert f"## Scaled: NVIDIA H200 predicted from the {H100} profile alone" in page
    assert "benchmarks/results/h200-2099-01-01" in page and "| forward bf16 |" in page
    assert "another GPU's profile\n" not in page


def test_the_command_line_prints_one_scaled_section(tmp_path, monkeypatch, capsys):
    folder = _fake_results(tmp_path, "NVIDIA H200")
    monkeypatch.setattr(sys, "argv", ["accuracy.py", "--results", str(folder), "--profiles",
                                      str(ROOT / H100_PROFILE), "--gpu", "NVIDIA H200"])
    accuracy.main()
    out = capsys.readouterr().out
    assert out.startswith(f"## Scaled: NVIDIA H200 predicted from the {H100} profile alone")
    assert "within ±30%" in out


def test_the_emulated_card_runs_without_group_offload_keep_their_step_within_15_percent():
    """The emulated-card matrix's uncapped runs cover model offload and T5 on the CPU at four shapes; no cost-model
    term was fitted on their step times, so those are held to the measured-GPU bound. Its sequential runs are
    not: sequential offload's step is host-bound and spreads wider than the bound between machines (KNOWN)."""
    rows = accuracy.compare_cards(accuracy.ROOT)
    held = [r for r in rows if not r["group"] and r["candidate"]["offload"] != "sequential"]  # HOST_BOUND_SEQUENTIAL
    assert {r["candidate"]["offload"] for r in held} >= {"none", "model"}
    assert all(abs(r["step_err"]) <= accuracy.STEP_ERR for r in held), [
        (r["label"], r["shape"], round(r["step_err"], 3)) for r in held if abs(r["step_err"]) > accuracy.STEP_ERR]


def _plan(offload="none", tokens=4096):
    from types import SimpleNamespace

    from fluxplan.models import Offload

    return SimpleNamespace(profile_measured_here=True, profile=H100, choice=SimpleNamespace(offload=Offload(offload)),
                           request=SimpleNamespace(image_tokens=tokens))


def test_explain_quotes_the_committed_held_out_errors():
    """What `fluxplan explain` tells a user about a measured GPU's estimate is the committed validation's result:
    every held-out run against its own GPU's profile."""
    from fluxplan.explain import uncertainty

    rows = [r for folder, profile, gpu, _ in MEASURED for r in accuracy.compare(folder, [PROFILES[profile]], gpu)]
    low = min(r["peak_err"] for r in rows)
    high = max(r["peak_err"] for r in rows)
    held = sum(abs(r["step_err"]) <= accuracy.STEP_ERR for r in rows)
    said = uncertainty(_plan())
    assert f"held-out runs: {low:+.1%} to {high:+.1%}".replace("%", " %") in said["peak_vram"]
    assert said["latency"] == f"within +-15 % per step (measured on this GPU; {held} of {len(rows)} held-out runs)"


def test_explain_gives_a_host_bound_plan_the_spread_its_kind_of_run_has_shown():
    """The spread quoted for a host-bound plan is the widest max / min of the committed runs of that kind."""
    from fluxplan.explain import HOST_BOUND_SPREAD, SMALL_IMAGE_TOKENS, host_bound, uncertainty
    from fluxplan.models import Offload

    widest: dict[str, float] = {}
    for configs in accuracy._runs_by_gpu(accuracy.ROOT).values():
        for (tf, t5, placement, off, tiling, w, h, batch, tokens), runs in configs.items():
            kind = host_bound(Offload(off), (w // 16) * (h // 16))
            if kind is None or len(runs) < 2:
                continue
            steps = [x for _, x in runs]
            widest[kind] = max(widest.get(kind, 1.0), max(steps) / min(steps))
    assert {k: round(v, 2) for k, v in widest.items()} == HOST_BOUND_SPREAD
    said = uncertainty(_plan("sequential"))["latency"]
    assert said.endswith(f"bound by the host (sequential offload): the same run has differed by up to "
                         f"{HOST_BOUND_SPREAD['sequential offload']:.2f}x between machines of one GPU kind")
    assert "group offload" in uncertainty(_plan("group-block"))["latency"]
    assert "small image" in uncertainty(_plan("none", SMALL_IMAGE_TOKENS))["latency"]
    assert "host" not in uncertainty(_plan("model", 4096))["latency"]


@pytest.fixture(scope="module", params=accuracy.QUICK, ids=[Path(f).parent.name for f, _ in accuracy.QUICK])
def quick_rows(request):
    """A GPU's held-out runs against the profile its --quick blocks make with the other GPU's profile alone."""
    rows = accuracy.compare_quick(Path(request.param[0]), Path(request.param[1]))
    assert len(rows) >= 40 and all(not r["scaled"] for r in rows)
    return rows


def test_a_quick_calibrated_gpus_peaks_are_within_bounds(quick_rows):
    bad = [(r["source"], r["label"], r["width"], r["height"], round(r["peak_err"], 3)) for r in quick_rows
           if not -accuracy.PEAK_UNDER <= r["peak_err"] <= accuracy.PEAK_OVER]
    assert not bad


def test_a_quick_calibrated_gpus_latency_is_within_the_scaled_bound(quick_rows):
    known = {(src, key) for (src, _, what), keys in KNOWN.items() if what == "quick latency" for key in keys}
    out = {(r["source"], _key(r)) for r in quick_rows if not accuracy.latency_within(r)}
    assert out == {k for k in known if k[0] in {r["source"] for r in quick_rows}}
