"""darktable's white balance (``temperature``, params versions 3 and 4) as an exact mosaic stage:
``src/iop/temperature.c`` (the Bayer float path). Version 4 (darktable 5) adds a ``preset`` whose "as shot to
reference" moves a correction into colorin (darktable's chroma ``late_correction``), which the chain measures with
colorin's matrix; the multiplication is version 3's (5.4.1's source).

Each photosite is multiplied by the coefficient of its CFA colour: ``red``, ``green``, ``blue``
(darktable's ``FC()`` of a 3-colour Bayer sensor never names the second green, so ``g2`` only
applies to 4-colour sensors, which are refused). In 4.2's scene-referred default the
coefficients are the raw's D65 "camera reference" multipliers; the sliders ``red`` and ``blue``
are regressable. darktable's ``processed_maximum`` becomes the coefficients (rawprepare left
it at 1): highlights' clip level and RCD's scaler read it.
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, cfa_map, coeff_columns, register_exact

COEFFS = ("red", "green", "blue")


def _maximum(v: Values, ctx: StageContext, pm: torch.Tensor) -> torch.Tensor:
    return coeff_columns(v, COEFFS, pm) * pm  # temperature.c: processed_maximum[k] *= coeffs[k]


@register_exact(
    "temperature",
    params=("red", "green", "blue", "g2"),
    versions=(3, 4),
    mosaic=True,
    pointwise=False,
    maximum=_maximum,
    note="exact: each photosite times its CFA colour's coefficient (red, green, blue; g2 unused on "
    "3-colour Bayer sensors, as in darktable)",
)
def temperature(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` camera RGB mosaic -> the same, white balanced."""
    h, w = x.shape[-2:]
    fc = cfa_map(ctx, h, w, x.device)
    c = coeff_columns(v, COEFFS, x)  # (B, 3)
    return x * c[:, fc][:, None]
