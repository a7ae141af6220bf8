"""Predictions against held-out measurements: recompute the planner's estimates for every committed
validation run (benchmarks/results/*/validate.jsonl, measured on an H100) and hold them to the bounds."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402

RUNS = sorted(ROOT.glob("benchmarks/results/*/validate.jsonl"))


@pytest.fixture(scope="module", params=RUNS, ids=[p.parent.name for p in RUNS])
def rows(request):
    rows = accuracy.compare(request.param)
    assert len(rows) >= 10, "a validation run with too few successful rows"
    return rows


def test_peak_memory_is_never_under_predicted_by_more_than_3_percent(rows):
    under = [(r["label"], r["width"], r["height"], r["batch"], round(r["peak_err"], 3)) for r in rows
             if r["peak_err"] < -accuracy.PEAK_UNDER]
    assert not under


def test_peak_memory_is_within_5_percent_over(rows):
    over = [(r["label"], r["width"], r["height"], r["batch"], round(r["peak_err"], 3)) for r in rows
            if r["peak_err"] > accuracy.PEAK_OVER]
    assert not over


def test_step_time_is_within_15_percent(rows):
    off = [(r["label"], r["width"], r["height"], r["batch"], round(r["step_err"], 3)) for r in rows
           if abs(r["step_err"]) > accuracy.STEP_ERR]
    assert not off


def test_the_committed_report_is_current():
    for run in RUNS:
        doc = (ROOT / "docs" / "ACCURACY.md").read_text()
        assert doc == accuracy.report(accuracy.compare(run), run.relative_to(ROOT))
