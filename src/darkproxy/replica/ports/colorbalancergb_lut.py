"""color balance rgb's gamut LUTs (darktable 4.2.1's and 5's) and the working profile's matrices they are
built from: numpy float32, as ``commit_params()`` builds them, and ``lookup_gamut`` in torch. A helper of
:mod:`darkproxy.replica.ports.colorbalancergb` (the port); no slider moves them."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from darkproxy.colour.matrices import (
    XYZ_D50_TO_D65_CAT16,
    XYZ_D65_TO_D50_CAT16,
    XYZ_D65_TO_LMS_2006,
    profile_rgb_to_xyz_d50,
)
from darkproxy.replica.science import JZ_A, JZ_B, JZ_C1, JZ_C2, JZ_C3, JZ_D, JZ_D0, JZ_G, JZ_M, JZ_N, JZ_P

Tensor = torch.Tensor
_F = np.float32
_XYZ_D50_TO_D65_CAT16 = XYZ_D50_TO_D65_CAT16.astype(_F)
_XYZ_D65_TO_D50_CAT16 = XYZ_D65_TO_D50_CAT16.astype(_F)
_XYZ_D65_TO_LMS_2006 = XYZ_D65_TO_LMS_2006.astype(_F)
# darktable UCS 2022's forward constants (xyY_to_dt_UCS_UV)
UCS_X = (-0.783941002840055, 0.745273540913283, 0.318707282433486)
UCS_Y = (0.277512987809202, -0.205375866083878, 2.16743692732158)
UCS_OFF = (0.153836578598858, -0.165478376301988, 0.291320554395942)
UCS_FACT = (1.39656225667, 1.4513954287)
UCS_HALF = (1.49217352929, 1.52488637914)
LUT_ELEM = 360
LUT_ELEM_5 = 512  # darktable 5's LUT_ELEM (common/math.h)
_STEPS = 92
PI_F = float(np.float32(math.pi))  # M_PI_F


# ------------------------------------------------------------------ the working profile (numpy, float64)
@functools.lru_cache(maxsize=1)
def _rec2020_matrices() -> tuple[np.ndarray, np.ndarray]:
    """darktable's linear Rec2020 working profile: ``matrix_in`` (RGB -> XYZ D50) as
    lcms builds it (``cmsCreateRGBProfile``: primaries and the D65 white of
    ``colorspaces.c``, Bradford-adapted to D50), stored as floats, and
    ``matrix_out`` its inverse (``mat3SSEinv``), float32-rounded, float64 arrays."""
    m_in = profile_rgb_to_xyz_d50("lin_rec2020").astype(_F).astype(np.float64)  # stored as floats
    m_out = np.linalg.inv(m_in).astype(_F).astype(np.float64)
    return m_in, m_out


def mul_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``dt_colormatrix_mul`` (float32 products and sums)."""
    return (a.astype(_F) @ b.astype(_F)).astype(_F)


@functools.lru_cache(maxsize=1)
def pipe_matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """process()'s premultiplied matrices (float32 values in float64 arrays):
    pipe RGB -> CIE 2006 LMS D65, XYZ D65 -> pipe RGB, and (for the LUTs) pipe RGB -> XYZ D65."""
    m_in, m_out = _rec2020_matrices()
    rgb_to_xyz65 = mul_f32(_XYZ_D50_TO_D65_CAT16, m_in)
    rgb_to_lms = mul_f32(_XYZ_D65_TO_LMS_2006, rgb_to_xyz65)
    xyz65_to_rgb = mul_f32(m_out, _XYZ_D65_TO_D50_CAT16)
    return rgb_to_lms.astype(np.float64), xyz65_to_rgb.astype(np.float64), rgb_to_xyz65.astype(np.float64)


# ------------------------------------------------------------------ the gamut LUTs (numpy, float32)
def _np_xyz_to_jzazbz(xyz: np.ndarray) -> np.ndarray:
    """dt_XYZ_2_JzAzBz on ``(3, N)`` float32 XYZ D65 -> ``(3, N)`` JzAzBz."""
    X, Y, Z = xyz
    xp = _F(JZ_B) * X - _F(JZ_B - 1.0) * Z
    yp = _F(JZ_G) * Y - _F(JZ_G - 1.0) * X
    lms = JZ_M @ np.stack([xp, yp, Z])
    lms = np.power(np.maximum(lms / _F(10000.0), _F(0.0)), _F(JZ_N))
    lms = np.power((_F(JZ_C1) + _F(JZ_C2) * lms) / (_F(1.0) + _F(JZ_C3) * lms), _F(JZ_P))
    jab = (JZ_A @ lms).astype(_F)
    jab[0] = np.maximum((_F(1.0 + JZ_D) * jab[0]) / (_F(1.0) + _F(JZ_D) * jab[0]) - _F(JZ_D0), _F(0.0))
    return jab


