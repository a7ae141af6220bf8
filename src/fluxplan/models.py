"""Data types shared by every layer: the GPU, the request, a candidate configuration, its estimate, a plan.

Pure pydantic; nothing here imports torch. Memory is in GiB, time in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Provenance(Frozen):
    """Where a number comes from: measured (GPU, date, versions), published (source) or derived (from what)."""

    kind: Literal["measured", "published", "derived"]
    source: str


# --------------------------------------------------------------------------- the search space


class Offload(str, Enum):
    NONE = "none"
    MODEL = "model"  # pipe.enable_model_cpu_offload()
    GROUP_BLOCK = "group-block"  # transformer.enable_group_offload(offload_type="block_level", use_stream=True)
    GROUP_LEAF = "group-leaf"  # transformer.enable_group_offload(offload_type="leaf_level", use_stream=True)
    SEQUENTIAL = "sequential"  # pipe.enable_sequential_cpu_offload()


class Compile(str, Enum):
    NONE = "none"
    REGIONAL = "regional"  # transformer.compile_repeated_blocks(fullgraph=True)
    FULL = "full"  # torch.compile(transformer)


class TextEncoderPlacement(str, Enum):
    """Where T5 lives while the transformer denoises (only chosen when offload is none or group offload;
    model and sequential offload move the text encoders themselves)."""

    RESIDENT = "resident"  # stays on the GPU next to the transformer
    FREE_AFTER_ENCODE = "free"  # on the GPU to encode the prompt, moved to host memory before denoising
    CPU = "cpu"  # runs on the CPU; never on the GPU
    FOLLOWS_OFFLOAD = "offload"  # offloaded with the transformer: moved by model / sequential CPU offload; under
    #                              group offload, streamed from host memory leaf by leaf when encoding


class Objective(str, Enum):
    QUALITY = "quality"
    SPEED = "speed"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the search space. Format names are catalog keys (see catalog.formats).

    A plain dataclass, not a pydantic model: the solver makes thousands per plan (pydantic still validates
    it wherever it sits inside a Plan)."""

    transformer: str
    text_encoder_2: str
    text_encoder_placement: TextEncoderPlacement
    offload: Offload
    compile: Compile
    vae_tiling: bool

    def label(self) -> str:
        parts = [self.transformer, f"T5 {self.text_encoder_2}"]
        implied = (TextEncoderPlacement.RESIDENT, TextEncoderPlacement.FOLLOWS_OFFLOAD)  # where the offload mode puts it
        if self.text_encoder_placement not in implied or (
                self.text_encoder_placement is TextEncoderPlacement.FOLLOWS_OFFLOAD
                and self.offload in (Offload.GROUP_BLOCK, Offload.GROUP_LEAF)):  # T5 group-offloaded too
            parts[-1] += f" ({self.text_encoder_placement.value})"
        if self.offload is not Offload.NONE:
            parts.append(f"offload {self.offload.value}")
        if self.compile is not Compile.NONE:
            parts.append(f"compile {self.compile.value}")
        if self.vae_tiling:
            parts.append("VAE tiling")
        return " + ".join(parts)

    def as_dict(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}


class Pins(Frozen):
    """Choices the user fixed. None means the planner chooses. A pin is never silently changed."""

    transformer: str | None = None
    text_encoder_2: str | None = None
    text_encoder_placement: TextEncoderPlacement | None = None
    offload: Offload | None = None
    compile: Compile | None = None
    vae_tiling: bool | None = None

    def pinned(self) -> dict[str, str]:
        return {k: (v.value if isinstance(v, Enum) else str(v).lower() if isinstance(v, bool) else v)
                for k, v in self if v is not None}


# --------------------------------------------------------------------------- the world


class GPU(Frozen):
    """Facts about one GPU model (from the spec database) or a probed device."""

    name: str
    vram_gib: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0, description="dense bf16 tensor TFLOP/s")
    fp8_tflops: float | None = Field(default=None, description="dense fp8 TFLOP/s; None where there is no fp8")
    int8_tops: float | None = None
    mem_bw_gbs: float = Field(gt=0, description="memory bandwidth GB/s")
    pcie_gen: int = Field(ge=1, le=6)
    pcie_lanes: int = Field(ge=1, le=16)
    compute_capability: float
    source: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def pcie_gbs(self) -> float:
        """Theoretical one-direction PCIe bandwidth, GB/s."""
        per_lane = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}[self.pcie_gen]
        return per_lane * self.pcie_lanes


class Host(Frozen):
    ram_gib: float | None = Field(default=None, gt=0)
    cpu_tflops: float = Field(default=0.5, gt=0, description="achievable matmul rate of the CPU in cpu_dtype")
    cpu_dtype: Literal["bfloat16", "float32"] = Field(default="bfloat16", description=(
        "what T5 runs in on the CPU: the faster of the two there (float32 where bf16 has no fast path)"))
    disk_gbs: float = Field(default=2.0, gt=0, description="read bandwidth for loading weights")
    unload_gib_s: float = Field(default=1.4, gt=0, description=(
        "rate of moving weights from the GPU to pageable host memory, which T5 placement 'free' pays after each "
        "encode (measured on the H100 machine, benchmarks/results/h100-2026-11-22/cards-run1.jsonl: T5 and CLIP, "
        "9.1 GiB, added 5.8-7.5 s to the encode)"))


