"""Turn what fluxplan.profiling.blocks, .sweep and .matrix measured into a cost profile (profiles/<gpu>.json).

    fluxplan profile --from-results benchmarks/results/h100-2026-11-22 --out profiles/nvidia-h100-80gb-hbm3.json

A results folder holds any of: blocks.json (block-level measurements per format), sweep.json (T5 encode, VAE
decode, the CUDA context; bf16 forward points of a full-size transformer in older folders) and matrix.jsonl
(whole pipelines per format x offload). It needs blocks.json, or sweep.json and matrix.jsonl. Several folders
of one GPU make one profile: each format's blocks (and each compile task) the median of the folders that measured
it, each part of the sweep from the last folder that measured it, the pipeline rows of all; where a format ran in
the same offload and compile mode more than once, each of its figures is the median of those runs (offload steps
of one configuration spread by up to 1.85x between runs: docs/ACCURACY.md). Folders of different GPUs are refused.
Memory figures are the NVML view: what the caching allocator reserves (plus the CUDA context, kept apart).
- forward points: every format blocks.json measured, at several token counts and batches, extrapolated from
  one block of each kind to the full model (profiling.blockpoints); full-model sweep points; every format at
  1024x1024 from the pipeline matrix: its step time, its weights as the pipeline held them (reserved during
  encode, less the encode activations) and its denoise activations (denoise less encode). Where a pipeline or
  sweep point and a block point share format, tokens and batch, the pipeline's wins.
- decode and encode points: the VAE alone (tiled and not) and T5 alone (sweep): bf16 from its `encode` part, and
  each format its `encode_formats` rows measured (T5 loaded from the synthetic checkpoint through the format's
  backend: its encode seconds and its weights as the allocator held them; a later folder wins per format and text
  tokens, and these rows over `encode`'s).
- offload points: per format and mode, from the matrix: the time a step (or an image, for model offload) took
  beyond the resident run of the same format.
- compile points: blocks.json's compile tasks (a format compiled regionally or fully at block level: whether it
  compiles, the cold compile's seconds, the compiled step at each measured size and its reserve: `compile` and
  forward points with that compile mode); matrix rows run with `--compile` and no offload, whose steady step wins
  at 1024x1024 (the seed's regional point, ANCHORS section 6, stays only where no regional bf16 was measured).
What was not measured (offload modes without a pipeline row, the decode carry-over without any; encode and
decode without sweep.json) comes from the reference profile (the one being replaced, else the bundled one),
scaled through the spec database and labelled derived.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from fluxplan.profiling import blockpoints as bp

T5_CLIP_VAE = 8.87 + 0.23 + 0.16  # bf16 T5-XXL, CLIP-L and VAE weights (GiB): the matrix keeps T5 in bf16


MEDIAN_KEYS = ("step_s", "first_step_s", "encode_s", "decode_s", "peak_nvml_gib", "peak_reserved_gib")


def combine(rows: list[dict]) -> list[dict]:
    """One successful row per (format, offload, compile): repeated runs give the median of each figure (memory
    phases included); failed rows are kept as they are."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("ok"):
            groups.setdefault((r["format"], r["offload"], r.get("compile", "none")), []).append(r)
    out = [r for r in rows if not r.get("ok")]
    for runs in groups.values():
        row = dict(runs[-1])
        if len(runs) > 1:
            for k in MEDIAN_KEYS:
                if all(isinstance(r.get(k), (int, float)) for r in runs):
                    row[k] = statistics.median(r[k] for r in runs)
            if all("phase_peak_reserved_gib" in r for r in runs):
                row["phase_peak_reserved_gib"] = {ph: statistics.median(r["phase_peak_reserved_gib"][ph] for r in runs)
                                                  for ph in runs[-1]["phase_peak_reserved_gib"]}
            row["runs"] = len(runs)
        out.append(row)
    return out


POINT_KEYS = ("image_tokens", "text_tokens", "batch")


