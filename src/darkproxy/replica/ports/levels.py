"""darktable 4.2.1's levels (``levels``, params version 2) in its manual mode as an exact stage:
``src/iop/levels.c``.

A Lab module (``IOP_CS_LAB``). ``L / 100`` at or below the black level ``levels[0]`` becomes 0; above it the
fraction ``p = (L / 100 - levels[0]) / (levels[2] - levels[0])`` maps through ``100 p^g``, ``g = 10^((levels[1] -
mid) / half)`` (``mid``, ``half``: the middle and half the span of black and white), read from darktable's 65536
entry table (``lut[(int)(p 65536)]``) below ``p = 1``; a* and b* are scaled by ``L_out / max(L, 0.01)``.

Refused: the automatic mode (its levels come from the preview pipe's histogram).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Pointwise. Gradients: the image (the table's index straight
through) and ``levels[0..2]``.
"""

from __future__ import annotations

import torch

from darkproxy.darktable.params import param_value
from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor

MODE_MANUAL, MODE_AUTOMATIC = 0, 1
LUT_SIZE = 0x10000


def levels_gamma(black: Tensor, grey: Tensor, white: Tensor) -> Tensor:
    """``10^((grey - mid) / half)``: the exponent darktable's levels modules give the span black..white."""
    delta = (white - black) / 2.0
    mid = black + delta
    return torch.pow(10.0, (grey - mid) / delta)


def gamma_table(pct: Tensor, g: Tensor, double: bool = False) -> Tensor:
    """``p^g`` read from darktable's 65536-entry table at ``(int)(p 65536)`` (clamped to the table; entry ``i`` the
    curve at ``i / 65536``, computed in float, or in ``double`` and stored as float as rgb levels builds it); the
    gradient in ``p`` and ``g`` is the continuous curve's."""
    smooth = pct.clamp_min(1e-30) ** g
    entry = torch.floor(pct.detach() * LUT_SIZE).clamp(0.0, LUT_SIZE - 1.0) / LUT_SIZE
    gd = g.detach()
    if double:
        entry, gd = entry.to(torch.float64), gd.to(torch.float64)
    pos = entry > 0.0  # lut[0] = 0 (a safe base where it is, for the exponent's gradient)
    table = torch.where(pos, torch.where(pos, entry, torch.ones_like(entry)) ** gd, 0.0 * entry).to(pct.dtype)
    return straight_through(table, smooth)


def _level(v: Values, i: int, x: Tensor) -> Tensor:
    return column(param_value(v, f"levels[{i}]"), x)


def _supports(v: Values, ctx: StageContext) -> str | None:
    why = lab_placement("levels")(v, ctx)
    if why:
        return why
    if int(v.get("mode", MODE_MANUAL)) != MODE_MANUAL:
        return "levels: the automatic mode reads the preview pipe's histogram (not reproducible from an export)"
    return None


@register_exact(
    "levels",
    params=("levels[0]", "levels[1]", "levels[2]"),
    versions=(2,),
    note="darktable's levels.c, manual mode: L* through its 65536-entry gamma table, a* b* scaled alike",
    supports=_supports,
)
def levels(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """levels on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    lab = working_rgb_to_lab(x)
    black, grey, white = (_level(v, i, x) for i in range(3))
    inv_gamma = levels_gamma(black, grey, white)
    L = lab[:, 0:1]
    L_in = L / 100.0
    pct = (L_in - black) / (white - black)
    table = 100.0 * gamma_table(pct, inv_gamma)  # read where 0 < p < 1
    smooth = 100.0 * pct.clamp_min(1e-30) ** inv_gamma
    L_out = torch.where(L_in <= black, torch.zeros_like(L), torch.where(pct < 1.0, table, smooth))
    denom = torch.where(L > 0.01, L, torch.full_like(L, 0.01))
    ab = lab[:, 1:3] * L_out / denom
    return lab_to_working_rgb(torch.cat([L_out, ab], 1))
