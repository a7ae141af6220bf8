"""Hostile and broken inputs: build each one in a temp dir, feed it to the real CLI (a subprocess) or the Python API
(in-process), and record what happened. The bar for every case: exit code 2, exactly one error line on stderr
("fluxplan: error: ..."), no traceback, nothing written to the output directory, and no foreign code run (a
pickle's payload or a module named by model_index.json leaves a sentinel file when it runs).

    .venv/bin/python benchmarks/hostile_inputs.py            # prints its section of docs/RELIABILITY.md
    .venv/bin/python benchmarks/hostile_inputs.py --write docs/RELIABILITY.md   # replaces that section

Model cases copy one tiny synthetic pipeline (built once, with its Q8_0 GGUF file) and corrupt the copy; each case
gets its own FLUXPLAN_CACHE (the run store records failed plans: a shared store would change later cases' plans),
and runs on the CPU with --steps 1 --resolution 256x256.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
FLUXPLAN = ROOT / ".venv" / "bin" / "fluxplan"
if not FLUXPLAN.exists():  # another environment: the console script next to this interpreter
    FLUXPLAN = Path(sys.executable).with_name("fluxplan")
RUN = ["--device", "cpu", "--steps", "1", "--resolution", "256x256"]
TIMEOUT_S = 300
SENTINEL = "FOREIGN_CODE_RAN"  # created (as a directory) in the case dir by any payload that gets executed
PROGRESS_PREFIXES = ("plan:", "note:")  # what `auto` prints on stderr before it builds (its own progress)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    area: str  # CLI / API / profile / model dir / safetensors / GGUF / pickle
    what: str
    argv: list[str] | None = None  # CLI: arguments after `fluxplan`; {model} {out} {case} are filled in
    call: Callable[[Path, Path, Path], object] | None = None  # API: (model, out, case dir) -> anything; must raise
    call_text: str = ""  # the API call as shown in the table
    setup: Callable[[Path, Path], None] | None = None  # (model copy, case dir): corrupt the copy / write files
    needs_model: bool = False  # gets a copy of the tiny pipeline as {model}
    gap: str | None = None  # a known failure of the bar (the test marks it xfail(strict=True))


def _model_arg(argv: list[str], *, steps: str = "1", device: str = "cpu") -> list[str]:
    return ["auto", "a red fox", "--model", "{model}", "--device", device, "--steps", steps, "--resolution", "256x256",
            "--out", "{out}", *argv]


def _rm(rel: str):
    def f(model: Path, case: Path) -> None:
        p = model / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return f


def _write(rel: str, text: str):
    def f(model: Path, case: Path) -> None:
        (model / rel).write_text(text)
    return f


TRANSFORMER_ST = "transformer/diffusion_pytorch_model.safetensors"
GGUF = "gguf/transformer-Q8_0.gguf"


def _truncate(rel: str, keep: float):
    def f(model: Path, case: Path) -> None:
        p = model / rel
        data = p.read_bytes()
        p.write_bytes(data[:int(len(data) * keep)])
    return f


def _empty(rel: str):
    def f(model: Path, case: Path) -> None:
        (model / rel).write_bytes(b"")
    return f


def _st_header_length_absurd(model: Path, case: Path) -> None:
    """The 8-byte little-endian header length says 2**60 bytes."""
    p = model / TRANSFORMER_ST
    data = bytearray(p.read_bytes())
    data[:8] = struct.pack("<Q", 2 ** 60)
    p.write_bytes(bytes(data))


def _st_tensor_sizes_absurd(model: Path, case: Path) -> None:
    """A valid header whose first tensor claims shape [2**31, 2**31] and data offsets far past the end of the file."""
    p = model / TRANSFORMER_ST
    data = p.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [2 ** 31, 2 ** 31]
    header[name]["data_offsets"] = [0, 2 ** 62]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def _st_wrong_shape(model: Path, case: Path) -> None:
    """A well-formed safetensors file whose x_embedder.weight has the wrong shape for transformer/config.json."""
    import torch
    from safetensors.torch import load_file, save_file

    p = model / TRANSFORMER_ST
    state = load_file(p)
    w = state["x_embedder.weight"]
    state["x_embedder.weight"] = torch.zeros(w.shape[0] + 8, w.shape[1] * 2, dtype=w.dtype)
    save_file(state, p, metadata={"format": "pt"})


def _pickle_payload(model: Path, case: Path) -> None:
    """transformer/ holds only a .bin whose pickle runs os.mkdir(<case>/FOREIGN_CODE_RAN) when unpickled."""
    (model / TRANSFORMER_ST).unlink()

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(case / SENTINEL),)

    with open(model / "transformer" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"x_embedder.weight": Payload()}, f)


def _pickle_state_dict(model: Path, case: Path) -> None:
    """transformer/ holds only a genuine torch.save checkpoint (.bin, a pickle) of the same weights."""
    import torch
    from safetensors.torch import load_file

    p = model / TRANSFORMER_ST
    torch.save(load_file(p), model / "transformer" / "diffusion_pytorch_model.bin")
    p.unlink()


_EVIL_MODULE = ("import os, pathlib\n"
                "os.mkdir(pathlib.Path(__file__).resolve().parents[{up}] / {sentinel!r})\n"
                "class EvilTransformer: pass\nclass EvilPipeline: pass\n")


def _custom_component(model: Path, case: Path) -> None:
    """model_index.json says transformer is evil_module.EvilTransformer; evil_module.py sits in the model dir and in
    transformer/, and creates the sentinel when imported."""
    index = json.loads((model / "model_index.json").read_text())
    index["transformer"] = ["evil_module", "EvilTransformer"]
    (model / "model_index.json").write_text(json.dumps(index, indent=2))
    (model / "evil_module.py").write_text(_EVIL_MODULE.format(up=1, sentinel=SENTINEL))
    (model / "transformer" / "evil_module.py").write_text(_EVIL_MODULE.format(up=2, sentinel=SENTINEL))


def _custom_pipeline(model: Path, case: Path) -> None:
    """model_index.json's _class_name points at pipeline.EvilPipeline in a pipeline.py of the model dir (diffusers'
    custom-pipeline / trust_remote_code layout)."""
    index = json.loads((model / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "EvilPipeline"]
    (model / "model_index.json").write_text(json.dumps(index, indent=2))
    (model / "pipeline.py").write_text(_EVIL_MODULE.format(up=1, sentinel=SENTINEL))


def _gguf_patch(what: str):
    def f(model: Path, case: Path) -> None:
        from gguf import GGUFReader

        reader = GGUFReader(model / GGUF, "r+")
        t = next(t for t in reader.tensors if len(t.shape) == 2 and t.tensor_type.name == "Q8_0")
        parts = t.field.parts  # name length, name, n_dims, dims, type, offset (views into the file)
        if what == "dims":
            parts[3][0] = 2 ** 40
        elif what == "shape":
            parts[3][:] = parts[3][::-1].copy()  # same element count, transposed shape
        elif what == "type":
            parts[4][0] = 250  # no such GGML type
        elif what == "offset":
            parts[5][0] = 2 ** 50
        reader.data.flush()
        del reader
    return f


def _gguf_magic(model: Path, case: Path) -> None:
    p = model / GGUF
    data = bytearray(p.read_bytes())
    data[:4] = b"GGML"
    p.write_bytes(bytes(data))


def _profile(text: str, name: str = "profile.json"):
    def f(model: Path, case: Path) -> None:
        (case / name).write_text(text)
    return f


def _profile_missing_field(model: Path, case: Path) -> None:
    src = next(ROOT.glob("profiles/*.json"))
    data = json.loads(src.read_text())
    data.pop(next(iter(data)))
    (case / "profile.json").write_text(json.dumps(data))


def _profile_wrong_type(model: Path, case: Path) -> None:
    src = next(ROOT.glob("profiles/*.json"))
    data = json.loads(src.read_text())
    key = next(k for k, v in data.items() if isinstance(v, (dict, list)))
    data[key] = "not a table"
    (case / "profile.json").write_text(json.dumps(data))


def _file_in_the_way(model: Path, case: Path) -> None:
    (case / "afile").write_text("a file, not a directory\n")


def _dir_named_png(model: Path, case: Path) -> None:
    (case / "out" / "fox.png").mkdir()


# API calls (in-process). Each gets (model dir, out dir, case dir).
def _api_plan(**kw):
    def f(model, out, case):
        import fluxplan

        return fluxplan.plan(**kw)
    return f


def _api_generate(prompt, **kw):
    def f(model, out, case):
        import fluxplan

        return fluxplan.generate(prompt, model=str(model), device="cpu", out=str(out), steps=1,
                                 resolution="256x256", store=False, **kw)
    return f


def _api_load(model, out, case):
    import fluxplan

    return fluxplan.load(model=str(model), device="cpu", resolution="256x256", steps=1)


EXPLAIN = ["explain", "--gpu", "4090"]
CASES: list[Case] = [
    # --- CLI: explain (planning only)
    Case("explain-unknown-gpu", "CLI", "unknown GPU", ["explain", "--gpu", "nope"]),
    Case("explain-vram-zero", "CLI", "--vram 0", [*EXPLAIN, "--vram", "0"]),
    Case("explain-vram-negative", "CLI", "--vram -4", [*EXPLAIN, "--vram", "-4"]),
    Case("explain-resolution-odd", "CLI", "resolution not a multiple of 16", [*EXPLAIN, "--resolution", "1000x1001"]),
    Case("explain-resolution-text", "CLI", "resolution not WxH", [*EXPLAIN, "--resolution", "big"]),
    Case("explain-resolution-huge", "CLI", "resolution above 4096", [*EXPLAIN, "--resolution", "16384x16384"]),
    Case("explain-steps-zero", "CLI", "--steps 0", [*EXPLAIN, "--steps", "0"]),
    Case("explain-steps-text", "CLI", "--steps not a number", [*EXPLAIN, "--steps", "many"]),
    Case("explain-batch-zero", "CLI", "--batch 0", [*EXPLAIN, "--batch", "0"]),
    Case("explain-unknown-transformer", "CLI", "unknown --transformer", [*EXPLAIN, "--transformer", "q1_magic"]),
    Case("explain-unknown-model", "CLI", "unknown --model", [*EXPLAIN, "--model", "flux-ultra-9000"]),
    Case("explain-budget-unmet", "CLI", "latency budget nothing meets", [*EXPLAIN, "--latency-budget", "0.001"]),
    Case("explain-pinned-infeasible", "CLI", "pinned plan that cannot fit",
         ["explain", "--gpu", "rtx 4060 laptop", "--transformer", "bf16", "--text-encoder", "bf16",
          "--text-encoder-placement", "resident", "--offload", "none", "--resolution", "2048x2048", "--batch", "4"]),
    Case("explain-bad-vae-tiling", "CLI", "--vae-tiling maybe", [*EXPLAIN, "--vae-tiling", "maybe"]),
    Case("explain-bad-offload", "CLI", "--offload sideways", [*EXPLAIN, "--offload", "sideways"]),
    # --- profile files (explain --profile)
    Case("profile-not-json", "profile", "profile is not JSON", [*EXPLAIN, "--profile", "{case}/profile.json"],
         setup=_profile("{ this is : not json,,")),
    Case("profile-empty", "profile", "profile is an empty file", [*EXPLAIN, "--profile", "{case}/profile.json"],
         setup=_profile("")),
    Case("profile-json-list", "profile", "profile is a JSON list", [*EXPLAIN, "--profile", "{case}/profile.json"],
         setup=_profile("[1, 2, 3]")),
    Case("profile-missing-field", "profile", "profile lacks a top-level field",
         [*EXPLAIN, "--profile", "{case}/profile.json"], setup=_profile_missing_field),
    Case("profile-wrong-type", "profile", "profile field of the wrong type",
         [*EXPLAIN, "--profile", "{case}/profile.json"], setup=_profile_wrong_type),
    Case("profile-not-found", "profile", "profile path does not exist",
         [*EXPLAIN, "--profile", "{case}/nowhere.json"]),
    # --- CLI: auto (fails before any model is loaded)
    Case("auto-empty-prompt", "CLI", "empty prompt", ["auto", "", "--model", "{model}", *RUN, "--out", "{out}"],
         needs_model=True),
    Case("auto-blank-prompt", "CLI", "prompt of only spaces",
         ["auto", "   ", "--model", "{model}", *RUN, "--out", "{out}"], needs_model=True),
    Case("auto-steps-zero", "CLI", "auto --steps 0", _model_arg([], steps="0"), needs_model=True),
    Case("auto-unknown-model", "CLI", "auto --model that is no name, dir or hub id",
         ["auto", "a red fox", "--model", "no-such-model", *RUN, "--out", "{out}"]),
    Case("auto-bad-device", "CLI", "auto --device tpu", _model_arg([], device="tpu"), needs_model=True),
    Case("auto-out-not-png", "CLI", "--out with a non-PNG suffix",
         ["auto", "a red fox", "--model", "{model}", *RUN, "--out", "{out}/fox.jpg"], needs_model=True),
    Case("auto-out-under-a-file", "CLI", "unwritable --out (parent is a file)",
         ["auto", "a red fox", "--model", "{model}", *RUN, "--out", "{case}/afile/fox.png"], setup=_file_in_the_way,
         needs_model=True),
    Case("auto-out-is-a-dir", "CLI", "--out fox.png that is an existing directory",
         ["auto", "a red fox", "--model", "{model}", *RUN, "--out", "{out}/fox.png"], setup=_dir_named_png,
         needs_model=True),
    # --- model directories
    Case("model-dir-missing", "model dir", "--model directory does not exist",
         ["auto", "a red fox", "--model", "{case}/no-such-dir/", *RUN, "--out", "{out}"]),
    Case("model-index-missing", "model dir", "model_index.json missing", _model_arg([]), needs_model=True,
         setup=_rm("model_index.json")),
    Case("model-index-corrupt", "model dir", "model_index.json is not JSON", _model_arg([]), needs_model=True,
         setup=_write("model_index.json", "{\"_class_name\": \"FluxPipeline\", ")),
    Case("model-component-missing", "model dir", "vae/ missing", _model_arg([]), needs_model=True, setup=_rm("vae")),
    Case("model-weights-missing", "model dir", "transformer/ without weight files", _model_arg([]), needs_model=True,
         setup=_rm(TRANSFORMER_ST)),
    Case("model-custom-component", "model dir", "model_index.json names evil_module.EvilTransformer (remote code)",
         _model_arg([]), needs_model=True, setup=_custom_component),
    Case("model-custom-pipeline", "model dir", "model_index.json _class_name = pipeline.EvilPipeline (remote code)",
         _model_arg([]), needs_model=True, setup=_custom_pipeline),
    # --- safetensors
    Case("st-truncated", "safetensors", "transformer safetensors truncated to 60 %", _model_arg([]), needs_model=True,
         setup=_truncate(TRANSFORMER_ST, 0.6)),
    Case("st-header-length-absurd", "safetensors", "header length field 2**60", _model_arg([]), needs_model=True,
         setup=_st_header_length_absurd),
    Case("st-tensor-size-absurd", "safetensors", "tensor shape [2**31, 2**31], offsets to 2**62", _model_arg([]),
         needs_model=True, setup=_st_tensor_sizes_absurd),
    Case("st-wrong-shape", "safetensors", "x_embedder.weight of the wrong shape", _model_arg([]), needs_model=True,
         setup=_st_wrong_shape),
    # --- pickle checkpoints (must be refused, never unpickled)
    Case("pickle-payload-only", "pickle", "transformer/ has only a .bin whose pickle runs os.mkdir",
         _model_arg([]), needs_model=True, setup=_pickle_payload),
    Case("pickle-state-dict-only", "pickle", "transformer/ has only a genuine torch.save .bin", _model_arg([]),
         needs_model=True, setup=_pickle_state_dict),
    # --- GGUF (auto --transformer gguf-q8_0 reads gguf/transformer-Q8_0.gguf of the model dir)
    Case("gguf-missing", "GGUF", "GGUF file missing", _model_arg(["--transformer", "gguf-q8_0"]), needs_model=True,
         setup=_rm(GGUF)),
    Case("gguf-truncated", "GGUF", "GGUF truncated to 50 %", _model_arg(["--transformer", "gguf-q8_0"]),
         needs_model=True, setup=_truncate(GGUF, 0.5)),
    Case("gguf-wrong-magic", "GGUF", "magic GGML instead of GGUF", _model_arg(["--transformer", "gguf-q8_0"]),
         needs_model=True, setup=_gguf_magic),
    Case("gguf-dims-absurd", "GGUF", "a tensor's first dim patched to 2**40",
         _model_arg(["--transformer", "gguf-q8_0"]), needs_model=True, setup=_gguf_patch("dims")),
    Case("gguf-wrong-shape", "GGUF", "a tensor's dims reversed (same size, wrong shape)",
         _model_arg(["--transformer", "gguf-q8_0"]), needs_model=True, setup=_gguf_patch("shape")),
    Case("gguf-bad-type", "GGUF", "a tensor's GGML type patched to 250",
         _model_arg(["--transformer", "gguf-q8_0"]), needs_model=True, setup=_gguf_patch("type")),
    # --- Python API (in-process; must raise a FluxplanError with a one-line message)
    Case("api-plan-unknown-gpu", "API", "unknown GPU", call=_api_plan(gpu="nope"), call_text='fluxplan.plan(gpu="nope")'),
    Case("api-plan-vram-negative", "API", "negative VRAM", call=_api_plan(gpu="4090", vram=-1),
         call_text='fluxplan.plan(gpu="4090", vram=-1)'),
    Case("api-plan-bad-resolution", "API", "bad resolution", call=_api_plan(gpu="4090", resolution="12x12"),
         call_text='fluxplan.plan(gpu="4090", resolution="12x12")'),
    Case("api-plan-steps-zero", "API", "steps 0", call=_api_plan(gpu="4090", steps=0),
         call_text='fluxplan.plan(gpu="4090", steps=0)'),
    Case("api-generate-empty-prompt", "API", "empty prompt", call=_api_generate(""), needs_model=True,
         call_text='fluxplan.generate("", model=DIR, device="cpu", out=OUT, ...)'),
    Case("api-generate-negative-seed", "API", "seed -1", call=_api_generate("a red fox", seed=-1), needs_model=True,
         call_text='fluxplan.generate("a red fox", seed=-1, model=DIR, device="cpu", out=OUT, ...)'),
    Case("api-load-component-missing", "API", "load a model dir without vae/", call=_api_load, needs_model=True,
         setup=_rm("vae"), call_text='fluxplan.load(model=DIR_WITHOUT_VAE, device="cpu")'),
]


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    case: Case
    command: str
    exit: str  # the exit code, or the exception class (API)
    error_lines: list[str]  # stderr lines starting "fluxplan: error:" (API: the exception message's lines)
    other_lines: list[str]  # other stderr lines, not auto's own plan:/note: progress
    progress_lines: int
    traceback: bool
    written: list[str]
    foreign_code: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        exit_ok = self.exit == "2" or (self.case.call is not None and self.exit.endswith("(exit_code 2)"))
        return (exit_ok and len(self.error_lines) == 1 and not self.other_lines and not self.traceback
                and not self.written and not self.foreign_code)

    def problems(self) -> list[str]:
        out = []
        if not (self.exit == "2" or self.exit.endswith("(exit_code 2)")):
            out.append(f"exit {self.exit}")
        if len(self.error_lines) != 1:
            out.append(f"{len(self.error_lines)} error lines")
        if self.other_lines:
            out.append(f"{len(self.other_lines)} other stderr lines")
        if self.traceback:
            out.append("traceback")
        if self.written:
            out.append("wrote " + ", ".join(self.written))
        if self.foreign_code:
            out.append("FOREIGN CODE RAN")
        return out


def build_base(root: Path) -> Path:
    """The tiny synthetic pipeline with its Q8_0 GGUF file, under `root` (FLUXPLAN_CACHE layout)."""
    from fluxplan.run.synth import ensure_synthetic

    return ensure_synthetic("tiny", root=root, gguf_levels=["Q8_0"])


def prepare(case: Case, base: Path | None, work: Path) -> tuple[Path, Path, Path]:
    """The case dir with out/ (empty), cache/ and, for model cases, model/ (a copy of `base`, then corrupted)."""
    cdir = work / case.id
    if cdir.exists():
        shutil.rmtree(cdir)
    (cdir / "out").mkdir(parents=True)
    (cdir / "cache").mkdir()
    model = cdir / "model"
    if case.needs_model:
        assert base is not None, "model cases need the tiny pipeline"
        shutil.copytree(base, model)
    if case.setup is not None:
        case.setup(model, cdir)
    return cdir, cdir / "out", model


def _written(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def _fill(arg: str, cdir: Path, out: Path, model: Path) -> str:
    return arg.replace("{model}", str(model)).replace("{out}", str(out)).replace("{case}", str(cdir))


def run_cli(case: Case, cdir: Path, out: Path, model: Path) -> Outcome:
    argv = [_fill(a, cdir, out, model) for a in case.argv]
    env = {**os.environ, "FLUXPLAN_CACHE": str(cdir / "cache"), "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    env.pop("FLUXPLAN_DEBUG", None)
    t0 = time.monotonic()
    proc = subprocess.run([str(FLUXPLAN), *argv], capture_output=True, text=True, env=env, cwd=cdir,
                          timeout=TIMEOUT_S)
    seconds = time.monotonic() - t0
    lines = [ln.replace(str(cdir), "{case}") for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("fluxplan: error:")]
    progress = [ln for ln in lines if ln.startswith(PROGRESS_PREFIXES)]
    other = [ln for ln in lines if ln not in errors and ln not in progress]
    shown = " ".join(_shell(a) for a in ["fluxplan", *case.argv])
    return Outcome(case, shown, str(proc.returncode), errors, other, len(progress), "Traceback" in proc.stderr,
                   _written(out), (cdir / SENTINEL).exists(), seconds)


def run_api(case: Case, cdir: Path, out: Path, model: Path) -> Outcome:
    from fluxplan.errors import FluxplanError

    old = os.environ.get("FLUXPLAN_CACHE")
    os.environ["FLUXPLAN_CACHE"] = str(cdir / "cache")
    t0 = time.monotonic()
    try:
        case.call(model, out, cdir)
        exit_, lines, tb = "returned (no error)", [], False
    except FluxplanError as e:
        exit_, lines, tb = f"{type(e).__name__} (exit_code {e.exit_code})", _lines(e, cdir), False
    except Exception as e:  # not a FluxplanError: the CLI would print "internal error" and exit 1
        exit_, lines, tb = f"{type(e).__name__} (not a FluxplanError)", _lines(e, cdir), True
    finally:
        if old is None:
            os.environ.pop("FLUXPLAN_CACHE", None)
        else:
            os.environ["FLUXPLAN_CACHE"] = old
    return Outcome(case, case.call_text, exit_, lines, [], 0, tb, _written(out), (cdir / SENTINEL).exists(),
                   time.monotonic() - t0)


def _lines(e: BaseException, cdir: Path) -> list[str]:
    return str(e).replace(str(cdir), "{case}").splitlines() or [""]


def _shell(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./{}:=" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def run_case(case: Case, base: Path | None, work: Path) -> Outcome:
    cdir, out, model = prepare(case, base, work)
    return (run_api if case.call is not None else run_cli)(case, cdir, out, model)


def run_cases(cases: list[Case], work: Path, base: Path | None = None, workers: int | None = None) -> list[Outcome]:
    """Run `cases` (CLI ones in parallel subprocesses, API ones in this process) and return their outcomes in order.
    Builds the tiny pipeline under work/base-cache when a case needs it and `base` is not given."""
    if base is None and any(c.needs_model for c in cases):
        base = build_base(work / "base-cache")
    cli = [c for c in cases if c.call is None]
    api = [c for c in cases if c.call is not None]
    # Setup (copying, corrupting) runs here, one case at a time; the subprocesses run in parallel.
    prepared = {c.id: prepare(c, base, work) for c in cli}
    # The slow ones (they import torch and diffusers) first, so the pool stays busy.
    order = sorted(cli, key=lambda c: (c.argv[0] != "auto", not c.needs_model))
    workers = workers or max(2, os.cpu_count() or 2)
    results = {c.id: run_case(c, base, work) for c in api}  # in this process, before the pool starts
    with ThreadPoolExecutor(workers) as pool:
        futures = {c.id: pool.submit(run_cli, c, *prepared[c.id]) for c in order}
        results.update({cid: f.result() for cid, f in futures.items()})
    return [results[c.id] for c in cases]


# --------------------------------------------------------------------------- report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome]) -> str:
    rows = ["| # | area | bad input | command or call | exit | stderr (error line) | other stderr | traceback "
            "| written | bar |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for i, o in enumerate(outcomes, 1):
        err = " / ".join(o.error_lines) if o.error_lines else "(none)"
        other = f"{o.progress_lines} plan/note" if o.progress_lines else ""
        if o.other_lines:
            other = (other + "; " if other else "") + f"{len(o.other_lines)} other: " + " / ".join(o.other_lines[:2])
        written = ", ".join(o.written) or "nothing"
        if o.foreign_code:
            written += "; FOREIGN CODE RAN"
        bar = "yes" if o.ok else "**NO**: " + "; ".join(o.problems())
        rows.append(f"| {i} | {o.case.area} | {_cell(o.case.what)} | `{_cell(o.command)}` | {_cell(o.exit)} "
                    f"| `{_cell(err)}` | {_cell(other or '-')} | {'yes' if o.traceback else 'no'} "
                    f"| {_cell(written)} | {_cell(bar)} |")
    return "\n".join(rows)


def summary(outcomes: list[Outcome], seconds: float | None = None) -> str:
    ok = sum(o.ok for o in outcomes)
    line = f"{len(outcomes)} cases; {ok} met the bar (exit 2, one error line, no traceback, nothing written)"
    line += f"; {len(outcomes) - ok} did not"
    if seconds is not None:
        line += f"; generated in {seconds:.0f} s"
    return line


def gaps(outcomes: list[Outcome]) -> str:
    out = []
    for o in outcomes:
        if o.ok:
            continue
        out.append(f"- `{o.case.id}` ({o.case.what}): {'; '.join(o.problems())}. Command: `{o.command}`; "
                   f"exit {o.exit}; stderr:")
        if o.case.gap:
            out[-1] += f" (why: {o.case.gap})"
        out.append("")
        out.append("  ```")
        out += [f"  {ln}" for ln in (o.error_lines + o.other_lines)[:12]] or ["  (empty)"]
        out.append("  ```")
    return "\n".join(out) if out else "(none)"


INTRO = """## Hostile and broken inputs