def _median_row(rows: list[dict]) -> dict:
    """Several successful rows of one format (or compile task) as one: the latest row, with every point any of them
    measured (a compile task run at 4096 tokens only keeps an earlier run's 1024), each timed figure of each point
    (and the compile time) the median of the rows that measured that point."""
    out = dict(rows[-1])
    if len(rows) == 1:
        return out
    if all(isinstance(r.get("compile_s"), (int, float)) for r in rows):
        out["compile_s"] = statistics.median(r["compile_s"] for r in rows)
    latest: dict[tuple, dict] = {}  # each point as the latest row that measured it has it, the latest row's first
    for r in reversed(rows):
        for q in r.get("points", []):
            latest.setdefault(tuple(q[k] for k in POINT_KEYS), q)
    points = []
    for at, p in latest.items():
        same = [q for r in rows for q in r.get("points", []) if tuple(q[k] for k in POINT_KEYS) == at]
        merged = dict(p)
        for k in p:  # over the rows that measured this figure (older folders have no stacked forward)
            values = [q[k] for q in same if isinstance(q.get(k), (int, float))]
            if k.endswith("_s") and values:
                merged[k] = statistics.median(values)
        points.append(merged)
    return {**out, "points": points, "runs": len(rows)}


def merge_blocks(docs: list[dict]) -> dict:
    """blocks.json of several folders of one GPU as one: the last one's environment; per format (and per compile
    task) the median of the folders where it ran (hosts of one GPU kind differ: a 512x512 bf16 step took 0.061 s on
    one H100 machine and 0.070 on another), or the last failure where it never did (one it reached: a task a later
    run skipped at its deadline says nothing)."""
    merged = {}
    for part in ("formats", "compiled"):
        ok: dict[str, list[dict]] = {}
        failed: dict[str, dict] = {}
        for doc in docs:
            for r in doc.get(part, []):
                if r.get("ok"):
                    ok.setdefault(r["format"], []).append(r)
                elif bp.reached(r) or not bp.reached(failed.get(r["format"], r)):
                    failed[r["format"]] = r  # a task skipped at a later run's deadline keeps an earlier failure
        names = list(dict.fromkeys(r["format"] for doc in docs for r in doc.get(part, [])))
        merged[part] = [_median_row(ok[n]) if n in ok else failed[n] for n in names]
    return {**docs[-1], **merged}


def _read(folders: list[Path]) -> tuple[dict | None, dict | None, list[dict]]:
    sweep: dict | None = None
    block_docs: list[dict] = []
    rows: list[dict] = []
    gpus: dict[str, str] = {}  # GPU name -> the folder that says so
    t5_rows: list[dict] = []  # T5 per format, every folder's in order (a later folder's point wins)
    for results in folders:
        if (results / "sweep.json").is_file():  # each part (forward, decode, encode) from the last sweep that has it
            later = json.loads((results / "sweep.json").read_text())
            kept = {k: sweep[k] for k in ("forward", "decode", "encode") if sweep and sweep.get(k) and not later.get(k)}
            sweep = {**later, **kept}
            named = f"{results.resolve().parent.name}/{results.name}"  # the same wherever the results lie
            t5_rows += [{**r, "folder": named} for r in later.get("encode_formats") or []]
            gpus.setdefault(later.get("gpu"), results.as_posix())
        if (results / "blocks.json").is_file():
            later = bp.load_blocks(results / "blocks.json")
            block_docs.append(later)
            gpus.setdefault(later.get("gpu"), results.as_posix())
        matrix = results / "matrix.jsonl"
        if matrix.is_file():  # the profile's pipeline points are 1024x1024 (rows of other sides are not used)
            rows += [r for r in (json.loads(x) for x in matrix.read_text().splitlines() if x.strip())
                     if (r.get("width", 1024), r.get("height", 1024)) == (1024, 1024)]
    gpus.pop(None, None)
    if sweep is not None:
        sweep["encode_formats"] = t5_rows
    blocks = merge_blocks(block_docs) if block_docs else None
    if len(gpus) > 1:
        raise ValueError("the folders measured different GPUs: " + "; ".join(f"{f}: {g}" for g, f in gpus.items()))
    return sweep, blocks, combine(rows)


# What a pipeline's process holds on the GPU beyond the bare CUDA context the blocks' process measures (libraries
# and workspaces the VAE and the pipeline load): on two fresh H100s that measured both (session 7 and 8,
# benchmarks/results/h100-2026-11-2*-s*/fullrun), pipelines' NVML usage less torch's reserved peak 0.670 GiB, the
# bare context 0.578. Without it a --quick profile under-predicted held-out peaks by up to 3.2 %.
PIPELINE_CONTEXT_EXTRA_GIB = 0.092


