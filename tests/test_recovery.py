"""Recovery from out of GPU memory, on the CPU with the tiny synthetic model and injected faults: the run frees,
records the failure, re-plans (or tiles the VAE in decode), still delivers the image, and says what it did;
strict mode and the re-plan cap end in one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fluxplan.api as fp
from fluxplan.errors import FluxplanError
from fluxplan.run import measure, recovery
from fluxplan.run.images import read_metadata
from fluxplan.run.store import Store

SHAPE = (256, 256, 1)
OPTS = dict(model="synthetic:tiny", device="cpu", resolution="256x256", steps=2)
ERRORS = {"torch": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
          "runtime": lambda: RuntimeError("CUDA error: out of memory")}


@pytest.fixture(scope="module", autouse=True)
def _model():
    from fluxplan.run.synth import ensure_synthetic

    ensure_synthetic("tiny", gguf_levels=("Q8_0",))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store") as s:
        yield s


def generate(tmp_path, store, **kw):
    """generate with the tiny model; returns (report, the first plan, as on_plan saw it)."""
    first = []
    report = fp.generate("a red fox", out=tmp_path / "out", store=store, on_plan=lambda p, notes: first.append(p),
                         **OPTS, **kw)
    return report, first[0]


def inject(monkeypatch, phase: str, error: str, times: int | None = 1) -> list:
    """Make `phase` run out of memory: the first `times` calls (every call: None). Decode fails while the VAE
    tiles nothing, as a real decode too big for the GPU would. Returns the calls seen."""
    calls: list = []
    if phase == "load":
        real, name, owner = fp.build_plan, "build_plan", fp
    else:
        real, name, owner = getattr(measure, phase), phase, measure

    def faulty(*args, **kwargs):
        calls.append(args[0].choice if phase == "load" else args[0])
        if phase == "decode":
            if not args[0].vae.use_tiling:
                raise ERRORS[error]()
        elif times is None or len(calls) <= times:
            raise ERRORS[error]()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, faulty)
    return calls


def assert_picture(path: Path) -> None:
    assert path.is_file() and path.suffix == ".png"
    with Image.open(path) as im:
        assert im.size == (256, 256)
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert np.isfinite(pixels).all() and pixels.std() > 1.0, "a constant image"


TRIALS = [("load", "torch", None), ("load", "runtime", None), ("load", "torch", "gguf-q8_0"),
          ("load", "torch", "quanto-int8"), ("encode", "torch", None), ("denoise", "torch", None),
          ("denoise", "runtime", None), ("denoise", "torch", "gguf-q8_0"), ("decode", "torch", None),
          ("decode", "runtime", None), ("decode", "torch", "gguf-q8_0")]


@pytest.mark.parametrize("phase,error,transformer", TRIALS)
def test_out_of_memory_recovers_and_delivers_the_image(phase, error, transformer, tmp_path, store, monkeypatch):
    pins = {"transformer": transformer} if transformer else {}
    inject(monkeypatch, phase, error)
    report, first = generate(tmp_path, store, **pins)

    [path] = report.paths
    assert_picture(path)
    [event] = report.recovery
    assert (event.phase, event.failed) == (phase, first.choice.label())
    assert "out of memory" in event.error.lower()
    meta = read_metadata(path)
    assert meta["fluxplan_plan"] == report.choice == report.plan.choice.as_dict()
    assert meta["fluxplan_timings"]["recovery"] == [event.model_dump()]
    if transformer:
        assert report.plan.choice.transformer == transformer  # a re-plan keeps the user's pins
    rec = store.run(report.run_id)
    assert rec.ok and rec.candidate == report.plan.choice

    if phase == "decode":  # the same plan, decoded again with VAE tiling on; the plan recorded is the one planned
        assert report.plan.choice == first.choice and not first.choice.vae_tiling
        assert event.action == "decode retried with VAE tiling switched on"
        assert (rec.phase, rec.error.startswith("recovered: ")) == ("decode", True) and "VAE tiling" in rec.error
        assert not meta["fluxplan_plan"]["vae_tiling"]
    else:  # the next-best plan, not the one that failed
        assert report.plan.choice != first.choice
        assert event.action == f"re-planned: {report.plan.choice.label()}"
        failed_row = [r for r in store.runs() if not r.ok]
        assert [(r.candidate, r.phase) for r in failed_row] == [(first.choice, phase)]

    [failure] = store.failures("cpu")
    assert (failure["candidate"], failure["phase"]) == (first.choice, phase)
    assert store.failed_candidates("cpu", SHAPE) == {first.choice}
    assert any(n.startswith(f"recovered: out of memory in {phase}") for n in report.notes)


def test_the_next_run_plans_without_the_failure(tmp_path, store, monkeypatch):
    inject(monkeypatch, "denoise", "torch")
    report, first = generate(tmp_path, store)
    monkeypatch.undo()

    again, planned = generate(tmp_path, store)
    assert planned.choice != first.choice and again.plan.choice == planned.choice
    assert again.recovery == []
    assert any("failed on cpu at 256x256 before" in n for n in again.notes)
    p, _, _ = fp.plan_for(**OPTS, exclude=store.failed_candidates("cpu", SHAPE))
    assert p.choice != first.choice


@pytest.mark.parametrize("phase", ["load", "denoise", "decode"])
def test_strict_raises_and_saves_nothing(phase, tmp_path, store, monkeypatch):
    calls = inject(monkeypatch, phase, "torch")
    with pytest.raises(FluxplanError, match=r"^out of memory while \w+"):
        generate(tmp_path, store, strict=True)
    assert len(calls) == 1  # no retry, no re-plan
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    [failure] = store.failures("cpu")
    assert failure["phase"] == phase
    assert [r.ok for r in store.runs()] == [False]


def test_out_of_memory_on_every_plan_ends_in_one_error_naming_them(tmp_path, store, monkeypatch):
    calls = inject(monkeypatch, "load", "torch", times=None)
    with pytest.raises(recovery.RecoveryFailed) as info:
        generate(tmp_path, store)
    assert isinstance(info.value, FluxplanError)
    message = str(info.value)
    assert len(calls) == recovery.MAX_REPLANS + 1 == len(set(calls))  # each plan once, a new one each time
    assert "\n" not in message and message.startswith(f"out of memory with all {len(calls)} plan(s) tried: ")
    for c in calls:
        assert f"{c.label()} (out of memory in load)" in message
    assert "gave up after 3 re-plans" in message and "Tried to allocate 2.00 GiB" in message
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert store.failed_candidates("cpu", SHAPE) == set(calls)


def test_other_errors_are_not_recovered(tmp_path, store, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(measure, "denoise", boom)
    with pytest.raises(RuntimeError, match="boom"):
        generate(tmp_path, store)
    assert len(store.runs()) == 1


def test_out_of_memory_detection():
    assert recovery.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert recovery.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert recovery.is_out_of_memory(measure.OutOfMemory("denoising", "x"))
    wrapped = ValueError("while loading")
    wrapped.__cause__ = torch.OutOfMemoryError("CUDA out of memory")
    assert recovery.is_out_of_memory(wrapped)
    assert not recovery.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not recovery.is_out_of_memory(MemoryError())


def test_cli_recovers_and_strict_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from fluxplan.cli.main import main
    from fluxplan.run import store as store_module

    monkeypatch.setattr(store_module, "default_path", lambda: tmp_path / "runs.sqlite")
    args = ["auto", "a red fox", "--model", "synthetic:tiny", "--steps", "2", "--resolution", "256x256",
            "--device", "cpu"]
    inject(monkeypatch, "denoise", "torch", times=1)
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "recovered: out of memory in denoise" in err and "re-planned: " in err
    assert_picture(Path(out.split()[-1]))

    inject(monkeypatch, "denoise", "torch", times=None)
    assert main([*args, "--out", str(tmp_path / "b"), "--strict"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == ("fluxplan: error: out of memory while denoising: CUDA out of memory. "
                                            "Tried to allocate 2.00 GiB")
    assert "recovered" not in err, err
    assert list((tmp_path / "b").iterdir()) == []
