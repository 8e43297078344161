"""darktable's color balance (``colorbalance``, the legacy module, params version 3) as an exact stage:
``src/iop/colorbalance.c``.

A Lab module (``IOP_CS_LAB``, after colorin in every order): the pipe hands it Lab (from the working
profile), it converts to RGB, grades there and returns Lab. Ported as darktable's SSE path runs it (its
default codepath), every mode:

* ``lift, gamma, gain (sRGB)`` (``mode`` 2, legacy): Lab -> XYZ -> sRGB (D50 matrix, sRGB transfer
  function), ``((rgb - 1) lift + 1) gain`` clipped at 0, ``^(1 / gamma)``, back; no saturation or contrast
  (this path ignores them);
* ``lift, gamma, gain (ProPhoto RGB)`` (0): Lab -> XYZ -> linear ProPhoto, input saturation around the
  pixel's Y, ``^(1/2.2)``, lift/gain, ``^(2.2 / gamma)``, output saturation, contrast around ``grey``;
* ``slope, offset, power (ProPhoto RGB)`` (1): as 0 with the CDL ``(rgb slope + offset)^power``.

The three factors (``lift[0]``, ``gamma[0]``, ``gain[0]``) and the channels (``[1..3]`` red, green, blue):
commit_params removes the luminance (ProPhoto Y) of the channel triplets in modes 0 and 1. darktable skips
the saturation and contrast steps at exactly 1 (so values there are the untouched ones; their gradients
those of the step, continuous there). Its approximate maths is emulated on float32 images: ``_mm_pow_ps``
(``exp2`` and ``log2`` polynomials), the SSE cube root of ``dt_XYZ_to_Lab_sse2`` (bit trick + one Halley
step), with straight-through gradients of the true functions; float64 images (gradcheck) take the true
functions' values. The pipe's conversions around the module are :mod:`..science`'s (on darktable's tap-outs
the input's Lab round trip is already in the image).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Differentiable in the image and in every element of
``lift``, ``gamma``, ``gain`` and in ``saturation``, ``contrast``, ``grey``, ``saturation_out``. Refused:
a mode other than 0-2.

Measured (``tests/replica/test_colorbalance.py``, 7 settings over the modes and the skipped steps, 7 runs):
bit for bit up to 5e-6 (100 dB) in a run without darktable's run-to-run render noise, the worst setting per
run 76.6-84.5 dB with it; with the true pow and cube root instead of darktable's approximations 90.6-100 dB.
The replica on darktable's "generic film" preset (a 512 px synthetic raw at 256 px): 100 dB alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import Vec3, lab_f, lab_to_working_rgb, mix3, safe_pow, working_rgb_to_lab

Tensor = torch.Tensor
_F = np.float32
LIFT_GAMMA_GAIN, SLOPE_OFFSET_POWER, LEGACY = 0, 1, 2
MODES = {
    LIFT_GAMMA_GAIN: "lift, gamma, gain (ProPhoto RGB)",
    SLOPE_OFFSET_POWER: "slope, offset, power",
    LEGACY: "sRGB",
}
ARRAYS = ("lift", "gamma", "gain")
PARAMS = tuple(f"{a}[{i}]" for a in ARRAYS for i in range(4)) + ("saturation", "contrast", "grey", "saturation_out")

# common/colorspaces_inline_conversions.h, the SSE conversions (float32 constants)
XYZ_TO_PROPHOTO = np.array(
    [[1.3459433, -0.2556075, -0.0511118], [-0.5445989, 1.5081673, 0.0205351], [0.0, 0.0, 1.2118128]], np.float32
)
PROPHOTO_TO_XYZ = np.array(
    [[0.7976749, 0.1351917, 0.0313534], [0.2880402, 0.7118741, 0.0000857], [0.0, 0.0, 0.8252100]], np.float32
)
XYZ_TO_SRGB = np.array(
    [[3.1338561, -1.6168667, -0.4906146], [-0.9787684, 1.9161415, 0.0334540], [0.0719453, -0.2289914, 1.4052427]],
    np.float32,
)
SRGB_TO_XYZ = np.array(
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]],
    np.float32,
)
D50 = (float(_F(0.9642)), 1.0, float(_F(0.8249)))
LAB_EPS = float(_F(216.0 / 24389.0))
LAB_KAPPA = float(_F(24389.0 / 27.0))
LAB_F0 = float(_F(_F(16.0) / _F(116.0)))  # lab_f(0): the 4th lane darktable subtracts from L
INV_EPS = float(_F(0.20689655172413796))
K116, K16 = float(_F(116.0 * 27.0 / 24389.0)), float(_F(16.0 * 27.0 / 24389.0))
OFFSET_116 = float(_F(0.137931034))
EXP_POLY = [float(_F(c)) for c in (1.0000026, 6.9300383e-1, 2.4144275e-1, 5.2011464e-2, 1.3534167e-2)]
LOG_POLY = [
    float(_F(c))
    for c in (
        2.8882704548164776201,
        -2.52074962577807006663,
        1.48116647521213171641,
        -0.465725644288844778798,
        0.0596515482674574969533,
    )
]
INV_22, G22 = float(_F(_F(1.0) / _F(2.2))), float(_F(2.2))


# ------------------------------------------------------------------ darktable's SSE approximations
def _horner(x: Tensor, coeffs: list[float]) -> Tensor:
    p = torch.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        p = p * x + c
    return p


def _log2_sse(x: Tensor) -> Tensor:
    """``_mm_log2_ps`` on float32 (exponent + polynomial of the mantissa)."""
    i = x.view(torch.int32)
    e = (((i & 0x7F800000) >> 23) - 127).to(torch.float32)
    m = ((i & 0x007FFFFF) | 0x3F800000).view(torch.float32)
    return _horner(m, LOG_POLY) * (m - 1.0) + e


def _exp2_sse(x: Tensor) -> Tensor:
    """``_mm_exp2_ps`` on float32."""
    x = x.clamp(float(_F(-126.99999)), 129.0)
    ip = torch.round(x - 0.5).to(torch.int32)  # _mm_cvtps_epi32: nearest, ties to even
    fp = x - ip.to(torch.float32)
    return ((ip + 127) << 23).view(torch.float32) * _horner(fp, EXP_POLY)


def _straight(exact: Callable[[], Tensor], smooth: Tensor) -> Tensor:
    """darktable's float32 values (``exact()``, no gradient) with ``smooth``'s gradients (``smooth`` alone
    off float32)."""
    if smooth.dtype != torch.float32:
        return smooth
    with torch.no_grad():
        e = exact()
    return smooth + (e - smooth).detach()


def _pow(x: Tensor, y: Any) -> Tensor:
    """``_mm_pow_ps(x, y)`` for ``x >= 0``: ``exp2(log2(x) y)``."""
    yt = torch.as_tensor(y, dtype=x.dtype, device=x.device)
    return _straight(lambda: _exp2_sse(_log2_sse(x.detach()) * yt.detach()), safe_pow(x, yt))


def _lab_f_sse(x: Tensor) -> Tensor:
    """``lab_f_m_sse2``: the cube root as ``bits(round(float(bits(x)) / 3) + 709921077)`` and one Halley step."""

    def exact() -> Tensor:
        xd = x.detach()
        a = (torch.round(xd.view(torch.int32).to(torch.float32) / 3.0).to(torch.int32) + 709921077).view(torch.float32)
        a3 = a * a * a
        big = a * (a3 + xd + xd) / (a3 + a3 + xd)
        return torch.where(xd > LAB_EPS, big, (LAB_KAPPA * xd + 16.0) / 116.0)

    return _straight(exact, lab_f(x))


# ------------------------------------------------------------------ the SSE colour conversions
def _lab_to_xyz(lab: Tensor) -> Vec3:
    """``dt_Lab_to_XYZ_sse2``."""
    fx = lab[:, 1:2] * float(_F(1.0 / 500.0))
    fy = lab[:, 0:1] * float(_F(1.0 / 116.0))
    fz = lab[:, 2:3] * float(_F(-1.0 / 200.0))

    def finv(t: Tensor) -> Tensor:
        return torch.where(t > INV_EPS, t * t * t, K116 * t - K16)

    return D50[0] * finv(fx + fy + OFFSET_116), finv(fy + OFFSET_116), D50[2] * finv(fz + fy + OFFSET_116)


def _xyz_to_lab(xyz: Vec3) -> Tensor:
    """``dt_XYZ_to_Lab_sse2``."""
    fx, fy, fz = (_lab_f_sse(c / d) for c, d in zip(xyz, D50, strict=True))
    return torch.cat([116.0 * (fy - LAB_F0), 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def _srgb_encode(c: Tensor) -> Tensor:
    """``dt_XYZ_to_sRGB_sse2``'s transfer function."""
    pos = c.clamp_min(0.0)  # the power's branch is only taken above 0.0031308
    return torch.where(c <= float(_F(0.0031308)), 12.92 * c, 1.055 * _pow(pos, float(_F(1.0 / 2.4))) - 0.055)