def build(folders: list[Path], seed_profile: dict, references: list[dict] | None = None) -> dict:
    """The profile's JSON from the results folders. What they did not measure comes from `references` (default:
    bp.references(seed_profile): the profile being replaced if whole, then the bundled ones)."""
    sweep, blocks, rows = _read(folders)
    compiled = [r for r in rows if r.get("ok") and r.get("compile", "none") != "none" and r["offload"] == "none"]
    ok = [r for r in rows if r.get("ok") and r.get("compile", "none") == "none"]
    head = sweep or blocks or {}
    gpu = head["gpu"]
    v = (blocks or {}).get("versions") or {"torch": head.get("torch"), "diffusers": head.get("diffusers")}
    where = (f"measured: {gpu}, torch {v['torch']}, diffusers {v['diffusers']}, {head['date']}, "
             "full-size synthetic FLUX.1-dev")
    src_sweep = f"{where}; fluxplan.profiling.sweep"
    src_matrix = f"{where}; fluxplan.profiling.matrix (pipeline, 1024x1024, 512 text tokens)"
    block_points = bp.forward_points(blocks) if blocks else []
    sweep_fwd = sweep["forward"] if sweep else []
    forward = [{"format": "bf16", "compile": "none", "image_tokens": p["image_tokens"], "text_tokens": p["text_tokens"],
                "batch": p["batch"], "seconds": p["seconds"], "weights_gib": p["weights_gib"],
                "activation_gib": p["reserved_gib"], "kind": "measured", "source": src_sweep}
               for p in sweep_fwd]
    resident = {r["format"]: r for r in ok if r["offload"] == "none"}
    check_peaks(resident.values(), block_points)
    memory: dict[str, dict] = {}
    if resident:
        bf16 = resident["bf16"]
        bf16_weights = next(p["weights_gib"] for p in (sweep_fwd or [q for q in block_points if q["format"] == "bf16"]))
        rest = bf16["phase_peak_reserved_gib"]["encode"] - bf16_weights  # T5 + CLIP + VAE + encode activations
        enc_act = rest - T5_CLIP_VAE
        for fmt, r in resident.items():
            ph = r["phase_peak_reserved_gib"]
            forward.append({"format": fmt, "compile": "none", "image_tokens": 4096, "text_tokens": 512, "batch": 1,
                            "seconds": r["step_s"], "weights_gib": ph["encode"] - rest,
                            "activation_gib": ph["denoise"] - ph["encode"] + enc_act, "kind": "measured",
                            "source": src_matrix})
        memory["encode_activation_gib"] = {
            "value": round(enc_act, 3), "kind": "measured",
            "source": f"{src_matrix}: bf16 encode-phase reserve less the text encoders and VAE"}
    compiled_blocks, compile_measures = bp.compiled_points(blocks) if blocks else ([], [])
    block_act = {bp.key(p): p["activation_gib"] for p in compiled_blocks}
    for r in compiled:  # measured compiled pipelines: their steady step (the first step carries the compile)
        point = {"format": r["format"], "compile": r["compile"], "image_tokens": 4096, "text_tokens": 512,
                 "batch": 1, "seconds": r["step_s"], "kind": "measured", "source": src_matrix}
        forward.append({**point, "activation_gib": block_act.get(bp.key(point))})  # the reserve from the blocks
    forward = bp.merge(block_points + compiled_blocks, forward)
    if not any(p["format"] == "bf16" and p["compile"] == "regional" for p in forward):
        forward += [p for p in seed_profile.get("forward", []) if p["compile"] == "regional"]  # the seed's A6 point
    refs = references or bp.references(seed_profile)
    used: set[str] = set()  # the GPUs of the references something was taken from, for the provenance

    def ref() -> dict:  # the first reference, for what blocks cannot show
        used.add(refs[0]["gpu"])
        return refs[0]
    decode = [{"height": d["height"], "width": d["width"], "batch": 1, "tiled": d["tiled"], "seconds": d["seconds"],
               "activation_gib": d["reserved_gib"], "kind": "measured", "source": src_sweep}
              for d in (sweep or {}).get("decode", []) if "seconds" in d]
    encode = [{"text_tokens": e["text_tokens"], "seconds": e["seconds"], "kind": "measured", "source": src_sweep}
              for e in sorted((sweep or {}).get("encode", []), key=lambda e: e["text_tokens"])]
    if not encode or not decode:  # not measured (--quick leaves T5 out): the reference's, scaled, labelled derived
        ref_encode, ref_decode = bp.encode_decode_from_reference(ref(), gpu)
        encode, decode = encode or ref_encode, decode or ref_decode
    t5 = t5_points((sweep or {}).get("encode_formats", []), where)
    measured_t5 = {(p["format"], p["text_tokens"]) for p in t5}  # they win over T5 built in memory, and a reference's
    encode = [e for e in encode if (e.get("format", "bf16"), e["text_tokens"]) not in measured_t5] + t5
    encode += bp.encode_from_references(refs, encode, used)
    if resident:
        dec1024 = next(d for d in decode if d["height"] == 1024 and not d["tiled"])["activation_gib"]
        # what the decode phase holds beyond the weights and the VAE's own reserve: blocks the denoise loop left cached
        carry = []
        for r in resident.values():
            ph = r["phase_peak_reserved_gib"]
            carry.append((ph["decode"] - ph["encode"] + enc_act - dec1024) / (ph["denoise"] - ph["encode"] + enc_act))
        memory["decode_carry_factor"] = {
            "value": round(statistics.median(carry), 3), "kind": "measured",
            "source": f"{src_matrix}: share of the denoise activations still reserved while the VAE decodes, "
                      f"median over {len(carry)} formats"}
    # formats and compile modes not measured here (--quick: all but two; the full run: the compile tasks its deadline
    # did not reach) take their step relative to bf16's, and whether they compile, from the first reference that
    # measured them
    forward = forward + bp.forward_from_references(refs, gpu, forward, used)
    compile_measures = compile_measures + bp.compile_from_references(
        refs, {(m["format"], m["mode"]) for m in compile_measures}, used)
    offload = _offload(ok, resident, rest if resident else 0.0, enc_act if resident else 0.0, src_matrix)
    if not set(bp.OFFLOAD_MODES) <= {o["mode"] for o in offload}:
        offload += bp.offload_from_reference(ref(), gpu, {o["mode"] for o in offload})
    contexts = [r["peak_nvml_gib"] - r["peak_reserved_gib"] for r in ok if r.get("peak_nvml_gib")]
    if contexts:
        memory["context_gib"] = {"value": round(statistics.median(contexts), 3), "kind": "measured",
                                 "source": f"{src_matrix}: NVML process usage less torch's reserved peak, "
                                           f"median of {len(contexts)} runs"}
    elif sweep and sweep.get("context_gib") is not None:
        memory["context_gib"] = {
            "value": round(sweep["context_gib"], 3), "kind": "measured",
            "source": f"{src_sweep}: NVML usage less torch's reserve after CUDA init and a cuBLAS call"}
    elif blocks and blocks.get("context_gib") is not None:  # --quick: the bare context, and what pipelines add
        memory["context_gib"] = {
            "value": round(blocks["context_gib"] + PIPELINE_CONTEXT_EXTRA_GIB, 3), "kind": "derived",
            "source": f"{bp.where(blocks)}; fluxplan.profiling.blocks: NVML usage less torch's reserve after CUDA "
                      f"init and a cuBLAS call ({blocks['context_gib']:.3f} GiB), + {PIPELINE_CONTEXT_EXTRA_GIB} GiB "
                      "that a pipeline's process holds beyond it"}
    if "encode_activation_gib" not in memory and sweep and sweep.get("encode"):
        e512 = max(sweep["encode"], key=lambda e: e["text_tokens"])
        memory["encode_activation_gib"] = {
            "value": round(e512.get("reserved_gib", e512["activation_gib"]) * 512 / e512["text_tokens"], 3),
            "kind": "measured", "source": f"{src_sweep}: T5 alone, reserved above its weights, at 512 text tokens"}
    for name in ("context_gib", "decode_carry_factor", "encode_activation_gib"):
        if name not in memory:
            memory[name] = bp.memory_from_reference(ref(), name)
    return {"schema": 1, "gpu": gpu, "provenance": _provenance(folders, sweep, blocks, rows, sorted(used),
                                                           compile_measures),
            "forward": forward, "encode": encode, "decode": decode, "offload": offload,
            "memory": {k: memory[k] for k in ("context_gib", "decode_carry_factor", "encode_activation_gib")},
            "compile": compile_measures}


