"""Profile points from block measurements (OUT/blocks.json of fluxplan.profiling.blocks), and the reference
profile whose offload and memory points stand in for what blocks cannot show. No torch here.

Each measured format gives one forward point per (image tokens, text tokens, batch): the seconds of the block
model's forward with its blocks called as often as the full model's (`stacked_s`: the host's per-call work
included), or, in results measured before that existed, the blocks' times extrapolated (rest + 19 x double +
38 x single for FLUX.1-dev); weights extrapolated the same way; and the activation peak (reserved above the
weights) as measured: a step's activations are one block's transients plus the hidden states, the same in the
block model as in the full one.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

GIB = 1024**3
OFFLOAD_MODES = ("model", "group-block", "group-leaf", "sequential")


def extrapolate(rest: float, double: float, single: float, n_double: int, n_single: int) -> float:
    """A full model's cost from its block model's: the rest once, each block kind as often as the model has it."""
    return rest + n_double * double + n_single * single


def number(value: object, what: str, *, positive: bool) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} is {value!r}, not a finite number")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{what} is {value}: must be {'above' if positive else 'at least'} 0")
    return float(value)


def check_row(row: dict) -> None:
    """Refuse impossible measurements of one format: NaN or infinite values, negative times or bytes, blocks
    that weigh or take nothing."""
    fmt = row.get("format", "?")
    w = row["weights_bytes"]
    for part in ("double", "single"):
        number(w[part], f"{fmt}: weight bytes of the {part} block", positive=True)
    number(w["rest"], f"{fmt}: weight bytes outside the blocks", positive=False)
    if not row["points"]:
        raise ValueError(f"{fmt}: no timed points")
    for p in row["points"]:
        at = f"{fmt} at {p['image_tokens']}+{p['text_tokens']} tokens x {p['batch']}"
        for key in ("double_s", "single_s"):
            number(p[key], f"{at}: {key}", positive=True)
        number(p["rest_s"], f"{at}: rest_s", positive=False)
        for key in ("activation_gib", "reserved_gib"):
            if p.get(key) is not None:
                number(p[key], f"{at}: {key}", positive=False)
        if p.get("stacked_s") is not None:
            number(p["stacked_s"], f"{at}: stacked_s", positive=True)


def where(doc: dict) -> str:
    v = doc.get("versions", {})
    return f"measured: {doc.get('gpu')}, torch {v.get('torch')}, diffusers {v.get('diffusers')}, {doc.get('date')}"


def step_seconds(point: dict, stacked: dict | None, nd: int, ns: int) -> float:
    """A full forward's seconds at one block point: the stacked forward where it called the blocks as often as
    the full model does, else the blocks' times extrapolated."""
    if point.get("stacked_s") is not None and stacked == {"double": nd, "single": ns}:
        return float(point["stacked_s"])
    return extrapolate(point["rest_s"], point["double_s"], point["single_s"], nd, ns)


def forward_points(doc: dict) -> list[dict]:
    """Forward points (profile schema) of every format blocks.json measured; failed formats are skipped."""
    nd, ns = int(doc["blocks"]["double"]), int(doc["blocks"]["single"])
    points = []
    for row in doc["formats"]:
        if not row.get("ok"):
            continue
        check_row(row)
        w = row["weights_bytes"]
        weights = extrapolate(w["rest"], w["double"], w["single"], nd, ns) / GIB
        stacked = row.get("stacked")
        how = ("time of its forward with the blocks called as often as the full model's, weights extrapolated"
               if stacked == {"double": nd, "single": ns} else "time and weights extrapolated")
        source = (f"{where(doc)}; blocks: one double- and one single-stream block of synthetic FLUX.1-{doc['kind']} "
                  f"in {row['format']} (fluxplan's backends), {how} to {nd}+{ns} blocks; fluxplan.profiling.blocks")
        for p in row["points"]:
            points.append({"format": row["format"], "compile": "none", "image_tokens": p["image_tokens"],
                           "text_tokens": p["text_tokens"], "batch": p["batch"],
                           "seconds": step_seconds(p, stacked, nd, ns),
                           "weights_gib": weights, "activation_gib": p.get("reserved_gib"),
                           "kind": "measured", "source": source})
    return points


def error_line(e: BaseException) -> str:
    """A measurement that failed, as its row records it: the exception's type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def reached(row: dict) -> bool:
    """Whether a blocks row measured something: it ran, or failed, or ran past its own time limit; not a task
    skipped at the run's deadline or stopped by it (that says nothing about the format)."""
    error = row.get("error", "")
    return bool(row.get("ok")) or not (error.startswith("skipped") or error == "timeout: past the deadline")


