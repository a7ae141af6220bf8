"""The CLI: output, and bad input as one line on stderr with exit code 2 (never a traceback)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fluxplan.cli.main import main

BAD = [
    (["explain", "--gpu", "rtx 4900"], "RTX 4090"),
    (["explain", "--gpu", "4090", "--vram", "0"], "vram"),
    (["explain", "--gpu", "4090", "--vram", "-2"], "vram"),
    (["explain", "--gpu", "4090", "--resolution", "1000x1000"], "multiple of 16"),
    (["explain", "--gpu", "4090", "--resolution", "128x128"], "between 256 and 4096"),
    (["explain", "--gpu", "4090", "--resolution", "8192x1024"], "between 256 and 4096"),
    (["explain", "--gpu", "4090", "--steps", "0"], "steps"),
    (["explain", "--gpu", "4090", "--batch", "0"], "batch"),
    (["explain", "--gpu", "4090", "--latency-budget", "0.5"], "fastest"),
    (["explain", "--gpu", "4090", "--model", "sdxl"], "unknown model"),
    (["explain", "--gpu", "4090", "--transformer", "q9_9"], "unknown transformer format"),
    (["explain", "--gpu", "4090", "--offload", "disk"], "--offload"),
    (["explain", "--gpu", "4090", "--vae-tiling", "maybe"], "--vae-tiling"),
    (["explain", "--gpu", "4090", "--steps", "many"], "--steps"),
    (["explain", "--gpu", "4090", "--no-such-option"], "no-such-option"),
]


@pytest.mark.parametrize("argv,needle", BAD)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("fluxplan: error: ")
    assert needle.lower() in err.lower()
    assert "Traceback" not in err


def _profile(tmp_path: Path, mutate) -> Path:
    from fluxplan.cost.profile import profile_dirs

    src = next(p for d in profile_dirs(include_local=False) for p in d.glob("*.json"))
    raw = json.loads(src.read_text())
    mutate(raw)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.update(schema=99), "schema"),
    (lambda r: r["forward"][0].update(seconds=-1.0), "forward.0.seconds"),
    (lambda r: r["forward"][0].update(seconds=float("nan")), "forward.0"),
    (lambda r: r["decode"].clear(), "decode"),
    (lambda r: r["memory"].pop("context_gib"), "memory.context_gib"),
    (lambda r: r["forward"][0].update(activation_gib=500.0), "activations above"),
])
def test_a_broken_profile_names_the_file_and_the_field(tmp_path, capsys, mutate, needle):
    path = _profile(tmp_path, mutate)
    assert main(["explain", "--gpu", "4090", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and needle in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_profile_file(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"schema": 1, "gpu": ')
    assert main(["explain", "--gpu", "4090", "--profile", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_explain_json_is_the_contract(capsys):
    assert main(["explain", "--gpu", "4090", "--ram", "64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpu"]["name"] == "NVIDIA GeForce RTX 4090"
    assert data["plan"]["transformer"] == "bf16"
    assert data["request"]["height"] == 1024 and data["request"]["steps"] == 28


def test_explain_tables_show_the_plan_and_a_rejection(capsys):
    assert main(["explain", "--gpu", "4090", "--ram", "64"]) == 0
    out = capsys.readouterr().out
    assert "Plan:" in out and "bf16" in out and "GiB of VRAM" in out


def test_explain_without_a_gpu_says_so_and_plans_for_the_default_card(capsys, monkeypatch):
    from fluxplan import probe
    from fluxplan.errors import NoGPU

    def no_gpu(index=0):
        raise NoGPU("no NVIDIA GPU found (NVML: driver not loaded); name a card with --gpu")

    monkeypatch.setattr(probe, "probe_gpu", no_gpu)
    assert main(["explain", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any("no NVIDIA GPU found" in n and "default card" in n for n in data["notes"])


def test_gpus_lists_the_database(capsys):
    assert main(["gpus", "4090", "--json"]) == 0
    names = [g["name"] for g in json.loads(capsys.readouterr().out)["gpus"]]
    assert "NVIDIA GeForce RTX 4090" in names


def test_the_planning_path_never_imports_torch():
    code = ("import sys, io, contextlib\n"
            "from fluxplan.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['explain', '--gpu', '4090', '--json']) == 0\n"
            "import fluxplan; fluxplan.plan('h100')\n"
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'scipy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explain_says_how_far_to_trust_the_numbers(capsys):
    assert main(["explain", "--gpu", "h100", "--json"]) == 0
    here = json.loads(capsys.readouterr().out)["estimate"]["uncertainty"]
    assert "measured on this GPU" in here["peak_vram"]
    assert main(["explain", "--gpu", "3060", "--json"]) == 0
    scaled = json.loads(capsys.readouterr().out)["estimate"]["uncertainty"]
    assert "30 %" in scaled["latency"] and "not measured on this GPU" in scaled["peak_vram"]
