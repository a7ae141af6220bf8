"""The fit guarantee on real hardware (issue 5): emulate cards of 6 to 48 GiB on one large GPU and run fluxplan's
`auto` path on each, with full-size synthetic FLUX.1-dev at 768x768, 1024x1024, 1536x1536 and 1024x1024 batch 2.

Each cell is `fluxplan.api.generate(..., vram=CARD)`, the function behind `fluxplan auto --vram CARD`: it plans for
CARD GiB and caps this process's allocator at CARD less the CUDA context (run.memory.cap_memory), so a plan that
does not fit is an out-of-memory error, which recovery handles as it would for a user. Per cell: the chosen plan,
its predicted and measured peak (NVML view), the time per image, and any recovery. A cell is an out-of-memory crash
when it ends without an image for lack of memory.

The oracle: for each shape, the plans of equal quality (the chosen weight formats, every offload mode and T5
placement the planner can build) that the planner predicts within 10 % of fitting some card, up to TOP_K of the
fastest per card, are measured uncapped on the same GPU. A cell's oracle is the fastest of them whose measured peak
leaves the planner's margin on the card (the cell's own run included); regret = the cell's time per image / the
oracle's.

To keep the matrix within the device budget, three things are shared or shortened, and the table says so:
- plans are made for 28 steps, but the denoising loop runs RUN_STEPS of them; time per image = encode + the first
  step + 27 x the median steady step + decode, divided by the batch (load is one-off and listed apart);
- cells and oracle runs that use the same pipeline (the same candidate, VAE tiling aside) share one load: the
  pipeline is loaded in the cell with the smallest card, and reused for larger cards and for the oracle runs;
- the run store is off (store=False), so no cell learns from another: every prediction is the profile's.

    # GPU machine: source benchmarks/gpu/setup.sh, build synthetic:dev, then in parts, each under 10 minutes
    # (--cells "6:1536;12:1024 b2" and --oracle-shapes "1024 b2" run a selection):
    python3 benchmarks/gpu/cards.py run --model .devcache/synthetic/dev-s0 --out $OUT --deadline 480 --part 1/3
    # here: the section of docs/RELIABILITY.md (its regenerate command names the committed runs)
    .venv/bin/python benchmarks/gpu/cards.py report LATEST.jsonl --earlier EARLIER.jsonl --plan LATEST_plan.json
    # here: measured less predicted peak of every distinct measured configuration, with the current cost model
    .venv/bin/python benchmarks/gpu/cards.py residuals benchmarks/results/h100-2026-11-22/cards-run1.jsonl
    # anywhere: the planned matrix and its pipeline groups, no GPU needed
    .venv/bin/python benchmarks/gpu/cards.py plan --gpu h100 --ram 125
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CARDS = (6, 8, 10, 12, 16, 20, 24, 32, 48)
SHAPES = {"768": (768, 768, 1), "1024": (1024, 1024, 1), "1536": (1536, 1536, 1), "1024 b2": (1024, 1024, 2)}
PLAN_STEPS, RUN_STEPS = 28, 4
WARMUP = (256, 256, 1)  # width, height, steps of the one image a newly loaded pipeline makes before it is timed
TOP_K = 3  # oracle contenders per cell, by predicted time
FIT_SLACK = 1.10  # contenders predicted within this factor of the card are measured too
RECIPE_CARD, RECIPE_SHAPE = 8, "1024"  # the low-memory recipes compared at this card and shape
PROMPT = "a red fox in the snow, photograph"


# --------------------------------------------------------------------------- plan (no GPU needed)


def _cand(d: dict):
    from fluxplan.run.store import candidate_from_dict

    return candidate_from_dict(d)


def _key(c) -> str:
    """A pipeline group: the candidate with VAE tiling aside (tiling is switched on the loaded pipeline)."""
    return json.dumps(dataclasses.replace(c, vae_tiling=False).as_dict(), sort_keys=True)


def _variants(gpu, ram, shape, fmt, installed, cpu, cpu_dtype=None) -> list:
    """Every buildable plan with the chosen weight formats at this shape, with its (uncapped) estimate."""
    from fluxplan.errors import FluxplanError
    from fluxplan.models import Offload, TextEncoderPlacement
    from fluxplan.planner import plan

    w, h, b = shape
    out = []
    for offload in Offload:
        for placement in TextEncoderPlacement:
            for tiling in (False, True):
                try:
                    p = plan(gpu, vram=1000.0, ram=ram, width=w, height=h, batch=b, steps=PLAN_STEPS,
                             transformer=fmt[0], text_encoder=fmt[1], text_encoder_placement=placement.value,
                             offload=offload.value, compile="none", vae_tiling=tiling, installed=installed,
                             cpu_tflops=cpu, cpu_dtype=cpu_dtype)
                except FluxplanError:
                    continue
                out.append(p)
    return out


def plan_matrix(gpu: str, ram: float | None, installed, cpu: float | None = None, only: set | None = None,
                oracle_shapes: set | None = None, cpu_dtype: str | None = None) -> dict:
    """The cells with their expected plans, the oracle contenders per shape, and the pipeline groups to run.
    `cpu`, `cpu_dtype`: this CPU's T5 rate and the dtype it is in (run.hostprobe.cpu_rate, as `auto` plans with);
    `only`: the (card, shape) cells to run, and `oracle_shapes` the shapes whose oracle runs to measure (default:
    all)."""
    from fluxplan.errors import FluxplanError
    from fluxplan.planner import plan

    cells, contenders, variants = [], {k: {} for k in SHAPES}, {}
    for card in CARDS:
        for name, (w, h, b) in SHAPES.items():
            if only is not None and (card, name) not in only:
                continue
            cell = {"card": card, "shape": name, "width": w, "height": h, "batch": b}
            try:
                p = plan(gpu, vram=card, ram=ram, width=w, height=h, batch=b, steps=PLAN_STEPS, installed=installed,
                         cpu_tflops=cpu, cpu_dtype=cpu_dtype)
            except FluxplanError as e:
                cells.append({**cell, "refused": str(e)})
                continue
            cells.append({**cell, "expected": p.choice.as_dict(), "expected_label": p.choice.label()})
            fmt = (p.choice.transformer, p.choice.text_encoder_2)
            if (name, fmt) not in variants:
                variants[name, fmt] = _variants(gpu, ram, (w, h, b), fmt, installed, cpu, cpu_dtype)
            near = [v for v in variants[name, fmt] if v.estimate.peak_vram_gib <= card * FIT_SLACK]
            for v in sorted(near, key=lambda v: v.estimate.latency_s)[:TOP_K] + [p]:
                contenders[name][json.dumps(v.choice.as_dict(), sort_keys=True)] = v.choice
    recipes = _recipes()
    for c in recipes:
        contenders[RECIPE_SHAPE][json.dumps(c.as_dict(), sort_keys=True)] = c
    if oracle_shapes is not None:
        contenders = {k: v for k, v in contenders.items() if k in oracle_shapes}
    groups: dict[str, dict] = {}
    for cell in cells:
        if "expected" in cell:
            g = groups.setdefault(_key(_cand(cell["expected"])), {"cells": [], "oracle": []})
            g["cells"].append(cell)
    for name, found in contenders.items():
        for c in found.values():
            g = groups.setdefault(_key(c), {"cells": [], "oracle": []})
            g["oracle"].append({"shape": name, "candidate": c.as_dict(), "recipe": c in recipes})
    ordered = [{"key": k, "cells": sorted(g["cells"], key=lambda c: c["card"]), "oracle": g["oracle"]}
               for k, g in groups.items()]
    ordered.sort(key=lambda g: (not g["cells"], g["key"]))  # the planner's own choices first
    return {"gpu": gpu, "cells": cells, "groups": ordered}


def _recipes() -> list:
    """The documented low-memory recipes: diffusers' group offload at leaf level with streams on every component,
    and sequential CPU offload, both of the bf16 model."""
    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement

    follow = TextEncoderPlacement.FOLLOWS_OFFLOAD
    return [Candidate("bf16", "bf16", follow, Offload.GROUP_LEAF, Compile.NONE, False),
            Candidate("bf16", "bf16", follow, Offload.SEQUENTIAL, Compile.NONE, False)]


# --------------------------------------------------------------------------- run (GPU)


def child(group: dict, model: Path, out: Path, stop_at: float, device: str = "cuda") -> None:
    """Run one pipeline group: its cells (smallest card first, capped), then its oracle runs (uncapped)."""
    import gc

    import torch

    from fluxplan import api
    from fluxplan.run.measure import is_out_of_memory
    from fluxplan.run.placement import set_vae_tiling

    cache: dict[str, object] = {}
    build_plan, run = api.build_plan, api.run
    on_gpu = device.startswith("cuda")

    def empty() -> None:
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()

    def build_shared(p, model, where, *, gguf_file=None):
        key = _key(p.choice)
        built = cache.get(key)
        if built is None:
            cache.clear()
            empty()
            built = cache[key] = build_plan(p, model, where, gguf_file=gguf_file)
            warm_up(built, p, where)
        pipe = built.pipe
        set_vae_tiling(pipe, p.choice.vae_tiling)  # run 3 toggled tiling alone, without slicing
        if p.choice.text_encoder_placement.value == "free":  # the last run moved them to the CPU
            for name in ("text_encoder", "text_encoder_2"):
                getattr(pipe, name).to(where.device)
        return built

    def warm_up(built, p, where):
        """One small image on a newly loaded pipeline, so that first-use costs (CUDA's lazy kernel loading, the
        CPU's first T5 pass, page faults on offloaded weights) land on no timed run: otherwise they fall on whichever
        cell loads the pipeline. It uses far less memory than any cell; should it fail, the cell runs unwarmed."""
        w, h, steps = WARMUP
        req = p.request.model_copy(update={"width": w, "height": h, "steps": steps, "batch": 1, "images": 1})
        try:
            run(built, PROMPT, p.model_copy(update={"request": req}), where, seed=0)
        except Exception as e:  # noqa: BLE001 -- recorded; the timed run will meet the same problem if it is real
            print(f"warm-up failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        empty()

    def run_short(built, prompt, p, where, **kw):
        short = p.model_copy(update={"request": p.request.model_copy(update={"steps": RUN_STEPS})})
        try:
            return run(built, prompt, short, where, **kw)
        except BaseException:
            cache.clear()  # let recovery free it
            raise

    api.build_plan, api.run = build_shared, run_short
    tmp = Path(tempfile.mkdtemp(prefix="cards-"))
    common = dict(model=str(model), device=device, steps=PLAN_STEPS)
    for cell in group["cells"]:
        if time.time() > stop_at:
            _write(out, {**cell, "kind": "cell", "skipped": "deadline"})
            continue
        empty()
        res = f"{cell['width']}x{cell['height']}"
        try:
            rep = api.generate(PROMPT, seed=0, out=tmp / f"{cell['card']}-{cell['shape'].replace(' ', '')}.png",
                               store=False, vram=float(cell["card"]), resolution=res, batch=cell["batch"],
                               images=cell["batch"], **common)
            row = {**cell, **_measured(rep.measurement, cell["batch"]), "ok": True, "chosen": rep.choice,
                   "label": rep.plan.choice.label(), "quality": rep.plan.estimate.quality,
                   "predicted_peak_gib": rep.predicted["peak_vram_gib"], "peak_gib": rep.measured["peak_gib"],
                   "predicted_image_s": _predicted_image_s(rep.plan), "load_s": rep.load_s,
                   "recovery": [ev.line() for ev in rep.recovery]}
        except Exception as e:
            row = {**cell, "ok": False, "oom": is_out_of_memory(e) or type(e).__name__ == "RecoveryFailed",
                   "error": f"{type(e).__name__}: {e}"[:400]}
        _write(out, {**row, "kind": "cell"})
    if on_gpu:
        torch.cuda.set_per_process_memory_fraction(1.0)
    for job in group["oracle"]:
        if time.time() > stop_at:
            _write(out, {**job, "kind": "oracle", "skipped": "deadline"})
            continue
        c = _cand(job["candidate"])
        w, h, b = SHAPES[job["shape"]]
        empty()
        row = {**job, "kind": "oracle", "width": w, "height": h, "batch": b, "label": c.label()}
        try:
            p, where, _ = api.plan_for(vram=1000.0, resolution=f"{w}x{h}", batch=b, images=b, transformer=c.transformer,
                                       text_encoder=c.text_encoder_2,
                                       text_encoder_placement=c.text_encoder_placement.value,
                                       offload=c.offload.value, compile=c.compile.value, vae_tiling=c.vae_tiling,
                                       **common)
            built = api.build_plan(p, str(model), where)
            _, m = api.run(built, PROMPT, p, where, seed=0)
            row.update(ok=True, quality=p.estimate.quality, predicted_peak_gib=p.estimate.peak_vram_gib,
                       peak_gib=m.peak_nvml_gib, predicted_image_s=_predicted_image_s(p), load_s=built.load_s,
                       **_measured(m, b))
        except Exception as e:
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:400])
        _write(out, row)


def _measured(m, batch: int) -> dict:
    return {"encode_s": m.encode_s, "step_s": m.step_s, "first_step_s": m.steps_flat[0], "decode_s": m.decode_s,
            "phase_peak_reserved_gib": m.phase_peak_reserved_gib, "context_gib": m.context_gib,
            "image_s": image_seconds(m.encode_s, m.steps_flat[0], m.step_s, m.decode_s, batch)}


def image_seconds(encode: float, first_step: float, step: float, decode: float, batch: int) -> float:
    """Time per image at PLAN_STEPS steps: the first step as measured (it carries what each image pays once, e.g.
    model offload moving the transformer in), the rest at the steady step."""
    return (encode + first_step + (PLAN_STEPS - 1) * step + decode) / batch


def _predicted_image_s(p) -> float:
    lat = p.estimate.latency
    return (lat.text_encode_s + lat.denoise_s + lat.vae_decode_s + lat.offload_transfer_s) / p.request.batch


def _write(out: Path, row: dict) -> None:
    with (out / "cards.jsonl").open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    brief = {k: row.get(k) for k in ("kind", "card", "shape", "label", "ok", "peak_gib", "image_s", "error")}
    print(json.dumps(brief), flush=True)


def run_matrix(model: Path, out: Path, deadline: float, part: str, device: str = "cuda", gpu: str = "auto",
               only: set | None = None, oracle_shapes: set | None = None) -> None:
    from fluxplan.run.doctor import usable_backends
    from fluxplan.run.hostprobe import cpu_rate

    started = time.time()
    cpu, cpu_dtype = cpu_rate() or (None, None)  # as api.decide plans each cell
    matrix = plan_matrix(gpu, None, usable_backends(device), cpu, only, oracle_shapes, cpu_dtype)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cards_plan.json").write_text(json.dumps(matrix, indent=1))
    if device.startswith("cuda"):
        import diffusers
        import torch

        (out / "cards_meta.json").write_text(json.dumps({"measured": (
            f"on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
            f"{time.strftime('%Y-%m-%d')}, `{' '.join(sys.argv)}`")}))
    k, n = (int(x) for x in part.split("/"))
    if k == 1:  # cells where nothing was predicted to fit: refused before loading anything
        for cell in matrix["cells"]:
            if "refused" in cell:
                _write(out, {**cell, "kind": "cell"})
    mine = [g for i, g in enumerate(matrix["groups"]) if i % n == k - 1]
    print(f"{len(matrix['groups'])} pipeline groups; part {part}: {len(mine)}", flush=True)
    for i, group in enumerate(mine):
        left = started + deadline - time.time()
        if left < 30:
            for cell in group["cells"]:
                _write(out, {**cell, "kind": "cell", "skipped": "deadline"})
            continue
        spec = out / f".group-{k}-{i}.json"
        spec.write_text(json.dumps(group))
        try:
            subprocess.run([sys.executable, __file__, "child", str(spec), "--model", str(model), "--out", str(out),
                            "--stop-at", str(started + deadline - 20), "--device", device], timeout=left, check=False)
        except subprocess.TimeoutExpired:
            print(f"group {i}: timed out", flush=True)
        spec.unlink()


# --------------------------------------------------------------------------- report


MARGIN_GIB = 0.5  # the planner's default --margin: the oracle is held to the same usable memory


REPORT_INTRO = f"""## The fit guarantee on emulated cards (H100)

Each cell is `fluxplan.api.generate(..., vram=CARD)`, what `fluxplan auto --vram CARD` runs: it plans for CARD GiB
and caps the process's allocator at CARD less the CUDA context, so a plan that does not fit fails as it would on a
card of that size, and recovery takes over. Full-size synthetic FLUX.1-dev, {PLAN_STEPS}-step plans, objective
quality (the default). Time per image = encode + first step + {PLAN_STEPS - 1} x the median steady step + decode,
over the batch, from {RUN_STEPS} measured steps (load is one-off and not counted; each newly loaded pipeline first makes
one {WARMUP[0]}x{WARMUP[1]} image, untimed, so that first-use costs fall on no cell). Regret = the chosen plan's
time per image / the oracle's, each the median over every run of that plan at that shape (the cells of all cards,
capped, and the uncapped oracle run; the count is in brackets), since one run's steady step varies by up to 10 %.
The oracle is the fastest plan of equal quality whose highest measured peak leaves the planner's {MARGIN_GIB} GiB
margin on the card; the chosen plan itself counts when nothing else is faster. Pipelines are shared between cells
of the same plan (loaded once, in the smallest card), and the store is off, so no cell learns from another. Method
and caveats: `benchmarks/gpu/cards.py`'s docstring. Regenerate:

    .venv/bin/python benchmarks/gpu/cards.py report benchmarks/results/h100-2026-11-22-s4/cards-run5.jsonl \\
        --earlier benchmarks/results/h100-2026-11-22-s3/cards-run3.jsonl benchmarks/results/h100-2026-11-22-s3/cards-run4.jsonl \\
        --plan benchmarks/results/h100-2026-11-22-s4/cards-current_plan.json --cpu-tflops 3.5568 \\
        --write docs/RELIABILITY.md
