"""darktable's split-toning (``splittoning``, params version 1) as an exact stage: ``src/iop/splittoning.c``.

An RGB module in the working profile: a pixel whose HSL lightness ``l`` lies below ``balance - c``
(``c = compress / 220``) is mixed with the shadow colour (its hue and saturation at lightness ``l``)
by ``ra = clip(2 (balance - c - l))``, one above ``balance + c`` with the highlight colour; each
channel clipped to ``[0, 1]``; the pixels in between are left alone.
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import hsl_to_rgb


@register_exact(
    "splittoning",
    params=("shadow_hue", "shadow_saturation", "highlight_hue", "highlight_saturation", "balance", "compress"),
    versions=(1,),
    note="darktable's splittoning.c: shadows and highlights mixed with their HSL colours, clipped to [0, 1]",
)
def splittoning(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    compress = column(v.get("compress", 33.0), x) / 110.0 / 2.0
    balance = column(v.get("balance", 0.5), x)
    light = (x.amax(1, keepdim=True) + x.amin(1, keepdim=True)) / 2.0

    def toned(hue: str, sat: str, default_hue: float, ra: torch.Tensor) -> torch.Tensor:
        rgb = torch.cat(hsl_to_rgb(column(v.get(hue, default_hue), x), column(v.get(sat, 0.5), x), light), 1)
        ra = ra.clamp(0.0, 1.0)
        return (x * (1.0 - ra) + rgb * ra).clamp(0.0, 1.0)

    shadows = toned("shadow_hue", "shadow_saturation", 0.0, (balance - compress - light) * 2.0)
    highlights = toned("highlight_hue", "highlight_saturation", 0.2, (light - (balance + compress)) * 2.0)
    return torch.where(light < balance - compress, shadows, torch.where(light > balance + compress, highlights, x))
