"""darktable's color contrast (``colorcontrast``, params version 2) as an exact stage: ``src/iop/colorcontrast.c``.

A Lab module (``IOP_CS_LAB``): a* and b* scaled by their steepness and shifted by their offset,
clamped to ``[-128, 128]`` unless ``unbound`` (darktable's default).
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab


@register_exact(
    "colorcontrast",
    params=("a_steepness", "b_steepness"),
    versions=(2,),
    note="darktable's colorcontrast.c: Lab a*, b* = steepness x + offset (clamped to +-128 unless unbound)",
)
def colorcontrast(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    lab = working_rgb_to_lab(x)
    a = lab[:, 1:2] * column(v.get("a_steepness", 1.0), x) + column(v.get("a_offset", 0.0), x)
    b = lab[:, 2:3] * column(v.get("b_steepness", 1.0), x) + column(v.get("b_offset", 0.0), x)
    if not bool(v.get("unbound", True)):
        a, b = a.clamp(-128.0, 128.0), b.clamp(-128.0, 128.0)
    return lab_to_working_rgb(torch.cat([lab[:, 0:1].expand_as(a), a, b], 1))
