"""darktable 4.2.1's base curve (``basecurve``, params version 6) as an exact stage of the replica.

A port of ``src/iop/basecurve.c``'s LUT path (``commit_params()``, ``process_lut()`` with
``apply_legacy_curve()`` and ``apply_curve()``) with the curve maths of
:mod:`darkproxy.replica.ports.rgbcurve` (``dt_draw_curve_calc_values``: ``CurveDataSample``'s uint16
samples of the spline through curve 0's nodes, the power-law extrapolation ``dt_iop_estimate_exp`` fitted
on the LUT at 0.7, 0.8, 0.9 and 1 times the last node's x). An RGB module: ``process()`` reads the LUT at
``trunc(f * 65536)`` (clamped to ``[0, 65535]``) for ``f < 1`` (not below the last node, as rgb curve) and
``y0 * (f / x0)^g`` from 1 on, then ``fmaxf(., 0)``:

* ``preserve_colors`` none: the curve on each channel;
* any other norm (luminance of the working profile, max, average, sum, Euclidean norm, basic power): the
  pixel scaled by ``curve(norm) / norm`` where the norm is positive (else unchanged), then ``fmaxf(., 0)``.

The stage is ``(B, 3, H, W)`` -> the same, in darktable's working space (linear Rec2020) where the module
runs after colorin (the v3.0 order, darktable's default for raws). Values: darktable's (float32 LUT, its
uint16 rounding and truncating look-up); gradients: the smooth surrogate's (the unrounded float64 spline,
read by linear interpolation between entries), in the image and in the node y values
(``basecurve[0][k].y``); node x are not differentiable. Refused: exposure fusion (``exposure_fusion`` != 0,
the Laplacian-pyramid fusion of several exposures), the luminance norm where the module runs before
colorin (the legacy order: darktable then weights camera RGB by ``dt_camera_rgb_luminance``, not checked
against darktable here), curves darktable cannot sample (fewer than 2 or more than 20 nodes, x not
strictly increasing) and unknown curve types and norms.

Measured against darktable-cli's tap-outs (``tests/replica/test_basecurve_colorzones.py``, 9 settings, 7 runs):
worst setting per run 77.2-94.6 dB display PSNR, every setting 94.6-100 dB in its best runs (the rest
darktable's run-to-run noise); darktable's "sony alpha like" and "canon eos 5d mark ii" presets in the whole
chain (``darkproxy replica``, 256 px synthetic raw): the stage alone 99.5 and 97.6 dB against its tap-out,
the chain 59.2 and 59.6 dB against darktable's 8-bit export.
"""

from __future__ import annotations

from typing import Any

import torch

from darkproxy.replica.ports.rgbcurve import (
    MAX_NODES,
    NORM_NONE,
    NORM_POWER,
    curve_from_luts,
    curve_problem,
    lookup,
    node_luts,
    node_x,
    num_nodes,
    rgb_norm,
)
from darkproxy.replica.registry import StageContext, Values, register_exact

Tensor = torch.Tensor

NORM_LUMINANCE = 1
PARAMS = tuple(f"basecurve[0][{k}].y" for k in range(MAX_NODES))


def _before_colorin(ctx: StageContext) -> bool | None:
    """Whether the module runs before colorin in the pipe (``None``: unknown, colorin is not in ``ctx.modules``;
    an empty ``ctx.modules``: a lone stage, after colorin as in the v3.0 order)."""
    mods = ctx.modules
    if not mods:
        return False
    if "colorin" not in mods or "basecurve" not in mods:
        return None
    return mods.index("basecurve") < mods.index("colorin")


def _basecurve_supported(v: Values, ctx: StageContext) -> str | None:
    if int(v.get("exposure_fusion", 0)) != 0:
        return "basecurve exposure fusion (the Laplacian-pyramid fusion of several exposures) is not modelled"
    norm = int(v.get("preserve_colors", NORM_LUMINANCE))
    if not NORM_NONE <= norm <= NORM_POWER:
        return f"basecurve preserve colors {norm} is not modelled"
    if norm == NORM_LUMINANCE and _before_colorin(ctx) is not False:
        return "basecurve's luminance norm before colorin (camera RGB luminance, the legacy order) is not modelled"
    n, kind = num_nodes(v, 0, "basecurve"), int(v["basecurve_type"][0])
    return curve_problem("basecurve", n, kind, lambda: node_x(v, 0, "basecurve"))


def _curve(v: Values, x: Tensor, smooth: bool) -> dict[str, Any]:
    """Curve 0 as :func:`lookup` reads it in basecurve's ``process()``: the LUT below 1, the power law from 1."""
    xs, _, lut_e, lut_s = node_luts(v, 0, x, smooth, "basecurve")
    c = curve_from_luts(lut_e, lut_s, float(xs[-1]), x, smooth)
    c["xm"] = 1.0  # apply_curve / apply_legacy_curve: `f < 1.0f` reads the LUT
    return c


def basecurve_curve(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """base curve on ``x`` ``(B, 3, H, W)`` (working RGB) -> the same. ``smooth``: the differentiable surrogate
    alone (what the exact stage's gradients are; for gradient checks)."""
    c = _curve(v, x, smooth)
    norm = int(v.get("preserve_colors", NORM_LUMINANCE))
    if norm == NORM_NONE:
        return lookup(c, x, smooth).clamp_min(0.0)
    lum = rgb_norm(x, norm)
    ok = lum > 0.0  # NaN (basic power of black) and non-positive norms: ratio 1
    lum_safe = torch.where(ok, lum, torch.ones_like(lum))
    ratio = torch.where(ok, lookup(c, lum_safe, smooth) / lum_safe, torch.ones_like(lum))
    return (ratio * x).clamp_min(0.0)


@register_exact(
    "basecurve",
    params=PARAMS,
    versions=(6,),
    note="darktable's basecurve.c LUT path: the spline's uint16 LUT (curve_tools.c, float32), its truncating "
    "look-up below 1, the power-law extrapolation from 1, every norm, fmaxf(., 0); gradients of the unrounded "
    "spline (node y differentiable, node x not); exposure fusion refused",
    supports=_basecurve_supported,
)
def basecurve(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return basecurve_curve(x, v)