"""


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for r in rows:  # time per image from the stored stages (see image_seconds)
        if r.get("ok") and "step_s" in r:
            r["image_s"] = image_seconds(r["encode_s"], r["first_step_s"], r["step_s"], r["decode_s"], r["batch"])
    return [r for r in rows if "invalid" not in r and "skipped" not in r]


def combine(latest: Path, earlier: list[Path], plan_file: Path | None, cpu: float | None) -> tuple[list, list, dict]:
    """Cells of the latest run; a cell it did not run is taken from an earlier run where the latest planner chose the
    same plan for it (the same configuration under the same cap), with the latest predictions. Oracle rows: all."""
    cells: dict[tuple, dict] = {}
    oracle: list[dict] = []
    how: dict[tuple, str] = {}
    expected = {}
    if plan_file is not None:
        expected = {(c["card"], c["shape"]): c.get("expected_label") for c in json.loads(plan_file.read_text())["cells"]}
    for run, path in enumerate([*earlier, latest], start=1):
        for r in _rows(path):
            if r["kind"] == "oracle":
                if r.get("ok"):
                    oracle.append(r)
                continue
            key = (r["card"], r["shape"])
            latest_run = path == latest
            if not latest_run and "refused" not in r and r.get("label") != expected.get(key, r.get("label")):
                continue  # the latest planner chooses otherwise here
            if not latest_run and "refused" in r and key in expected and expected[key]:
                continue  # no longer refused: the latest planner has a plan, which did not run
            cells[key] = r
            how[key] = "" if latest_run else f"run {run}"
    for key, r in cells.items():
        if how[key] and r.get("ok"):
            r.update(_repredict(r, cpu))
    order = {(card, shape): i for i, (card, shape) in enumerate((c, s) for c in CARDS for s in SHAPES)}
    return [cells[k] for k in sorted(cells, key=order.__getitem__)], oracle, how


def _repredict(r: dict, cpu: float | None) -> dict:
    from fluxplan.planner import plan
    from fluxplan.run.store import candidate_from_dict

    c = candidate_from_dict(r["chosen"])
    p = plan("NVIDIA H100 80GB HBM3", vram=float(r["card"]), ram=125.0, width=r["width"], height=r["height"],
             batch=r["batch"], steps=PLAN_STEPS, transformer=c.transformer, text_encoder=c.text_encoder_2,
             text_encoder_placement=c.text_encoder_placement.value, offload=c.offload.value, compile=c.compile.value,
             vae_tiling=c.vae_tiling, cpu_tflops=cpu)
    return {"predicted_peak_gib": p.estimate.peak_vram_gib, "predicted_image_s": _predicted_image_s(p)}


def report(latest: Path, earlier: list[Path] = (), plan_file: Path | None = None, cpu: float | None = None) -> str:
    cells, oracle, how = combine(latest, list(earlier), plan_file, cpu)
    configs = by_config(cells, oracle)
    metas = [p.with_name(p.stem + "_meta.json") for p in [*earlier, latest]]
    lines = [REPORT_INTRO, "Runs:", ""]
    lines += [f"- run {i} (`{m.name.replace('_meta.json', '.jsonl')}`): measured " + json.loads(m.read_text())["measured"]
              for i, m in enumerate(metas, 1) if m.exists()]
    lines += ["", "| card GiB | shape | plan chosen (28 steps) | peak predicted | peak measured | fits | s/image | "
              "its plan's s/image (runs) | oracle (fastest within the card less the margin, equal quality) | "
              "oracle s/image (runs) | regret | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    regrets, physical, runs, crashes, refused = [], [], 0, 0, 0
    done = {(c["card"], c["shape"]) for c in cells}
    for c in cells:
        head = f"| {c['card']} | {c['shape']} |"
        if "refused" in c:
            refused += 1
            lines.append(f"{head} refused before loading | | | | | | | | | {c['refused']} |")
            continue
        runs += 1
        if not c.get("ok"):
            crashes += bool(c.get("oom"))
            lines.append(f"{head} {c.get('expected_label', '')} | | | | | | | | | **failed**: {c['error'][:160]} |")
            continue
        mine = configs[c["shape"], c["label"]]
        same = [o for (shape, _), o in configs.items() if shape == c["shape"] and o["quality"] >= c["quality"] - 1e-9]
        pool = [o for o in same if o["peak_gib"] <= c["card"] - MARGIN_GIB or o is mine]
        best = min(pool, key=lambda o: o["image_s"])  # the chosen plan counts as itself
        regret = mine["image_s"] / best["image_s"]
        regrets.append(regret)
        fit_all = [o for o in same if o["peak_gib"] <= c["card"] or o is mine]
        physical.append(mine["image_s"] / min(o["image_s"] for o in fit_all))
        fits = "yes" if c["peak_gib"] <= c["card"] else "**no**"
        note = "; ".join(c.get("recovery") or []) or how[(c["card"], c["shape"])]
        lines.append(f"{head} {c['label']} | {c['predicted_peak_gib']:.2f} | {c['peak_gib']:.2f} | {fits} | "
                     f"{c['image_s']:.1f} | {mine['image_s']:.1f} ({mine['n']}) | "
                     f"{'(itself)' if best is mine else best['label']} | {best['image_s']:.1f} ({best['n']}) | "
                     f"{regret:.2f} | {note} |")
    missing = [f"{card} GiB {shape}" for card in CARDS for shape in SHAPES if (card, shape) not in done]
    under = [c for c in cells if c.get("ok") and c["peak_gib"] > c["predicted_peak_gib"] * 1.03]
    lines += ["", f"{runs} runs, {crashes} out-of-memory crashes, "
              f"{sum(1 for c in cells if c.get('ok') and c['peak_gib'] > c['card'])} measured peaks above the card, "
              f"{len(under)} peaks more than 3 % above the prediction; {refused} cells refused before loading."]
    if missing:
        lines.append(f"Not run with the current planner: {', '.join(missing)}.")
    if regrets:
        lines.append(f"Regret: median {statistics.median(regrets):.2f}, worst {max(regrets):.2f} over {len(regrets)} "
                     f"runs, against the fastest plan whose measured peak leaves the same {MARGIN_GIB} GiB margin the "
                     f"planner keeps; against the card's whole memory (no margin): median "
                     f"{statistics.median(physical):.2f}, worst {max(physical):.2f}.")
    lines += ["", recipes_table(cells, oracle)]
    return "\n".join(lines)


def by_config(cells: list[dict], oracle: list[dict]) -> dict[tuple, dict]:
    """Every configuration measured at a shape, from all its runs (cells under a cap and uncapped oracle runs): the
    median time per image, the highest peak and how many runs. A single run's steady step varies by up to 10 %
    between runs of the same plan; comparing medians keeps the oracle from being the luckiest of several noisy runs."""
    runs: dict[tuple, list[dict]] = {}
    for r in [*cells, *oracle]:
        if r.get("ok") and r.get("peak_gib") is not None:
            runs.setdefault((r["shape"], r["label"]), []).append(r)
    return {k: {"label": k[1], "quality": rs[0]["quality"], "n": len(rs), "peak_gib": max(r["peak_gib"] for r in rs),
                "image_s": statistics.median(r["image_s"] for r in rs)} for k, rs in runs.items()}


def residuals(paths: list[Path]) -> str:
    """Measured less predicted peak (GiB) of every distinct (plan, size, batch) measured, with the current cost model
    and the bundled H100 profile: what the cost model's fitted terms were read from."""
    from fluxplan.catalog.gpus import find_gpu
    from fluxplan.cost.model import CostModel
    from fluxplan.cost.profile import bundled_profiles
    from fluxplan.models import Host, Request

    prof = next(p for p in bundled_profiles() if p.gpu.startswith("NVIDIA H100"))
    gpu = find_gpu(prof.gpu)
    lines, seen = ["| plan | size | batch | peak predicted | peak measured | measured less predicted | peak phase |",
                   "|---|---|---|---|---|---|---|"], set()
    for r in (r for path in paths for r in _rows(path)):
        if not r.get("ok") or r.get("peak_gib") is None or (r.get("chosen") or r.get("candidate")) is None:
            continue
        c = _cand(r.get("chosen") or r["candidate"])
        if (c, r["width"], r["height"], r["batch"]) in seen:
            continue
        seen.add((c, r["width"], r["height"], r["batch"]))
        req = Request(width=r["width"], height=r["height"], batch=r["batch"])
        t = CostModel(req, gpu, Host(ram_gib=125.0), prof, gpu).terms(c)
        lines.append(f"| {c.label()} | {r['width']}x{r['height']} | {r['batch']} | {t.peak:.2f} | {r['peak_gib']:.2f} "
                     f"| {r['peak_gib'] - t.peak:+.2f} | {('encode', 'denoise', 'decode')[t.peak_phase]} |")
    return "\n".join(lines)


