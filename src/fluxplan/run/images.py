"""Saving generated images: PNGs written atomically, with the prompt, the seed, the plan and the timings inside.

Each PNG carries text chunks: `prompt`, `seed`, `model`, `fluxplan_plan` (the candidate as JSON), `fluxplan_timings`
(JSON), and `parameters` in the AUTOMATIC1111 style that common image viewers and sd-prompt readers parse:

    a red fox
    Steps: 28, Sampler: FlowMatchEuler, CFG scale: 3.5, Seed: 1, Size: 1024x1024, Model: FLUX.1-dev

`prepare_outputs` resolves and checks the destination before any model is loaded; `save_png` writes
`NAME.png.tmp` beside the target, fsyncs it and renames it into place, so a reader never sees half a file and a
failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxplan.errors import BadInput

SAMPLER = "FlowMatchEuler"
TEXT_KEYS = ("prompt", "seed", "model", "fluxplan_plan", "fluxplan_timings", "parameters")


class OutputNotWritable(BadInput):
    """The output path cannot be written (checked before any work starts)."""


@dataclass
class ImageMeta:
    prompt: str
    seed: int
    model: str
    width: int
    height: int
    steps: int
    guidance: float
    plan: dict[str, Any]  # Candidate.as_dict()
    timings: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> str:
        """The A1111 `parameters` text: the prompt, then one line of `Key: value` pairs."""
        return (f"{self.prompt}\nSteps: {self.steps}, Sampler: {SAMPLER}, CFG scale: {self.guidance:g}, "
                f"Seed: {self.seed}, Size: {self.width}x{self.height}, Model: {self.model}")

    def text_chunks(self) -> dict[str, str]:
        return {"prompt": self.prompt, "seed": str(self.seed), "model": self.model,
                "fluxplan_plan": json.dumps(self.plan, sort_keys=True),
                "fluxplan_timings": json.dumps(self.timings, sort_keys=True), "parameters": self.parameters()}


def png_info(meta: ImageMeta):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in meta.text_chunks().items():
        info.add_text(key, value)  # tEXt where Latin-1 holds it, else iTXt (UTF-8)
    return info


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The fluxplan text chunks of a PNG, with the JSON ones parsed and the seed as an int."""
    from PIL import Image

    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}) or im.info)
    out: dict[str, Any] = {k: text[k] for k in TEXT_KEYS if k in text}
    for k in ("fluxplan_plan", "fluxplan_timings"):
        if k in out:
            out[k] = json.loads(out[k])
    if "seed" in out:
        out["seed"] = int(out["seed"])
    return out


# --------------------------------------------------------------------------- destinations


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "image"


def _check_dir(d: Path) -> None:
    """Create `d` if needed and prove a file can be created in it (os.access is wrong for root and ACLs)."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".fluxplan-write-check-", delete=True):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputNotWritable(f"cannot write images to {d}: {reason}") from None


def prepare_outputs(out: str | Path | None, count: int, *, prompt: str, seed: int,
                    default_dir: str | Path = "out") -> list[Path]:
    """The paths the `count` images will be saved to, after checking that they can be written.

    `out` is a .png file (several images become NAME-1.png, NAME-2.png, ...), a directory (created if missing;
    files are named after the prompt and seed, never overwriting one that exists), or None for `default_dir`."""
    target = Path(default_dir if out is None else out).expanduser()
    if target.suffix.lower() == ".png" and target.is_dir():
        raise OutputNotWritable(f"cannot write image {target}: it is a directory")
    if target.suffix and not target.is_dir():
        if target.suffix.lower() != ".png":
            raise BadInput(f"--out {target}: images are saved as PNG; give a .png file or a directory")
        _check_dir(target.parent)
        if count == 1:
            return [target]
        return [target.with_name(f"{target.stem}-{i + 1}{target.suffix}") for i in range(count)]
    _check_dir(target)
    stem = _slug(prompt)
    paths, taken = [], set()
    for i in range(count):
        base = f"{stem}-s{seed + i}"
        name, n = f"{base}.png", 1
        while (target / name).exists() or name in taken:
            name, n = f"{base}-{n}.png", n + 1
        taken.add(name)
        paths.append(target / name)
    return paths


# --------------------------------------------------------------------------- writing


def save_png(image, path: str | Path, meta: ImageMeta) -> Path:
    """Write `image` (a PIL image) to `path` with its metadata, atomically: a temp file in the same directory,
    fsynced, then renamed over the target. On any failure the temp file is removed and the target untouched."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            image.save(f, format="PNG", pnginfo=png_info(meta))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise OutputNotWritable(f"cannot save {path}: {e.strerror or e}") from None
        raise
    return path
