"""darktable's velvia (``velvia``, params version 2) as an exact stage: ``src/iop/velvia.c``.

An RGB module in the working profile: each channel pushed away from the mean of the other two by
``strength / 100`` times a weight that spares saturated pixels and (by ``bias``) the shadows and
highlights, then clamped to ``[0, 1]``; nothing at all for ``strength <= 0``.
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import safe_div


@register_exact(
    "velvia",
    params=("strength", "bias"),
    versions=(2,),
    note="darktable's velvia.c: saturation weighted by HSL saturation and lightness, clamped to [0, 1]",
)
def velvia(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    strength = column(v.get("strength", 25.0), x) / 100.0
    bias = column(v.get("bias", 1.0), x)
    pmax, pmin = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    plum = (pmax + pmin) / 2.0
    spread = pmax - pmin
    psat = torch.where(
        plum <= 0.5,
        safe_div(spread, 1e-5 + pmax + pmin, (1e-5 + pmax + pmin) != 0),
        spread / (1e-5 + (2.0 - pmax - pmin).clamp_min(0.0)),  # the denominator is >= 1e-5: a plain division
    )
    weight = (((1.0 - 1.5 * psat) + (1.0 + (plum - 0.5).abs() * 2.0) * (1.0 - bias)) / (1.0 + (1.0 - bias))).clamp(
        0.0, 1.0
    )
    saturation = strength * weight
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    others = torch.cat([0.5 * (g + b), 0.5 * (b + r), 0.5 * (r + g)], 1)
    out = (x + saturation * (x - others)).clamp(0.0, 1.0)
    return torch.where(strength > 0.0, out, x)
