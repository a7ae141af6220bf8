"""Candidate x request x GPU -> peak VRAM and latency, each with its breakdown and its sources.

The run has three phases, and the card must hold the worst of them (plus the CUDA context):
- encode: text encoders on the GPU (unless on the CPU) and whatever else is resident, plus T5 activations;
- denoise: the transformer's resident weights, the other resident components, the step's activations;
- decode: resident weights, the VAE's activations, and the denoise blocks the allocator still holds (`carry`).
Times come from the GPU's profile (measured where it has a point, else scaled from the catalog's factors),
or from the nearest profiled GPU scaled through the spec database (compute, memory and PCIe bandwidth).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from fluxplan.catalog.families import GIB, find_family
from fluxplan.catalog.formats import Format, load_catalog
from fluxplan.cost.profile import OffloadPoint, Profile
from fluxplan.cost.quality import quality
from fluxplan.models import (GPU, Candidate, Compile, Estimate, Host, LatencyBreakdown, MemoryBreakdown, Offload,
                             Provenance, Request, TextEncoderPlacement, WeightsBreakdown)

TILE_PX = 1024  # the FLUX VAE's tile (config sample_size): tiling splits only images larger than this
TILE_OVERLAP_COST = 1.78  # (1 / 0.75)^2: tiles overlap by a quarter
HOST_BASE_GIB = 2.0
# Read off the residuals of the emulated-card matrix's first run on the H100 (benchmarks/results/h100-2026-11-22/
# cards-run1.jsonl, 42 distinct pipeline runs; `benchmarks/gpu/cards.py residuals FILE` prints measured less
# predicted peak for each); the held-out set of docs/ACCURACY.md was not used.
GROUP_STREAM_GIB = 0.15  # group offload with streams: the prefetched group beside the running one (768..1024: +0.1..0.24)
LARGE_IMAGE_GIB_PER_KTOKEN = 0.09  # denoise and decode reserve beyond the linear terms, per 1000 image tokens of one
#                                    image above 4096 (1536x1536: +0.3..+0.6 GiB in every offload mode)
SEQUENTIAL_DECODE_SHARE = 0.55  # under sequential offload the decode phase reserves this share of the resident one
# Group offload with streams hides the transfer behind compute only in part: a step takes the transfer-bound step
# or the compute plus what each mode does not overlap (per-group waits and launches), whichever is longer. Fitted on
# the emulated-card matrix's third run (benchmarks/results/h100-2026-11-22-s3/cards-run3.jsonl, bf16, median steady
# step at 768, 1024, 1536 and 1024 batch 2 against the resident step there): leaf 0.527/0.541/0.739/0.671 s against
# compute 0.106/0.180/0.423/0.362 s; block 0.569/0.523/0.610/0.592 s. Without it the model priced both modes flat
# in resolution and chose leaf where block was up to 17 % faster (1536x1536). The unhidden part is taken as
# transfer the streams do not overlap, so on other GPUs it scales with PCIe bandwidth.
GROUP_UNHIDDEN_S = {Offload.GROUP_LEAF: 0.31, Offload.GROUP_BLOCK: 0.19}
# T5 streamed from host memory at leaf level with streams (placement `offload` under group offload), as in diffusers'
# memory guide: benchmarks/gpu/recipe.py on the H100 encoded in 0.25 s with T5 (8.87 GiB) and CLIP streamed, T5's
# compute being 0.03 s: about 40 GiB/s. Memory, from the emulated-card matrix's fifth run (benchmarks/results/
# h100-2026-11-22-s4/cards-run5.jsonl, the first with this placement; its cells are in-sample for these two terms),
# against the same plans with T5 on the CPU (runs 3 and 4): the encode phase reserves 0.48 GiB more (the leaves
# running and prefetched, T5's 0.25 GiB embedding the largest), and the allocator keeps 0.17-0.35 GiB of that
# (median 0.28) reserved through denoising and decoding, at every shape and in both group modes.
T5_STREAM_GIB_S = 40.0
T5_STREAM_ENCODE_GIB = 0.48
T5_STREAM_RESIDUE_GIB = 0.28
FULL_SIZE = ("dev", "schnell", "kontext")  # families of the profiles' shapes (FLUX.1's transformer, T5-XXL)


_INDEX: dict[int, tuple[Profile, dict]] = {}


def _forward_index(profile: Profile) -> dict[tuple[str, str], tuple]:
    """A profile's forward points by (format, compile): built once per profile (profiles are immutable and
    kept alive here), not once per plan."""
    hit = _INDEX.get(id(profile))
    if hit is None or hit[0] is not profile:
        if len(_INDEX) > 16:  # profiles loaded from files one plan at a time (--profile): keep a few
            _INDEX.clear()
        index: dict[tuple[str, str], list] = {}
        for p in profile.forward:
            index.setdefault((p.format, p.compile), []).append(p)
        hit = _INDEX[id(profile)] = (profile, {k: tuple(v) for k, v in index.items()})
    return hit[1]


def _said(point) -> str:
    """A point's provenance as one string: its source, which names its kind first (the profiles' do)."""
    return point.source if point.source.startswith(point.kind) else f"{point.kind}: {point.source}"


@dataclass(slots=True)
class Terms:
    """Every number an estimate is made of; `Estimate` and the solver's fast path both read these."""

    w_transformer: float
    w_t5: float
    w_clip: float
    w_vae: float
    act_denoise: float
    act_decode: float
    reserve: float  # denoise blocks still reserved while the VAE decodes
    context: float
    phases: tuple[float, float, float]  # encode, denoise, decode (GiB above the context)
    peak_phase: int
    on_gpu: tuple[float, float, float, float]  # transformer, T5, CLIP, VAE weights on the GPU at the peak phase
    encode_s: float
    step_s: float
    decode_s: float
    transfer_s: float  # per image
    one_off_s: float
    calls: int
    host_gib: float
    quality: float
    lpips: float
    quality_source: str

    @property
    def peak(self) -> float:
        return self.context + self.phases[self.peak_phase]


