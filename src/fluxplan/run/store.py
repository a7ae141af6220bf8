"""The measurement store: what each run really cost, and which plans failed on which GPU for which shape.

SQLite at `$FLUXPLAN_CACHE/runs.sqlite` (default ~/.cache/fluxplan/runs.sqlite), in WAL mode so that a reader
never blocks the writer and a process killed mid-write leaves every committed row intact. The schema is versioned
in a `meta` table; a store written by a newer fluxplan is refused rather than misread.

    store = Store()                       # or Store("/some/dir") or Store("/some/file.sqlite")
    run_id = store.record_run(record)
    store.record_failure(gpu="NVIDIA H100 80GB HBM3", shape=(1024, 1024, 1), candidate=c, phase="denoise",
                         error="CUDA out of memory ...")
    store.failed_candidates("NVIDIA H100 80GB HBM3", (1024, 1024, 1))  # -> {Candidate, ...}
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from fluxplan.errors import FluxplanError
from fluxplan.models import Candidate, Compile, Offload, Request, TextEncoderPlacement

SCHEMA_VERSION = 2  # 2: failures.vram_gib, the memory the failed plan had
DB_NAME = "runs.sqlite"


FAILURE_TOLERANCE_GIB = 0.25  # free memory moves by this much between runs without changing what fits


class StoreError(FluxplanError):
    """The store cannot be opened or written (a path problem, or a store from a newer fluxplan)."""


class Shape(NamedTuple):
    height: int
    width: int
    batch: int = 1


def cache_dir() -> Path:
    env = os.environ.get("FLUXPLAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fluxplan"


def default_path() -> Path:
    return cache_dir() / DB_NAME


def candidate_from_dict(d: dict[str, Any]) -> Candidate:
    return Candidate(transformer=d["transformer"], text_encoder_2=d["text_encoder_2"],
                     text_encoder_placement=TextEncoderPlacement(d["text_encoder_placement"]),
                     offload=Offload(d["offload"]), compile=Compile(d["compile"]), vae_tiling=bool(d["vae_tiling"]))


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunRecord(BaseModel):
    """One generation run: where, what was asked, what was planned, what it predicted and what it really cost.
    Times in seconds, memory in GiB. Memory and predictions are None where they do not apply (a CPU run)."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    time: datetime = Field(default_factory=_now)
    gpu: str  # the device that ran it: the CUDA device name, or "cpu"
    planned_gpu: str | None = None  # the card the plan was made for (differs from gpu on a CPU run)
    driver: str | None = None
    device: str = "cuda"
    torch_version: str = ""
    diffusers_version: str = ""
    model: str
    height: int
    width: int
    steps: int
    batch: int = 1
    images: int = 1
    seed: int | None = None
    guidance: float | None = None
    candidate: Candidate
    predicted_peak_gib: float | None = None
    predicted_latency_s: float | None = None  # per image, one-off costs amortized
    load_s: float | None = None  # from_pretrained, quantization included where not separable
    quantize_s: float | None = None  # only where quantizing is a separate step
    setup_s: float | None = None  # offload hooks, compile wrapping, tiling
    compile_s: float | None = None  # the first step's extra over the steady step
    encode_s: float | None = None
    step_s: float | None = None  # median steady step
    step_seconds: list[float] = Field(default_factory=list)  # every step, in order, all calls
    decode_s: float | None = None  # per call, median
    peak_reserved_gib: float | None = None
    context_gib: float | None = None
    peak_nvml_gib: float | None = None
    ok: bool = True
    phase: str | None = None  # where it failed
    error: str | None = None

    @property
    def shape(self) -> Shape:
        return Shape(self.height, self.width, self.batch)


