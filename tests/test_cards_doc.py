"""docs/RELIABILITY.md's emulated-card section is what benchmarks/gpu/cards.py makes of the committed runs with the
current planner (cells taken from an earlier run are re-predicted), and its numbers hold: no run out of memory and
no measured peak above its card."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "results" / "h100-2026-11-22-s3"  # runs 3 and 4
LATEST = ROOT / "benchmarks" / "results" / "h100-2026-11-22-s4"  # run 5
CPU_TFLOPS = 3.5568  # run 5's host (host.json there); runs 3 and 4 read 3.8087 and 1.7956: every cell plans the same


def _cards():
    spec = importlib.util.spec_from_file_location("cards", ROOT / "benchmarks" / "gpu" / "cards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args():
    return dict(latest=LATEST / "cards-run5.jsonl", earlier=[RUNS / "cards-run3.jsonl", RUNS / "cards-run4.jsonl"],
                plan_file=LATEST / "cards-current_plan.json", cpu=CPU_TFLOPS)


def test_the_committed_section_is_current():
    doc = (ROOT / "docs" / "RELIABILITY.md").read_text()
    section = doc.split("<!-- cards:begin -->\n", 1)[1].split("\n<!-- cards:end -->", 1)[0]
    cards = _cards()
    a = _args()
    assert section.strip() == cards.report(a["latest"], a["earlier"], a["plan_file"], a["cpu"]).strip()


def test_no_run_ran_out_of_memory_or_past_its_card():
    cards = _cards()
    a = _args()
    cells, _, _ = cards.combine(a["latest"], a["earlier"], a["plan_file"], a["cpu"])
    ran = [c for c in cells if "refused" not in c]
    assert ran and all(c.get("ok") for c in ran)
    assert all(c["peak_gib"] <= c["card"] for c in ran)


def test_rows_marked_invalid_are_never_used():
    cards = _cards()
    rows = cards._rows(RUNS / "cards-run3.jsonl")
    raw = [json.loads(x) for x in (RUNS / "cards-run3.jsonl").read_text().splitlines() if x.strip()]
    assert any("invalid" in r for r in raw)
    assert not any("invalid" in r for r in rows)


def test_the_table_is_of_the_current_planner():
    """Every cell's run is of the plan the planner chooses today: a change to the cost model or the catalog that
    changes a choice makes the committed matrix stale, and this fails until the changed cells are run again."""
    cards = _cards()
    committed = json.loads((LATEST / "cards-current_plan.json").read_text())["cells"]
    for cpu in (CPU_TFLOPS, 3.8087, 1.7956):
        now = cards.plan_matrix("h100", 125.0, None, cpu)["cells"]
        assert [(c["card"], c["shape"], c.get("expected_label")) for c in now] == \
            [(c["card"], c["shape"], c.get("expected_label")) for c in committed]
