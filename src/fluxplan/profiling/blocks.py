"""Block-level profiling: weights and time of one double-stream and one single-stream FLUX block per format.

The block model (run.synth.ensure_block_model: the real width, one block of each kind, random weights) is loaded
per format through the builder's own backends (diffusers' quantization configs, layerwise casting, GGUF files),
so the quantization is the one users get. For each format this records
- the bytes of the double block, the single block and the rest (embedders, final layer): tensor bytes of each
  module (quantized tensors unpacked), scaled on a GPU so that they add up to what the allocator holds;
- at several (image tokens, text tokens, batch) points: the time of the double block, the single block and the
  rest of a forward (CUDA events from forward hooks; perf_counter on the CPU), median of a few repetitions, and
  the activation peak above the weights (allocated and reserved; GPU only);
- at the same points, the time of the block model's forward with its double block called 19 times and its single
  block 38 times (`stacked_s`; `stacked_cpu_s`: until the call returned, before waiting for the GPU): the full
  model's sequence of calls on the block model's weights, so a step's host-side work (quantized layers dispatch
  per call, from Python) is in it as well as the GPU's. Where the host cannot keep the GPU fed (small images,
  formats with costly per-call dispatch) this is longer than the blocks' GPU times added up.
fluxplan.profiling.build takes a step as `stacked_s` where measured, else extrapolates (`extrapolate`):
rest + 19 x double + 38 x single.

A task `FORMAT@regional` measures the format under regional compile, the way run.placement compiles a pipeline
(`compile_repeated_blocks(fullgraph=True)`: one compiled graph per block class, the work of the full model's
regional compile); `FORMAT@full` under full compile (`transformer.compile()`: Dynamo traces the stacked forward,
19 + 38 block calls, as it traces the full model's): the first stacked forward (the compile, timed cold: Dynamo
reset, Inductor's caches off), then the stacked forward at COMPILE_POINTS as above, with its reserve. A compile
that fails is a row with its error; one past its time limit a row saying so. These rows go to `compiled` in
blocks.json.

    python -m fluxplan.profiling.blocks --out DIR [--formats bf16,fp8-layerwise,bf16@regional] [--quick]

The parent runs the formats in a child process, one after another, with a time limit per format: a format that
fails is a row with its error; one that hangs or crashes the child is killed, recorded, and the child restarted
for the rest. Rows go to DIR/blocks.jsonl as they come; DIR/blocks.json is the summary build reads.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fluxplan.profiling.blockpoints import error_line, extrapolate  # noqa: F401  (extrapolate: re-exported)

GIB = 1024**3
# (image tokens, text tokens, batch): 512, 768, 1024 and 1536 px squares at 512 text tokens, one shorter prompt,
# one batch of two
POINTS = [(1024, 512, 1), (2304, 512, 1), (4096, 512, 1), (9216, 512, 1), (4096, 256, 1), (4096, 512, 2)]
TINY_POINTS = [(64, 16, 1), (256, 16, 1), (256, 8, 1), (256, 16, 2)]  # the tiny test family, on the CPU
REPS, QUICK_REPS = 5, 3
# A stacked forward costs a full step. Its fastest of three: a host-bound forward is slowed now and then by the
# host (the H200's NF4 at 2304 tokens, median of two: 0.157 s, where its pipeline stepped at 0.118 s on the same
# machine), and the first call at a shape grows the allocator's pool; --quick takes one.
STACKED_REPS, QUICK_STACKED_REPS = 3, 1
# compiled: the default 1024x1024, whose first call is the compile. A new shape compiles again (dynamic shapes),
# about as long as the first (H100, 2026-11-22: bf16 23 s, then 17 s at 512x512), so one point per format.
COMPILE_POINTS = [(4096, 512, 1)]
TINY_COMPILE_POINTS = [(64, 16, 1)]
COMPILE_MODES = ("regional", "full")


def split_task(task: str) -> tuple[str, str | None]:
    """`bf16@regional` -> ("bf16", "regional"); `bf16` -> ("bf16", None)."""
    fmt, _, mode = task.partition("@")
    if mode and mode not in COMPILE_MODES:
        raise ValueError(f"{task}: compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    return fmt, mode or None


# --------------------------------------------------------------------------- measuring one format (child)


def tensor_bytes(t: Any) -> int:
    """Bytes a tensor holds: the inner tensors of a tensor subclass (torchao, quanto), bitsandbytes' quantization
    state (absmax, code, SCB) beside its packed data, plain numel x element size otherwise."""
    import torch

    if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        try:
            names, _ = t.__tensor_flatten__()
            return sum(tensor_bytes(getattr(t, n)) for n in names)
        except (AttributeError, TypeError, NotImplementedError):
            pass
    n = t.numel() * t.element_size()
    state = getattr(t, "quant_state", None)
    while state is not None:  # bitsandbytes 4-bit (nested: state2)
        n += sum(v.numel() * v.element_size() for v in vars(state).values() if isinstance(v, torch.Tensor))
        state = getattr(state, "state2", None)
    scb = getattr(t, "SCB", None)  # bitsandbytes int8 row scales
    if isinstance(scb, torch.Tensor):
        n += scb.numel() * scb.element_size()
    return n


def module_bytes(module: Any) -> int:
    return sum(tensor_bytes(t) for t in list(module.parameters()) + list(module.buffers()))


def load(fmt: str, model_dir: Path, kind: str, device: str, dtype: Any) -> Any:
    """The block model's transformer in `fmt`, loaded the way run.builder loads a pipeline's transformer."""
    from diffusers import FluxTransformer2DModel

    from fluxplan.run import backends
    from fluxplan.run.backends import TRANSFORMER, BackendFamily
    from fluxplan.run.synth import ensure_block_gguf

    backend, variant = backends.resolve(fmt, TRANSFORMER)
    backend.check(fmt, TRANSFORMER, device)
    if backend.family is BackendFamily.GGUF:
        file = ensure_block_gguf(model_dir, kind, variant, device=device)
        model = backend.load_transformer(variant, str(model_dir), dtype, file)
    else:
        config = backend.transformer_config(variant, dtype)
        kwargs = {"quantization_config": config} if config is not None else {}
        model = FluxTransformer2DModel.from_pretrained(model_dir, subfolder="transformer", dtype=dtype, **kwargs)
    backend.after_load(SimpleNamespace(transformer=model), TRANSFORMER, variant, dtype)
    return model.to(device).eval()


class Clock:
    """Times the double block, the single block and the whole forward; CUDA events on a GPU."""

    def __init__(self, model: Any, cuda: bool):
        self.cuda, self.marks = cuda, {}
        self.handles = []
        for name, block in (("double", model.transformer_blocks[0]), ("single", model.single_transformer_blocks[0])):
            self.handles.append(block.register_forward_pre_hook(lambda m, a, name=name: self.mark(name, 0)))
            self.handles.append(block.register_forward_hook(lambda m, a, o, name=name: self.mark(name, 1)))

    def mark(self, name: str, end: int) -> None:
        import torch

        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.setdefault(name, [None, None])[end] = ev
        else:
            self.marks.setdefault(name, [0.0, 0.0])[end] = time.perf_counter()

    def seconds(self, name: str) -> float:
        a, b = self.marks[name]
        if self.cuda:
            return a.elapsed_time(b) / 1000.0
        return b - a

    def run(self, fn) -> dict[str, float]:
        import torch

        self.marks = {}
        self.mark("total", 0)
        fn()
        self.mark("total", 1)
        if self.cuda:
            torch.cuda.synchronize()
        t = {k: self.seconds(k) for k in ("double", "single", "total")}
        t["rest"] = t["total"] - t["double"] - t["single"]  # nested intervals of one forward: never negative
        return t

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


class Stacked:
    """While entered, the block model's forward calls its one double block `n_double` times and its one single
    block `n_single` times, as the full model calls its blocks (the same module objects, so the same weights)."""

    def __init__(self, model: Any, n_double: int, n_single: int):
        self.model, self.n = model, {"transformer_blocks": n_double, "single_transformer_blocks": n_single}
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> Stacked:
        import torch

        for name, n in self.n.items():
            blocks = getattr(self.model, name)
            self.saved[name] = blocks
            setattr(self.model, name, torch.nn.ModuleList([blocks[0]] * n))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, blocks in self.saved.items():
            setattr(self.model, name, blocks)


def time_stacked(forward, cuda: bool, reps: int) -> tuple[float, float]:
    """(wall seconds, host seconds) of the fastest of `reps` calls of `forward`: wall from the call to the GPU
    being done, host from the call to its return."""
    import torch

    walls, hosts = [], []
    for _ in range(reps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
        hosts.append(t1 - t0)
    best = min(range(reps), key=walls.__getitem__)
    return walls[best], hosts[best]


def inputs(cfg: dict, image: int, text: int, batch: int, device: str, dtype: Any) -> dict[str, Any]:
    import torch

    kw = {"device": device, "dtype": dtype}
    args = {"hidden_states": torch.randn(batch, image, cfg["in_channels"], **kw),
            "encoder_hidden_states": torch.randn(batch, text, cfg["joint_attention_dim"], **kw),
            "pooled_projections": torch.randn(batch, cfg["pooled_projection_dim"], **kw),
            "timestep": torch.full((batch,), 0.5, **kw),
            "img_ids": torch.zeros(image, 3, device=device), "txt_ids": torch.zeros(text, 3, device=device),
            "return_dict": False}
    if cfg.get("guidance_embeds"):
        args["guidance"] = torch.full((batch,), 3.5, **kw)
    return args


def forward_of(model: Any, args: dict):
    """A call of `model` on `args` without autograd, to be timed."""
    import torch

    def forward() -> None:
        with torch.inference_mode():
            model(**args)
    return forward


def load_measured(load_fn, cuda: bool) -> tuple[Any, float, int | None]:
    """(module, seconds, bytes the allocator holds for it) of `load_fn()`; on a GPU the cache is emptied before and
    after, so that blocks freed while quantizing are not counted (None on the CPU)."""
    import torch

    if cuda:
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    module = load_fn()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    seconds = time.perf_counter() - t0
    return module, seconds, (torch.cuda.memory_allocated() - before) if cuda else None


def measure_format(fmt: str, model_dir: Path, kind: str, *, device: str, points: list[tuple[int, int, int]],
                   reps: int, stack: tuple[int, int] | None = None, stacked_reps: int = STACKED_REPS) -> dict:
    """One format's row: load time, block and rest bytes, and per point the block, rest and total seconds (and
    the activation peak on a GPU), then the stacked forward's seconds (`stack`: the full model's double and single
    block counts, by default its family's). Raises whatever loading or running raises; the caller records it."""
    import torch

    from fluxplan.run.synth import family

    full = family(kind)["transformer"]
    n_double, n_single = stack or (full["num_layers"], full["num_single_layers"])

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model, load_s, allocated = load_measured(lambda: load(fmt, model_dir, kind, device, dtype), cuda)
    double = module_bytes(model.transformer_blocks[0])
    single = module_bytes(model.single_transformer_blocks[0])
    total = module_bytes(model)
    scale = allocated / total if allocated else 1.0  # allocator granularity and anything the tensors hide
    row: dict[str, Any] = {
        "format": fmt, "ok": True, "device": device, "dtype": str(dtype).removeprefix("torch."), "load_s": load_s,
        "weights_bytes": {"double": double * scale, "single": single * scale,
                          "rest": (total - double - single) * scale, "tensors": total, "allocated": allocated},
        "points": []}
    clock = Clock(model, cuda)
    cfg = dict(model.config)
    try:
        for image, text, batch in points:
            forward = forward_of(model, inputs(cfg, image, text, batch, device, dtype))
            clock.run(forward)  # warm-up (kernels chosen, caches filled)
            point: dict[str, Any] = {"image_tokens": image, "text_tokens": text, "batch": batch}
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            runs = [clock.run(forward) for _ in range(reps)]
            if cuda:
                point["activation_gib"] = (torch.cuda.max_memory_allocated() - base) / GIB
                point["reserved_gib"] = (torch.cuda.max_memory_reserved() - base) / GIB
            for k in ("double", "single", "rest", "total"):
                point[f"{k}_s"] = statistics.median(r[k] for r in runs)
            row["points"].append(point)
            del forward
        clock.remove()
        with Stacked(model, n_double, n_single):
            for point in row["points"]:
                forward = forward_of(model, inputs(cfg, point["image_tokens"], point["text_tokens"], point["batch"],
                                                   device, dtype))
                point["stacked_s"], point["stacked_cpu_s"] = time_stacked(forward, cuda, stacked_reps)
                del forward
        row["stacked"] = {"double": n_double, "single": n_single}
    finally:
        clock.remove()
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return row


