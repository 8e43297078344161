"""darktable 4.2.1's bloom (``bloom``, params version 1) as an exact stage: ``src/iop/bloom.c``.

A Lab module (``IOP_CS_LAB``). ``process()``: L* times ``2^(min(100, strength + 1) / 100)``, kept where it
exceeds ``threshold`` (0 elsewhere); ``dt_box_mean`` of that (8 passes, :func:`~darkproxy.replica.ports.soften.
box_mean`) with radius ``min(256, ceilf(rad x roi->scale))``, ``rad = (int)(256 min(100, size + 1) / 100)``
render px at full resolution and darktable-cli's float export scale
(:func:`~darkproxy.replica.ports.resample.export_frame`); the input's L* screen-blended with it:
``100 - (100 - L) (100 - blur) / 100``; a* and b* untouched.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise. Gradients: the image and ``strength``
(``threshold`` selects pixels: no gradient; ``size`` sets an integer radius, one value per batch). Refused: a
render that is not darktable-cli's whole-image export of a known full-resolution size (the radius follows the
export scale), placements outside colorin..colorout.
"""

from __future__ import annotations

import torch

from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.ports.soften import box_mean, one_size, scaled_radius, whole_export
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab

Tensor = torch.Tensor

F32 = torch.float32


def blur_radius(size: float, ctx: StageContext, h: int, w: int) -> int:
    """``process()``'s box radius in render px for an ``(h, w)`` export (see the module docstring)."""
    _, _, s = whole_export("bloom", ctx, h, w)
    size32 = float(torch.tensor(size, dtype=F32))
    rad = int(float(torch.tensor(256.0 * (min(100.0, size32 + 1.0) / 100.0), dtype=F32)))
    return scaled_radius(rad, s, 256)


@register_exact(
    "bloom",
    params=("strength",),
    versions=(1,),
    pointwise=False,
    note="darktable's bloom.c: L* above the threshold, box_filters.c's 8-pass box mean (its radius from the size "
    "and darktable-cli's export scale), screen blend; whole-image exports at any scale",
    supports=lab_placement("bloom"),
)
def bloom(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """bloom on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    _, _, h, w = x.shape
    radius = blur_radius(one_size("bloom", v.get("size", 20.0)), ctx, h, w)
    lab = working_rgb_to_lab(x)
    L = lab[:, 0:1]
    strength = column(v.get("strength", 25.0), x)
    lit = L * 2.0 ** ((strength + 1.0).clamp_max(100.0) / 100.0)
    lit = torch.where(lit > column(v.get("threshold", 90.0), x), lit, torch.zeros_like(lit))
    blur = box_mean(lit, radius)
    out_l = 100.0 - (100.0 - L) * (100.0 - blur) / 100.0
    return lab_to_working_rgb(torch.cat([out_l, lab[:, 1:3]], 1))
