"""Quality: 1 - expected LPIPS of the image against the bf16 image, with where the number comes from.

Formats with an anchored LPIPS (published, or derived from a measured output error) use it. The rest (GGUF
levels) are placed by bits per weight on the curve LPIPS = a * exp(-b * bits) that `python -m
fluxplan.cost.fit` fits with scipy through the anchored weight-only formats (coefficients in formats.json).
A quantized T5 costs a tenth of what the same format costs on the transformer: an assumption, labelled as
such, since no published figure isolates T5 quantization.
"""

from __future__ import annotations

import math

from fluxplan.catalog.formats import Format, load_catalog

T5_SHARE = 0.10
T5_SHARE_SOURCE = "assumed: a quantized T5 costs 10 % of the LPIPS its format costs on the transformer"


def transformer_lpips(fmt: Format) -> tuple[float, str]:
    if fmt.lpips is not None:
        return fmt.lpips.value, f"{fmt.lpips.kind}: {fmt.lpips.source}"
    curve = load_catalog().lpips_curve
    return curve.a * math.exp(-curve.b * fmt.bits_per_weight), f"{curve.source}; {fmt.bits_per_weight:g} bits"


def quality(transformer: Format, text_encoder: Format) -> tuple[float, float, str]:
    """(quality, expected LPIPS, source) of a transformer format with a T5 format."""
    lp, source = transformer_lpips(transformer)
    t5_lp = T5_SHARE * transformer_lpips(text_encoder)[0]
    total = min(1.0, lp + t5_lp)
    if t5_lp > 0:
        source = f"{source}; T5 {text_encoder.key}: +{t5_lp:.3f} ({T5_SHARE_SOURCE})"
    return 1.0 - total, total, source
