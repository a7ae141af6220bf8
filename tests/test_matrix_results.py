"""The pipeline matrix's rows (fluxplan.profiling.matrix, run on GPUs) reach the catalog and the docs as measured:
what ran is `ok`, what failed is `fails` with its error, and what ran out of time stays `unverified`."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from fluxplan.catalog.formats import load_catalog
from fluxplan.profiling.matrix import table

ROOT = Path(__file__).resolve().parents[1]
MATRICES = {"H100 80GB HBM3": ROOT / "benchmarks" / "results" / "h100-2026-11-22" / "matrix.jsonl",
            "H200": ROOT / "benchmarks" / "results" / "h200-2026-11-22" / "matrix.jsonl"}


def _to_catalog():
    spec = importlib.util.spec_from_file_location("to_catalog", ROOT / "benchmarks" / "gpu" / "to_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROWS = [
    {"format": "bf16", "offload": "none", "compile": "none", "ok": True, "load_s": 20.0, "peak_nvml_gib": 36.8,
     "step_s": 0.185, "first_step_s": 0.35, "decode_s": 0.35},
    {"format": "bf16", "offload": "none", "compile": "regional", "ok": True, "load_s": 15.0, "peak_nvml_gib": 36.6,
     "step_s": 0.131, "first_step_s": 17.1, "decode_s": 0.33},
    {"format": "gguf-q5_k", "offload": "sequential", "compile": "none", "ok": False, "error": "KeyError: None"},
    {"format": "quanto-int4", "offload": "model", "compile": "none", "ok": False,
     "error": "process ended with timeout: did not load in 350 s"},
]


def test_the_table_tells_a_failure_from_a_run_out_of_time(tmp_path):
    path = tmp_path / "matrix.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    eager = table(path, "eager")
    assert "| gguf-q5_k | sequential | | | | | | fails: KeyError: None |" in eager
    assert "| quanto-int4 | model | | | | | | did not finish: process ended with timeout" in eager
    assert "compile regional" not in eager
    compiled = table(path, "compiled").splitlines()
    assert len(compiled) == 3 and compiled[2].startswith("| bf16 | none, compile regional | 15.0 |")


def test_to_catalog_records_each_row_with_the_gpu_it_ran_on(tmp_path, monkeypatch):
    module = _to_catalog()
    catalog = tmp_path / "formats.json"
    shutil.copy(module.CATALOG, catalog)
    monkeypatch.setattr(module, "CATALOG", catalog)
    rows = tmp_path / "matrix.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    monkeypatch.setattr(sys, "argv", ["to_catalog.py", str(rows), "RTX Test"])
    module.main()
    formats = {f["key"]: f for f in json.loads(catalog.read_text())["formats"]}
    source = f"measured: RTX Test, 2026-11-22, pipeline matrix ({rows.as_posix()})"
    assert formats["gguf-q5_k"]["compat"][0] == {"offload": ["sequential"], "status": "fails",
                                                 "reason": "KeyError: None", "source": source}
    assert formats["quanto-int4"]["compat"][0]["status"] == "unverified"  # out of time is not a failure
    assert formats["bf16"]["compat"][0] == {"compile": ["regional"], "status": "ok", "source": source}
    monkeypatch.setattr(sys, "argv", ["to_catalog.py", str(rows), "RTX Test"])
    module.main()  # again: its own entries are replaced, not repeated
    formats = {f["key"]: f for f in json.loads(catalog.read_text())["formats"]}
    assert sum(c.get("source") == source for c in formats["gguf-q5_k"]["compat"]) == 1


def test_the_committed_catalog_says_what_the_committed_matrices_measured():
    """Every (format, offload mode) row of the H100 and H200 matrices, as the catalog the planner reads has it."""
    catalog = load_catalog()
    seen = 0
    for gpu, path in MATRICES.items():
        for r in (json.loads(x) for x in path.read_text().splitlines()):
            if "superseded" in r or r.get("compile", "none") != "none" or r["offload"] == "none":
                continue
            if r.get("width", 1024) != 1024:
                continue
            status = catalog.formats[r["format"]].status(offload=r["offload"])
            expected = "ok" if r["ok"] else ("unverified" if "timeout" in r.get("error", "") else "fails")
            assert status.status == expected, (gpu, r["format"], r["offload"], status)
            seen += 1
    assert seen >= 80