def t5_points(rows: list[dict], where: str) -> list[dict]:
    """Encode points of T5 per format from the sweep's `encode_formats` rows (in folder order: a later folder's
    point wins per format and text tokens), with T5's weights as the allocator held them (bf16's too: they win
    over the `encode` part's, T5 built in GPU memory without weights measured). Refuses impossible figures."""
    points: dict[tuple[str, int], dict] = {}
    for r in rows:
        if not r.get("ok"):
            continue
        fmt = r["format"]
        weights = bp.number(r.get("weights_gib"), f"T5 {fmt}: weights_gib", positive=True)
        for p in r.get("points", []):
            tokens = p.get("text_tokens")
            if not isinstance(tokens, int) or tokens <= 0:
                raise ValueError(f"T5 {fmt}: text_tokens is {tokens!r}, not a positive integer")
            points[fmt, tokens] = {
                "format": fmt, "text_tokens": tokens,
                "seconds": bp.number(p.get("seconds"), f"T5 {fmt} at {tokens} text tokens: seconds", positive=True),
                "weights_gib": weights, "kind": "measured",
                "source": f"{where}; fluxplan.profiling.sweep (T5 in {fmt} loaded from the synthetic checkpoint "
                          f"through its backend), {r['folder']}"}
    return [points[k] for k in sorted(points)]