def measure_compiled(fmt: str, mode: str, model_dir: Path, kind: str, *, device: str,
                     points: list[tuple[int, int, int]], stack: tuple[int, int] | None = None,
                     stacked_reps: int = STACKED_REPS) -> dict:
    """One format under compile: the cold compile's seconds (the first stacked forward less a steady one) and, per
    point, the compiled stacked forward (wall, host) and its reserve above the weights. Raises what loading,
    compiling or running raises; the caller records it."""
    import torch

    from fluxplan.models import Compile
    from fluxplan.run.placement import compile_transformer
    from fluxplan.run.synth import family

    full = family(kind)["transformer"]
    n_double, n_single = stack or (full["num_layers"], full["num_single_layers"])
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch._dynamo.reset()  # this format's compile from scratch, not another format's graphs
    torch._inductor.config.force_disable_caches = True  # a user's first compile: no on-disk cache hits
    t0 = time.perf_counter()
    model = load(fmt, model_dir, kind, device, dtype)
    compile_transformer(SimpleNamespace(transformer=model), Compile(mode))
    cfg = dict(model.config)
    row: dict[str, Any] = {"format": f"{fmt}@{mode}", "base": fmt, "compile": mode, "ok": True, "device": device,
                           "load_s": time.perf_counter() - t0, "points": []}
    try:
        with Stacked(model, n_double, n_single):
            for image, text, batch in points:
                forward = forward_of(model, inputs(cfg, image, text, batch, device, dtype))
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                forward()  # compiles (again, at a new shape)
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
                    base = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                point: dict[str, Any] = {"image_tokens": image, "text_tokens": text, "batch": batch,
                                         "first_s": time.perf_counter() - t}
                point["stacked_s"], point["stacked_cpu_s"] = time_stacked(forward, cuda, stacked_reps)
                if cuda:
                    point["reserved_gib"] = (torch.cuda.max_memory_reserved() - base) / GIB
                row["points"].append(point)
                del forward
        first = row["points"][0]
        row["compile_s"] = max(0.0, first["first_s"] - first["stacked_s"])
        row["stacked"] = {"double": n_double, "single": n_single}
    finally:
        del model
        torch._dynamo.reset()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return row