_CANDIDATE_COLUMNS = ("transformer", "text_encoder_2", "offload", "compile", "vae_tiling", "placement")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    gpu TEXT NOT NULL, planned_gpu TEXT, driver TEXT, device TEXT NOT NULL,
    torch_version TEXT, diffusers_version TEXT,
    model TEXT NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL, steps INTEGER NOT NULL,
    batch INTEGER NOT NULL, images INTEGER NOT NULL, seed INTEGER, guidance REAL,
    candidate TEXT NOT NULL,
    transformer TEXT NOT NULL, text_encoder_2 TEXT NOT NULL, offload TEXT NOT NULL, compile TEXT NOT NULL,
    vae_tiling INTEGER NOT NULL, placement TEXT NOT NULL,
    predicted_peak_gib REAL, predicted_latency_s REAL,
    load_s REAL, quantize_s REAL, setup_s REAL, compile_s REAL, encode_s REAL, step_s REAL, step_seconds TEXT,
    decode_s REAL, peak_reserved_gib REAL, context_gib REAL, peak_nvml_gib REAL,
    ok INTEGER NOT NULL, phase TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS runs_gpu ON runs (gpu);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    gpu TEXT NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL, batch INTEGER NOT NULL,
    candidate TEXT NOT NULL,
    transformer TEXT NOT NULL, text_encoder_2 TEXT NOT NULL, offload TEXT NOT NULL, compile TEXT NOT NULL,
    vae_tiling INTEGER NOT NULL, placement TEXT NOT NULL,
    phase TEXT NOT NULL, error TEXT NOT NULL, vram_gib REAL
);
CREATE INDEX IF NOT EXISTS failures_gpu_shape ON failures (gpu, height, width, batch);
"""


def _candidate_columns(c: Candidate) -> dict[str, Any]:
    return {"candidate": json.dumps(c.as_dict(), sort_keys=True), "transformer": c.transformer,
            "text_encoder_2": c.text_encoder_2, "offload": c.offload.value, "compile": c.compile.value,
            "vae_tiling": int(c.vae_tiling), "placement": c.text_encoder_placement.value}


def _as_shape(shape: Shape | tuple | Request) -> Shape:
    if isinstance(shape, Request):
        return Shape(shape.height, shape.width, shape.batch)
    return Shape(*shape)


class Store:
    """The SQLite measurement store. `path`: a .sqlite file, a directory (runs.sqlite inside), or None for the
    default ($FLUXPLAN_CACHE or ~/.cache/fluxplan)."""

    def __init__(self, path: str | Path | None = None):
        p = default_path() if path is None else Path(path).expanduser()
        if p.is_dir() or (path is not None and not p.suffix):
            p = p / DB_NAME
        self.path = p
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(p), timeout=10.0, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the measurement store {p}: {e}") from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA busy_timeout = 10000")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"the measurement store {p} cannot use WAL journaling (got {mode!r})")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise StoreError(f"the measurement store {p} is unreadable: {e}") from None

    # -- schema

    def _migrate(self) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")  # one writer migrates; others wait (busy_timeout), then see it done
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"the measurement store {self.path} has schema {version}, newer than this "
                                 f"fluxplan understands ({SCHEMA_VERSION}): upgrade fluxplan or use another "
                                 "FLUXPLAN_CACHE")
            if version == 1:  # failures learn the memory they had
                c.execute("ALTER TABLE failures ADD COLUMN vram_gib REAL")
            if version < SCHEMA_VERSION:
                for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    c.execute(stmt)
                c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                          (str(SCHEMA_VERSION),))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    @property
    def journal_mode(self) -> str:
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -- writing

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        try:  # autocommit: the row is durable when this returns
            cur = self._conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the measurement store {self.path}: {e}") from None
        return int(cur.lastrowid)

    def record_run(self, record: RunRecord) -> int:
        """Insert one run (its id is assigned here) and return the id."""
        data = record.model_dump(exclude={"id", "candidate", "time", "step_seconds", "ok"})
        data.update(_candidate_columns(record.candidate))
        data["time"] = record.time.isoformat()
        data["step_seconds"] = json.dumps(record.step_seconds)
        data["ok"] = int(record.ok)
        return self._insert("runs", data)

    def record_failure(self, *, gpu: str, shape: Shape | tuple | Request, candidate: Candidate, phase: str,
                       error: str, vram_gib: float | None = None) -> int:
        """Remember that `candidate` failed on `gpu` for this (height, width, batch) in `phase`, with `vram_gib`
        of memory to plan for (None: whatever the memory, it failed)."""
        s = _as_shape(shape)
        data = {"time": _now().isoformat(), "gpu": gpu, "height": s.height, "width": s.width, "batch": s.batch,
                **_candidate_columns(candidate), "phase": phase, "error": error, "vram_gib": vram_gib}
        return self._insert("failures", data)

    # -- reading

    def runs(self, gpu: str | None = None) -> list[RunRecord]:
        """Every recorded run (of one GPU where given), oldest first."""
        sql, args = "SELECT * FROM runs", ()
        if gpu is not None:
            sql, args = sql + " WHERE gpu = ?", (gpu,)
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [self._record(r) for r in rows]

    def run(self, run_id: int) -> RunRecord | None:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._record(row) if row is not None else None

    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        d = dict(row)
        for col in _CANDIDATE_COLUMNS:
            d.pop(col)
        d["candidate"] = candidate_from_dict(json.loads(d["candidate"]))
        d["step_seconds"] = json.loads(d["step_seconds"] or "[]")
        d["ok"] = bool(d["ok"])
        d["time"] = datetime.fromisoformat(d["time"])
        return RunRecord.model_validate(d)

    def failures(self, gpu: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM failures", ()
        if gpu is not None:
            sql, args = sql + " WHERE gpu = ?", (gpu,)
        out = []
        for row in self._conn.execute(sql + " ORDER BY id", args).fetchall():
            d = dict(row)
            d["candidate"] = candidate_from_dict(json.loads(d["candidate"]))
            out.append(d)
        return out

    def failed_candidates(self, gpu: str, shape: Shape | tuple | Request,
                          vram_gib: float | None = None) -> set[Candidate]:
        """The candidates that failed on this GPU for exactly this (height, width, batch); given `vram_gib`, only
        those that failed with as much memory or more (within FAILURE_TOLERANCE_GIB): with more memory than it
        had when it failed, a plan may fit."""
        s = _as_shape(shape)
        sql = "SELECT DISTINCT candidate FROM failures WHERE gpu = ? AND height = ? AND width = ? AND batch = ?"
        args: tuple = (gpu, s.height, s.width, s.batch)
        if vram_gib is not None:
            sql += " AND (vram_gib IS NULL OR vram_gib + ? >= ?)"
            args += (FAILURE_TOLERANCE_GIB, vram_gib)
        rows = self._conn.execute(sql, args).fetchall()
        return {candidate_from_dict(json.loads(r[0])) for r in rows}

    # -- lifetime

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

