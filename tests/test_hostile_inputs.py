"""Hostile and broken inputs (docs/RELIABILITY.md): a representative subset of benchmarks/hostile_inputs.py's cases,
run through the real `fluxplan` console script (and the API in-process), each held to the bar: exit code 2, exactly
one stderr line "fluxplan: error: ...", no traceback, nothing written to the output directory, no foreign code run.
Cases with a known gap are xfail(strict=True): they fail loudly once the gap is fixed (then drop the mark)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import hostile_inputs  # noqa: E402

SUBSET = [
    # CLI planning (explain) and profile files: fast, no torch
    "explain-unknown-gpu", "explain-vram-zero", "explain-steps-zero", "explain-resolution-odd",
    "explain-pinned-infeasible", "explain-bad-offload", "profile-not-json", "profile-missing-field",
    "auto-blank-prompt", "auto-out-is-a-dir",
    # model directories and files (auto on the CPU with a corrupted copy of the tiny pipeline)
    "model-component-missing", "model-custom-component", "st-truncated", "st-header-length-absurd",
    "gguf-wrong-magic", "gguf-dims-absurd",
    # pickle-only checkpoints: must be refused, never unpickled
    "pickle-payload-only", "pickle-state-dict-only",
    # Python API
    "api-plan-unknown-gpu", "api-generate-negative-seed",
]
BY_ID = {c.id: c for c in hostile_inputs.CASES}


def _param(case_id: str):
    case = BY_ID[case_id]
    marks = [pytest.mark.xfail(strict=True, reason=case.gap)] if case.gap else []
    return pytest.param(case_id, marks=marks, id=case_id)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """All the subset's cases at once (the CLI ones as parallel subprocesses), by id."""
    work = tmp_path_factory.mktemp("hostile")
    return {o.case.id: o for o in hostile_inputs.run_cases([BY_ID[i] for i in SUBSET], work)}


def test_the_subset_covers_model_files_and_pickles():
    areas = [BY_ID[i].area for i in SUBSET]
    assert len(SUBSET) >= 12
    assert sum(a in ("model dir", "safetensors", "GGUF") for a in areas) >= 4
    assert "pickle" in areas
    assert len(hostile_inputs.CASES) >= 30


@pytest.mark.parametrize("case_id", [_param(i) for i in SUBSET])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(outcomes, case_id):
    o = outcomes[case_id]
    detail = f"{o.command}: exit {o.exit}; stderr {o.error_lines + o.other_lines}"
    assert not o.foreign_code, f"foreign code ran: {detail}"
    if o.case.call is None:
        assert o.exit == "2", detail
        assert len(o.error_lines) == 1 and o.error_lines[0].startswith("fluxplan: error:"), detail
    else:
        assert o.exit.endswith("(exit_code 2)"), detail  # a FluxplanError the CLI turns into exit 2
        assert len(o.error_lines) == 1, detail
    assert not o.other_lines, f"stderr besides the error line and auto's plan/note lines: {detail}"
    assert not o.traceback, detail
    assert not o.written, f"wrote {o.written}: {detail}"
    assert o.ok