def environment() -> dict[str, Any]:
    """GPU, driver, versions and the host (CPU, cores, per-call dispatch time) for provenance."""
    from fluxplan.run.doctor import _version
    from fluxplan.run.doctor import environment as env
    from fluxplan.run.hostprobe import host

    e = env()
    versions = {m: _version(m) for m in ("torch", "diffusers", "transformers", "torchao", "bitsandbytes",
                                         "optimum.quanto", "gguf")}
    return {"gpu": e.gpu, "driver": e.driver, "cuda": e.cuda, "host": host(),
            "versions": {k.replace("optimum.quanto", "optimum-quanto"): v for k, v in versions.items() if v}}


def cuda_context_gib() -> float:
    """The CUDA context's memory: NVML's used memory after CUDA and cuBLAS start, less it before and less what
    torch reserved (the blocks' and the sweep's process both measure it so). Call before anything else in the
    process uses CUDA."""
    import pynvml
    import torch

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    before = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    torch.cuda.init()
    torch.matmul(torch.randn(64, 64, device="cuda"), torch.randn(64, 64, device="cuda"))  # the cuBLAS handle
    torch.cuda.synchronize()
    used = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    return (used - before - torch.cuda.memory_reserved()) / GIB


def child(formats: list[str], out: Path, kind: str, device: str, quick: bool,
          compile_points: list[tuple[int, int, int]] | None = None) -> None:
    from fluxplan.run.synth import ensure_block_model

    rows = out / "blocks.jsonl"
    context = cuda_context_gib() if device.startswith("cuda") else None
    t = time.perf_counter()
    model_dir = ensure_block_model(kind, device=device)  # type: ignore[arg-type]
    env = environment() | ({"context_gib": context} if context is not None else {})
    _append(rows, {"env": env, "model": str(model_dir), "model_s": time.perf_counter() - t})
    stacked_reps = QUICK_STACKED_REPS if quick else STACKED_REPS
    for task in formats:
        _append(rows, {"format": task, "begin": True})
        t = time.perf_counter()
        fmt, mode = split_task(task)
        try:
            if mode is None:
                row = measure_format(fmt, model_dir, kind, device=device,
                                     points=TINY_POINTS if kind == "tiny" else POINTS,
                                     reps=QUICK_REPS if quick else REPS, stacked_reps=stacked_reps)
            else:
                points = compile_points or (TINY_COMPILE_POINTS if kind == "tiny" else COMPILE_POINTS)
                row = measure_compiled(fmt, mode, model_dir, kind, device=device, stacked_reps=stacked_reps,
                                       points=points)
        except Exception as e:  # noqa: BLE001  (a format that cannot load or run here is a result: record it)
            row = {"format": task, "ok": False, "error": error_line(e)}
            if mode is not None:
                row.update(base=fmt, compile=mode)
            gc.collect()
        row["wall_s"] = time.perf_counter() - t
        _append(rows, row)
        print(json.dumps({k: row.get(k) for k in ("format", "ok", "load_s", "compile_s", "wall_s", "error")}),
              flush=True)


