"""darktable 4.2.1's highpass (``highpass``, params version 1) as an exact stage: ``src/iop/highpass.c``.

A Lab module (``IOP_CS_LAB``). ``process()``: ``100 - L*`` (L* clipped to [0, 100]) blurred by ``dt_box_mean`` with
``BOX_ITERATIONS`` = 8 (:func:`~darkproxy.replica.ports.soften.box_mean`) at radius ``min(16, ceilf(rad x
roi->scale))``, ``rad = (int)(16 min(100, sharpness + 1) / 100)`` with darktable-cli's float export scale
(:func:`~darkproxy.replica.ports.soften.whole_export`); mixed half and half with L*, contrast-stretched around 50 by
``7.5 contrast / 100`` and clipped to [0, 100]; a* and b* set to 0 (the module is meant to be blended).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise (whole-image exports). Gradients: the image and
``contrast``; ``sharpness`` sets an integer radius (one value per batch).
"""

from __future__ import annotations

import torch

from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.ports.soften import box_mean, scaled_radius, whole_export
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab

Tensor = torch.Tensor

MAX_RADIUS = 16


def blur_radius(sharpness: float, ctx: StageContext, h: int, w: int) -> int:
    """``process()``'s box radius in render px for an ``(h, w)`` export."""
    _, _, s = whole_export("highpass", ctx, h, w)
    rad = int(MAX_RADIUS * (min(100.0, sharpness + 1.0) / 100.0))  # double, truncated to int
    return scaled_radius(rad, s, MAX_RADIUS)


@register_exact(
    "highpass",
    params=("contrast",),
    versions=(1,),
    pointwise=False,
    note="darktable's highpass.c: the inverted L* through box_filters.c's 8-pass box mean (its radius from the "
    "export scale), mixed with L* and contrast-stretched, a* b* zeroed; whole-image exports",
    supports=lab_placement("highpass"),
)
def highpass(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """highpass on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    h, w = x.shape[-2:]
    sharpness = one_value(v.get("sharpness", 50.0), "highpass: sharpness sets an integer radius; one per batch")
    radius = blur_radius(sharpness, ctx, h, w)
    lab = working_rgb_to_lab(x)
    L = lab[:, 0:1]
    inv = 100.0 - L.clamp(0.0, 100.0)
    blur = box_mean(inv, radius)
    scale = column(v.get("contrast", 50.0), x) / 100.0 * 7.5
    mixed = blur * 0.5 + L * 0.5
    out = (50.0 + (mixed - 50.0) * scale).clamp(0.0, 100.0)
    return lab_to_working_rgb(torch.cat([out, torch.zeros_like(lab[:, 1:3])], 1))