@functools.lru_cache(maxsize=4)
def gamut_lut(formula: int, dt5: bool = False) -> np.ndarray:
    """``d->gamut_LUT`` of commit_params() for linear Rec2020, ``(360,)`` float32 (``dt5``: ``(512,)``):
    JzAzBz (0): the max saturation Cz/Jz of the RGB cube per hue, 5-tap box-averaged;
    darktable UCS (1): the squared colourfulness M² of the primaries' triangle per hue."""
    _, _, rgb_to_xyz = pipe_matrices()
    m = rgb_to_xyz.astype(_F)
    n = LUT_ELEM_5 if dt5 else LUT_ELEM
    if formula == 1 and dt5:
        return _ucs_lut_5(m)
    if formula == 0:
        g = np.arange(_STEPS, dtype=_F) / _F(_STEPS - 1)
        rgb = np.stack(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1)
        jab = _np_xyz_to_jzazbz((m @ rgb).astype(_F))
        c = np.sqrt(jab[2] * jab[2] + jab[1] * jab[1])
        h = np.arctan2(jab[2], jab[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            sat = np.where(jab[0] > 0, c / jab[0], _F(0.0)).astype(_F)
        t = _F(n - 1) * (h + _F(PI_F)) / _F(2.0 * PI_F)
        idx = np.floor(t + _F(0.5)).astype(np.int64) % n  # roundf: t >= 0 (5.x wraps n to 0; 4.2's t < n)
        raw = np.zeros(n, dtype=_F)
        np.maximum.at(raw, idx, sat)
        # anti-aliasing: 5-tap box average, cyclic at the bounds
        return ((np.roll(raw, 2) + np.roll(raw, 1) + raw + np.roll(raw, -1) + np.roll(raw, -2)) / _F(5.0)).astype(_F)
    # darktable UCS: march the gamut boundary in CIE xy by angular steps of 0.02°
    white = np.array([0.31269999999999992, 0.32899999999999996], dtype=_F)
    xyz_p = m.T  # rows: the primaries in XYZ D65
    xy_p = (xyz_p[:, :2] / xyz_p.sum(1, keepdims=True)).astype(_F)
    h_p = np.arctan2(xy_p[:, 1] - white[1], xy_p[:, 0] - white[0]).astype(_F)  # red, green, blue

    i = np.arange(50 * 360, dtype=_F)
    angle = (-_F(PI_F) + i / _F(50.0 * 360.0) * _F(2.0) * _F(PI_F)).astype(_F)
    x_t, y_t = _march_triangle(angle, xy_p, h_p, white)
    uvd = [_F(UCS_X[c]) * x_t + _F(UCS_Y[c]) * y_t + _F(UCS_OFF[c]) for c in range(3)]
    uv = [uvd[c] / uvd[2] for c in range(2)]
    us = [_F(UCS_FACT[c]) * uv[c] / (np.abs(uv[c]) + _F(UCS_HALF[c])) for c in range(2)]
    u_p = _F(-1.124983854323892) * us[0] - _F(0.980483721769325) * us[1]
    v_p = _F(1.86323315098672) * us[0] + _F(1.971853092390862) * us[1]
    hue = (np.arctan2(v_p, u_p) * _F(180.0) / _F(PI_F)).astype(_F)
    h_round = np.floor(np.abs(hue) + _F(0.5)) * np.sign(hue)  # roundf
    keep = np.abs(hue - h_round) < _F(0.02)
    index = (h_round + 180).astype(np.int64)
    index = np.where(index < 0, index + 360, index)
    index = np.where(index > 359, index - 360, index)
    lut = np.zeros(LUT_ELEM, dtype=_F)
    lut[index[keep]] = (u_p * u_p + v_p * v_p)[keep]  # the last write wins, as in a serial loop
    return lut


def _ucs_lut_5(m: np.ndarray) -> np.ndarray:
    """darktable 5's ``dt_UCS_22_build_gamut_LUT``: the primaries' triangle marched from D65 (colorspaces.h's
    0.31271, 0.32902) by 50 samples per entry, M² averaged per entry (``(LUT_ELEM - 1)`` scaled, wrapped),
    float32."""
    n = LUT_ELEM_5
    white = np.array([0.31271, 0.32902], dtype=_F)
    xyz_p = np.maximum(m.T, _F(0.0))  # dt_D65_XYZ_to_xyY clamps at 0
    xy_p = (xyz_p[:, :2] / xyz_p.sum(1, keepdims=True)).astype(_F)
    h_p = np.arctan2(xy_p[:, 1] - white[1], xy_p[:, 0] - white[0]).astype(_F)
    angle = (-_F(PI_F) + np.arange(50 * n, dtype=_F) / _F(50 * n) * _F(2.0) * _F(PI_F)).astype(_F)
    x_t, y_t = _march_triangle(angle, xy_p, h_p, white)
    uvd = [_F(UCS_X[c]) * x_t + _F(UCS_Y[c]) * y_t + _F(UCS_OFF[c]) for c in range(3)]
    tiny = np.finfo(_F).tiny  # FLT_MIN: the divisor keeps its sign
    div = np.where(uvd[2] >= 0, np.maximum(uvd[2], tiny), np.minimum(uvd[2], -tiny)).astype(_F)
    uv = [uvd[c] / div for c in range(2)]
    us = [_F(UCS_FACT[c]) * uv[c] / (np.abs(uv[c]) + _F(UCS_HALF[c])) for c in range(2)]
    u_p = _F(-1.124983854323892) * us[0] - _F(0.980483721769325) * us[1]
    v_p = _F(1.86323315098672) * us[0] + _F(1.971853092390862) * us[1]
    hue = np.arctan2(v_p, u_p).astype(_F)
    index = np.floor(_F(n - 1) * (hue + _F(PI_F)) / _F(2.0 * PI_F) + _F(0.5)).astype(np.int64) % n
    total = np.zeros(n, dtype=np.float64)
    np.add.at(total, index, (u_p * u_p + v_p * v_p).astype(np.float64))
    count = np.bincount(index, minlength=n).astype(np.float64)
    return (total / np.maximum(count, 1.0)).astype(_F)


def _march_triangle(
    angle: np.ndarray, xy_p: np.ndarray, h_p: np.ndarray, white: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gamut LUTs' march: for each hue ``angle`` (radians about ``white`` in xy), where the ray meets the
    primaries' triangle (edges blue-red, red-green, green-blue, the first whose angular span holds it; 0 if
    none), float32."""

    def delta_h(a: np.ndarray | np.float32, b: np.ndarray | np.float32) -> np.ndarray:
        d = np.asarray(a - b, dtype=_F)
        d = d + np.where(d < -_F(PI_F), _F(2.0 * PI_F), _F(0.0))
        return (d - np.where(d > _F(PI_F), _F(2.0 * PI_F), _F(0.0))).astype(_F)

    tan_a = np.tan(angle).astype(_F)
    x_t = np.zeros_like(angle)
    y_t = np.zeros_like(angle)
    done = np.zeros(angle.shape, dtype=bool)
    for a_i, b_i in ((2, 0), (0, 1), (1, 2)):  # the edges blue-red, red-green, green-blue
        t_i = delta_h(angle, h_p[a_i]) / delta_h(h_p[b_i], h_p[a_i])
        on = (t_i >= 0) & (t_i <= 1) & ~done
        pa, pb = xy_p[a_i], xy_p[b_i]
        t = (white[1] - pa[1] + tan_a * (pa[0] - white[0])) / (pb[1] - pa[1] + tan_a * (pa[0] - pb[0]))
        x_t = np.where(on, pa[0] + t * (pb[0] - pa[0]), x_t).astype(_F)
        y_t = np.where(on, pa[1] + t * (pb[1] - pa[1]), y_t).astype(_F)
        done |= on
    return x_t, y_t


def lookup_gamut(lut: Tensor, h: Tensor) -> Tensor:
    """lookup_gamut(): linear interpolation of the 360-entry LUT at hue ``h`` in
    ``[-pi, pi]`` (mapped to ``[0, 359]``, cyclic); darktable 5's 512-entry LUT: mapped to ``[0, 512]``, the
    indices wrapped by ``& 511``, no interpolation where they meet."""
    if lut.shape[0] == LUT_ELEM_5:
        t = LUT_ELEM_5 * (h + PI_F) / (2.0 * PI_F)
        lo = torch.floor(t)
        i0 = lo.long() & (LUT_ELEM_5 - 1)
        i1 = torch.ceil(t).long() & (LUT_ELEM_5 - 1)
        y0 = lut[i0]
        return y0 + torch.where(i0 != i1, (t - lo) * (lut[i1] - y0), torch.zeros_like(y0))
    t = (LUT_ELEM - 1) * (h + PI_F) / (2.0 * PI_F)
    lo = torch.floor(t)
    i0 = lo.long() % LUT_ELEM
    i1 = torch.ceil(t).long() % LUT_ELEM
    y0 = lut[i0]
    y1 = lut[i1]
    return y0 + (t - lo) * (y1 - y0)
