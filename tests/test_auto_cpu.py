"""`fluxplan auto` end to end on the CPU with the tiny synthetic model, through the CLI entry point: the PNG exists,
it is a real picture, its metadata holds the plan that was asked for, and the store has the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxplan.cli.main import main
from fluxplan.run.images import read_metadata
from fluxplan.run.store import Store

BASE = ["--model", "synthetic:tiny", "--steps", "2", "--resolution", "256x256", "--device", "cpu"]


@pytest.fixture
def cache():
    """The synthetic tiny model and its GGUF files, built once under the tests' cache (conftest sets FLUXPLAN_CACHE;
    the store lives there too)."""
    from fluxplan.run.synth import ensure_synthetic

    ensure_synthetic("tiny", gguf_levels=("Q8_0", "Q4_0"))
    return Path(os.environ["FLUXPLAN_CACHE"])


def auto(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["auto", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("fmt", ["bf16", "quanto-int8", "torchao-int8wo", "gguf-q8_0", "gguf-q4_0", "fp8-layerwise"])
def test_auto_runs_a_pinned_format_on_cpu(fmt, cache, tmp_path, capsys):
    t0 = time.monotonic()
    rc, out, err = auto(capsys, "a red fox", *BASE, "--transformer", fmt, "--out", str(tmp_path), "--json")
    elapsed = time.monotonic() - t0
    assert rc == 0, err
    data = json.loads(out)
    assert data["plan"]["transformer"] == fmt
    run = data["run"]
    assert (run["device"], run["dtype"], run["predictions_apply"]) == ("cpu", "float32", False)

    [path] = [Path(p) for p in run["paths"]]
    assert path.parent == tmp_path and path.suffix == ".png" and path.is_file()
    assert not list(tmp_path.glob("*.tmp"))
    with Image.open(path) as im:
        assert im.size == (256, 256)
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert np.isfinite(pixels).all()
    assert pixels.std() > 1.0, "a constant image (NaN latents decode to one colour)"

    meta = read_metadata(path)
    assert meta["fluxplan_plan"] == data["plan"]  # the plan the planner chose, with the pinned format
    assert meta["fluxplan_plan"]["transformer"] == fmt
    assert (meta["prompt"], meta["seed"], meta["model"]) == ("a red fox", 0, "synthetic:tiny")
    assert meta["parameters"].startswith("a red fox\nSteps: 2, Sampler: FlowMatchEuler, CFG scale: 3.5, Seed: 0, "
                                         "Size: 256x256, Model: synthetic:tiny")
    assert len(meta["fluxplan_timings"]["steps_s"][0]) == 2

    with Store() as store:
        rec = store.run(run["run_id"])
    assert rec is not None and rec.ok
    assert rec.candidate.as_dict() == data["plan"]
    assert (rec.gpu, rec.device, rec.height, rec.width, rec.steps, len(rec.step_seconds)) == ("cpu", "cpu", 256, 256,
                                                                                             2, 2)
    assert rec.planned_gpu == data["gpu"]["name"] and rec.predicted_peak_gib is None
    assert elapsed < 60


def test_images_get_their_own_seeds_and_human_output(cache, tmp_path, capsys):
    rc, out, err = auto(capsys, "a red fox", *BASE, "--transformer", "bf16", "--images", "2", "--seed", "5",
                        "--out", str(tmp_path / "fox.png"))
    assert rc == 0, err
    assert out.splitlines() == [f"saved {tmp_path / 'fox-1.png'}", f"saved {tmp_path / 'fox-2.png'}"]
    assert "plan: bf16" in err and "running on the CPU in float32" in err
    a, b = (np.asarray(Image.open(tmp_path / f"fox-{i}.png")) for i in (1, 2))
    assert [read_metadata(tmp_path / f"fox-{i}.png")["seed"] for i in (1, 2)] == [5, 6]
    assert not np.array_equal(a, b)


def test_dry_run_plans_and_writes_nothing(cache, tmp_path, capsys):
    rc, out, err = auto(capsys, "a red fox", *BASE, "--gpu", "3060", "--dry-run", "--json", "--out", str(tmp_path / "x"))
    assert rc == 0, err
    data = json.loads(out)
    assert data["gpu"]["name"] == "NVIDIA GeForce RTX 3060" and data["run"]["dry_run"] is True
    assert not (tmp_path / "x").exists()


def test_an_empty_prompt_is_a_one_line_error(cache, capsys):
    rc, out, err = auto(capsys, "   ", *BASE)
    assert rc == 2 and err.strip() == "fluxplan: error: the prompt is empty"


def test_bitsandbytes_on_cpu_is_a_one_line_error_not_a_traceback(cache, tmp_path):
    exe = Path(sys.executable).with_name("fluxplan")
    proc = subprocess.run([str(exe), "auto", "a red fox", *BASE, "--transformer", "bnb-nf4", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fluxplan: error:")]
    assert len(lines) == 1 and "bnb-nf4" in lines[0] and "GPU" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_out_of_memory_run_is_recorded_as_a_failure_of_its_plan(cache, tmp_path, capsys, monkeypatch):
    import torch

    from fluxplan.run import measure

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(measure, "denoise", oom)
    rc, out, err = auto(capsys, "a red fox", *BASE, "--transformer", "gguf-q8_0", "--strict", "--out", str(tmp_path))
    assert rc == 2
    assert err.strip().splitlines()[-1] == ("fluxplan: error: out of memory while denoising: CUDA out of memory. "
                                            "Tried to allocate 2.00 GiB")
    assert list(tmp_path.iterdir()) == []
    with Store() as store:
        last = store.runs(gpu="cpu")[-1]
        failed = store.failed_candidates("cpu", (256, 256, 1))
    assert (last.ok, last.phase, last.candidate.transformer) == (False, "denoise", "gguf-q8_0")
    assert last.candidate in failed

    monkeypatch.undo()  # the same plan again: it runs, with a note that it failed here before
    monkeypatch.setenv("FLUXPLAN_CACHE", str(cache))
    rc, out, err = auto(capsys, "a red fox", *BASE, "--transformer", "gguf-q8_0", "--out", str(tmp_path))
    assert rc == 0 and "failed on cpu at 256x256 before" in err


def test_library_warnings_stay_quiet_and_the_users_are_shown(cache, tmp_path, capsys, monkeypatch):
    """A library's SyntaxWarning (its source compiled on import, seen on the H100 as "invalid escape sequence"),
    DeprecationWarning or FutureWarning is not the user's business; a prompt truncated for them is."""
    import warnings

    import fluxplan.api as api
    from fluxplan.run.measure import PromptTruncated

    real = api.generate

    def noisy(*a, **kw):
        warnings.warn("invalid escape sequence '\\.'", SyntaxWarning)
        warnings.warn("old API", FutureWarning)
        warnings.warn("prompt truncated for CLIP", PromptTruncated)
        return real(*a, **kw)

    monkeypatch.setattr(api, "generate", noisy)
    rc, out, err = auto(capsys, "a red fox", *BASE, "--transformer", "bf16", "--out", str(tmp_path / "fox.png"))
    assert rc == 0, err
    assert "warning: prompt truncated for CLIP" in err
    assert "escape sequence" not in err and "old API" not in err
