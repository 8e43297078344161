"""darktable 4.2.1's first filmic (``filmic``, params version 3; deprecated since darktable 3.0, still run for old
edits) as an exact stage: ``src/iop/filmic.c``.

A Lab module (``IOP_CS_LAB``) on darktable's SSE2 code path (``process_sse2``): Lab to XYZ to ProPhoto RGB
(``dt_Lab_to_XYZ_sse2``, the matrices of ``colorspaces_inline_conversions.h``), a global desaturation towards Y,
then either (``preserve_color``) the max of RGB through the log encoding (``fastlog2``, the bit-trick log) and the
curve's LUT with the ratios re-applied, or each channel through the log encoding (sse.h's ``_mm_log2_ps``, a
polynomial) and the LUT; a desaturation of the non-linear parts by the ``grad_2`` window at the LUT index, the
output power (``_mm_pow_ps``: sse.h's polynomial ``exp2`` of ``log2``), back to Lab (``dt_XYZ_to_Lab_sse2``, whose
cube root is a bit-trick guess and one Halley step). Every one of those approximations is emulated in float32.

``compute_curve_lut``: the nodes from the sliders (toe and shoulder dropped where they collapse), the curve by
``dt_draw_curve_calc_values`` (darktable's 16-bit ``CurveDataSample``: cubic spline, Catmull-Rom, monotone Hermite,
or the average of the cubic and the monotone one), 65536 entries read without interpolation.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Pointwise. Gradients: the image (the LUTs' steps and the
approximations' bit tricks pass the true functions' gradients where they have one); the sliders build the LUT (one
value per batch, no gradient).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.ports.profile_gamma import fastlog2
from darkproxy.replica.ports.rgbcurve import CUBIC_SPLINE, MONOTONE_HERMITE, curve_samples
from darkproxy.replica.registry import StageContext, Values, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor
F = np.float32

LUT = 0x10000
OPTIMIZED = 3  # interpolator: the average of the cubic spline and the monotone Hermite curve
# colorspaces_inline_conversions.h's SSE2 matrices (columns: the coefficients of X, Y, Z / of R, G, B)
XYZ_TO_PROPHOTO = ((1.3459433, -0.2556075, -0.0511118), (-0.5445989, 1.5081673, 0.0205351), (0.0, 0.0, 1.2118128))
PROPHOTO_TO_XYZ = ((0.7976749, 0.1351917, 0.0313534), (0.2880402, 0.7118741, 0.0000857), (0.0, 0.0, 0.8252100))
D50 = (0.9642, 1.0, 0.8249)
# sse.h's minimax polynomials (LOG_POLY_DEGREE 5, EXP_POLY_DEGREE 4), Horner from the last coefficient
LOG_POLY = (2.8882704548164776201, -2.52074962577807006663, 1.48116647521213171641, -0.465725644288844778798,
            0.0596515482674574969533)  # fmt: skip
EXP_POLY = (1.0000026, 6.9300383e-1, 2.4144275e-1, 5.2011464e-2, 1.3534167e-2)


def _v(v: Values, name: str, default: float) -> float:
    return float(one_value(v.get(name, default), f"filmic: {name} builds the curve's LUT; one value per batch"))


def _poly(x: Tensor, coef: tuple[float, ...]) -> Tensor:
    """sse.h's ``POLYn``: Horner's rule in float32, ``((c_n x + c_{n-1}) x + ...) x + c_0``."""
    acc = torch.full_like(x, float(F(coef[-1])))
    for c in reversed(coef[:-1]):
        acc = acc * x + float(F(c))
    return acc


def mm_log2(x: Tensor) -> Tensor:
    """sse.h's ``_mm_log2_ps`` on float32 ``x``: the exponent field minus 127 plus ``P(m) (m - 1)`` of the mantissa
    ``m`` in [1, 2)."""
    bits = x.contiguous().view(torch.int32)
    exp = (((bits & 0x7F800000) >> 23) - 127).to(torch.float32)
    mant = ((bits & 0x007FFFFF) | 0x3F800000).view(torch.float32)
    return _poly(mant, LOG_POLY) * (mant - 1.0) + exp


def mm_exp2(x: Tensor) -> Tensor:
    """sse.h's ``_mm_exp2_ps`` on float32 ``x``: ``2^round(x - 0.5)`` (built in the exponent bits) times the
    polynomial of the remainder."""
    x = x.clamp(max=129.0).clamp(min=float(F(-126.99999)))
    ipart = torch.round(x - 0.5).to(torch.int32)  # _mm_cvtps_epi32: to nearest, ties to even
    fpart = x - ipart.to(torch.float32)
    expipart = ((ipart + 127) << 23).view(torch.float32)
    return expipart * _poly(fpart, EXP_POLY)


def mm_pow(x: Tensor, y: float) -> Tensor:
    """sse.h's ``_mm_pow_ps``: ``exp2(log2(x) y)``. Gradient: ``x^y``'s (where ``x > 0``)."""
    x32 = x.detach().to(torch.float32)
    fast = mm_exp2(mm_log2(x32) * float(F(y))).to(x.dtype)
    return straight_through(fast, x.clamp_min(1e-30) ** y)


def _mix(m: tuple[tuple[float, ...], ...], c: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The SSE2 matrix product: per output, ``(m0 c0 + m1 c1) + m2 c2`` in float32."""
    return tuple(  # type: ignore[return-value]
        (float(F(row[0])) * c[0] + float(F(row[1])) * c[1]) + float(F(row[2])) * c[2] for row in m
    )


