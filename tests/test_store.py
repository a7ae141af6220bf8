"""The measurement store: WAL journaling, records that round-trip, failures the planner can look up, and a
writer killed with SIGKILL leaving every committed row intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone

import pytest

from fluxplan.models import Candidate, Compile, Offload, Request, TextEncoderPlacement
from fluxplan.run.store import RunRecord, Store, StoreError

BF16 = Candidate("bf16", "bf16", TextEncoderPlacement.RESIDENT, Offload.NONE, Compile.NONE, False)
NF4 = Candidate("bnb-nf4", "bnb-int8", TextEncoderPlacement.FREE_AFTER_ENCODE, Offload.GROUP_BLOCK, Compile.REGIONAL,
                True)
Q4 = Candidate("gguf-q4_0", "bf16", TextEncoderPlacement.CPU, Offload.NONE, Compile.NONE, False)


def full_record(**over) -> RunRecord:
    base = dict(time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), gpu="NVIDIA H100 80GB HBM3",
                planned_gpu="NVIDIA H100 80GB HBM3", driver="580.65", device="cuda", torch_version="2.11.0",
                diffusers_version="0.42.1", model="dev", height=1024, width=768, steps=28, batch=2, images=4, seed=7,
                guidance=3.5, candidate=NF4, predicted_peak_gib=11.25, predicted_latency_s=9.5, load_s=41.0,
                quantize_s=None, setup_s=0.4, compile_s=188.0, encode_s=0.31, step_s=0.27,
                step_seconds=[188.27, 0.27, 0.26, 0.28], decode_s=0.6, peak_reserved_gib=10.5, context_gib=0.52,
                peak_nvml_gib=11.02, ok=True)
    base.update(over)
    return RunRecord(**base)


def test_store_uses_wal_and_a_schema_version(tmp_path):
    store = Store(tmp_path)
    assert store.path == tmp_path / "runs.sqlite"
    assert store.journal_mode == "wal"
    store.close()
    # WAL is a property of the database file: a plain connection sees it too
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"


def test_default_location_follows_fluxplan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path / "cache"))
    with Store() as store:
        assert store.path == tmp_path / "cache" / "runs.sqlite"
    assert (tmp_path / "cache" / "runs.sqlite").is_file()


def test_a_record_round_trips_with_its_candidate_columns(tmp_path):
    rec = full_record()
    with Store(tmp_path) as store:
        run_id = store.record_run(rec)
        back = store.runs()
    assert back == [rec.model_copy(update={"id": run_id})]
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        row = conn.execute("SELECT transformer, text_encoder_2, offload, compile, vae_tiling, placement, quantize_s,"
                           " step_seconds FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert row == ("bnb-nf4", "bnb-int8", "group-block", "regional", 1, "free", None, "[188.27, 0.27, 0.26, 0.28]")


def test_runs_filter_by_gpu_and_keep_failures(tmp_path):
    with Store(tmp_path) as store:
        a = store.record_run(full_record(gpu="A"))
        store.record_run(full_record(gpu="B"))
        c = store.record_run(full_record(gpu="A", ok=False, phase="denoise", error="OutOfMemory: CUDA out of memory"))
        runs = store.runs(gpu="A")
    assert [r.id for r in runs] == [a, c]
    assert (runs[1].ok, runs[1].phase, runs[1].error) == (False, "denoise", "OutOfMemory: CUDA out of memory")


def test_failed_candidates_come_back_for_their_gpu_and_shape(tmp_path):
    with Store(tmp_path) as store:
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=NF4, phase="denoise", error="OOM")
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=BF16, phase="decode", error="OOM")
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=BF16, phase="decode", error="OOM again")
        store.record_failure(gpu="A", shape=(512, 512, 1), candidate=Q4, phase="load", error="x")
        store.record_failure(gpu="B", shape=(1024, 1024, 1), candidate=Q4, phase="load", error="x")
        assert store.failed_candidates("A", (1024, 1024, 1)) == {NF4, BF16}
        assert store.failed_candidates("A", Request(height=1024, width=1024)) == {NF4, BF16}
        assert store.failed_candidates("A", (1024, 1024, 2)) == set()
        assert store.failed_candidates("B", (1024, 1024)) == {Q4}
        assert store.failed_candidates("C", (1024, 1024)) == set()


def test_a_failure_bans_its_plan_only_with_as_little_memory_as_it_had(tmp_path):
    with Store(tmp_path) as store:
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=NF4, phase="denoise", error="OOM", vram_gib=12.0)
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=Q4, phase="load", error="x")  # any memory
        assert store.failed_candidates("A", (1024, 1024, 1), vram_gib=8.0) == {NF4, Q4}
        assert store.failed_candidates("A", (1024, 1024, 1), vram_gib=12.1) == {NF4, Q4}  # free memory wobbles
        assert store.failed_candidates("A", (1024, 1024, 1), vram_gib=24.0) == {Q4}  # more memory: try it again
        assert store.failed_candidates("A", (1024, 1024, 1)) == {NF4, Q4}


def test_a_schema_1_store_gains_the_failures_memory_column(tmp_path):
    db = tmp_path / "runs.sqlite"
    with sqlite3.connect(db) as conn:  # the failures table as schema 1 wrote it, with one row
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE failures (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, gpu TEXT NOT NULL,
                height INTEGER NOT NULL, width INTEGER NOT NULL, batch INTEGER NOT NULL, candidate TEXT NOT NULL,
                transformer TEXT NOT NULL, text_encoder_2 TEXT NOT NULL, offload TEXT NOT NULL,
                compile TEXT NOT NULL, vae_tiling INTEGER NOT NULL, placement TEXT NOT NULL, phase TEXT NOT NULL,
                error TEXT NOT NULL);""")
        conn.execute("INSERT INTO failures (time, gpu, height, width, batch, candidate, transformer, text_encoder_2,"
                     " offload, compile, vae_tiling, placement, phase, error) VALUES ('t', 'A', 1024, 1024, 1, ?,"
                     " 'bf16', 'bf16', 'none', 'none', 0, 'resident', 'load', 'OOM')",
                     ('{"compile": "none", "offload": "none", "text_encoder_2": "bf16", "text_encoder_placement": '
                      '"resident", "transformer": "bf16", "vae_tiling": false}',))
    with Store(tmp_path) as store:
        assert store.schema_version == 2
        assert store.failed_candidates("A", (1024, 1024, 1), vram_gib=80.0) == {BF16}  # old rows: any memory
        store.record_failure(gpu="A", shape=(1024, 1024, 1), candidate=NF4, phase="load", error="x", vram_gib=8.0)
        assert store.failed_candidates("A", (1024, 1024, 1), vram_gib=80.0) == {BF16}


