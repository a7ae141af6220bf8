"""Is a small image's step bound by the host? For each transformer format, a resident pipeline (bf16 T5) at
512x512, 768x768 and 1024x1024: each denoising step's GPU time (CUDA events, the CPU one step ahead as in
fluxplan.run.measure) and the host's busy time in it (the step's wall time less the time spent waiting for the
GPU), then the bare transformer forward at the same shape, timed with a synchronize around it (wall) and until
the call returned (host). No NVML sampler runs. Rows to OUT/hostbound.jsonl.

    python benchmarks/gpu/hostbound.py --model .devcache/synthetic/dev-s0 --out $OUT --formats bf16,bnb-nf4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

SIZES = [(512, 512), (768, 768), (1024, 1024)]
STEPS = 8


HOST: dict = {}


def one_format(fmt: str, model: Path, out: Path) -> None:
    import torch

    from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
    from fluxplan.run.builder import build
    from fluxplan.run.measure import encode

    built = build(Candidate(fmt, "bf16", TextEncoderPlacement.RESIDENT, Offload.NONE, Compile.NONE, False), model,
                  device="cuda")
    pipe = built.pipe
    pipe.set_progress_bar_config(disable=True)
    embeds, pooled, _ = encode(pipe, "a red fox in the snow", batch=1, max_sequence_length=512,
                               placement=TextEncoderPlacement.RESIDENT, device="cuda")
    for w, h in SIZES:
        events, host_marks, waits = [], [], []

        def step_end(_pipe, i, t, tensors):
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            events.append(ev)
            host_marks.append(time.perf_counter())
            if len(events) > 1:
                t0 = time.perf_counter()
                events[-2].synchronize()
                waits.append(time.perf_counter() - t0)
            else:
                waits.append(0.0)
            return {}

        for warm in (True, False):
            events.clear(), host_marks.clear(), waits.clear()
            pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=h, width=w, num_inference_steps=STEPS,
                 guidance_scale=3.5, output_type="latent", callback_on_step_end=step_end, return_dict=False,
                 generator=torch.Generator("cpu").manual_seed(0))
        events[-1].synchronize()
        gpu = [a.elapsed_time(b) / 1000 for a, b in zip(events[:-1], events[1:])]
        host = [(b - a) - wait for a, b, wait in zip(host_marks[:-1], host_marks[1:], waits[1:])]
        # the bare transformer forward at this shape
        tokens = (h // 16) * (w // 16)
        tr = pipe.transformer
        args = {"hidden_states": torch.randn(1, tokens, 64, device="cuda", dtype=torch.bfloat16),
                "encoder_hidden_states": embeds, "pooled_projections": pooled,
                "timestep": torch.full((1,), 0.5, device="cuda", dtype=torch.bfloat16),
                "guidance": torch.full((1,), 3.5, device="cuda", dtype=torch.bfloat16),
                "img_ids": torch.zeros(tokens, 3, device="cuda"), "txt_ids": torch.zeros(512, 3, device="cuda"),
                "return_dict": False}
        walls, hosts = [], []
        with torch.inference_mode():
            tr(**args)
            for _ in range(4):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                tr(**args)
                t1 = time.perf_counter()
                torch.cuda.synchronize()
                walls.append(time.perf_counter() - t0)
                hosts.append(t1 - t0)
        row = {"format": fmt, "width": w, "height": h, "gpu": torch.cuda.get_device_name(0), "host": HOST,
               "pipeline_step_s": statistics.median(gpu[1:]), "pipeline_host_s": statistics.median(host),
               "forward_wall_s": statistics.median(walls), "forward_host_s": statistics.median(hosts),
               "steps_gpu": gpu, "steps_host": host}
        with open(out / "hostbound.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                          if not k.startswith("steps_")}), flush=True)
    del built, pipe
    torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--formats", default="bf16,bnb-nf4")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from fluxplan.run.hostprobe import host

    HOST.update(host())
    for fmt in a.formats.split(","):
        one_format(fmt, Path(a.model), out)


if __name__ == "__main__":
    main()
