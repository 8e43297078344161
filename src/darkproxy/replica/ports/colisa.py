"""darktable 4.2.1's contrast brightness saturation (``colisa``, params version 1) as an exact stage:
``src/iop/colisa.c``.

A Lab module (``IOP_CS_LAB``). L* through the contrast table (``c = contrast + 1``: linear ``c (100 u - 50) + 50``
up to 1, above it the sigmoid ``50 (s x / sqrt(1 + m x^2) + 1)`` with ``m = 20 (c - 1)^2``, ``s = sqrt(1 + m)``,
``x = 2 u - 1``), then the brightness table (``100 u^gamma``, ``gamma = 1 / (1 + 2 b)`` for ``b >= 0``, else
``1 - 2 b``), each extrapolated above L* = 100 by ``dt_iop_estimate_exp`` as lowpass's
(:func:`~darkproxy.replica.ports.lowpass.lab_table`); a* and b* times ``saturation + 1``.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Pointwise. Gradients: the image and the three sliders.
"""

from __future__ import annotations

import torch

from darkproxy.replica.ports.lowpass import brightness_curve, lab_table
from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab

Tensor = torch.Tensor


def contrast_curve(u: Tensor, c: Tensor) -> Tensor:
    """colisa's contrast table at ``u = L / 100`` for ``c = contrast + 1`` in [0, 2]."""
    lin = c * (100.0 * u - 50.0) + 50.0
    m = 20.0 * (c - 1.0) * (c - 1.0)
    x = 2.0 * u - 1.0
    sig = 50.0 * (torch.sqrt(1.0 + m) * x / torch.sqrt(1.0 + m * x * x) + 1.0)
    return torch.where(c <= 1.0, lin, sig)


@register_exact(
    "colisa",
    params=("contrast", "brightness", "saturation"),
    versions=(1,),
    note="darktable's colisa.c: L* through its contrast and brightness tables with their extrapolation, a* b* scaled",
    supports=lab_placement("colisa"),
)
def colisa(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """contrast brightness saturation on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    lab = working_rgb_to_lab(x)
    c = column(v.get("contrast", 0.0), x) + 1.0
    b = column(v.get("brightness", 0.0), x) * 2.0
    s = column(v.get("saturation", 0.0), x) + 1.0
    L = lab_table(lab[:, 0:1], contrast_curve, c)
    L = lab_table(L, brightness_curve, b)
    return lab_to_working_rgb(torch.cat([L, lab[:, 1:3] * s], 1))
