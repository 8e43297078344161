"""darktable's colorize (``colorize``, params version 2) as an exact stage: ``src/iop/colorize.c``.

A Lab module (``IOP_CS_LAB``): the colour (hue, saturation, lightness) made Lab once (``commit_params``:
HSL to RGB, then sRGB to XYZ D50, or, for params written by the module's first version, Adobe RGB's
D65 matrix, ``version`` 1), and every pixel set to its a*, b* with L* = lightness - 50 mix + mix L*_in.
"""

from __future__ import annotations

import numpy as np
import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import D50_WHITE, hsl_to_rgb, lab_f, lab_to_working_rgb, mix3, working_rgb_to_lab

# commit_params' RGB -> XYZ matrices: sRGB to XYZ D50 (version 2), Adobe RGB to XYZ D65 (version 1, "a bit off")
SRGB_TO_XYZ_D50 = np.array(
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)
ADOBE_TO_XYZ_D65 = np.array(
    [[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741], [0.0270343, 0.0706872, 0.9911085]]
)


@register_exact(
    "colorize",
    params=("hue", "saturation", "source_lightness_mix", "lightness"),
    versions=(2,),
    note="darktable's colorize.c: a*, b* of the HSL colour, L* mixed with the source's",
)
def colorize(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    hue, sat = column(v.get("hue", 0.0), x), column(v.get("saturation", 0.5), x)
    rgb = hsl_to_rgb(hue, sat, column(v.get("lightness", 50.0), x) / 100.0)
    m = ADOBE_TO_XYZ_D65 if int(v.get("version", 2)) == 1 else SRGB_TO_XYZ_D50
    X, Y, Z = mix3(m, rgb)
    fx, fy, fz = (lab_f(c / w) for c, w in zip((X, Y, Z), D50_WHITE, strict=True))
    L, a, b = 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)
    amount = column(v.get("source_lightness_mix", 50.0), x) / 100.0
    lab_in = working_rgb_to_lab(x)
    out_l = (L - amount * 100.0 / 2.0) + lab_in[:, 0:1] * amount
    return lab_to_working_rgb(torch.cat([out_l, a.expand_as(out_l), b.expand_as(out_l)], 1))
