"""darktable 4.2.1's tone curve (``tonecurve``, params version 5) as an exact stage of the replica.

A port of ``src/iop/tonecurve.c`` (``commit_params()`` and the CPU ``process()``) in its linked modes,
with the curve maths of :mod:`darkproxy.replica.ports.rgbcurve` (``curve_tools.c``, the uint16 LUT, its
truncating look-up and power-law extrapolation above the last node). A Lab module: darktable's pipe
converts the working RGB to Lab before it and back after it (a round trip, exact here but for
darktable's approximate cube root); the L curve (``tonecurve[0]``) is sampled as rgb curve's, then

* "Lab, linked channels" (``tonecurve_autoscale_ab`` 1): the LUT times 100 on L / 100; a and b scaled
  by L_out / L_in (by the LUT's entry at L = 0.01 where L_in <= 0.01, as darktable does);
* "XYZ, linked channels" (2): the LUT re-derived to map Y to Y (a grey XYZ through Lab, the L LUT and
  back, darktable's approximate cube root emulated), applied to X, Y and Z (XYZ D50);
* "RGB, linked channels" (3, the default): the LUT re-derived to map ProPhoto RGB G to G, applied to
  each channel (``preserve_colors`` none) or to a norm of the ProPhoto RGB pixel, the pixel scaled by
  ``curve(norm) / norm`` (luminance: ProPhoto's Y row).

Values: darktable's (float32 LUT, its uint16 rounding and truncating look-ups); gradients: the smooth
surrogate's (unrounded float64 spline, linear interpolation between LUT entries, exact cube roots), in
the image and in the L curve's node y values (``tonecurve[0][k].y``); node x are not differentiable.
Refused: "Lab, independent channels" (the a/b curves and their two-sided extrapolation), L curves
darktable cannot sample (fewer than 2 or more than 20 nodes, x not strictly increasing), unknown types
and norms. darktable's conversions to and from Lab inside the module (``dt_XYZ_to_Lab``,
``dt_prophotorgb_to_Lab`` after the curve) use its approximate cube root: the stage converts exactly
(a difference of ~1e-4 at a few pixels); the re-derived LUTs emulate it.

Measured against darktable-cli's tap-outs (``tests/replica/test_curves.py``, 10 settings, 4 runs): 78.0-99.0
dB display PSNR, the spread darktable's own between two renders (96-100 dB where darktable's renders agree).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import profile_rgb_to_xyz_d50
from darkproxy.replica.ports.rgbcurve import (
    LUT_SIZE,
    MAX_NODES,
    NORM_NONE,
    NORM_POWER,
    SAMPLE_MAX,
    curve_from_luts,
    curve_problem,
    curve_samples,
    exact_lut,
    lookup,
    needs_surrogate,
    node_x,
    node_y,
    num_nodes,
    rgb_norm,
)
from darkproxy.replica.registry import StageContext, Values, register_exact
from darkproxy.replica.science import D50_WHITE, lab_f, lab_finv, lab_to_working_rgb, mix, working_rgb_to_lab

Tensor = torch.Tensor
_F = np.float32

LAB_INDEPENDENT, LAB_LINKED, XYZ_LINKED, RGB_LINKED = 0, 1, 2, 3  # dt_iop_tonecurve_autoscale_t
MODES = {LAB_LINKED: "Lab, linked channels", XYZ_LINKED: "XYZ, linked channels", RGB_LINKED: "RGB, linked channels"}
# common/colorspaces_inline_conversions.h: dt_prophotorgb_to_XYZ / dt_XYZ_to_prophotorgb (rows: out channel)
PROPHOTO_TO_XYZ = np.array(
    [[0.7976749, 0.1351917, 0.0313534], [0.2880402, 0.7118741, 0.0000857], [0.0, 0.0, 0.8252100]], dtype=_F
).astype(np.float64)
XYZ_TO_PROPHOTO = np.array(
    [[1.3459433, -0.2556075, -0.0511118], [-0.5445989, 1.5081673, 0.0205351], [0.0, 0.0, 1.2118128]], dtype=_F
).astype(np.float64)
PARAMS = tuple(f"tonecurve[0][{k}].y" for k in range(MAX_NODES))
LOW_INDEX = int(_F(0.01) * _F(LUT_SIZE))  # process(): low_approximation = table[(int)(0.01f * 0x10000ul)]


def _dt_lab_f(t: np.ndarray) -> np.ndarray:
    """darktable's ``lab_f`` in float32: ``cbrt_5f`` (a bit trick) and one Halley step above epsilon."""
    t = t.astype(_F)
    a = ((t.view(np.uint32) // np.uint32(3)) + np.uint32(709921077)).view(_F)
    a3 = a * a * a
    with np.errstate(all="ignore"):
        big = a * (a3 + t + t) / (a3 + a3 + t)
    return np.where(t > _F(216.0 / 24389.0), big, (_F(24389.0) / _F(27.0) * t + _F(16.0)) / _F(116.0)).astype(_F)


def _dt_lab_finv(f: np.ndarray) -> np.ndarray:
    return np.where(f > _F(0.20689655172413796), f * f * f, (_F(116.0) * f - _F(16.0)) / (_F(24389.0) / _F(27.0)))


def _grey_in(mode: int, g: np.ndarray) -> list[np.ndarray]:
    """The XYZ of the grey ``g`` (ProPhoto RGB for the RGB mode) as commit_params() forms it, float32."""
    if mode == XYZ_LINKED:
        return [g, g, g]
    m = PROPHOTO_TO_XYZ.astype(_F)
    return [m[r, 0] * g + m[r, 1] * g + m[r, 2] * g for r in range(3)]


@functools.lru_cache(maxsize=32)
def _derived_exact(lut100: tuple[float, ...], mode: int) -> np.ndarray:
    """commit_params()'s re-derived LUT (XYZ: Y -> Y; RGB: ProPhoto G -> G) from the L LUT times 100,
    in darktable's float32 arithmetic: ``(65536,)`` float32."""
    table = np.asarray(lut100, dtype=_F)
    g = np.arange(LUT_SIZE, dtype=_F) / _F(LUT_SIZE)
    d50 = [_F(w) for w in D50_WHITE]
    f = [_dt_lab_f(c / w) for c, w in zip(_grey_in(mode, g), d50, strict=True)]
    lab_l, lab_a, lab_b = _F(116.0) * f[1] - _F(16.0), _F(500.0) * (f[0] - f[1]), _F(200.0) * (f[1] - f[2])
    idx = np.clip(np.trunc(lab_l / _F(100.0) * _F(LUT_SIZE)), 0, SAMPLE_MAX).astype(np.int64)
    fy = (table[idx] + _F(16.0)) / _F(116.0)
    xyz = [
        d50[0] * _dt_lab_finv(lab_a / _F(500.0) + fy),
        _dt_lab_finv(fy),
        d50[2] * _dt_lab_finv(-lab_b / _F(200.0) + fy),
    ]
    if mode == XYZ_LINKED:
        return xyz[1].astype(_F)
    m = XYZ_TO_PROPHOTO.astype(_F)
    return (m[1, 0] * xyz[0] + m[1, 1] * xyz[1] + m[1, 2] * xyz[2]).astype(_F)


def _derived_smooth(lut100: Tensor, mode: int) -> Tensor:
    """The surrogate of :func:`_derived_exact`: float64, exact cube roots, the L LUT ``(Bp, 65536)``
    interpolated linearly (differentiable in it)."""
    g = torch.arange(LUT_SIZE, dtype=torch.float64, device=lut100.device) / LUT_SIZE
    grey = [g, g, g] if mode == XYZ_LINKED else [float(PROPHOTO_TO_XYZ[r].sum()) * g for r in range(3)]
    f = [lab_f(c / w) for c, w in zip(grey, D50_WHITE, strict=True)]
    lab_a, lab_b = 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])
    pos = (116.0 * f[1] - 16.0) / 100.0 * LUT_SIZE
    k = pos.floor().clamp(0, SAMPLE_MAX).long()
    frac = torch.where((pos >= 0) & (pos < SAMPLE_MAX), pos - k, torch.zeros_like(pos))
    lo, hi = lut100[:, k], lut100[:, (k + 1).clamp_max(SAMPLE_MAX)]
    fy = (lo + (hi - lo) * frac + 16.0) / 116.0
    xyz = [D50_WHITE[0] * lab_finv(lab_a / 500.0 + fy), lab_finv(fy), D50_WHITE[2] * lab_finv(-lab_b / 200.0 + fy)]
    if mode == XYZ_LINKED:
        return xyz[1]
    m = XYZ_TO_PROPHOTO
    return float(m[1, 0]) * xyz[0] + float(m[1, 1]) * xyz[1] + float(m[1, 2]) * xyz[2]