def check_peaks(rows, block_points: list[dict]) -> None:
    """Refuse a resident pipeline run whose peak is below its transformer's weights as the blocks measured them
    (the run must have held them all): an impossible measurement, not a cheap configuration."""
    weights = {p["format"]: p["weights_gib"] for p in block_points if p.get("weights_gib")}
    for r in rows:
        peak = max(r.get("peak_reserved_gib") or 0.0, *(r.get("phase_peak_reserved_gib") or {}).values())
        need = weights.get(r["format"])
        if need is not None and peak < need:
            raise ValueError(f"pipeline run {r['format']} (resident): its peak {peak:.2f} GiB is below its "
                             f"transformer's weights ({need:.2f} GiB, measured by the blocks)")


def _provenance(folders: list[Path], sweep: dict | None, blocks: dict | None, rows: list[dict], ref: list[str],
                compile_measures: list[dict]) -> dict:
    command = "fluxplan profile " + " ".join(f"--from-results {f.as_posix()}" for f in folders)
    if blocks is None:
        return {"summary": ("Measured with full-size synthetic FLUX.1-dev (random weights) by "
                            "fluxplan.profiling.sweep and .matrix, converted by fluxplan.profiling.build. The "
                            "regional-compile point is still the seed's (ANCHORS section 6)."),
                "date": sweep["date"], "command": command,
                "versions": {"torch": sweep["torch"], "diffusers": sweep["diffusers"]}}
    n_ok = sum(1 for r in blocks["formats"] if r.get("ok"))
    nd, ns = blocks["blocks"]["double"], blocks["blocks"]["single"]
    parts = [f"blocks of {n_ok} formats (fluxplan.profiling.blocks: their forward with the blocks called {nd} and "
             f"{ns} times where measured, else extrapolated)"]
    if sweep:
        parts.append("T5 encode, VAE decode and the CUDA context alone (fluxplan.profiling.sweep)")
        t5 = sorted({r["format"] for r in sweep.get("encode_formats", []) if r.get("ok")})
        if t5:
            parts.append(f"T5 loaded from the checkpoint in {len(t5)} formats ({', '.join(t5)}: weights and encode)")
    if rows:
        n_compiled = sum(1 for r in rows if r.get("ok") and r.get("compile", "none") != "none")
        runs = sum(r.get("runs", 1) for r in rows if r.get("ok"))
        parts.append(f"{runs} pipeline runs (fluxplan.profiling.matrix; repeated configurations as their median), "
                     f"{n_compiled} compiled configurations")
    for mode in ("regional", "full"):
        status = [m["status"] for m in compile_measures if m["mode"] == mode and m["kind"] == "measured"]
        if status:
            parts.append(f"{status.count('ok')} formats compiled {mode} at block level (cold compile and compiled "
                         f"step; {status.count('fails')} failed to compile, {status.count('timeout')} not within the "
                         "time limit)")
    summary = (f"Measured with synthetic FLUX.1-dev (random weights): {'; '.join(parts)}; converted by "
               "fluxplan.profiling.build.")
    if ref:
        profiles = f"{' and '.join(ref)}'s profile{'s' if len(ref) > 1 else ''}"
        summary += f" What these cannot show is derived from {profiles} and labelled so."
    versions = {k: str(val) for k, val in {**blocks.get("versions", {}), "cuda": blocks.get("cuda"),
                                           "nvidia-driver": blocks.get("driver")}.items() if val}
    out = {"summary": summary, "date": blocks["date"], "command": command, "versions": versions,
           "measured_by": blocks.get("command"), "failed_formats": bp.failed(blocks)}
    if blocks.get("host"):  # the host the blocks ran on (a host-bound step depends on it)
        out["host"] = blocks["host"]
    return out


