"""darktable's color correction (``colorcorrection``, params v1) as an exact stage: ``src/iop/colorcorrection.c``.

A Lab module (``IOP_CS_LAB``): a* and b* shifted along a line from the shadows' colour (``loa``,
``lob``) at L* = 0 to the highlights' (``hia``, ``hib``) at L* = 100, then scaled by ``saturation``;
L* unchanged.
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab


@register_exact(
    "colorcorrection",
    params=("hia", "hib", "loa", "lob", "saturation"),
    versions=(1,),
    note="darktable's colorcorrection.c: a*, b* += lo + L* (hi - lo) / 100, times saturation",
)
def colorcorrection(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    lab = working_rgb_to_lab(x)
    L = lab[:, 0:1]
    loa, lob = column(v.get("loa", 0.0), x), column(v.get("lob", 0.0), x)
    a_scale = (column(v.get("hia", 0.0), x) - loa) / 100.0
    b_scale = (column(v.get("hib", 0.0), x) - lob) / 100.0
    sat = column(v.get("saturation", 1.0), x)
    a = sat * (lab[:, 1:2] + L * a_scale + loa)
    b = sat * (lab[:, 2:3] + L * b_scale + lob)
    return lab_to_working_rgb(torch.cat([L.expand_as(a), a, b], 1))