def _l_curve(v: Values, x: Tensor, mode: int, smooth: bool) -> dict[str, Any]:
    """The L curve as :func:`lookup` reads it in ``mode`` (times 100, or re-derived)."""
    xs, ys = node_x(v, 0, "tonecurve"), node_y(v, 0, x.device, "tonecurve")
    kind = int(v["tonecurve_type"][0])
    lut_e = exact_lut(xs, ys, kind, False, x.device) * _F(100.0)  # float32: table *= 100.0f
    lut_s = curve_samples(xs, ys, kind, exact=False) / LUT_SIZE * 100.0 if needs_surrogate(x, ys, smooth) else None
    if mode != LAB_LINKED:
        rows = [torch.from_numpy(_derived_exact(tuple(r), mode)) for r in lut_e.double().tolist()]
        lut_e = torch.stack(rows).to(x.device)
        lut_s = _derived_smooth(lut_s, mode) if lut_s is not None else None
    return curve_from_luts(lut_e, lut_s, float(xs[-1]), x, smooth)


def _tonecurve_supported(v: Values, ctx: StageContext) -> str | None:
    mode, norm = int(v.get("tonecurve_autoscale_ab", RGB_LINKED)), int(v.get("preserve_colors", 3))
    if mode == LAB_INDEPENDENT:
        return "tonecurve: Lab independent channels (the a/b curves) is not modelled"
    if mode not in MODES:
        return f"tonecurve color space {mode} is not modelled"
    if mode == RGB_LINKED and not NORM_NONE <= norm <= NORM_POWER:
        return f"tonecurve preserve colors {norm} is not modelled"
    n, kind = num_nodes(v, 0, "tonecurve"), int(v["tonecurve_type"][0])
    return curve_problem("tonecurve L curve", n, kind, lambda: node_x(v, 0, "tonecurve"))