# --------------------------------------------------------------------------- the parent


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path) -> list[dict]:
    """The complete lines of a jsonl file being written (a partial last line is skipped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().split("\n")[:-1]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _state(rows: list[dict]) -> tuple[set[str], str | None]:
    """(formats with a result, the format begun but not finished)."""
    done, current = set(), None
    for r in rows:
        if "format" not in r:
            continue
        if r.get("begin"):
            current = r["format"]
        else:
            done.add(r["format"])
            current = None if current == r["format"] else current
    return done, current


def parent(formats: list[str], out: Path, *, kind: str, device: str, quick: bool, limit: float,
           deadline: float, compile_limit: float | None = None, append: bool = False,
           compile_tokens: list[int] | None = None) -> Path:
    """Measure `formats` (and `FORMAT@regional` / `FORMAT@full` tasks) in child processes (restarted after a crash
    or a task past its limit: `limit` seconds, `compile_limit` for a compile task) until done or `deadline` seconds
    have passed;
    write OUT/blocks.json (`append`: beside the rows OUT/blocks.jsonl already holds). Each compile task runs in a
    process of its own, as a user's first compile does: on an H100 bf16's took over 75 s in a process that had
    loaded every backend before, 23 s in a fresh one."""
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "blocks.jsonl"
    if not append:
        rows_path.unlink(missing_ok=True)
    end = time.monotonic() + deadline
    todo = list(formats)
    while todo and time.monotonic() < end:
        batch = todo[:1] if "@" in todo[0] else [t for t in itertools.takewhile(lambda t: "@" not in t, todo)]
        cmd = [sys.executable, "-m", "fluxplan.profiling.blocks", "--child", "--out", str(out), "--kind", kind,
               "--device", device, "--formats", ",".join(batch)] + (["--quick"] if quick else []) + (
            ["--compile-tokens", ",".join(map(str, compile_tokens))] if compile_tokens else [])
        proc = subprocess.Popen(cmd)
        seen: dict[str, float] = {}
        why = None
        while proc.poll() is None:
            time.sleep(0.2)
            _, current = _state(read_rows(rows_path))
            now = time.monotonic()
            if current is not None:
                seen.setdefault(current, now)
                own = compile_limit if "@" in current and compile_limit else limit
                if now - seen[current] > own:
                    why = f"timeout: past the {own:.0f} s limit per {'compile' if '@' in current else 'format'}"
            if now > end:
                why = "timeout: past the deadline"
            if why:
                proc.kill()
                proc.wait()
        done, current = _state(read_rows(rows_path))
        if current is not None:  # crashed or killed in the middle of a format
            _append(rows_path, {"format": current, "ok": False, **_compile_keys(current),
                                "error": why or f"process ended with {proc.returncode} (crash)"})
            done.add(current)
        elif not done & set(batch):  # ended before its first format (killed at the deadline as it started, or
            for fmt in batch:        # crashed): no progress, do not start another
                _append(rows_path, {"format": fmt, "ok": False, **_compile_keys(fmt),
                                    "error": why or f"process ended with {proc.returncode}"})
            done |= set(batch)
        todo = [f for f in todo if f not in done]
    for fmt in todo:
        _append(rows_path, {"format": fmt, "ok": False, **_compile_keys(fmt), "error": "skipped: past the deadline"})
    return write_summary(out, kind=kind, device=device, command=" ".join(sys.argv))


def _compile_keys(task: str) -> dict[str, str]:
    fmt, mode = split_task(task)
    return {"base": fmt, "compile": mode} if mode else {}


def write_summary(out: Path, *, kind: str, device: str, command: str) -> Path:
    """OUT/blocks.json from OUT/blocks.jsonl: environment, block counts of the full model, one row per format
    (`formats`) and one per compile task (`compiled`)."""
    from fluxplan.run.synth import family

    rows = read_rows(out / "blocks.jsonl")
    env = next((r for r in rows if "env" in r), {"env": {}})
    results = {r["format"]: r for r in rows if "format" in r and not r.get("begin")}
    full = family(kind)["transformer"]
    summary = {"kind": kind, "device": device, "date": time.strftime("%Y-%m-%d"), "command": command,
               **env["env"], "model_s": env.get("model_s"),
               "blocks": {"double": full["num_layers"], "single": full["num_single_layers"]},
               "formats": [r for r in results.values() if "compile" not in r],
               "compiled": [r for r in results.values() if "compile" in r]}
    path = out / "blocks.json"
    tmp = path.with_name(f".blocks.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--formats", default="bf16", help="comma-separated transformer formats")
    ap.add_argument("--kind", default="dev", help="family of the block model (dev; tiny for CPU tests)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_REPS} timed repetitions per point, not {REPS}")
    ap.add_argument("--limit", type=float, default=90.0, help="seconds one format may take")
    ap.add_argument("--compile-limit", type=float, default=None,
                    help="seconds one FORMAT@regional or FORMAT@full task may take (default: --limit)")
    ap.add_argument("--deadline", type=float, default=420.0, help="seconds the whole run may take")
    ap.add_argument("--append", action="store_true", help="keep the rows OUT/blocks.jsonl holds (a later stage)")
    ap.add_argument("--compile-tokens", default=None,
                    help="image tokens of the compiled points, 512 text tokens, batch 1 (default: 4096; each further "
                         "size compiles again)")
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    try:
        for task in formats:
            split_task(task)
        tokens = [int(t) for t in args.compile_tokens.split(",")] if args.compile_tokens else None
    except ValueError as e:  # a mistyped compile mode or token count: argparse's one line and exit code 2
        ap.error(str(e))
    if args.child:
        child(formats, Path(args.out), args.kind, args.device, args.quick,
              [(t, 512, 1) for t in tokens] if tokens else None)
    else:
        print(parent(formats, Path(args.out), kind=args.kind, device=args.device, quick=args.quick,
                     limit=args.limit, deadline=args.deadline, compile_limit=args.compile_limit, append=args.append,
                     compile_tokens=tokens))


if __name__ == "__main__":
    main()