def lab_to_xyz(lab: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``dt_Lab_to_XYZ_sse2`` of float32 Lab ``(B, 3, H, W)``: X, Y, Z ``(B, 1, H, W)``."""
    L, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    fl = L * float(F(1.0 / 116.0))
    fx = (a * float(F(1.0 / 500.0)) + fl) + float(F(0.137931034))
    fy = (fl + 0.0) + float(F(0.137931034))
    fz = (b * float(F(-1.0 / 200.0)) + fl) + float(F(0.137931034))
    eps = float(F(0.20689655172413796))
    k116, k16 = float(F(F(116.0 * 27.0) / F(24389.0))), float(F(F(16.0 * 27.0) / F(24389.0)))
    out = []
    for f, w in zip((fx, fy, fz), D50, strict=True):
        g = torch.where(f > eps, f * f * f, k116 * f - k16)
        out.append(float(F(w)) * g)
    return out[0], out[1], out[2]


def _cbrt_guess(x: Tensor) -> Tensor:
    """``lab_f_m_sse2``'s cube-root guess: the bits of ``x`` as an int, a float, divided by 3, rounded, plus
    709921077, read as a float."""
    bits = x.contiguous().view(torch.int32)
    q = torch.round(bits.to(torch.float32) / 3.0).to(torch.int32)
    return (q + 709921077).view(torch.float32)


def lab_f(x: Tensor) -> Tensor:
    """``lab_f_m_sse2`` on float32 ``x``: above 216/24389 the guessed cube root and one Halley step, below
    ``(kappa x + 16) / 116``. Gradient: the true ``lab_f``'s."""
    x32 = x.detach().to(torch.float32)
    a = _cbrt_guess(x32)
    a3 = a * a * a
    big = a * ((a3 + x32) + x32) / ((a3 + a3) + x32)
    small = (float(F(24389.0 / 27.0)) * x32 + 16.0) / 116.0
    fast = torch.where(x32 > float(F(216.0 / 24389.0)), big, small).to(x.dtype)
    smooth = torch.where(x > 216.0 / 24389.0, x.clamp_min(1e-12) ** (1.0 / 3.0), (24389.0 / 27.0 * x + 16.0) / 116.0)
    return straight_through(fast, smooth)


def xyz_to_lab(X: Tensor, Y: Tensor, Z: Tensor) -> Tensor:
    """``dt_XYZ_to_Lab_sse2``: L = 116 (f(Y) - f(0)), a = 500 (f(X / 0.9642) - f(Y)), b = 200 (f(Y) - f(Z / 0.8249))."""
    fx, fy, fz = lab_f(X / float(F(0.9642))), lab_f(Y), lab_f(Z / float(F(0.8249)))
    f0 = float(F(16.0) / F(116.0))
    return torch.cat([116.0 * (fy - f0), 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def curve_nodes(v: Values) -> tuple[list[float], list[float], float, float]:
    """``compute_curve_lut``'s nodes ``(xs, ys)`` (float32 values) and its latitude ``(min, max)``."""
    white_source, black_source = F(_v(v, "white_point_source", 2.45)), F(_v(v, "black_point_source", -8.65))
    dynamic_range = white_source - black_source
    grey_log = F(abs(black_source)) / dynamic_range
    gpt, bpt, wpt = (F(_v(v, n, d)) for n, d in (("grey_point_target", 18.0), ("black_point_target", 0.0),
                                                  ("white_point_target", 100.0)))  # fmt: skip
    power = F(_v(v, "output_power", 2.2))
    black_display = F(min(max(bpt, F(0.0)), gpt)) / F(100.0)
    grey_display = F(math.pow(float(F(min(max(gpt, bpt), wpt)) / F(100.0)), float(F(1.0) / power)))
    white_display = F(min(max(wpt, gpt), F(100.0))) / F(100.0)
    latitude = F(min(max(F(_v(v, "latitude_stops", 2.0)), F(0.01)), dynamic_range * F(0.99)))
    balance = F(min(max(F(_v(v, "balance", 0.0)), F(-50.0)), F(50.0))) / F(100.0)
    contrast = F(_v(v, "contrast", 1.5))
    toe_log = grey_log - latitude / dynamic_range * F(abs(black_source / dynamic_range))
    shoulder_log = grey_log + latitude / dynamic_range * white_source / dynamic_range
    linear_intercept = grey_display - (contrast * grey_log)
    toe_display = toe_log * contrast + linear_intercept
    shoulder_display = shoulder_log * contrast + linear_intercept
    norm = F(math.pow(float(F(math.pow(float(contrast), 2.0)) + F(1.0)), 0.5))
    coeff = -(dynamic_range - latitude) / dynamic_range * balance
    toe_display += coeff * contrast / norm
    shoulder_display += coeff * contrast / norm
    toe_log += coeff / norm
    shoulder_log += coeff / norm
    toe_log = F(min(max(toe_log, F(0.0)), grey_log))
    shoulder_log = F(min(max(shoulder_log, grey_log), F(1.0)))
    toe_display = F(min(max(toe_display, black_display), grey_display))
    shoulder_display = F(min(max(shoulder_display, grey_display), white_display))
    toe_lost = (toe_log == grey_log and toe_display == grey_display) or (
        toe_log == 0.0 and toe_display == black_display
    )
    shoulder_lost = (shoulder_log == grey_log and shoulder_display == grey_display) or (
        shoulder_log == 1.0 and shoulder_display == white_display
    )
    if shoulder_lost and not toe_lost:
        xs, ys, lat = (
            [0.0, toe_log, grey_log, 1.0],
            [black_display, toe_display, grey_display, white_display],
            (toe_log, 1.0),
        )
    elif toe_lost and not shoulder_lost:
        xs, ys = [0.0, grey_log, shoulder_log, 1.0], [black_display, grey_display, shoulder_display, white_display]
        lat = (0.0, shoulder_log)
    elif toe_lost and shoulder_lost:
        xs, ys, lat = [0.0, grey_log, 1.0], [black_display, grey_display, white_display], (0.0, 1.0)
    else:
        xs, ys = [0.0, toe_log, shoulder_log, 1.0], [black_display, toe_display, shoulder_display, white_display]
        lat = (toe_log, shoulder_log)
    return [float(x) for x in xs], [float(y) for y in ys], float(lat[0]), float(lat[1])


def tables(v: Values) -> tuple[Tensor, Tensor]:
    """``commit_params``' 65536-entry ``table`` (the curve, float32) and ``grad_2`` (the desaturation window)."""
    xs, ys, lat_min, lat_max = curve_nodes(v)
    x32 = np.array(xs, dtype=np.float32)
    y = torch.tensor([ys], dtype=torch.float32)
    interp = int(_v(v, "interpolator", CUBIC_SPLINE))

    def lut(kind: int) -> Tensor:
        samples = curve_samples(x32, y, kind, exact=True)[0].to(torch.float32)
        return samples * float(F(1.0 / LUT))  # min + (max - min) * sample * (1.0f / 0x10000), min 0 and max 1

    if interp == OPTIMIZED:
        table = (lut(CUBIC_SPLINE) + lut(MONOTONE_HERMITE)) / 2.0
    else:
        table = lut(interp if CUBIC_SPLINE < interp <= MONOTONE_HERMITE else CUBIC_SPLINE)
    latitude, center = F(lat_max) - F(lat_min), (F(lat_max) + F(lat_min)) / F(2.0)
    saturation = F(_v(v, "saturation", 100.0)) / F(100.0)
    sigma = saturation * saturation * latitude * latitude
    k = np.arange(LUT, dtype=np.float32) / np.float32(65536.0)
    if sigma != 0.0:
        arg = (np.float32(-0.5) * (center - k) * (center - k) / sigma).astype(np.float32)
        grad = np.exp(arg.astype(np.float64)).astype(np.float32)  # glibc's expf, correctly rounded
    else:
        grad = np.zeros(LUT, np.float32)
    return table, torch.from_numpy(grad)


def _index(u: Tensor) -> Tensor:
    """``(int)CLAMP(u * 0x10000, 0, 0xffff)`` of float32 ``u``: the LUT entry ``process_sse2`` reads (no
    interpolation, no extrapolation: rgbcurve's ``lookup`` carries both)."""
    return (u.detach().to(torch.float32) * float(LUT)).clamp(0.0, float(LUT - 1)).to(torch.int64)


def _lookup(table: Tensor, u: Tensor) -> Tensor:
    """``table[_index(u)]``, with the table's slope as gradient."""
    idx = _index(u)
    t = table.to(u.dtype)
    fast = t[idx]
    slope = (t[(idx + 1).clamp(max=LUT - 1)] - t[(idx - 1).clamp(min=0)]) * (LUT / 2.0)
    return fast + slope.detach() * (u - u.detach())


def _supported(v: Values, ctx: StageContext) -> str | None:
    xs, _, _, _ = curve_nodes(v)
    if not all(b > a for a, b in zip(xs, xs[1:], strict=False)):
        return "filmic: its curve's nodes coincide at these settings (darktable's spline divides by zero there)"
    return lab_placement("filmic")(v, ctx)


@register_exact(
    "filmic",
    versions=(3,),
    note="darktable's filmic.c (process_sse2): the log encoding, the 16-bit curve LUT and the desaturation window, "
    "sse.h's log2 / exp2 polynomials, fastlog2 and the SSE2 Lab conversions emulated in float32",
    supports=_supported,
)
def filmic(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """filmic on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    table, grad_2 = (t.to(x.device) for t in tables(v))
    grey = F(_v(v, "grey_point_source", 18.0)) / F(100.0)
    black = F(_v(v, "black_point_source", -8.65))
    dynamic_range = F(_v(v, "white_point_source", 2.45)) - black
    global_sat = F(_v(v, "global_saturation", 100.0))
    power = float(F(_v(v, "output_power", 2.2)))
    lab = working_rgb_to_lab(x).to(torch.float32)
    X, Y, Z = lab_to_xyz(lab)
    rgb = list(_mix(XYZ_TO_PROPHOTO, (X, Y, Z)))
    if global_sat != F(100.0):
        s = float(global_sat / F(100.0))
        rgb = [Y + s * (c - Y) for c in rgb]
    eps = float(F(2.0**-16))
    if bool(_v(v, "preserve_color", 0)):
        mx = torch.maximum(torch.maximum(rgb[0], rgb[1]), rgb[2])
        ratios = [c / mx for c in rgb]
        m = mx / float(grey)
        m32 = m.detach()
        fast = (fastlog2(m32.clamp_min(eps)) - float(black)) / float(dynamic_range)
        log = straight_through(fast, (torch.log2(m.clamp_min(eps)) - float(black)) / float(dynamic_range))
        u = torch.where(m > eps, log, torch.full_like(m, eps)).clamp(0.0, 1.0)
        curve = _lookup(table, u)
        concavity = grad_2[_index(u)]
        rgb = [r * curve for r in ratios]
        luma = curve
    else:
        us = []
        for c in rgb:
            t = torch.maximum(c / float(grey), torch.full_like(c, eps))
            log = straight_through(mm_log2(t.detach()), torch.log2(t))
            us.append(((log - float(black)) / float(dynamic_range)).clamp(0.0, 1.0))
        _, yl, _ = _mix(PROPHOTO_TO_XYZ, (us[0], us[1], us[2]))
        concavity = grad_2[_index(yl)]
        rgb = [_lookup(table, u) for u in us]
        _, luma, _ = _mix(PROPHOTO_TO_XYZ, (rgb[0], rgb[1], rgb[2]))
    rgb = [mm_pow((luma + concavity * (c - luma)).clamp(0.0, 1.0), power) for c in rgb]
    out = xyz_to_lab(*_mix(PROPHOTO_TO_XYZ, (rgb[0], rgb[1], rgb[2])))
    return lab_to_working_rgb(out.to(x.dtype))