def compiled_points(doc: dict) -> tuple[list[dict], list[dict]]:
    """(forward points, compile measures) of blocks.json's compile tasks: a compiled format's stacked forward per
    point and its reserve; per task whether it compiled and how long the cold compile took. A task skipped at the
    deadline was not measured and gives nothing."""
    nd, ns = int(doc["blocks"]["double"]), int(doc["blocks"]["single"])
    points, measures = [], []
    for row in doc.get("compiled", []):
        fmt, mode = row["base"], row["compile"]
        source = (f"{where(doc)}; blocks: one double- and one single-stream block of synthetic FLUX.1-{doc['kind']} "
                  f"in {fmt}, compiled {mode} as run.placement compiles a pipeline; fluxplan.profiling.blocks")
        error = row.get("error", "")
        if not row.get("ok"):
            if not reached(row):
                continue
            limit = re.search(r"past the (\d+) s limit", error)
            measures.append({"format": fmt, "mode": mode, "status": "timeout" if limit else "fails",
                             "seconds": float(limit.group(1)) if limit else None,
                             "error": error, "kind": "measured", "source": source})
            continue
        if row.get("stacked") != {"double": nd, "single": ns}:
            raise ValueError(f"{row['format']}: compiled with {row.get('stacked')} blocks, the model has {nd}+{ns}")
        for p in row["points"]:
            at = f"{row['format']} at {p['image_tokens']}+{p['text_tokens']} tokens x {p['batch']}"
            points.append({"format": fmt, "compile": mode, "image_tokens": p["image_tokens"],
                           "text_tokens": p["text_tokens"], "batch": p["batch"],
                           "seconds": number(p["stacked_s"], f"{at}: stacked_s", positive=True),
                           "activation_gib": (None if p.get("reserved_gib") is None else
                                              number(p["reserved_gib"], f"{at}: reserved_gib", positive=False)),
                           "kind": "measured", "source": source})
        measures.append({"format": fmt, "mode": mode, "status": "ok",
                         "seconds": number(row["compile_s"], f"{row['format']}: compile_s", positive=False),
                         "kind": "measured", "source": source})
    return points, measures


def failed(doc: dict) -> dict[str, str]:
    return {r["format"]: r.get("error", "") for r in doc["formats"] if not r.get("ok")}


def key(p: dict) -> tuple:
    return (p["format"], p["compile"], p["image_tokens"], p["text_tokens"], p.get("batch", 1))


def merge(block_points: list[dict], pipeline_points: list[dict]) -> list[dict]:
    """Pipeline (and full-model sweep) points first; a block point only where neither measured the same key."""
    taken = {key(p) for p in pipeline_points}
    return pipeline_points + [p for p in block_points if key(p) not in taken]


# --------------------------------------------------------------------------- the reference profile


def references(seed: dict) -> list[dict]:
    """The profiles standing in for what was not measured, in order: the one being replaced if it is whole, then
    the bundled measured profiles. The first stands in for what blocks cannot show (offload, decode carry-over);
    a format's step and compile come from the first that measured them."""
    from fluxplan.cost.profile import profile_dirs

    whole = all(k in seed for k in ("gpu", "offload", "memory", "encode", "decode"))
    refs = ([seed] if whole else []) + [json.loads(path.read_text()) for d in profile_dirs(include_local=False)
                                        for path in sorted(d.glob("*.json"))]
    if not refs:
        raise ValueError("no reference profile for what blocks cannot measure (offload, decode carry-over)")
    return refs


def scales(ref_gpu: str, gpu: str) -> tuple[float, float]:
    """(compute, PCIe) time ratios reference / here through the spec database; 1.0 where a card is unknown."""
    from fluxplan.catalog.gpus import match_nvml_name

    a, b = match_nvml_name(ref_gpu, None), match_nvml_name(gpu, None)
    if a is None or b is None:
        return 1.0, 1.0
    return a.bf16_tflops / b.bf16_tflops, a.pcie_gbs / b.pcie_gbs


def derived(point: dict, ref_gpu: str, what: str, why: str = "blocks cannot show this", **changes: float) -> dict:
    return {**point, **changes, "kind": "derived", "source": f"derived: {ref_gpu}'s point ({point['kind']}) {what}; {why}"}


def _bf16_steps(points: list[dict]) -> dict[tuple, float]:
    steps: dict[tuple, float] = {}
    for p in points:  # the first of a key: a pipeline's point comes before the blocks' (merge)
        if p["format"] == "bf16" and p["kind"] == "measured":
            steps.setdefault((p["compile"], p["image_tokens"], p["text_tokens"], p.get("batch", 1)), p["seconds"])
    return steps


def forward_from_references(refs: list[dict], gpu: str, forward: list[dict], used: set[str]) -> list[dict]:
    """forward_from_reference of each reference in turn, a format and compile mode from the first that has it;
    the GPUs of the references taken from are added to `used`."""
    out: list[dict] = []
    for ref in refs:
        taken = forward_from_reference(ref, gpu, forward + out)
        out += taken
        used.update([ref["gpu"]] if taken else [])
    return out


