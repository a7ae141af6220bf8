"""What `fluxplan.api.generate` returns: the plan chosen, where the images are, and what the run cost, predicted
against measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fluxplan.models import Plan
from fluxplan.run.measure import Measurement
from fluxplan.run.recovery import RecoveryEvent


class Report(BaseModel):
    """What `generate` chose, why, where the images are, and what it cost: predicted against measured."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompt: str
    seed: int
    model: str
    device: str
    dtype: str
    planned_for: str  # the GPU the plan was made for
    predictions_apply: bool  # False on a CPU run: the estimates are for planned_for
    plan: Plan = Field(exclude=True)
    choice: dict[str, Any]
    why: str
    paths: list[Path]
    predicted: dict[str, float | None]
    measured: dict[str, float | None]
    measurement: Measurement
    load_s: float
    setup_s: float
    notes: list[str] = Field(default_factory=list)  # planning and building (the run's own: measurement.notes)
    recovery: list[RecoveryEvent] = Field(default_factory=list)  # out-of-memory recoveries, in order
    run_id: int | None = None
    images: list[Any] = Field(default_factory=list, exclude=True)  # PIL images

    def summary(self) -> str:
        m = self.measured
        line = (f"{len(self.paths)} image(s) in {m['total_s']:.1f} s on {self.device} ({self.dtype}): "
                f"load {self.load_s:.1f} s, encode {self.measurement.encode_s:.2f} s, "
                f"{self.measurement.step_s:.2f} s/step, decode {self.measurement.decode_s:.2f} s")
        if self.predictions_apply and m.get("peak_gib") is not None:
            line += (f"; peak {m['peak_gib']:.1f} GiB (predicted {self.predicted['peak_vram_gib']:.1f}), "
                     f"{m['latency_s']:.1f} s/image (predicted {self.predicted['latency_s']:.1f})")
        return line


def measured(built, m: Measurement, images: int) -> dict[str, float | None]:
    peak = m.peak_nvml_gib
    if peak is None and m.peak_reserved_gib is not None:
        peak = m.peak_reserved_gib + (m.context_gib or 0.0)
    return {"peak_gib": peak, "latency_s": (built.load_s + built.setup_s + m.total_s) / images,
            "first_image_s": built.load_s + built.setup_s + m.encode_s + sum(m.step_seconds[0]) + m.decode_seconds[0],
            "total_s": m.total_s, "step_s": m.step_s}


def predicted(p: Plan) -> dict[str, float | None]:
    e = p.estimate
    return {"peak_vram_gib": e.peak_vram_gib, "latency_s": e.latency_s, "first_image_s": e.first_image_s,
            "step_s": e.latency.denoise_step_s}