def _srgb_decode(c: Tensor) -> Tensor:
    """``dt_sRGB_to_XYZ_sse2``'s transfer function."""
    base = ((c + 0.055) / 1.055).clamp_min(0.0)  # its branch is only taken above 0.04045
    return torch.where(c <= float(_F(0.04045)), c / 12.92, _pow(base, 2.4))


# ------------------------------------------------------------------ the params (commit_params)
def _elem(v: Values, arr: str, i: int, x: Tensor) -> Tensor:
    """Element ``i`` of ``lift``/``gamma``/``gain`` (``v["lift[i]"]`` when given: a regressed slider)."""
    key = f"{arr}[{i}]"
    return column(v[key] if key in v else v.get(arr, [1.0] * 4)[i], x)


def _channels(v: Values, arr: str, x: Tensor, mode: int) -> list[Tensor]:
    """``[factor, r, g, b]`` as commit_params stores them: modes 0 and 1 take the triplet's ProPhoto Y off."""
    f, r, g, b = (_elem(v, arr, i, x) for i in range(4))
    if mode == LEGACY:
        return [f, r, g, b]
    y = float(PROPHOTO_TO_XYZ[1, 0]) * r + float(PROPHOTO_TO_XYZ[1, 1]) * g + float(PROPHOTO_TO_XYZ[1, 2]) * b
    return [f, (r - y) + 1.0, (g - y) + 1.0, (b - y) + 1.0]


