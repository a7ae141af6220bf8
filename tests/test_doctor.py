"""`fluxplan doctor`: a backend that does not import or does not run is unusable, with its reason, and is not offered
to the planner."""

from __future__ import annotations

import sys

import pytest

from fluxplan.run import doctor


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Doctor results are cached per process and on disk: start each test with neither."""
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    doctor.check_backends.cache_clear()
    yield
    doctor.check_backends.cache_clear()


def by_package(checks, package):
    return next(c for c in checks if c.package == package)


def test_a_backend_that_fails_to_import_is_unusable_with_its_reason(fresh, monkeypatch):
    assert "optimum-quanto" in doctor.usable_backends("cpu")  # the premise: it works here untouched
    doctor.check_backends.cache_clear()
    monkeypatch.setitem(sys.modules, "optimum.quanto", None)  # `import optimum.quanto` now raises ImportError

    checks = doctor.check_backends("cpu", fresh=True)  # as `fluxplan doctor` does: run again, refresh the disk
    quanto = by_package(checks, "optimum-quanto")
    assert not quanto.ok
    assert quanto.reason.startswith("import optimum.quanto failed: ModuleNotFoundError")
    assert "\n" not in quanto.reason
    usable = doctor.usable_backends("cpu")
    assert "optimum-quanto" not in usable
    assert {"torchao", "gguf"} <= usable  # the others are still checked on their own
    assert doctor.unusable_reasons("cpu")["optimum-quanto"] == quanto.reason


def test_a_backend_whose_operation_fails_is_unusable(fresh, monkeypatch):
    def broken(device):
        raise RuntimeError("kernel image not available\nsecond line")

    monkeypatch.setattr(doctor, "CHECKS", tuple((n, p, m, broken if p == "gguf" else op)
                                                for n, p, m, op in doctor.CHECKS))
    gguf = by_package(doctor.check_backends("cpu"), "gguf")
    assert (gguf.ok, gguf.reason) == (False, "RuntimeError: kernel image not available")
    assert "gguf" not in doctor.usable_backends("cpu")


def test_bitsandbytes_is_unusable_without_a_gpu(fresh):
    bnb = by_package(doctor.check_backends("cpu"), "bitsandbytes")
    assert not bnb.ok
    assert "GPU" in bnb.reason
    assert "bitsandbytes" not in doctor.usable_backends("cpu")


def test_results_are_cached_per_process(fresh, monkeypatch):
    first = doctor.check_backends("cpu")
    monkeypatch.setitem(sys.modules, "gguf", None)
    assert doctor.check_backends("cpu") is first


def test_the_planner_is_not_offered_an_unusable_backend(fresh, monkeypatch):
    from fluxplan import api
    from fluxplan.errors import BadInput, Infeasible
    from fluxplan.planner import plan

    monkeypatch.setitem(sys.modules, "optimum.quanto", None)
    usable = doctor.usable_backends("cpu")
    ok = plan("4090", model="tiny", resolution="256x256", steps=2, ram=16, installed=usable, transformer="gguf-q8_0")
    assert ok.choice.transformer == "gguf-q8_0"  # a usable backend is offered
    with pytest.raises(Infeasible, match="not usable here"):
        plan("4090", model="tiny", resolution="256x256", steps=2, ram=16, installed=usable, transformer="quanto-int8")
    # the API says why in one line, before planning
    where = api.Target("cpu", "float32", "cpu")
    with pytest.raises(BadInput, match="quanto-int8 cannot run here: optimum-quanto: import optimum.quanto failed"):
        api.decide("synthetic:tiny", where, resolution="256x256", steps=2, ram=16, transformer="quanto-int8")


def test_results_are_reused_from_disk_until_a_version_changes(fresh, monkeypatch):
    first = doctor.check_backends("cpu")
    doctor.check_backends.cache_clear()
    ran = []
    monkeypatch.setattr(doctor, "run_check", lambda *a: ran.append(a))
    assert doctor.check_backends("cpu") == first and ran == []  # same versions: read back, nothing re-run
    doctor.check_backends.cache_clear()
    real_version = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda m: "99.0" if m == "gguf" else real_version(m))
    with pytest.raises(TypeError):  # a new gguf version: the checks run again (here into the stub above)
        doctor.check_backends("cpu")
    assert ran