class CostModel:
    """Estimates for one request on one GPU. Per-format pieces are computed once and cached."""

    def __init__(self, request: Request, gpu: GPU, host: Host, profile: Profile, profile_gpu: GPU):
        self.request, self.gpu, self.host, self.profile = request, gpu, host, profile
        self.family = find_family(request.model)
        self.catalog = load_catalog()
        self.measured_here = profile_gpu.name == gpu.name
        self.text_tokens = request.text_tokens or self.family.max_sequence_length
        self.tokens = request.image_tokens + self.family.context_image_tokens + self.text_tokens
        self.compute_scale = {"bf16": profile_gpu.bf16_tflops / gpu.bf16_tflops,
                              "int8": profile_gpu.bf16_tflops / gpu.bf16_tflops,
                              "fp8": (profile_gpu.fp8_tflops or profile_gpu.bf16_tflops) / (gpu.fp8_tflops or gpu.bf16_tflops)}
        self.pcie_scale = profile_gpu.pcie_gbs / gpu.pcie_gbs
        self.where = "measured on this GPU" if self.measured_here else f"scaled from {profile_gpu.name} by spec"
        self._cache: dict = {}
        fam = self.family
        self.clip_gib = fam.clip_params * 2 / GIB
        self.vae_gib = fam.vae_params * 2 / GIB
        self.scale_params = fam.transformer_params.linear / find_family("dev").transformer_params.linear
        mem = profile.memory
        self.context = mem.context_gib.value
        self.carry_factor = mem.decode_carry_factor.value
        self.enc_act = mem.encode_activation_gib.value * self.text_tokens / 512 * request.batch
        self.t5_cpu_gib = fam.t5_params.total * (4 if host.cpu_dtype == "float32" else 2) / GIB
        self.corrections: dict[tuple, tuple[float, float]] = {}  # see calibrate()
        self.corrected_by = 0

    # ------------------------------------------------------------------ per-format pieces
    def _point(self, fmt: str, comp: str, with_memory: bool = False):
        """The profile's forward point of this format and compile nearest in tokens (None where it has none)."""
        key = ("point", fmt, comp, with_memory)
        if key not in self._cache:
            pts = [p for p in _forward_index(self.profile).get((fmt, comp), ())
                   if p.activation_gib is not None or not with_memory]
            b = self.request.batch  # nearest in tokens, then in batch: a format's per-call work (dequantizing
            #                         weights) does not grow with the batch, so its factor to bf16 does not carry over
            self._cache[key] = min(pts, key=lambda p: (abs(p.image_tokens + p.text_tokens - self.tokens),
                                                       abs(p.batch - b))) if pts else None
        return self._cache[key]

    def speed_factor(self, fmt: Format, comp: Compile) -> tuple[float, str]:
        """Forward time relative to bf16 eager, and where that factor comes from."""
        point = self._point(fmt.key, comp.value)
        if point is not None:
            if comp is not Compile.NONE:  # compile's gain changes with the size (bf16 on an H100: x0.62 of eager
                # at 512x512, x0.75 at 1024x1024): between two measured sizes, interpolated in log tokens
                between = self._between(fmt.key, comp.value, point.batch)
                if between is not None:
                    return between[0], f"{_said(point)}; interpolated between {between[1]} tokens"
                # measured at one size only: the change with the size of the format's other compile mode, where
                # that one brackets this size and was measured at the same size (full compile measured at 1024x1024
                # alone: bf16 at 768x768 on an H100 was +13.2 %; regional's shape gives 0.075 s, measured 0.075)
                other = Compile.FULL if comp is Compile.REGIONAL else Compile.REGIONAL
                ref = self._between(fmt.key, other.value, point.batch)
                same = next((p for p in _forward_index(self.profile).get((fmt.key, other.value), ())
                             if (p.image_tokens, p.text_tokens, p.batch)
                             == (point.image_tokens, point.text_tokens, point.batch)), None)
                if ref is not None and same is not None:
                    return (self._factor(point) * ref[0] / self._factor(same),
                            f"{_said(point)}; scaled to this size as {other.value} compile changes "
                            f"between {ref[1]} tokens")
            return self._factor(point), _said(point)
        eager = self._point(fmt.key, "none")
        eager_f = self._factor(eager) if eager else fmt.speed.eager
        src = _said(eager) if eager else fmt.speed.source
        if comp is Compile.NONE:
            return eager_f, src
        derived = self._compiled_elsewhere(fmt, comp)
        if derived is not None:
            return min(derived[0], eager_f), derived[1]
        bf16 = self.catalog.formats["bf16"].speed
        full = fmt.speed.compiled or eager_f * (bf16.compiled or 1.0)
        src = fmt.speed.source if fmt.speed.compiled else f"derived: eager factor x bf16's compile speed-up; {src}"
        if comp is Compile.REGIONAL:
            reg = self._point("bf16", "regional")
            if reg is not None and bf16.compiled:
                return (full * self._factor(reg) / bf16.compiled,
                        f"derived: full-compile factor x bf16 regional/full ({src})")
        return full, src

    def _compiled_elsewhere(self, fmt: Format, comp: Compile) -> tuple[float, str] | None:
        """(factor, source) of a format this profile did not compile in this mode, from what it did compile: the
        format in the other mode x bf16's ratio between the modes; else the median of its compiled siblings
        (_compiled_siblings) in this mode, else in the other mode x that ratio. None where none of these was."""
        other = Compile.FULL if comp is Compile.REGIONAL else Compile.REGIONAL
        index, bf16 = _forward_index(self.profile), self.catalog.formats["bf16"]
        ratio = (self.speed_factor(bf16, comp)[0] / self.speed_factor(bf16, other)[0]
                 if ("bf16", comp.value) in index and ("bf16", other.value) in index else None)
        by_mode = f"x bf16's {comp.value}/{other.value} compiled steps ({ratio:.3f})" if ratio else ""
        if ratio and (fmt.key, other.value) in index:
            return self.speed_factor(fmt, other)[0] * ratio, f"derived: its {other.value}-compiled step {by_mode}"
        for mode, scale in ((comp, 1.0), (other, ratio)):
            siblings = self._compiled_siblings(fmt, mode)
            if siblings and scale:
                factor = statistics.median(self.speed_factor(self.catalog.formats[f], mode)[0] for f in siblings)
                return factor * scale, (f"derived: compiled {mode.value} as the {fmt.family} formats computing in "
                                        f"{fmt.compute} that this profile compiled ({', '.join(siblings)}: the "
                                        f"median of their steps){' ' + by_mode if mode is other else ''}")
        return None

    def _compiled_siblings(self, fmt: Format, comp: Compile) -> list[str]:
        """The formats of `fmt`'s backend that compute in the same dtype and have compiled points in this mode (a
        compiled step depends little on the quantization type: Inductor fuses the dequantization into the matmul's
        prologue. H200, 2026-11-22, regional at 1024x1024: GGUF Q2_K to Q8_0 0.140-0.170 s against eager
        0.242-0.500 s; bnb NF4 and FP4 0.141 both). A sibling's step stands for a format compiled nowhere here."""
        if fmt.family in ("none", "layerwise"):  # a backend of one format
            return []
        key = ("siblings", fmt.key, comp.value)
        if key not in self._cache:
            formats = self.catalog.formats
            self._cache[key] = sorted(
                f for f, c in _forward_index(self.profile) if c == comp.value and f != fmt.key and f in formats
                and (formats[f].family, formats[f].compute) == (fmt.family, fmt.compute))
        return self._cache[key]

    def _between(self, fmt: str, comp: str, batch: int) -> tuple[float, str] | None:
        """(factor, "A and B") interpolated in log tokens between the two measured points of this format and
        compile mode that bracket the request's tokens; None where none do."""
        pts = sorted((p for p in _forward_index(self.profile).get((fmt, comp), ()) if p.batch == batch),
                     key=lambda p: p.image_tokens + p.text_tokens)
        for lo, hi in zip(pts, pts[1:]):
            a, b = lo.image_tokens + lo.text_tokens, hi.image_tokens + hi.text_tokens
            if a < self.tokens < b:
                t = math.log(self.tokens / a) / math.log(b / a)
                return self._factor(lo) * (1 - t) + self._factor(hi) * t, f"{a} and {b}"
        return None

    def _factor(self, point) -> float:
        """A forward point's seconds relative to bf16 eager (the fit) at its tokens and batch."""
        return point.seconds / (self.profile.fits.forward_bf16.seconds(point.image_tokens + point.text_tokens)
                                * point.batch)

    def forward(self, fmt: Format, comp: Compile) -> tuple[float, float, str]:
        """(seconds per step, activation GiB as reserved above the weights, source) for the request's batch."""
        b = self.request.batch
        factor, src = self.speed_factor(fmt, comp)
        base = self.profile.fits.forward_bf16.seconds(self.tokens) * b * self.scale_params
        seconds = base * factor * self.compute_scale[fmt.compute]
        floor = self.weights(fmt, "transformer") * GIB / (self.gpu.mem_bw_gbs * 1e9)
        seconds = max(seconds, floor)
        # bf16's activations at the nearest measured token count, scaled linearly in tokens and batch; other
        # formats (and compile) by their own ratio to bf16 where measured
        ref = self._point("bf16", "none", True)
        per_token = ref.activation_gib / ((ref.image_tokens + ref.text_tokens) * ref.batch)
        own = self._point(fmt.key, comp.value, True) or self._point(fmt.key, "none", True)
        ratio = 1.0
        if own is not None and own is not ref:
            at = self._bf16_act_at(own.image_tokens + own.text_tokens)
            ratio = own.activation_gib / own.batch / at
        return seconds, per_token * self.tokens * b * ratio, f"{src}; {self.where}"

    def _bf16_act_at(self, tokens: int) -> float:
        pts = [p for p in self.profile.forward if p.format == "bf16" and p.compile == "none" and p.activation_gib]
        p = min(pts, key=lambda p: (abs(p.image_tokens + p.text_tokens - tokens), p.batch))
        return p.activation_gib / p.batch * tokens / (p.image_tokens + p.text_tokens)

    def weights(self, fmt: Format, component: str) -> float:
        """Weights as the GPU holds them: measured (any profile point of the format) or from bits per weight."""
        return self._memo(("w", fmt.key, component), self._weights, fmt, component)

    def _weights(self, fmt: Format, component: str) -> float:
        params = "transformer_params" if component == "transformer" else "t5_params"
        measured = self._measured_point(fmt) if component == "transformer" else self._measured_t5(fmt)
        if measured is not None:  # measured on FLUX.1-dev's shapes: scaled by this family's parameters
            return measured.weights_gib * getattr(self.family, params).total / getattr(find_family("dev"), params).total
        return fmt.weight_gib(getattr(self.family, params))

    def _measured_point(self, fmt: Format):
        """The profile's forward point holding this format's transformer weights as measured (full-size
        families only: the tiny test family has other shapes)."""
        if self.family.key not in FULL_SIZE:
            return None
        return next((p for pts in _forward_index(self.profile).values() for p in pts
                     if p.format == fmt.key and p.weights_gib), None)

    def _measured_t5(self, fmt: Format):
        """The profile's encode point holding this format's T5 weights as measured (full-size families only:
        they share T5-XXL; the tiny test family's T5 is another)."""
        if self.family.key not in FULL_SIZE:
            return None
        return next((e for e in self.profile.encode if e.format == fmt.key and e.weights_gib), None)

    def decode(self, tiling: bool) -> tuple[float, float]:
        """(seconds, GiB reserved) of decoding one call's images: the nearest measured size, scaled by pixels.
        Tiling (with slicing) decodes one image and one tile at a time; it changes nothing at or under the tile."""
        h, w, b = self.request.height, self.request.width, self.request.batch
        px = h * w
        untiled = [d for d in self.profile.decode if not d.tiled]
        d = min(untiled, key=lambda d: abs(d.height * d.width * d.batch - px * b))
        scale = px * b / (d.height * d.width * d.batch)
        seconds = d.seconds * scale * self.compute_scale["bf16"]
        act = d.activation_gib * scale
        if tiling:
            tiled = [t for t in self.profile.decode if t.tiled]
            if h > TILE_PX or w > TILE_PX:
                t = min(tiled, key=lambda t: abs(t.height * t.width - px)) if tiled else None
                if t is not None:
                    act = t.activation_gib
                    seconds = t.seconds * px / (t.height * t.width) * b * self.compute_scale["bf16"]
                else:
                    act = d.activation_gib * TILE_PX * TILE_PX / (d.height * d.width)
                    seconds *= TILE_OVERLAP_COST
            else:  # slicing only: one image at a time
                act = d.activation_gib * px / (d.height * d.width * d.batch)
        return seconds, act

    def _encode_point(self, t5: Format) -> tuple:
        """The profile's encode point of this T5 format nearest in text tokens, else bf16's; and whether it is the
        format's own."""
        own = [e for e in self.profile.encode if e.format == t5.key]
        pts = own or [e for e in self.profile.encode if e.format == "bf16"]
        return min(pts, key=lambda e: abs(e.text_tokens - self.text_tokens)), bool(own)

    def encode_seconds(self, t5: Format, placement: TextEncoderPlacement) -> float:
        """Seconds T5 takes to encode the prompt: on the GPU, the format's own measured point (scaled to this GPU
        as forward points are), else bf16's times the catalog's speed factor; on the CPU, from the host's rate."""
        if placement is TextEncoderPlacement.CPU:
            flops = 2 * self.family.t5_params.total * self.text_tokens  # one prompt per call, repeated for the batch
            return flops / (self.host.cpu_tflops * 1e12)
        e, own = self._encode_point(t5)
        seconds = e.seconds * self.text_tokens / e.text_tokens
        if own:
            return seconds * self.compute_scale[t5.compute]
        return seconds * self.compute_scale["bf16"] * t5.speed.eager

    def encode_source(self, t5: Format, placement: TextEncoderPlacement) -> Provenance:
        """Where encode_seconds' figure comes from: measured only where this GPU measured this format's encode."""
        if placement is TextEncoderPlacement.CPU:
            return Provenance.model_construct(kind="derived", source=f"T5 on the CPU: 2 x parameters x tokens at "
                                              f"the host's {self.host.cpu_tflops:.2f} TFLOP/s")
        e, own = self._encode_point(t5)
        if own:
            kind = "measured" if self.measured_here and e.kind == "measured" else "derived"
            return Provenance.model_construct(kind=kind, source=f"{e.source}; {self.where}")
        return Provenance.model_construct(kind="derived", source=f"bf16 T5's encode ({e.source}; {self.where}) x "
                                          f"{t5.key}'s factor {t5.speed.eager} ({t5.speed.source})")

    def offload_point(self, mode: Offload, fmt: Format) -> tuple[OffloadPoint, float]:
        """The measured point of this mode for this format, else bf16's; and the bytes ratio to scale it by."""
        points = [p for p in self.profile.offload if p.mode == mode.value]
        own = next((p for p in points if p.format == fmt.key), None)
        if own is not None:
            return own, 1.0
        ref = next((p for p in points if p.format == "bf16"), points[0])
        return ref, self.weights(fmt, "transformer") / self.weights(self.catalog.formats[ref.format], "transformer")

    def offload_step(self, mode: Offload, fmt: Format, compute: float) -> tuple[float, float]:
        """(seconds per step, transformer GiB resident) under group or sequential offload."""
        p, ratio = self.offload_point(mode, fmt)
        resident = (p.resident_gib or 0.0) * ratio
        transfer = p.extra_seconds * ratio * self.pcie_scale
        if p.overlapped:  # streams: the longer of the transfer-bound step and compute plus what is not hidden
            bound = (p.extra_seconds + (p.compute_seconds or 0.0)) * ratio * self.pcie_scale
            return max(bound, compute + GROUP_UNHIDDEN_S.get(mode, 0.0) * self.pcie_scale), resident
        return compute + transfer, resident

    def _memo(self, key, fn, *args):
        value = self._cache.get(key)
        if value is None:
            self._cache[key] = value = fn(*args)
        return value  # keys: (transformer, T5, compile), (T5, placement), the tiling flag, ("w", ...), ...

    def _formats_part(self, tf: Format, t5: Format, comp: Compile) -> tuple:
        """What depends only on the two formats and compile: step, activations, weights, one-off, quality."""
        step, act, _ = self._memo(("fwd", tf.key, comp), self.forward, tf, comp)
        return (step, act, self.weights(tf, "transformer"), self.weights(t5, "text_encoder_2"),
                self.one_off_seconds(tf, t5, comp), *quality(tf, t5))

    # ------------------------------------------------------------------ the estimate
    def terms(self, c: Candidate) -> Terms:
        """The numbers of one candidate. Hot: the solver calls it for every point that can run at all."""
        memo, req, cache = self._memo, self.request, self._cache
        tf_key, t5_key, placement, off = c.transformer, c.text_encoder_2, c.text_encoder_placement, c.offload
        formats = self.catalog.formats
        tf, t5 = formats[tf_key], formats[t5_key]
        key = (tf_key, t5_key, c.compile)
        part = cache.get(key) or memo(key, self._formats_part, tf, t5, c.compile)
        step, act, w_tf, w_t5, one_off, q, lp, qsrc = part
        w_clip, w_vae = self.clip_gib, self.vae_gib
        dec_s, act_dec = cache.get(c.vae_tiling) or memo(c.vae_tiling, self.decode, c.vae_tiling)
        key = (t5_key, placement)
        enc_s = cache.get(key) or memo(key, self.encode_seconds, t5, placement)
        reserve = self.carry_factor * act
        enc_act = self.enc_act
        calls = math.ceil(req.images / req.batch)
        transfer = 0.0
        host = HOST_BASE_GIB
        if off is Offload.MODEL:
            moved = w_tf + w_t5 + w_clip + w_vae
            p, _ = memo(("opt", off, tf_key), self.offload_point, off, tf)
            transfer = p.extra_seconds * moved / p.moved_gib * self.pcie_scale * calls
            phases = (max(w_t5, w_clip) + enc_act, w_tf + act, w_vae + act_dec)  # the transformer's blocks go with it
            on = ((0.0, w_t5, 0.0, 0.0) if w_t5 >= w_clip else (0.0, 0.0, w_clip, 0.0),
                  (w_tf, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, w_vae))
            host += moved
        elif off is Offload.SEQUENTIAL:
            step, res = memo(("ostep", off, tf_key, c.compile), self.offload_step, off, tf, step)
            p, _ = memo(("opt", off, tf_key), self.offload_point, off, tf)
            enc_s += p.extra_seconds * (w_t5 + w_clip) / p.moved_gib * self.pcie_scale
            phases = (res + enc_act, res + act, (res + act_dec + reserve) * SEQUENTIAL_DECODE_SHARE)
            # the breakdown shows the decode phase's parts as that phase counts them (resident: nothing here)
            act_dec, reserve = act_dec * SEQUENTIAL_DECODE_SHARE, reserve * SEQUENTIAL_DECODE_SHARE
            on = ((0.0, res, 0.0, 0.0), (res, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, res))
            host += w_tf + w_t5 + w_clip + w_vae
        else:
            if off is Offload.NONE:
                tf_res = w_tf
            else:
                step, tf_res = memo(("ostep", off, tf_key, c.compile), self.offload_step, off, tf, step)
                host += w_tf
            resident = placement is TextEncoderPlacement.RESIDENT
            if placement is TextEncoderPlacement.CPU:
                enc_on = (0.0, 0.0, w_clip, 0.0)
                cl = w_clip
                host += self.t5_cpu_gib
            elif placement is TextEncoderPlacement.FOLLOWS_OFFLOAD:  # T5 streamed leaf by leaf when encoding
                enc_on = (tf_res, min(w_t5, T5_STREAM_ENCODE_GIB), w_clip, w_vae)
                cl = w_clip
                enc_s += w_t5 / T5_STREAM_GIB_S * self.pcie_scale
                host += w_t5
            else:  # resident, or free: everything is placed at load; `free` releases T5 and CLIP after encoding
                enc_on = (tf_res, w_t5, w_clip, w_vae)
                cl = 0.0
            if placement is TextEncoderPlacement.FREE_AFTER_ENCODE:  # T5 and CLIP move off the GPU after encoding
                enc_s += (w_t5 + w_clip) / self.host.unload_gib_s
            run_on = (tf_res, w_t5 if resident else 0.0, w_clip if resident else cl, w_vae)
            base = sum(run_on) + (GROUP_STREAM_GIB if off is not Offload.NONE else 0.0)
            if placement is TextEncoderPlacement.FOLLOWS_OFFLOAD:
                base += T5_STREAM_RESIDUE_GIB  # what the allocator keeps of T5's stream, counted as allocator
            phases = (sum(enc_on) + enc_act, base + act, base + act_dec + reserve)
            on = (enc_on, run_on, run_on)
        large = LARGE_IMAGE_GIB_PER_KTOKEN * max(0.0, self.request.image_tokens - 4096) / 1000
        if large:
            phases = (phases[0], phases[1] + large, phases[2] + large)
        fix = self.corrections.get((tf_key, t5_key, placement, off, c.compile)) if self.corrections else None
        if fix is not None:  # measured runs of this configuration on this GPU: measured / predicted
            peak_ratio, step_ratio = fix
            total = self.context + max(phases)
            phases = tuple(p + (peak_ratio - 1.0) * total for p in phases)
            step *= step_ratio
        peak_phase = 0 if phases[0] >= phases[1] and phases[0] >= phases[2] else (1 if phases[1] >= phases[2] else 2)
        return Terms(w_tf, w_t5, w_clip, w_vae, act, act_dec, reserve, self.context, phases, peak_phase,
                     on[peak_phase], enc_s, step, dec_s, transfer / req.images, one_off, calls, host, q, lp, qsrc)

    def compile_time(self, tf: Format, comp: Compile) -> tuple[float, Provenance]:
        """(seconds, provenance) of the cold compile: measured for this format, else the median of its compiled
        siblings' (_compiled_siblings), else the catalog's figure (bf16's where the format has none), at least a
        measured time limit it ran past."""
        measured = self.profile.compiled(tf.key, comp.value)
        if measured is not None and measured.status == "ok":  # compiled cold on the profile's machine
            return measured.seconds or 0.0, Provenance.model_construct(
                kind=measured.kind, source=f"cold compile {measured.seconds:.1f} s; {measured.source}")
        done = {f: m.seconds for f in self._compiled_siblings(tf, comp)
                if (m := self.profile.compiled(f, comp.value)) is not None and m.status == "ok" and m.seconds}
        if done and measured is None:
            seconds = statistics.median(done.values())
            return seconds, Provenance.model_construct(
                kind="derived", source=f"cold compile {seconds:.1f} s: the median of {', '.join(sorted(done))}, "
                                       f"compiled {comp.value} in this profile")
        times = tf.compile_s or self.catalog.formats["bf16"].compile_s
        seconds = getattr(times, comp.value) or getattr(self.catalog.formats["bf16"].compile_s, comp.value)
        if measured is not None and measured.status == "timeout":  # did not finish within this many seconds
            seconds = max(seconds, measured.seconds or 0.0)
        kind = next((k for k in ("measured", "published") if times.source.startswith(k) and tf.compile_s), "derived")
        return seconds, Provenance.model_construct(kind=kind, source=f"compile time: {times.source}" + (
            "" if tf.compile_s else " (bf16's, no figure for this format)"))

    def one_off_seconds(self, tf: Format, t5: Format, comp: Compile) -> float:
        """Load (read from disk), quantize and compile: paid once, before the first image."""
        fam = self.family
        read = (fam.transformer_params.total * (tf.bits_per_weight if tf.family == "gguf" else 16) / 8
                + (fam.t5_params.total + fam.clip_params + fam.vae_params) * 2) / 1e9
        quant = (tf.quantize_s_per_gparam * fam.transformer_params.total + t5.quantize_s_per_gparam * fam.t5_params.total) / 1e9
        compile_s = self.compile_time(tf, comp)[0] if comp is not Compile.NONE else 0.0
        return read / self.host.disk_gbs + quant + compile_s

    def calibrate(self, observations, predict) -> None:
        """Correct this model's predictions by runs measured on this GPU: for each configuration observed at a
        shape within a factor of 4 in tokens of this request, the median of measured / predicted peak and step
        time. `predict(observation) -> Terms` gives the uncorrected prediction at the observation's shape."""
        ratios: dict[tuple, list[tuple[float, float]]] = {}
        for o in observations:
            tokens = (o.height // 16) * (o.width // 16)
            if not 0.25 <= tokens / self.request.image_tokens <= 4:
                continue
            t = predict(o)
            c = o.candidate
            key = (c.transformer, c.text_encoder_2, c.text_encoder_placement, c.offload, c.compile)
            ratios.setdefault(key, []).append((o.peak_gib / t.peak if o.peak_gib else 1.0,
                                               o.step_s / t.step_s if o.step_s else 1.0))
        self.corrections = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                            for k, v in ratios.items()}
        self.corrected_by = sum(len(v) for v in ratios.values())

    @staticmethod
    def latency(t: Terms, request: Request) -> tuple[float, float]:
        """(seconds per image with one-off costs amortized, seconds until the first image)."""
        call = t.encode_s + request.steps * t.step_s + t.decode_s
        per_image = (call * t.calls) / request.images + t.transfer_s + t.one_off_s / request.images
        first = t.one_off_s + call + t.transfer_s * request.images / t.calls
        return per_image, first

    def estimate(self, c: Candidate) -> Estimate:
        t = self.terms(c)
        req = self.request
        per_image, first = self.latency(t, req)
        tf = self.catalog.formats[c.transformer]
        weights = WeightsBreakdown.model_construct(transformer=t.on_gpu[0], text_encoder_2=t.on_gpu[1],
                                                   text_encoder=t.on_gpu[2], vae=t.on_gpu[3])
        listed = weights.transformer + weights.text_encoder_2 + weights.text_encoder + weights.vae
        act = t.act_denoise if t.peak_phase == 1 else 0.0
        dec = t.act_decode if t.peak_phase == 2 else 0.0
        memory = MemoryBreakdown.model_construct(weights_gib=weights, denoise_activations_gib=act, vae_decode_gib=dec,
                                                 overhead_gib=t.peak - listed - act - dec,
                                                 peak_phase=("encode", "denoise", "decode")[t.peak_phase])
        latency = LatencyBreakdown.model_construct(text_encode_s=t.encode_s, denoise_step_s=t.step_s,
                                                   denoise_s=t.step_s * req.steps, vae_decode_s=t.decode_s,
                                                   offload_transfer_s=t.transfer_s, one_off_s=t.one_off_s,
                                                   one_off_per_image_s=t.one_off_s / req.images)
        _, _, step_src = self._memo(("fwd", tf.key, c.compile), self.forward, tf, c.compile)
        kind = "measured" if self.measured_here and step_src.startswith("measured") else "derived"
        measured_w = self._measured_point(tf)
        weights_src = (Provenance.model_construct(kind=measured_w.kind, source=measured_w.source) if measured_w else
                       Provenance.model_construct(kind="derived", source=f"parameter counts of {self.family.title}'s "
                                                  f"configs x bits per weight ({tf.bits_source})"))
        context = self.profile.memory.context_gib
        sources = {
            "denoise_step": Provenance.model_construct(kind=kind, source=step_src),
            "weights": weights_src,
            "activations": Provenance.model_construct(kind="derived", source="linear in tokens x batch, from "
                                                      f"{self.profile.gpu}'s profile"),
            "context": Provenance.model_construct(kind=context.kind, source=context.source),
        }
        t5 = self.catalog.formats[c.text_encoder_2]
        sources["text_encode"] = self.encode_source(t5, c.text_encoder_placement)
        measured_t5 = self._measured_t5(t5)
        sources["t5_weights"] = (
            Provenance.model_construct(kind=measured_t5.kind, source=measured_t5.source) if measured_t5 else
            Provenance.model_construct(kind="derived", source=f"parameter counts of T5 x bits per weight "
                                       f"({t5.bits_source})"))
        if c.compile is not Compile.NONE:
            sources["compile"] = self.compile_time(tf, c.compile)[1]
        return Estimate.model_construct(peak_vram_gib=t.peak, latency_s=per_image, first_image_s=first,
                                        quality=t.quality, expected_lpips=t.lpips, quality_source=t.quality_source,
                                        memory=memory, latency=latency, host_ram_gib=t.host_gib, sources=sources)
