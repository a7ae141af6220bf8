"""Every transformer format x offload mode on a full-size synthetic FLUX.1-dev, on the GPU this runs on.

Each format runs in its own process (a crash or an out-of-memory error costs one row, not the run); inside it,
each offload mode builds the pipeline the way `fluxplan auto` does (fluxplan.run.builder.build, diffusers' own
APIs), generates one 1024x1024 image in STEPS steps with fluxplan.run.measure, records load time, the peak as
NVML sees it, seconds per step, and any error, then frees everything. Rows go to OUT/matrix.jsonl as they come,
so a run stopped by its deadline keeps what it measured, and `--skip-done` resumes.

    python -m fluxplan.profiling.matrix --model DIR --out $OUT --set core --deadline 540      # on the GPU
    python -m fluxplan.profiling.matrix --table benchmarks/results/h100-2026-11-22/matrix.jsonl   # Markdown
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fluxplan.profiling.blockpoints import error_line

ALL_OFFLOADS = ["none", "model", "group-block", "group-leaf", "sequential"]
NON_GGUF = ["bf16", "fp8-layerwise", "torchao-int8wo", "torchao-fp8wo", "torchao-fp8dq", "torchao-int4wo",
            "bnb-nf4", "bnb-fp4", "bnb-int8", "quanto-int8", "quanto-int4", "quanto-fp8"]
GGUF = ["gguf-q8_0", "gguf-q6_k", "gguf-q5_k", "gguf-q5_1", "gguf-q5_0", "gguf-q4_k", "gguf-q4_1", "gguf-q4_0",
        "gguf-q3_k", "gguf-q2_k"]
SETS = {
    # every format resident, then every offload mode for the formats people use on small cards
    "core": [(f, ["none"]) for f in NON_GGUF],
    "offload": [(f, ALL_OFFLOADS[1:]) for f in ["bf16", "fp8-layerwise", "bnb-nf4", "torchao-int8wo", "quanto-int8"]],
    "gguf": [(f, ["none"]) for f in GGUF] + [(f, ALL_OFFLOADS[1:]) for f in ["gguf-q8_0", "gguf-q4_0"]],
    "offload2": [(f, ALL_OFFLOADS[1:]) for f in ["bnb-int8", "torchao-fp8wo", "quanto-fp8", "bnb-fp4", "torchao-fp8dq",
                                                  "quanto-int4", "gguf-q4_k", "gguf-q6_k"]],
    # every (format, offload) the H100 matrix had not run after the third session, cheapest first; quanto, which
    # quantizes on load for minutes, last
    "gaps": [("fp8-layerwise", ["group-block", "sequential"]), ("bnb-nf4", ["group-block"]),
             ("gguf-q8_0", ["group-block"]), ("gguf-q4_0", ["model", "group-block", "sequential"])]
            + [(f, ALL_OFFLOADS[1:]) for f in GGUF if f not in ("gguf-q8_0", "gguf-q4_0")]
            + [("torchao-int8wo", ["group-block", "sequential"]), ("quanto-int8", ["group-block", "sequential"]),
               ("quanto-fp8", ALL_OFFLOADS[1:]), ("quanto-int4", ALL_OFFLOADS)],
}
STEPS = 3
PROMPT = "a red fox in the snow, photograph"


def child(fmt: str, offloads: list[str], model: Path, out: Path, device: str = "cuda", side: int = 1024,
          compile: str = "none") -> None:
    import gc

    import torch

    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.builder import build
    from fluxplan.run.hostprobe import host
    from fluxplan.run.measure import generate_images
    from fluxplan.run.synth import ensure_gguf

    out.mkdir(parents=True, exist_ok=True)
    here = host()  # offload and small-image steps depend on the host: record which one ran them
    gguf_file = None
    if fmt.startswith("gguf-"):
        t = time.perf_counter()
        gguf_file = ensure_gguf(model, model.name.split("-s")[0], fmt.split("-", 1)[1].upper(), device=device)
        print(f"{fmt}: wrote {gguf_file.name} in {time.perf_counter() - t:.0f} s", flush=True)
    for off in offloads:
        offload = Offload(off)
        placement = (TextEncoderPlacement.FOLLOWS_OFFLOAD if offload in (Offload.MODEL, Offload.SEQUENTIAL)
                     else TextEncoderPlacement.RESIDENT)
        c = Candidate(fmt, "bf16", placement, offload, Compile(compile), False)
        row = {"format": fmt, "offload": off, "compile": compile, "text_encoder_2": "bf16", "steps": STEPS,
               "height": side, "width": side, "host": here,
               "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None}
        t0 = time.perf_counter()
        built = None
        try:
            built = build(c, model, device=device)
            row.update(load_s=built.load_s, setup_s=built.setup_s, notes=built.notes)
            _, m = generate_images(built, PROMPT, height=side, width=side, steps=STEPS, guidance=3.5, seed=0,
                                   max_sequence_length=512 if side >= 512 else 32, placement=placement, device=device)
            row.update(ok=True, step_s=m.step_s, first_step_s=m.steps_flat[0], compile_s=m.compile_s,
                       steps_s=m.steps_flat, encode_s=m.encode_s,
                       decode_s=m.decode_s, peak_nvml_gib=m.peak_nvml_gib, nvml_source=m.nvml_source,
                       peak_reserved_gib=m.peak_reserved_gib, peak_allocated_gib=m.peak_allocated_gib,
                       phase_peak_reserved_gib=m.phase_peak_reserved_gib, context_gib=m.context_gib)
        except Exception as e:  # a failing combination is a result: record it and go on
            row.update(ok=False, error=error_line(e))
        row["wall_s"] = time.perf_counter() - t0
        with open(out / "matrix.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row.get(k) for k in ("format", "offload", "ok", "load_s", "step_s", "peak_nvml_gib",
                                                  "error")}), flush=True)
        del built
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    if gguf_file is not None:
        gguf_file.unlink(missing_ok=True)  # the disk holds one GGUF level at a time


def parent(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.skip_done:
        for line in Path(args.skip_done).read_text().splitlines():
            r = json.loads(line)
            done.add((r["format"], r["offload"]))
    deadline = time.monotonic() + args.deadline
    model = Path(args.model)
    plan = ([(part.split("=")[0], part.split("=")[1].split(",")) for part in args.only.split(";")]
            if args.only else SETS[args.set])
    for fmt, offloads in plan:
        todo = [o for o in offloads if (fmt, o) not in done]
        if not todo:
            continue
        left = deadline - time.monotonic()
        if left < 60:
            print(f"deadline: stopping before {fmt}", flush=True)
            break
        cmd = [sys.executable, __file__, "--child", fmt, "--offloads", ",".join(todo), "--model", str(model),
               "--out", str(out), "--compile", args.compile, "--side", str(args.side), "--device", args.device]
        try:
            per = 90 if args.compile == "none" else 400  # compiling takes minutes on the first step
            r = subprocess.run(cmd, timeout=min(left, per * len(todo) + 120))
            code = r.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        if code != 0:
            seen = {(json.loads(x)["format"], json.loads(x)["offload"])
                    for x in (out / "matrix.jsonl").read_text().splitlines()} if (out / "matrix.jsonl").exists() else set()
            with open(out / "matrix.jsonl", "a") as f:
                for o in todo:
                    if (fmt, o) not in seen:
                        f.write(json.dumps({"format": fmt, "offload": o, "compile": args.compile, "ok": False,
                                            "error": f"process ended with {code} (crash or timeout)"}) + "\n")


def table(path: Path, rows_of: str = "all") -> str:
    """Markdown of a matrix.jsonl; `rows_of`: all, eager (no compile) or compiled."""
    rows = [r for r in (json.loads(x) for x in path.read_text().splitlines()) if "superseded" not in r]
    if rows_of != "all":
        rows = [r for r in rows if (r.get("compile", "none") != "none") == (rows_of == "compiled")]
    lines = ["| transformer | offload | load s | peak GiB (NVML) | s/step | first step s | decode s | result |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("compile", "none") != "none":
            r = {**r, "offload": f"{r['offload']}, compile {r['compile']}"}
        if r.get("ok"):
            lines.append(f"| {r['format']} | {r['offload']} | {r['load_s']:.1f} | {r['peak_nvml_gib'] or float('nan'):.2f} "
                         f"| {r['step_s']:.3f} | {r['first_step_s']:.3f} | {r['decode_s']:.2f} | ok |")
        else:  # a process that ran out of time did not fail: the combination stays unverified
            verdict = "did not finish" if "timeout" in r.get("error", "") else "fails"
            lines.append(f"| {r['format']} | {r['offload']} | | | | | | {verdict}: {r.get('error', '')[:160]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--offloads", default="none")
    ap.add_argument("--model", default=os.environ.get("FLUXPLAN_SYNTH_DEV", ""))
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--set", default="core", choices=sorted(SETS))
    ap.add_argument("--deadline", type=float, default=540)
    ap.add_argument("--skip-done")
    ap.add_argument("--only", help="FORMAT=OFFLOAD,OFFLOAD;FORMAT=... instead of --set")
    ap.add_argument("--table", help="print this matrix.jsonl as Markdown")
    ap.add_argument("--rows", default="all", choices=["all", "eager", "compiled"], help="with --table: which rows")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test with --model <synthetic tiny dir>")
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--compile", default="none", choices=["none", "regional", "full"],
                    help="compile the transformer (the first step's extra over the steady step is compile_s)")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table), args.rows))
    elif args.child:
        child(args.child, args.offloads.split(","), Path(args.model), Path(args.out), args.device, args.side,
              args.compile)
    else:
        parent(args)


if __name__ == "__main__":
    main()