Every bad input fluxplan can be given, on the command line, through the Python API, in a profile file, in a model
directory or in a weight file, should end the same way: **exit code 2, one line on stderr
(`fluxplan: error: ...`), no traceback, nothing written** to the output directory (no PNG, no partial file). Loading
never unpickles and never runs code from a model directory: safetensors and GGUF only, no remote code.

The table below is produced by `benchmarks/hostile_inputs.py`. It builds each input in a temp dir (model cases
corrupt a copy of the tiny synthetic pipeline, `ensure_synthetic("tiny", gguf_levels=["Q8_0"])`), runs it through
the real `fluxplan` console script as a subprocess (on the CPU, `--steps 1 --resolution 256x256`, with its own
`FLUXPLAN_CACHE`) or through the API in-process, and records the exit code (API: the exception raised), the stderr
lines, whether a traceback appeared and what was left in the output directory. Payloads (a pickle's `__reduce__`, a
module named by `model_index.json`) create a sentinel directory if they ever run. In commands, `{model}` is the
corrupted model copy, `{out}` the (empty) output directory and `{case}` the case's temp dir.

`auto` prints its plan and notes on stderr (`plan: ...`, `note: ...`) before it loads anything; those lines are the
command's progress and are counted in the "other stderr" column, not against the bar. Any other stderr line
(library warnings, a second error line) is.

Regenerate (about 3 minutes on 2 CPU cores; no GPU needed):

    .venv/bin/python benchmarks/hostile_inputs.py --write docs/RELIABILITY.md   # this section only

`tests/test_hostile_inputs.py` runs a subset of these cases and holds them to the bar; the gaps below are marked
`xfail(strict=True)` there, so the test fails once one is fixed (then drop its mark).
"""


def main() -> int:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fluxplan-hostile-") as tmp:
        outcomes = run_cases(CASES, Path(tmp))
    seconds = time.monotonic() - t0
    text = "\n".join([INTRO, "### Cases", "", table(outcomes), "", summary(outcomes, seconds) + ".", "", "### Gaps", "",
                      gaps(outcomes)])
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from docsection import write_section

        write_section(Path(sys.argv[2]), "hostile", text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