def forward_from_reference(ref: dict, gpu: str, forward: list[dict]) -> list[dict]:
    """The reference's measured forward points of each format and compile mode measured nowhere here (--quick
    measures bf16 and fp8 layerwise casting; the full run compiles the formats its deadline reaches), each as its
    ratio to the reference's bf16 step at the same tokens, batch and compile mode, times bf16's step here. A
    format's step relative to bf16's held across GPUs: compiled regionally on the H100 and the H200, GGUF Q4_0 was
    1.16 / 1.13 x bf16's, NF4 1.10 / 1.07, quanto int8 1.33 / 1.33. Where bf16 was not measured here in that mode
    at those tokens (--quick compiles nothing), the ratio of bf16's eager steps stands in; where neither was,
    nothing is derived."""
    have = {(p["format"], p["compile"]) for p in forward}
    here, there = _bf16_steps(forward), _bf16_steps(ref["forward"])
    out = []
    for p in ref["forward"]:
        k = (p["compile"], p["image_tokens"], p["text_tokens"], p.get("batch", 1))
        eager = ("none", *k[1:])
        if p["kind"] != "measured" or (p["format"], p["compile"]) in have:
            continue
        if k in here and k in there:
            ratio, what = here[k] / there[k], "bf16's step"
        elif eager in here and eager in there:
            ratio, what = here[eager] / there[eager], "bf16's eager step"
        else:
            continue
        out.append(derived(p, ref["gpu"], f"x {what} here over there ({ratio:.3f})",
                           f"{p['format']} was not measured{' compiled' if p['compile'] != 'none' else ''} here",
                           seconds=p["seconds"] * ratio))
    return out


def encode_from_references(refs: list[dict], encode: list[dict], used: set[str]) -> list[dict]:
    """T5's encode points of each format a reference measured and this run did not (the full run's T5 stage has
    45 s: two to four formats), as their ratio to that reference's bf16 encode at the same text tokens times
    bf16's here, their weights as they were; from the first reference that measured the format."""
    have = {e.get("format", "bf16") for e in encode}
    here = {e["text_tokens"]: e["seconds"] for e in encode if e.get("format", "bf16") == "bf16"}
    out: list[dict] = []
    for ref in refs:
        there = {e["text_tokens"]: e["seconds"] for e in ref["encode"]
                 if e.get("format", "bf16") == "bf16" and e["kind"] == "measured"}
        taken = [e for e in ref["encode"] if e["kind"] == "measured" and e.get("format", "bf16") not in have
                 and e["text_tokens"] in here and e["text_tokens"] in there]
        for e in taken:
            ratio = here[e["text_tokens"]] / there[e["text_tokens"]]
            out.append(derived(e, ref["gpu"], f"x bf16's encode here over there ({ratio:.3f})",
                               f"T5 in {e['format']} was not measured here", seconds=e["seconds"] * ratio))
        have |= {e["format"] for e in taken}
        used.update([ref["gpu"]] if taken else [])
    return out


def compile_from_references(refs: list[dict], have: set[tuple[str, str]], used: set[str]) -> list[dict]:
    """Whether each format a reference compiled and this run did not compiles, and its cold compile time, as the
    first reference that measured it did (Dynamo and Inductor decide whether a graph compiles, and the host CPU
    how long); the GPUs of the references taken from are added to `used`."""
    out, have = [], set(have)
    for ref in refs:
        for m in ref.get("compile", []):
            if m["kind"] == "measured" and (m["format"], m["mode"]) not in have:
                out.append(derived(m, ref["gpu"], "as it is", f"{m['format']} was not compiled {m['mode']} here"))
                have.add((m["format"], m["mode"]))
                used.add(ref["gpu"])
    return out


def offload_from_reference(ref: dict, gpu: str, have: set[str]) -> list[dict]:
    """The reference's offload points of every mode not measured here, transfer times scaled by PCIe bandwidth."""
    _, pcie = scales(ref["gpu"], gpu)
    what = f"scaled by PCIe bandwidth ({pcie:.2f}x)"
    return [derived(p, ref["gpu"], what, extra_seconds=p["extra_seconds"] * pcie)
            for p in ref["offload"] if p["mode"] in OFFLOAD_MODES and p["mode"] not in have]


def encode_decode_from_reference(ref: dict, gpu: str) -> tuple[list[dict], list[dict]]:
    compute, _ = scales(ref["gpu"], gpu)
    what = f"scaled by bf16 throughput ({compute:.2f}x)"
    return ([derived(e, ref["gpu"], what, seconds=e["seconds"] * compute) for e in ref["encode"]],
            [derived(d, ref["gpu"], what, seconds=d["seconds"] * compute) for d in ref["decode"]])


def memory_from_reference(ref: dict, name: str) -> dict:
    return derived(ref["memory"][name], ref["gpu"], "as it is")


def load_blocks(path: Path) -> dict:
    doc = json.loads(path.read_text())
    if not any(r.get("ok") for r in doc.get("formats", [])) and not doc.get("compiled"):  # compile-only folders count
        errors = "; ".join(f"{f}: {e}" for f, e in failed(doc).items())[:300]
        raise ValueError(f"blocks.json measured no format ({errors or 'none tried'})")
    return doc
