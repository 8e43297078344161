"""darktable 4.2.1's rgb levels (``rgblevels``, params version 1) as an exact stage: ``src/iop/rgblevels.c``.

An RGB module (``IOP_CS_RGB``: the working profile's linear Rec2020). Each channel's levels ``(black, grey,
white)`` (all three from the first row when the channels are linked) set ``p = (v - black) / (white - black)`` and
``p^g``, ``g = 10^((grey - mid) / half)`` (``mid``, ``half``: the middle and half the span of black and white), read
from darktable's 65536-entry table (``lut[clamp((int)(p 65536), 0, 65535)]``, built in double) below the white
point, ``powf`` at and above it, 0 at or below the black point:

* independent channels, or linked without colour preservation: per channel on its value;
* linked with a norm (``preserve_colors``, common/rgb_norms.h: :func:`~darkproxy.replica.ports.rgbcurve.rgb_norm`):
  on the pixel's norm, the pixel scaled by ``curve(norm) / norm``.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Pointwise. Gradients: the image (the table's index straight
through) and the levels ``levels[c][k]``.
"""

from __future__ import annotations

import torch

from darkproxy.darktable.params import param_value
from darkproxy.replica.ports.levels import gamma_table, levels_gamma
from darkproxy.replica.ports.rgbcurve import NORM_NONE, NORM_POWER, rgb_norm
from darkproxy.replica.registry import StageContext, Values, column, register_exact

Tensor = torch.Tensor

LINKED, INDEPENDENT = 0, 1
PARAMS = tuple(f"levels[{c}][{k}]" for c in range(3) for k in range(3))


def _levels(v: Values, c: int, x: Tensor) -> list[Tensor]:
    return [column(param_value(v, f"levels[{c}][{k}]"), x) for k in range(3)]


def _curve(value: Tensor, lv: list[Tensor], above: Tensor) -> Tensor:
    """The levels curve at ``value`` ``(B, 1 or 3, H, W)``: darktable's table below the white point (``above``
    False), ``powf`` at and above it; the caller handles the black point."""
    black, grey, white = lv
    g = levels_gamma(black, grey, white)
    pct = (value - black) * (1.0 / (white - black))
    return torch.where(above, pct.clamp_min(1e-30) ** g, gamma_table(pct, g, double=True))


def _supports(v: Values, ctx: StageContext) -> str | None:
    if int(v.get("autoscale", LINKED)) not in (LINKED, INDEPENDENT):
        return "rgblevels: unknown mode"
    if not NORM_NONE <= int(v.get("preserve_colors", 1)) <= NORM_POWER:
        return "rgblevels: unknown colour preservation norm"
    return None


@register_exact(
    "rgblevels",
    params=PARAMS,
    versions=(1,),
    note="darktable's rgblevels.c: per channel or on a norm of the pixel, its 65536-entry gamma table",
    supports=_supports,
)
def rgblevels(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """rgb levels on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    linked = int(v.get("autoscale", LINKED)) == LINKED
    norm = int(v.get("preserve_colors", 1))
    if not linked or norm == NORM_NONE:
        chans = []
        for c in range(3):
            lv = _levels(v, 0 if linked else c, x)
            xc = x[:, c : c + 1]
            out = _curve(xc, lv, xc >= lv[2])
            chans.append(torch.where(xc <= lv[0], torch.zeros_like(xc), out))
        return torch.cat(chans, 1)
    lv = _levels(v, 0, x)
    lum = rgb_norm(x, norm)
    curve = _curve(lum, lv, lum >= lv[2])
    safe = torch.where(lum > lv[0], lum, torch.ones_like(lum))
    return torch.where(lum > lv[0], curve / safe * x, torch.zeros_like(x))