class Request(Frozen):
    model: str = "dev"
    height: int = 1024
    width: int = 1024
    steps: int = 28
    batch: int = 1
    images: int = 1
    text_tokens: int | None = None  # None: the model's default max_sequence_length

    @field_validator("height", "width")
    @classmethod
    def _size(cls, v: int) -> int:
        if v % 16 or not 256 <= v <= 4096:
            raise ValueError(f"{v} is not a multiple of 16 between 256 and 4096")
        return v

    @field_validator("steps", "batch", "images")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be at least 1")
        return v

    @field_validator("text_tokens")
    @classmethod
    def _tokens(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 512:
            raise ValueError("must be between 1 and 512")
        return v

    @property
    def image_tokens(self) -> int:
        return (self.height // 16) * (self.width // 16)

    @property
    def pixels(self) -> int:
        return self.height * self.width


class Budget(Frozen):
    vram_gib: float = Field(gt=0, description="memory the plan may use: total, or free when probed")
    margin_gib: float = Field(default=0.5, ge=0)
    latency_s: float | None = Field(default=None, gt=0, description="per image, one-off costs amortized")
    objective: Objective = Objective.QUALITY
    quality_floor: float = Field(default=0.70, ge=0, le=1)

    @model_validator(mode="after")
    def _margin_fits(self) -> "Budget":
        if self.margin_gib >= self.vram_gib:
            raise ValueError(f"margin {self.margin_gib} GiB leaves nothing of {self.vram_gib} GiB")
        return self

    @property
    def usable_gib(self) -> float:
        return self.vram_gib - self.margin_gib


# --------------------------------------------------------------------------- estimates and plans


class WeightsBreakdown(Frozen):
    transformer: float
    text_encoder_2: float
    text_encoder: float
    vae: float


class MemoryBreakdown(Frozen):
    """What the card must hold at the worst moment, as NVML would see it (GiB)."""

    weights_gib: WeightsBreakdown  # on the GPU at the peak phase
    denoise_activations_gib: float
    vae_decode_gib: float
    overhead_gib: float  # CUDA context + allocator reserve
    peak_phase: Literal["encode", "denoise", "decode"]


class LatencyBreakdown(Frozen):
    text_encode_s: float
    denoise_step_s: float
    denoise_s: float
    vae_decode_s: float
    offload_transfer_s: float  # per image
    one_off_s: float  # load + quantize + compile, once
    one_off_per_image_s: float


class Estimate(Frozen):
    peak_vram_gib: float
    latency_s: float  # per image, one-off costs amortized over the images asked for
    first_image_s: float
    quality: float  # 1.0 = bf16 output; 1 - expected LPIPS against bf16
    expected_lpips: float
    quality_source: str
    memory: MemoryBreakdown
    latency: LatencyBreakdown
    host_ram_gib: float
    sources: dict[str, Provenance] = Field(default_factory=dict)


class Observation(Frozen):
    """What one run of a candidate really cost on this GPU (from the run store): the planner corrects its
    predictions for the same configuration at nearby shapes by measured / predicted."""

    candidate: Candidate
    height: int
    width: int
    batch: int = 1
    text_tokens: int | None = None
    peak_gib: float | None = Field(default=None, gt=0)
    step_s: float | None = Field(default=None, gt=0)
    encode_s: float | None = Field(default=None, gt=0)  # the prompt's encode; where T5 ran on the CPU, its rate


class Constraint(str, Enum):
    VRAM = "vram"
    HOST_RAM = "host_ram"
    LATENCY = "latency"
    QUALITY_FLOOR = "quality_floor"
    INCOMPATIBLE = "incompatible"
    UNVERIFIED = "unverified"
    COMPUTE_CAPABILITY = "compute_capability"
    UNAVAILABLE = "unavailable"
    FAILED_BEFORE = "failed_before"


class Rejection(Frozen):
    """Why a candidate was dropped: which constraint bound, and by how much."""

    constraint: Constraint
    needed: float | None = None
    limit: float | None = None
    unit: str = ""
    reason: str


class Scored(Frozen):
    candidate: Candidate
    estimate: Estimate


class RejectedCandidate(Frozen):
    candidate: Candidate
    rejection: Rejection
    quality: float
    estimate: Estimate | None = None


class Plan(Frozen):
    gpu: GPU
    host: Host
    request: Request
    budget: Budget
    pins: Pins
    choice: Candidate
    estimate: Estimate
    why: str
    alternatives: list[Scored]
    pareto: list[Scored]
    rejected: list[RejectedCandidate]
    considered: int
    feasible: int
    notes: list[str] = Field(default_factory=list)
    profile: str = ""  # the GPU whose cost profile the estimates come from
    profile_measured_here: bool = False

    def explain(self) -> str:
        from fluxplan.explain import plan_text

        return plan_text(self)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def contract(self) -> dict:
        """The JSON contract of DESIGN.md (what `fluxplan explain --json` prints)."""
        from fluxplan.explain import plan_contract

        return plan_contract(self)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.model_validate_json(text)
