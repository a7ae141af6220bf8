"""fluxplan's own overhead on top of the pipeline it builds (issue: under 2 % of one image's time at 28 steps).

One process, one pipeline built once by fluxplan's builder (bf16, T5 bf16 resident, no offload, full-size
synthetic FLUX.1-dev), one 1024x1024 image of 28 steps per call. Alternating, REPS times each (after one
unrecorded call of each):
- bare: the diffusers call on that pipeline, `pipe(prompt, num_inference_steps=28, height=1024, width=1024,
  guidance_scale=3.5, generator=...)` (PIL output), timed with torch.cuda.synchronize() on both sides;
- bare + PNG: the same call, then `images[0].save(path)` (PIL's defaults): what a diffusers user pays to have the
  image on disk, which is what `fluxplan auto` delivers;
- fluxplan: `fluxplan.api.generate(...)` with pins that make its plan the built one, and its builder replaced by
  one that returns the built pipeline: everything generate does per image (probe, plan, the store's failures,
  output paths, run with per-stage timing and NVML sampling, PNG with metadata, the store's record);
- parts: the same work step by step (plan_for, api.run, save, record), to say where the overhead goes.
Overhead = median(fluxplan) - median(bare), as a share of median(bare); and the same against bare + PNG (the work
fluxplan adds to a user's own script that saves its image). plan_for is also timed alone.

    python benchmarks/gpu/overhead.py --out $OUT                       # on the GPU; writes $OUT/overhead.json
    .venv/bin/python benchmarks/gpu/overhead.py --out /tmp/o --device cpu --model tiny --size 256 --steps 2 --reps 1
                                                                       # a smoke test of the script, on the CPU
    .venv/bin/python benchmarks/gpu/overhead.py --table benchmarks/results/<dir>/overhead.json   # the docs' table
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PROMPT = "a red fox in the snow, photograph"
PINS = dict(transformer="bf16", text_encoder="bf16", text_encoder_placement="resident", offload="none",
            compile="none", vae_tiling=False)
STEPS, SIZE, GUIDANCE, REPS, BOUND = 28, 1024, 3.5, 5, 0.02


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    t = time.perf_counter()
    value = fn()
    _sync()
    return time.perf_counter() - t, value


def measure(reps: int = REPS, device: str = "cuda", kind: str = "dev", size: int = SIZE, steps: int = STEPS) -> dict:
    import diffusers
    import torch

    import fluxplan.api as api
    from fluxplan.catalog.families import find_family
    from fluxplan.run.store import Store
    from fluxplan.run.synth import ensure_synthetic

    model = ensure_synthetic(kind, device=device)
    tmp = Path(tempfile.mkdtemp(prefix="fluxplan-overhead-"))
    store = Store(tmp / "runs.sqlite")
    pins = {**PINS, "resolution": f"{size}x{size}", "steps": steps}
    if not device.startswith("cuda"):
        pins["gpu"] = "h100"  # the smoke test: plan for a card the pinned bf16 plan fits

    cold_plan_s, (p, where, _) = _timed(lambda: api.plan_for(model, device=device, **pins))
    built = api.build_plan(p, model, where)
    pipe = built.pipe
    tokens = find_family(p.request.model).max_sequence_length  # what fluxplan's run encodes to
    pipe.set_progress_bar_config(disable=True)  # as fluxplan's run does: no tqdm in either path

    def bare():
        gen = torch.Generator("cpu").manual_seed(0)
        return pipe(PROMPT, num_inference_steps=steps, height=size, width=size, guidance_scale=GUIDANCE,
                    generator=gen, max_sequence_length=tokens).images  # dev: 512, diffusers' default

    def bare_png(i: int):
        images = bare()
        images[0].save(tmp / f"bare-{i}.png")
        return images

    def with_fluxplan(i: int):
        return api.generate(PROMPT, model=model, seed=0, out=tmp / f"generate-{i}.png", device=device,
                            guidance=GUIDANCE, store=store, strict=True, **pins)

    def parts(i: int) -> dict:
        out = {}
        out["plan_for"], (q, w, _) = _timed(lambda: api.plan_for(model, device=device, **pins))
        assert q.choice == p.choice, (q.choice, p.choice)
        out["previous_failure"], _ = _timed(lambda: api.previous_failure(store, w, q))
        out["run"], (images, m) = _timed(lambda: api.run(built, PROMPT, q, w, seed=0, guidance=GUIDANCE))
        out["save"], _ = _timed(lambda: api.save(images, [tmp / f"parts-{i}.png"], prompt=PROMPT, seed=0,
                                                 model=str(model), p=q, guidance=GUIDANCE,
                                                 timing=api.timings(built, m)))
        out["record"], _ = _timed(lambda: store.record_run(api.run_record(w, q, str(model), seed=0,
                                                                          guidance=GUIDANCE, built=built, m=m)))
        out["total"] = sum(out.values())
        out["run_steps"] = m.steps_flat
        return out

    real_build = api.build_plan
    api.build_plan = lambda plan, *a, **k: built  # generate's per-image work, without loading the model again
    try:
        bare_png(-1)  # warm-up, unrecorded
        first = with_fluxplan(-1)
        assert first.plan.choice == p.choice, (first.plan.choice, p.choice)
        parts(-1)
        rows = []
        for i in range(reps):
            bare_s, _ = _timed(bare)
            png_s, _ = _timed(lambda: bare_png(i))
            gen_s, report = _timed(lambda: with_fluxplan(i))
            rows.append({"bare_s": bare_s, "bare_png_s": png_s, "fluxplan_s": gen_s, "parts_s": parts(i),
                         "fluxplan_steps_s": report.measurement.steps_flat})
    finally:
        api.build_plan = real_build
    plan_s = [_timed(lambda: api.plan_for(model, device=device, **pins))[0] for _ in range(5)]
    shutil.rmtree(tmp, ignore_errors=True)

    bare_m = statistics.median(r["bare_s"] for r in rows)
    flux_m = statistics.median(r["fluxplan_s"] for r in rows)
    png_m = statistics.median(r["bare_png_s"] for r in rows)
    parts_m = {k: statistics.median(r["parts_s"][k] for r in rows)
               for k in ("plan_for", "previous_failure", "run", "save", "record", "total")}
    return {
        "what": "fluxplan overhead on top of the pipeline it builds",
        "date": time.strftime("%Y-%m-%d"), "gpu": where.name, "driver": where.driver,
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "model": f"synthetic FLUX.1-{kind} ({'full size, ' if kind != 'tiny' else ''}random weights)",
        "plan": p.choice.label(), "size": f"{size}x{size}", "steps": steps, "device": where.device, "reps": reps,
        "load_s": built.load_s,
        "rows": rows,
        "bare_s": bare_m, "fluxplan_s": flux_m,
        "overhead_s": flux_m - bare_m, "overhead_pct": 100 * (flux_m - bare_m) / bare_m,
        "bare_png_s": png_m, "overhead_vs_png_s": flux_m - png_m, "overhead_vs_png_pct": 100 * (flux_m - png_m) / png_m,
        "within_bound_vs_png": (flux_m - png_m) / png_m < BOUND,
        "paired_overhead_pct": 100 * statistics.median((r["fluxplan_s"] - r["bare_s"]) / r["bare_s"] for r in rows),
        "parts_s": parts_m, "run_overhead_pct": 100 * (parts_m["run"] - bare_m) / bare_m,
        "plan_for_cold_s": cold_plan_s, "plan_for_s": statistics.median(plan_s), "plan_for_all_s": plan_s,
        "bound_pct": 100 * BOUND, "within_bound": (flux_m - bare_m) / bare_m < BOUND,
    }


def table(result: dict) -> str:
    """The Markdown of docs/BENCHMARKS.md's overhead section, from overhead.json."""
    r, parts = result, result["parts_s"]
    bare = r["bare_s"]

    def pct(x: float) -> str:
        return f"{100 * x / bare:+.2f} %"

    lines = [
        f"Measured {r['date']} on one {r['gpu']} (driver {r['driver']}), torch {r['torch']}, diffusers "
        f"{r['diffusers']}; {r['model']}, plan {r['plan']}, one {r['size']} image of {r['steps']} steps per call, "
        f"median of {r['reps']} alternating calls each after one warm-up.",
        "",
        "| path | seconds per image | against the bare call |",
        "|---|---|---|",
        f"| bare diffusers call on the pipeline fluxplan built | {bare:.3f} | |",
        *([f"| the bare call, then `images[0].save(path)` | {r['bare_png_s']:.3f} | {pct(r['bare_png_s'] - bare)} |"]
          if "bare_png_s" in r else []),
        f"| `fluxplan.api.generate` (probe, plan, run, PNG with metadata, store record) | {r['fluxplan_s']:.3f} | "
        f"{pct(r['fluxplan_s'] - bare)} |",
        f"| the same, step by step: total | {parts['total']:.3f} | {pct(parts['total'] - bare)} |",
        f"| - `plan_for` (probe and plan) | {parts['plan_for']:.3f} | {pct(parts['plan_for'])} |",
        f"| - the store's earlier failures | {parts['previous_failure']:.4f} | {pct(parts['previous_failure'])} |",
        f"| - `api.run` (encode, {r['steps']} timed steps, decode, NVML sampling) | {parts['run']:.3f} | "
        f"{pct(parts['run'] - bare)} |",
        f"| - PNG with metadata (fsynced) | {parts['save']:.3f} | {pct(parts['save'])} |",
        f"| - the store's record | {parts['record']:.4f} | {pct(parts['record'])} |",
        "",
        f"Overhead: {r['overhead_s']:.3f} s per image, {r['overhead_pct']:.2f} % of the bare call (paired per "
        f"repetition: {r['paired_overhead_pct']:.2f} %); bound {r['bound_pct']:.0f} %: "
        f"{'met' if r['within_bound'] else '**not met**'}. `plan_for` alone: {r['plan_for_s'] * 1000:.0f} ms "
        f"(median of {len(r['plan_for_all_s'])}; the first call in the process, {r['plan_for_cold_s']:.2f} s, "
        "also initialises CUDA and reads the backend checks and the store).",
    ]
    if "bare_png_s" in r:
        lines.append(f"Against the bare call that also saves its PNG: {r['overhead_vs_png_s']:.3f} s, "
                     f"{r['overhead_vs_png_pct']:.2f} %; bound {r['bound_pct']:.0f} %: "
                     f"{'met' if r['within_bound_vs_png'] else '**not met**'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="directory for overhead.json (on the GPU)")
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="dev", help="synthetic model kind: dev on the GPU, tiny for a smoke test")
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--table", type=Path, help="print the Markdown table of an overhead.json instead")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())), end="")
        return
    if args.out is None:
        ap.error("give --out DIR (on a GPU) or --table FILE")
    result = measure(args.reps, args.device, args.model, args.size, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(result), end="")


if __name__ == "__main__":
    main()
