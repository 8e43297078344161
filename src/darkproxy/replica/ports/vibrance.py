"""darktable's vibrance (``vibrance``, params version 2; deprecated in darktable 3.6, still in old
edits) as an exact stage: ``src/iop/vibrance.c``.

A Lab module (``IOP_CS_LAB``): with ``w = |(a*, b*)| / 256`` and ``k = amount / 100``, L* is scaled by
``1 - k w / 4`` and a*, b* by ``1 + k w``: the weakly coloured pixels gain the least.
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, safe_hypot, working_rgb_to_lab


@register_exact(
    "vibrance",
    params=("amount",),
    versions=(2,),
    note="darktable's vibrance.c: Lab chroma-weighted saturation (L* x (1 - k w / 4), a*, b* x (1 + k w))",
)
def vibrance(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    lab = working_rgb_to_lab(x)
    amount = column(v.get("amount", 25.0), x) * 0.01
    sw = safe_hypot(lab[:, 1:2], lab[:, 2:3]) / 256.0
    ls = 1.0 - amount * sw * 0.25
    ss = 1.0 + amount * sw
    return lab_to_working_rgb(torch.cat([lab[:, 0:1] * ls, lab[:, 1:3] * ss], 1))
