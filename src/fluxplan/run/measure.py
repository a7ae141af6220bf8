"""Run one generation on a built pipeline and measure what each stage really cost.

    images, m = generate_images(built, "a red fox", height=1024, width=1024, steps=28, guidance=3.5, seed=0,
                                batch=1, images=1, max_sequence_length=512, placement="resident", device="cuda")

Stages, each timed on its own (with torch.cuda.synchronize() on CUDA; the steps with CUDA events):
- encode: `pipe.encode_prompt` called here, once for all images; placement `free` then moves the text encoders
  off the GPU (builder.free_text_encoders); placement `cpu` has T5 on the CPU and the embeddings moved over.
- denoise: the pipeline with `prompt_embeds` and `output_type="latent"`; each step timed by
  `callback_on_step_end`. The first step's extra over the median of the later ones is compile / warm-up time.
- decode: what FluxPipeline does after the loop, done here: `_unpack_latents`, scaling and shift factors,
  `vae.decode`, `image_processor.postprocess`.
Memory on CUDA: the allocator's peak reserved (reset before each stage), and NVML's view of this process sampled
in a background thread (run.memory); the CUDA context is NVML's figure less torch's reserved, taken right after
CUDA initialisation (`memory.init_device`: call it before building).
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from contextlib import contextmanager, nullcontext
from typing import Any, Callable

from pydantic import BaseModel, Field

from fluxplan.errors import BadInput, FluxplanError
from fluxplan.models import TextEncoderPlacement
from fluxplan.run.memory import GIB, NvmlSampler, init_device

MAX_SEQUENCE_LENGTH = 512  # T5's limit in FluxPipeline
Progress = Callable[[str, int, int], None]  # (stage, done, total)


class PromptTruncated(UserWarning):
    """The prompt is longer than a text encoder reads: the rest is dropped, as diffusers does."""


class OutOfMemory(FluxplanError):
    def __init__(self, phase: str, message: str):
        super().__init__(f"out of memory while {phase}: {message}")
        self.phase = phase


def is_out_of_memory(e: BaseException) -> bool:
    """An out-of-memory error: OutOfMemory, torch.OutOfMemoryError, or a RuntimeError saying "out of memory"
    (as CUDA, cuBLAS and some backends word it); also when one of these is the error's direct cause."""
    import torch

    for err in (e, e.__cause__):
        if isinstance(err, (OutOfMemory, torch.OutOfMemoryError)):
            return True
        if isinstance(err, RuntimeError) and "out of memory" in str(err).lower():
            return True
    return False


class Measurement(BaseModel):
    """What one generate_images call cost. Seconds and GiB; memory figures are None off CUDA."""

    device: str
    encode_s: float
    step_seconds: list[list[float]]  # per pipeline call, each step
    decode_seconds: list[float]  # per pipeline call
    peak_reserved_gib: float | None = None
    peak_allocated_gib: float | None = None
    phase_peak_reserved_gib: dict[str, float] = Field(default_factory=dict)
    context_gib: float | None = None
    peak_nvml_gib: float | None = None
    nvml_source: str | None = None  # "process" (this PID's usage) or "device" (device usage less others')
    notes: list[str] = Field(default_factory=list)

    @property
    def steps_flat(self) -> list[float]:
        return [s for call in self.step_seconds for s in call]

    @property
    def step_s(self) -> float:
        """Median steady step: every step but the very first (which carries compile / warm-up)."""
        flat = self.steps_flat
        return statistics.median(flat[1:]) if len(flat) > 1 else flat[0]

    @property
    def compile_s(self) -> float | None:
        """The first step's extra over the steady step; None with a single step (nothing to compare)."""
        flat = self.steps_flat
        return max(0.0, flat[0] - self.step_s) if len(flat) > 1 else None

    @property
    def decode_s(self) -> float:
        return statistics.median(self.decode_seconds)

    @property
    def total_s(self) -> float:
        return self.encode_s + sum(self.steps_flat) + sum(self.decode_seconds)


# --------------------------------------------------------------------------- the stages


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


STAGES = {"encode": "encoding the prompt", "denoise": "denoising", "decode": "decoding"}


