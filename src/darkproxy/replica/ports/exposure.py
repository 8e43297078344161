"""darktable's exposure (``exposure``, params versions 6 and 7) as an exact stage: ``src/iop/exposure.c``.

Manual mode: ``(x - black) / (2^-exposure - black)``, the raw's EXIF exposure bias taken off where
``compensate_exposure_bias`` asks; version 7 (darktable 5.4) adds back the camera's highlight preservation bias
(clamped to [-1, 4] EV, read where positive) where ``compensate_hilite_pres`` asks (``commit_params``). Deflicker
mode (1, "magic lantern defaults"): the exposure is ``deflicker_target_level - ev``, ``ev = log2(max(raw - black, 1))
- log2(white - black)`` of the raw value at the ``deflicker_percentile`` of the raw's photosite histogram
(``_compute_correction``: the first bin whose cumulative count reaches it; the histogram, black level and white point
from :attr:`StageContext.raw_levels`); the slider ``exposure`` and the bias are not read there, as in darktable.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact

DEFLICKER = 1


def _exposure_supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", 0))
    if mode == DEFLICKER:
        if ctx.raw_levels is None:
            return "exposure's deflicker reads the raw's histogram and rawprepare's levels, which are not known here"
        return None
    return None if mode == 0 else f"exposure mode {mode} is not modelled"


def deflicker_exposure(v: Values, raw_levels: tuple[np.ndarray, int, int]) -> float:
    """``_compute_correction``: the exposure (EV) deflicker sets from the raw's histogram."""
    hist, black, white = raw_levels
    pct = float(one_value(v.get("deflicker_percentile", 50.0), "exposure: the deflicker percentile picks one bin"))
    target = float(np.float32(one_value(v.get("deflicker_target_level", -4.0), "exposure: one deflicker target")))
    total = float(hist.sum())
    thr = min(max(total * float(np.float32(pct)) / 100.0, 0.0), total)
    reached = np.flatnonzero(np.cumsum(hist) >= thr)
    raw = int(reached[0]) if reached.size else 0
    raw_max = (white - black) & 0xFFFFFFFF  # uint32 arithmetic
    ev = -math.log2(raw_max) + math.log2(max(raw - black, 1))
    return float(np.float32(target - ev))


@register_exact(
    "exposure",
    params=("exposure", "black"),
    versions=(6, 7),
    note="darktable's formula (x - black) / (2^-(exposure - bias) - black), exact (the camera matrix maps "
    "camera white to (1, 1, 1)); bias: the raw's EXIF exposure bias when compensate_exposure_bias is on, less v7's "
    "highlight preservation bias when compensate_hilite_pres is; deflicker: the exposure from the raw's photosite "
    "histogram at the percentile",
    supports=_exposure_supported,
)
def exposure(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    black = column(v.get("black", -0.000244140625), x)
    if int(v.get("mode", 0)) == DEFLICKER:
        if ctx.raw_levels is None:
            raise DarkproxyError("exposure: deflicker needs the raw's histogram (StageContext.raw_levels)")
        return (x - black) / (2.0 ** -deflicker_exposure(v, ctx.raw_levels) - black)
    ev = column(v.get("exposure", 0.0), x)
    if bool(v.get("compensate_exposure_bias", False)):  # exposure.c commit_params: exposure -= bias
        if ctx.exposure_bias is None:
            raise DarkproxyError("exposure: compensate_exposure_bias is on but the raw's exposure bias was not read")
        ev = ev - float(ctx.exposure_bias)
    if bool(v.get("compensate_hilite_pres", False)):  # version 7: exposure += _get_highlight_bias
        if ctx.highlight_bias is None:
            raise DarkproxyError("exposure: compensate_hilite_pres is on but the raw's highlight bias was not read")
        hb = float(ctx.highlight_bias)  # _get_highlight_bias: read where positive, clamped to [-1, 4]
        ev = ev + (min(hb, 4.0) if hb > 0.0 else 0.0)
    return (x - black) / (torch.exp2(-ev) - black)
