"""The compile table of docs/BENCHMARKS.md section 7 from the committed profiles: per format and GPU, the cold
compile (regional and full) and the compiled stacked step at 1024x1024 (4096 image + 512 text tokens), eager in
brackets; at 512x512 too where measured. What a profile took from the other GPU's (a format or mode not compiled
on this one) is not shown.

    .venv/bin/python benchmarks/compile_table.py
"""

from __future__ import annotations

from pathlib import Path

from fluxplan.cost.profile import load_profile_file

ROOT = Path(__file__).resolve().parents[1]
GPUS = {"H100": "nvidia-h100-80gb-hbm3.json", "H200": "nvidia-h200.json"}


def _step(profile, fmt: str, mode: str, image: int) -> float | None:
    return next((p.seconds for p in profile.forward if p.kind == "measured" and
                 (p.format, p.compile, p.image_tokens, p.text_tokens, p.batch) == (fmt, mode, image, 512, 1)), None)


def _cell(profile, fmt: str, mode: str) -> str:
    m = profile.compiled(fmt, mode)
    if m is None or m.kind != "measured":
        return "not run"
    if m.status == "fails":
        return "fails"
    if m.status == "timeout":
        return f"not within {m.seconds:.0f} s"
    eager = {i: _step(profile, fmt, "none", i) for i in (4096, 1024)}
    steps = [f"{s:.3f} ({eager[i]:.3f})" if eager[i] else f"{s:.3f}"
             for i in (4096, 1024) if (s := _step(profile, fmt, mode, i)) is not None]
    return f"{m.seconds:.1f} s; {' / '.join(steps)}"


def main() -> None:
    profiles = {g: load_profile_file(ROOT / "profiles" / f) for g, f in GPUS.items()}
    formats = sorted({c.format for p in profiles.values() for c in p.compile},
                     key=lambda f: (not f.startswith("bf16"), f))
    cols = [f"{g} {mode}" for g in GPUS for mode in ("regional", "full")]
    print("| format | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for fmt in formats:
        cells = [_cell(profiles[g], fmt, mode) for g in GPUS for mode in ("regional", "full")]
        print(f"| {fmt} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