def _unless_one(p: Any, x: Tensor, step: Callable[[Tensor, Any], Tensor]) -> Tensor:
    """darktable skips ``step`` where its param ``p`` is exactly 1: the untouched values there, with the
    step's gradient in ``p`` (and the identity's in ``x``)."""
    if not isinstance(p, Tensor):
        return x if float(p) == 1.0 else step(x, p)
    pc = column(p, x)
    in_p = step(x.detach(), pc)
    return torch.where(pc == 1.0, x + (in_p - in_p.detach()), step(x, pc))


def _supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", SLOPE_OFFSET_POWER))
    if mode not in MODES:
        return f"colorbalance mode {mode}: darktable 4.2 has modes 0-2"
    return None


@register_exact(
    "colorbalance",
    params=PARAMS,
    versions=(3,),
    note="darktable's colorbalance.c (SSE path): lift/gamma/gain in sRGB or ProPhoto, slope/offset/power, "
    "saturation and fulcrum contrast, its approximate pow and cube root",
    supports=_supported,
)
def colorbalance(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    mode = int(v.get("mode", SLOPE_OFFSET_POWER))
    lift, gamma, gain = (_channels(v, a, x, mode) for a in ARRAYS)
    gain_c = [gain[c] * gain[0] for c in (1, 2, 3)]
    xyz = _lab_to_xyz(working_rgb_to_lab(x))
    lift_c = [2.0 - lift[c] * lift[0] for c in (1, 2, 3)]  # modes 0 and 2
    g = [gamma[c] * gamma[0] for c in (1, 2, 3)]
    gamma_inv = [torch.where(t != 0.0, 1.0 / torch.where(t != 0.0, t, torch.ones_like(t)), 1e6) for t in g]
    if mode == LEGACY:
        rgb = [_srgb_encode(c) for c in mix3(XYZ_TO_SRGB, xyz)]
        rgb = [
            _pow((((c - 1.0) * lc + 1.0) * gc).clamp_min(0.0), gi)
            for c, lc, gc, gi in zip(rgb, lift_c, gain_c, gamma_inv, strict=True)
        ]
        return lab_to_working_rgb(
            _xyz_to_lab(mix3(SRGB_TO_XYZ, (_srgb_decode(rgb[0]), _srgb_decode(rgb[1]), _srgb_decode(rgb[2]))))
        )
    luma = xyz[1]
    rgb_t = torch.cat(mix3(XYZ_TO_PROPHOTO, xyz), 1)
    rgb_t = _unless_one(v.get("saturation", 1.0), rgb_t, lambda t, s: luma + column(s, t) * (t - luma))
    rgb = list(rgb_t.split(1, 1))
    if mode == LIFT_GAMMA_GAIN:
        rgb = [_pow(c.clamp_min(0.0), INV_22) for c in rgb]
        rgb = [
            _pow((((c - 1.0) * lc + 1.0) * gc).clamp_min(0.0), gi * G22)
            for c, lc, gc, gi in zip(rgb, lift_c, gain_c, gamma_inv, strict=True)
        ]
    else:
        offset = [(lift[c] + lift[0]) - 2.0 for c in (1, 2, 3)]
        power = [(2.0 - gamma[c]) * (2.0 - gamma[0]) for c in (1, 2, 3)]
        rgb = [_pow((c * gc + oc).clamp_min(0.0), pc) for c, gc, oc, pc in zip(rgb, gain_c, offset, power, strict=True)]
    rgb_t = torch.cat(rgb, 1)

    def sat_out(t: Tensor, s: Any) -> Tensor:
        y = mix3(PROPHOTO_TO_XYZ, (t[:, 0:1], t[:, 1:2], t[:, 2:3]))[1]
        return y + column(s, t) * (t - y)

    rgb_t = _unless_one(v.get("saturation_out", 1.0), rgb_t, sat_out)
    grey = column(v.get("grey", 18.0), x) / 100.0

    def contrast(t: Tensor, c: Any) -> Tensor:
        ct = column(c, t)
        inv = torch.where(ct != 0.0, 1.0 / torch.where(ct != 0.0, ct, torch.ones_like(ct)), 1e6)
        return _pow(t.clamp_min(0.0) / grey, inv) * grey

    rgb_t = _unless_one(v.get("contrast", 1.0), rgb_t, contrast)
    xyz_out = mix3(PROPHOTO_TO_XYZ, (rgb_t[:, 0:1], rgb_t[:, 1:2], rgb_t[:, 2:3]))
    return lab_to_working_rgb(_xyz_to_lab(xyz_out))
