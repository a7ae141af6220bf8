"""Curve fitting with scipy. Runs when a profile or the catalog changes, never on the planning path
(scipy.optimize alone takes longer to import than `fluxplan explain` may take): the coefficients are stored
beside the raw points, and a test refits them to show they are current.

    python -m fluxplan.cost.fit            # refit every bundled profile and the catalog's quality curve
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fit_forward(points: list[tuple[int, float]]) -> dict:
    """Seconds of one bf16 eager forward per batch item against total tokens T: c0 + c1*T + c2*T^2 (all >= 0)."""
    import numpy as np
    from scipy.optimize import curve_fit

    t = np.array([p[0] for p in points], dtype=float)
    s = np.array([p[1] for p in points], dtype=float)
    if len(points) < 3:  # too few points for three terms: a line through the origin
        c1 = float(np.sum(t * s) / np.sum(t * t))
        return {"c0": 0.0, "c1": c1, "c2": 0.0, "points": len(points)}
    (c0, c1, c2), _ = curve_fit(lambda x, a, b, c: a + b * x + c * x * x, t, s, p0=(0.01, s.mean() / t.mean(), 0.0),
                                bounds=(0, np.inf), sigma=s)  # relative errors count equally at every size
    pred = c0 + c1 * t + c2 * t * t
    return {"c0": float(c0), "c1": float(c1), "c2": float(c2), "points": len(points),
            "max_rel_err": float(np.max(np.abs(pred - s) / s))}


def fit_lpips_curve(anchors: list[tuple[float, float]]) -> dict:
    """LPIPS = a * exp(-b * bits), least squares in log space."""
    import numpy as np
    from scipy.optimize import curve_fit

    x = np.array([a[0] for a in anchors])
    y = np.log(np.array([a[1] for a in anchors]))
    (log_a, b), _ = curve_fit(lambda bits, la, bb: la - bb * bits, x, y, p0=(0.5, 0.4))
    return {"a": float(np.exp(log_a)), "b": float(b)}


def profile_fits(raw: dict) -> dict:
    pts = [(p["image_tokens"] + p["text_tokens"], p["seconds"] / p.get("batch", 1))
           for p in raw["forward"] if p["format"] == "bf16" and p["compile"] == "none"]
    return {"forward_bf16": fit_forward(pts)}


def refit_profile(path: Path) -> None:
    """Refit a profile file in place (validated, written atomically: see profiling.build.write_profile)."""
    from fluxplan.profiling.build import write_profile

    write_profile(json.loads(path.read_text()), path)


def catalog_curve(raw: dict) -> dict:
    anchors = [(f["bits"]["linear"], f["lpips"]["value"]) for f in raw["formats"] if f["key"] in raw["lpips_curve"]["anchors"]]
    return {**raw["lpips_curve"], **fit_lpips_curve(anchors)}


def main() -> None:
    from fluxplan.cost.profile import profile_dirs

    for d in profile_dirs(include_local=False):
        for path in sorted(d.glob("*.json")):
            refit_profile(path)
            print(f"refit {path}")
    cat = Path(__file__).resolve().parents[1] / "catalog" / "data" / "formats.json"
    raw = json.loads(cat.read_text())
    raw["lpips_curve"] = catalog_curve(raw)
    cat.write_text(json.dumps(raw, indent=1) + "\n")
    print(f"refit {cat}")


if __name__ == "__main__":
    sys.exit(main())