def recipes_table(cells: list[dict], oracle: list[dict]) -> str:
    mine = next((c for c in cells if c["card"] == RECIPE_CARD and c["shape"] == RECIPE_SHAPE and c.get("ok")), None)
    recipes = [o for o in oracle if o["shape"] == RECIPE_SHAPE and o.get("recipe")]
    if mine is None or not recipes:
        return "The 8 GiB comparison with the low-memory recipes did not run."
    configs = by_config(cells, oracle)
    ours = configs[RECIPE_SHAPE, mine["label"]]
    lines = [f"At {RECIPE_CARD} GiB, {RECIPE_SHAPE}x{RECIPE_SHAPE}, 28 steps, the documented low-memory recipes "
             "(same machine and model; times are medians over the runs in brackets):", "",
             "| plan | peak GiB | s/image (runs) | fluxplan's advantage |", "|---|---|---|---|",
             f"| fluxplan: {mine['label']} | {ours['peak_gib']:.2f} | {ours['image_s']:.1f} ({ours['n']}) | |"]
    for label in dict.fromkeys(r["label"] for r in recipes):
        r = by_config([], [o for o in recipes if o["label"] == label])[RECIPE_SHAPE, label]
        name = label if label.startswith("recipe:") else f"recipe: {label}"
        lines.append(f"| {name} | {r['peak_gib']:.2f} | {r['image_s']:.1f} ({r['n']}) | "
                     f"{r['image_s'] / ours['image_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan")
    p.add_argument("--gpu", default="auto")
    p.add_argument("--ram", type=float)
    p.add_argument("--cpu-tflops", type=float)
    r = sub.add_parser("run")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--deadline", type=float, default=540)
    r.add_argument("--part", default="1/1")
    r.add_argument("--device", default="cuda", help="cpu: a smoke test of the driver (with --gpu and a tiny model)")
    r.add_argument("--gpu", default="auto")
    r.add_argument("--cells", help='only these cells, e.g. "6:1536;12:1024 b2" (default: all)')
    r.add_argument("--oracle-shapes", help='measure the oracle at these shapes only, e.g. "1024 b2;1536"')
    c = sub.add_parser("child")
    c.add_argument("spec", type=Path)
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--stop-at", type=float, required=True)
    c.add_argument("--device", default="cuda")
    rep = sub.add_parser("report")
    rep.add_argument("rows", type=Path, help="the latest run's cards.jsonl")
    rep.add_argument("--earlier", type=Path, nargs="*", default=[], help="earlier runs, oldest first")
    rep.add_argument("--plan", type=Path, help="the latest run's cards_plan.json (what it planned for every cell)")
    rep.add_argument("--cpu-tflops", type=float, help="the CPU rate the latest run measured (its host.json)")
    rep.add_argument("--write", type=Path, help="replace the cards section of this Markdown file")
    res = sub.add_parser("residuals")
    res.add_argument("rows", type=Path, nargs="+")
    a = ap.parse_args()
    if a.cmd == "plan":
        m = plan_matrix(a.gpu, a.ram, None, a.cpu_tflops)
        for g in m["groups"]:
            c = _cand(json.loads(g["key"]))
            print(f"{c.label():60s} cells {[(x['card'], x['shape']) for x in g['cells']]} "
                  f"oracle {[(o['shape'], o['candidate']['vae_tiling']) for o in g['oracle']]}")
        print(f"{len(m['groups'])} groups, {sum(1 for c in m['cells'] if 'refused' in c)} refused cells, "
              f"{sum(len(g['oracle']) for g in m['groups'])} oracle runs")
    elif a.cmd == "run":
        only = {(int(c.split(":")[0]), c.split(":")[1]) for c in a.cells.split(";")} if a.cells else None
        shapes = set(a.oracle_shapes.split(";")) if a.oracle_shapes else None
        run_matrix(a.model, a.out, a.deadline, a.part, a.device, a.gpu, only, shapes)
    elif a.cmd == "residuals":
        print(residuals(a.rows))
    elif a.cmd == "child":
        child(json.loads(a.spec.read_text()), a.model, a.out, a.stop_at, a.device)
    else:
        text = report(a.rows, a.earlier, a.plan, a.cpu_tflops)
        if a.write:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from docsection import write_section

            write_section(a.write, "cards", text)
        else:
            print(text)


if __name__ == "__main__":
    main()