@contextmanager
def _stage(name: str, device: str, peaks: dict[str, tuple[float, float]]):
    """Tag any exception with the stage it came from (`e.fluxplan_phase`); an out-of-memory error becomes
    OutOfMemory. Records the stage's peak (reserved, allocated) GiB on CUDA."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        yield
    except torch.OutOfMemoryError as e:
        err = OutOfMemory(STAGES[name], str(e).splitlines()[0] if str(e) else "CUDA out of memory")
        err.fluxplan_phase = name  # type: ignore[attr-defined]
        raise err from e
    except BaseException as e:
        if not hasattr(e, "fluxplan_phase"):
            e.fluxplan_phase = name  # type: ignore[attr-defined]
        raise
    if cuda:
        _sync(device)
        old = peaks.get(name, (0.0, 0.0))
        peaks[name] = (max(old[0], torch.cuda.max_memory_reserved() / GIB),
                       max(old[1], torch.cuda.max_memory_allocated() / GIB))


def check_prompt(pipe: Any, prompt: str, max_sequence_length: int) -> list[str]:
    """Validate the prompt; return a note (and warn) for each encoder that will not read all of it."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInput("the prompt is empty")
    if not 1 <= max_sequence_length <= MAX_SEQUENCE_LENGTH:
        raise BadInput(f"max_sequence_length {max_sequence_length}: must be between 1 and {MAX_SEQUENCE_LENGTH}")
    notes = []
    for tok, limit, what in ((pipe.tokenizer_2, max_sequence_length, "T5 (max_sequence_length)"),
                             (pipe.tokenizer, pipe.tokenizer_max_length, "CLIP")):
        if tok is None:
            continue
        ids = tok(prompt, padding="longest", verbose=False).input_ids
        if len(ids) > limit:  # diffusers keeps the first limit-1 tokens and the end token
            dropped = tok.decode(ids[limit - 1:-1], skip_special_tokens=True)
            note = (f"prompt truncated for {what}: {len(ids)} tokens, {limit} read; dropped: {dropped!r}")
            warnings.warn(note, PromptTruncated, stacklevel=3)
            notes.append(note)
    return notes


@contextmanager
def _quiet(logger_name: str):
    log = logging.getLogger(logger_name)
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def encode(pipe: Any, prompt: str, *, batch: int, max_sequence_length: int, placement: TextEncoderPlacement,
           device: str):
    """(prompt_embeds, pooled_prompt_embeds, notes) on `device`, repeated for `batch` images."""
    import torch

    from fluxplan.run.builder import free_text_encoders

    with torch.no_grad(), _quiet("diffusers.pipelines.flux.pipeline_flux"):  # check_prompt warned already
        embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=torch.device(device),
                                               num_images_per_prompt=batch,
                                               max_sequence_length=max_sequence_length)
    # placement cpu: T5 ran on the CPU (in float32 where the CPU has no fast bf16); encode_prompt already moves its
    # output, this makes it explicit, in the dtype of CLIP's output, which is the pipeline's.
    embeds, pooled = embeds.to(device=device, dtype=pooled.dtype), pooled.to(device)
    notes = []
    if placement is TextEncoderPlacement.FREE_AFTER_ENCODE:
        notes += free_text_encoders(pipe)
    return embeds, pooled, notes


def denoise(pipe: Any, embeds, pooled, *, n: int, height: int, width: int, steps: int, guidance: float,
            generators: list, device: str, on_step: Callable[[], None]) -> tuple[Any, list[float]]:
    """Packed latents of `n` images, and each step's seconds (from the call to the first step's end, then
    between step ends). On CUDA each step's end is a CUDA event, and the CPU waits only for the step before the
    one just queued: it stays a step ahead, so the GPU never idles while the next step is launched (a
    synchronize per step cost 1.4 % of an image on the H100), and progress lags by at most one step."""
    if device.startswith("cuda"):
        import torch

        events = [torch.cuda.Event(enable_timing=True)]

        def mark() -> None:
            events.append(torch.cuda.Event(enable_timing=True))
            events[-1].record()
            if len(events) > 2:
                events[-2].synchronize()

        def seconds() -> list[float]:
            events[-1].synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(events[:-1], events[1:])]

        events[0].record()
    else:
        marks = [time.perf_counter()]

        def mark() -> None:
            marks.append(time.perf_counter())

        def seconds() -> list[float]:
            return [b - a for a, b in zip(marks[:-1], marks[1:])]

    def step_end(_pipe, i, t, tensors):
        mark()
        on_step()
        return {}

    latents = pipe(prompt_embeds=embeds[:n], pooled_prompt_embeds=pooled[:n], height=height, width=width,
                   num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                   output_type="latent", callback_on_step_end=step_end, return_dict=False)[0]
    return latents, seconds()