def _offload(ok: list[dict], resident: dict, rest: float, enc_act: float, src_matrix: str) -> list[dict]:
    offload = []
    for r in ok:
        if r["offload"] == "none" or r["format"] not in resident:
            continue
        base = resident[r["format"]]
        weights = base["phase_peak_reserved_gib"]["encode"] - rest
        if r["offload"] == "model":  # the transformer (and text encoders) move in once per image
            extra = (r["first_step_s"] - r["step_s"]) + (r["encode_s"] - base["encode_s"]) + max(0.0, r["decode_s"] - base["decode_s"])
            offload.append({"mode": "model", "format": r["format"], "moved_gib": weights + T5_CLIP_VAE,
                            "extra_seconds": extra, "per": "image", "overlapped": False,
                            "kind": "measured", "source": src_matrix})
        else:
            offload.append({"mode": r["offload"], "format": r["format"], "moved_gib": weights,
                            "extra_seconds": max(1e-3, r["step_s"] - base["step_s"]), "per": "step",
                            "overlapped": r["offload"].startswith("group"), "compute_seconds": base["step_s"],
                            "resident_gib": _resident(r, base, enc_act),
                            "kind": "measured", "source": src_matrix})
    return offload


def _resident(r: dict, base: dict, enc_act: float) -> float:
    """Transformer weights on the GPU at once under an offload mode: the offloaded run's denoise-phase reserve
    less what else it holds then (T5, CLIP and VAE under group offload; nothing under sequential offload) and
    the format's activations; never below zero."""
    ph, bph = r["phase_peak_reserved_gib"], base["phase_peak_reserved_gib"]
    activations = bph["denoise"] - bph["encode"] + enc_act
    others = T5_CLIP_VAE if r["offload"] != "sequential" else 0.0
    return max(0.0, ph["denoise"] - others - activations)


def write_profile(prof: dict, out: Path) -> Path:
    """Fit, validate, then write atomically: a run that fails or is interrupted leaves the previous file as it was."""
    from fluxplan.cost.fit import profile_fits
    from fluxplan.cost.profile import load_profile_file

    prof = {**prof, "fits": profile_fits(prof)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(json.dumps(prof, indent=1) + "\n")
        load_profile_file(tmp)  # the schema's checks: finite, non-negative, a reference point, ...
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def check_folders(folders: list[Path]) -> None:
    """Refuse results folders that cannot make a profile: one that does not exist or holds no measurement (a
    mistyped folder among several must not be skipped in silence), or all of them together without blocks.json
    and without sweep.json and matrix.jsonl."""
    from fluxplan.errors import ProfileError

    for f in folders:
        if not f.is_dir():
            raise ProfileError(f"{f}: no such folder")
        if not any((f / n).is_file() for n in ("blocks.json", "sweep.json", "matrix.jsonl")):
            raise ProfileError(f"{f}: holds no blocks.json, sweep.json or matrix.jsonl (run `fluxplan profile` on "
                               "the GPU first)")

    def has(name: str) -> bool:
        return any((f / name).is_file() for f in folders)
    missing = [n for n in ("sweep.json", "matrix.jsonl") if not has(n)]
    if missing and not has("blocks.json"):
        raise ProfileError(f"{', '.join(f.as_posix() for f in folders)}: no blocks.json, and no "
                           f"{' or '.join(missing)} (run `fluxplan profile` on the GPU first)")


def build_from_results(folders: list[Path], out: Path) -> Path:
    """Read blocks.json, sweep.json and matrix.jsonl from the results folders, write the profile to `out` (keeping
    the seed's compile points if `out` already holds them; a blocks-only folder takes what blocks cannot show from
    it)."""
    from fluxplan.errors import ProfileError

    check_folders(folders)
    where = ", ".join(f.as_posix() for f in folders)
    try:
        seed = json.loads(out.read_text()) if out.exists() else {"forward": []}
    except ValueError:
        seed = {"forward": []}
    try:
        prof = build(folders, seed)
    except (KeyError, StopIteration, ValueError, ZeroDivisionError, TypeError) as e:
        raise ProfileError(f"{where}: the measurements cannot make a profile ({type(e).__name__}: {e})") from None
    return write_profile(prof, out)
