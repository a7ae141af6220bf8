"""Turn what fluxplan.profiling.sweep and .matrix measured into a cost profile (profiles/<gpu>.json).

    fluxplan profile --from-results benchmarks/results/h100-2026-11-22 --out profiles/nvidia-h100-80gb-hbm3.json

Memory figures are the NVML view: what the caching allocator reserves (plus the CUDA context, kept apart).
- forward points: bf16 at several token counts and batches from the sweep (a random transformer in GPU memory);
  every format at 1024x1024 from the pipeline matrix: its step time, its weights as the pipeline held them
  (reserved during encode, less the encode activations) and its denoise activations (denoise less encode).
- decode points: the VAE alone, tiled and not, at several sizes (sweep).
- offload points: per format and mode, from the matrix: the time a step (or an image, for model offload) took
  beyond the resident run of the same format.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

T5_CLIP_VAE = 8.87 + 0.23 + 0.16  # bf16 T5-XXL, CLIP-L and VAE weights (GiB): the matrix keeps T5 in bf16


def build(results: Path, seed_profile: dict) -> dict:
    sweep = json.loads((results / "sweep.json").read_text())
    rows = [json.loads(x) for x in (results / "matrix.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r.get("ok")]
    where = (f"measured: {sweep['gpu']}, torch {sweep['torch']}, diffusers {sweep['diffusers']}, "
             f"{sweep['date']}, full-size synthetic FLUX.1-dev")
    src_sweep = f"{where}; fluxplan.profiling.sweep"
    src_matrix = f"{where}; fluxplan.profiling.matrix (pipeline, 1024x1024, 512 text tokens)"
    enc = {e["text_tokens"]: e for e in sweep["encode"]}
    resident = {r["format"]: r for r in ok if r["offload"] == "none"}
    bf16 = resident["bf16"]
    bf16_weights = next(p["weights_gib"] for p in sweep["forward"])  # exact: the module in GPU memory
    rest = bf16["phase_peak_reserved_gib"]["encode"] - bf16_weights  # T5 + CLIP + VAE + encode activations
    enc_act = rest - T5_CLIP_VAE
    forward = [{"format": "bf16", "compile": "none", "image_tokens": p["image_tokens"], "text_tokens": p["text_tokens"],
                "batch": p["batch"], "seconds": p["seconds"], "weights_gib": p["weights_gib"],
                "activation_gib": p["reserved_gib"], "kind": "measured", "source": src_sweep}
               for p in sweep["forward"]]
    for fmt, r in resident.items():
        ph = r["phase_peak_reserved_gib"]
        forward.append({"format": fmt, "compile": "none", "image_tokens": 4096, "text_tokens": 512, "batch": 1,
                        "seconds": r["step_s"], "weights_gib": ph["encode"] - rest,
                        "activation_gib": ph["denoise"] - ph["encode"] + enc_act, "kind": "measured",
                        "source": src_matrix})
    seed_regional = [p for p in seed_profile["forward"] if p["compile"] == "regional"]
    forward += seed_regional  # compile: not measured in this run; the seed's A6 point stays, labelled
    decode = [{"height": d["height"], "width": d["width"], "batch": 1, "tiled": d["tiled"], "seconds": d["seconds"],
               "activation_gib": d["reserved_gib"], "kind": "measured", "source": src_sweep}
              for d in sweep["decode"] if "seconds" in d]
    dec1024 = next(d for d in decode if d["height"] == 1024 and not d["tiled"])["activation_gib"]
    # what the decode phase holds beyond the weights and the VAE's own reserve: blocks the denoise loop left cached
    carry = []
    for r in resident.values():
        ph = r["phase_peak_reserved_gib"]
        carry.append((ph["decode"] - ph["encode"] + enc_act - dec1024) / (ph["denoise"] - ph["encode"] + enc_act))
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
    contexts = [r["peak_nvml_gib"] - r["peak_reserved_gib"] for r in ok if r.get("peak_nvml_gib")]
    prof = {
        "schema": 1, "gpu": sweep["gpu"],
        "provenance": {"summary": "Measured with full-size synthetic FLUX.1-dev (random weights) by "
                                  "fluxplan.profiling.sweep and .matrix, converted by fluxplan.profiling.build. The "
                                  "regional-compile point is still the seed's (ANCHORS section 6).",
                       "date": sweep["date"], "command": f"fluxplan profile --from-results {results.as_posix()}",
                       "versions": {"torch": sweep["torch"], "diffusers": sweep["diffusers"]}},
        "forward": forward,
        "encode": [{"text_tokens": t, "seconds": e["seconds"], "kind": "measured", "source": src_sweep}
                   for t, e in sorted(enc.items())],
        "decode": decode,
        "offload": offload,
        "memory": {
            "context_gib": {"value": round(statistics.median(contexts), 3), "kind": "measured",
                            "source": f"{src_matrix}: NVML process usage less torch's reserved peak, median of {len(contexts)} runs"},
            "decode_carry_factor": {"value": round(statistics.median(carry), 3), "kind": "measured",
                                    "source": f"{src_matrix}: share of the denoise activations still reserved while the VAE "
                                              f"decodes, median over {len(carry)} formats"},
            "encode_activation_gib": {"value": round(enc_act, 3), "kind": "measured",
                                      "source": f"{src_matrix}: bf16 encode-phase reserve less the text encoders and VAE"},
        },
    }
    return prof


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


def build_from_results(results: Path, out: Path) -> Path:
    """Read sweep.json and matrix.jsonl from `results`, write the profile to `out` (keeping the seed's compile
    points if `out` already holds them)."""
    from fluxplan.errors import ProfileError

    missing = [n for n in ("sweep.json", "matrix.jsonl") if not (results / n).is_file()]
    if missing:
        raise ProfileError(f"{results}: no {' or '.join(missing)} (run `fluxplan profile` on the GPU first)")
    try:
        seed = json.loads(out.read_text()) if out.exists() else {"forward": []}
    except ValueError:
        seed = {"forward": []}
    try:
        prof = build(results, seed)
    except (KeyError, StopIteration, ValueError, ZeroDivisionError) as e:
        raise ProfileError(f"{results}: the measurements cannot make a profile ({type(e).__name__}: {e})") from None
    return write_profile(prof, out)