def tonecurve_curve(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """tone curve on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same (through darktable's Lab around the
    module). ``smooth``: the differentiable surrogate alone (what the exact stage's gradients are)."""
    mode = int(v.get("tonecurve_autoscale_ab", RGB_LINKED))
    c = _l_curve(v, x, mode, smooth)
    if mode == LAB_LINKED:
        lab = working_rgb_to_lab(x)
        big_l = lab[:, 0:1]
        l_in = big_l / 100.0
        l_out = lookup(c, l_in, smooth)
        low = c["lut"][:, LOW_INDEX] + (c["smooth"][:, LOW_INDEX] - c["smooth"][:, LOW_INDEX].detach())
        low = low.reshape(-1, 1, 1, 1)
        lit = l_in > 0.01
        scale = torch.where(lit, l_out / torch.where(lit, big_l, torch.ones_like(big_l)), low)
        return lab_to_working_rgb(torch.cat([l_out, lab[:, 1:3] * scale], 1))
    to_xyz = profile_rgb_to_xyz_d50("lin_rec2020")
    xyz = mix(to_xyz, x)
    if mode == XYZ_LINKED:
        return mix(np.linalg.inv(to_xyz), lookup(c, xyz, smooth))
    rgb = mix(XYZ_TO_PROPHOTO, xyz)
    norm = int(v.get("preserve_colors", 3))
    if norm == NORM_NONE:
        out = lookup(c, rgb, smooth)
    else:
        lum = rgb_norm(
            rgb, norm, (float(PROPHOTO_TO_XYZ[1, 0]), float(PROPHOTO_TO_XYZ[1, 1]), float(PROPHOTO_TO_XYZ[1, 2]))
        )
        ok = lum > 0.0
        lum_safe = torch.where(ok, lum, torch.ones_like(lum))
        out = torch.where(ok, lookup(c, lum_safe, smooth) / lum_safe, torch.ones_like(lum)) * rgb
    return mix(np.linalg.inv(to_xyz), mix(PROPHOTO_TO_XYZ, out))


@register_exact(
    "tonecurve",
    params=PARAMS,
    versions=(5,),
    note="darktable's tonecurve.c, linked modes (Lab, XYZ, RGB with every norm): the L curve's uint16 LUT, "
    "re-derived for XYZ / ProPhoto RGB, truncating look-ups, power-law extrapolation; gradients of the "
    "unrounded spline (L node y differentiable); Lab independent channels refused",
    supports=_tonecurve_supported,
)
def tonecurve(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return tonecurve_curve(x, v)