def decode(pipe: Any, latents, *, height: int, width: int) -> list:
    """What FluxPipeline.__call__ does after its loop (diffusers 0.42), returning PIL images."""
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    with torch.no_grad():
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        latents = (latents / pipe.vae.config.scaling_factor) + pipe.vae.config.shift_factor
        latents = latents.to(get_module_execution_device(pipe.vae))
        image = pipe.vae.decode(latents, return_dict=False)[0]
        images = pipe.image_processor.postprocess(image, output_type="pil")
    pipe.maybe_free_model_hooks()  # model offload: put the VAE back as the pipeline would
    return images


DecodeOOM = Callable[[Any, BaseException], bool]  # (pipe, error) -> retry the decode once?


def _decode_or_retry(pipe: Any, latents, *, height: int, width: int, on_oom: DecodeOOM | None) -> list:
    """decode; on an out-of-memory error, `on_oom(pipe, error)` may change the pipeline (VAE tiling) and ask
    for one more try. The retry runs after the failed try's traceback (and what it held) is gone."""
    try:
        return decode(pipe, latents, height=height, width=width)
    except Exception as e:
        if on_oom is None or not is_out_of_memory(e) or not on_oom(pipe, e):
            raise
    return decode(pipe, latents, height=height, width=width)


def generate_images(built: Any, prompt: str, *, height: int, width: int, steps: int, guidance: float, seed: int,
                    batch: int = 1, images: int = 1, max_sequence_length: int = 512,
                    placement: TextEncoderPlacement | str = TextEncoderPlacement.RESIDENT, device: str = "cuda",
                    progress: Progress | None = None, on_decode_oom: DecodeOOM | None = None
                    ) -> tuple[list, Measurement]:
    """Generate `images` images, `batch` per pipeline call; image i uses seed `seed + i` (its own CPU generator,
    so an image is the same whatever the batch). Returns the PIL images and what each stage cost.
    `on_decode_oom(pipe, error)`: called when a decode runs out of memory; True retries that decode once."""
    import torch

    pipe = built.pipe
    placement = TextEncoderPlacement(placement)
    if batch < 1 or images < 1 or steps < 1:
        raise BadInput("batch, images and steps must each be at least 1")
    report = progress or (lambda stage, done, total: None)
    notes = check_prompt(pipe, prompt, max_sequence_length)
    pipe.set_progress_bar_config(disable=True)
    calls = [min(batch, images - start) for start in range(0, images, batch)]
    cuda = device.startswith("cuda")
    baseline = init_device(device) if cuda else None
    peaks: dict[str, tuple[float, float]] = {}
    step_seconds: list[list[float]] = []
    decode_seconds: list[float] = []
    out: list = []
    sampler = NvmlSampler(baseline) if baseline is not None else None
    with sampler if sampler is not None else nullcontext():
        report("encode", 0, 1)
        with _stage("encode", device, peaks):
            _sync(device)
            t0 = time.perf_counter()
            embeds, pooled, enc_notes = encode(pipe, prompt, batch=max(calls), max_sequence_length=max_sequence_length,
                                               placement=placement, device=device)
            _sync(device)
            encode_s = time.perf_counter() - t0
        notes += enc_notes
        report("encode", 1, 1)
        total_steps, done = steps * len(calls), 0
        report("denoise", 0, total_steps)
        start = 0
        for k, n in enumerate(calls):
            gens = [torch.Generator("cpu").manual_seed(seed + start + j) for j in range(n)]

            def on_step():
                nonlocal done
                done += 1
                report("denoise", done, total_steps)

            with _stage("denoise", device, peaks):
                latents, times = denoise(pipe, embeds, pooled, n=n, height=height, width=width, steps=steps,
                                         guidance=guidance, generators=gens, device=device, on_step=on_step)
            step_seconds.append(times)
            report("decode", k, len(calls))
            with _stage("decode", device, peaks):
                t0 = time.perf_counter()
                out += _decode_or_retry(pipe, latents, height=height, width=width, on_oom=on_decode_oom)
                _sync(device)
                decode_seconds.append(time.perf_counter() - t0)
            report("decode", k + 1, len(calls))
            start += n
    m = Measurement(device=device, encode_s=encode_s, step_seconds=step_seconds, decode_seconds=decode_seconds,
                    notes=notes)
    if cuda:
        m.phase_peak_reserved_gib = {k: v[0] for k, v in peaks.items()}
        m.peak_reserved_gib = max(v[0] for v in peaks.values())
        m.peak_allocated_gib = max(v[1] for v in peaks.values())
        m.context_gib = baseline.context_gib
        if sampler is not None and sampler.peak_bytes is not None:
            m.peak_nvml_gib, m.nvml_source = sampler.peak_bytes / GIB, sampler.source
    return out, m