def test_a_store_from_a_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema 99"):
        Store(tmp_path)


def test_an_unopenable_store_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the measurement store"):
        Store(blocker / "sub" / "runs.sqlite")


WRITER = textwrap.dedent("""
    import sys
    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.store import RunRecord, Store

    store = Store(sys.argv[1])
    c = Candidate("gguf-q8_0", "bf16", TextEncoderPlacement.CPU, Offload.NONE, Compile.NONE, False)
    i = 0
    while True:
        rid = store.record_run(RunRecord(gpu="killer", model="dev", height=1024, width=1024, steps=28, candidate=c,
                                         seed=i, step_seconds=[0.5] * 28, error="x" * 2000, ok=i % 2 == 0))
        store.record_failure(gpu="killer", shape=(1024, 1024, 1), candidate=c, phase="denoise", error=str(i))
        print(rid, i, flush=True)
        i += 1
""")


def test_a_writer_killed_mid_way_leaves_committed_rows_intact(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    committed: dict[int, int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(committed) < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            rid, seed = map(int, line.split())
            committed[rid] = seed
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(committed) >= 200, "the writer did not get going"

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db) as store:
        runs = {r.id: r for r in store.runs(gpu="killer")}
        assert set(committed) <= set(runs)  # every row reported committed is there
        for rid, seed in committed.items():
            r = runs[rid]
            assert (r.seed, r.ok, r.step_seconds, r.error) == (seed, seed % 2 == 0, [0.5] * 28, "x" * 2000)
        assert store.journal_mode == "wal"
        store.record_run(full_record())  # and the store is writable again


def test_gpu_runs_in_the_store_become_observations_for_the_planner(tmp_path):
    from fluxplan.api import observations
    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.store import RunRecord, Store

    c = Candidate("bf16", "bf16", TextEncoderPlacement.RESIDENT, Offload.NONE, Compile.NONE, False)
    with Store(tmp_path / "runs.sqlite") as store:
        common = dict(model="dev", height=1024, width=1024, steps=28, candidate=c)
        store.record_run(RunRecord(gpu="NVIDIA H100 80GB HBM3", device="cuda", peak_nvml_gib=38.0, step_s=0.2, **common))
        store.record_run(RunRecord(gpu="NVIDIA H100 80GB HBM3", device="cuda", ok=False, phase="denoise", **common))
        store.record_run(RunRecord(gpu="cpu", device="cpu", step_s=1.0, **common))
        obs = observations("NVIDIA H100 80GB HBM3", store)
    assert [(o.candidate, o.peak_gib, o.step_s) for o in obs] == [(c, 38.0, 0.2)]
