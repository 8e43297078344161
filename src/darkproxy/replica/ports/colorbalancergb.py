"""darktable's color balance rgb (``colorbalancergb``, params version 5), exact in torch: 4.2.1's and 5.x's.

A port of ``src/iop/colorbalancergb.c`` (``commit_params()`` and the CPU ``process()``)
and of the helpers it inlines from ``src/common/colorspaces_inline_conversions.h``
(Filmlight Yrg / Ych, CIE 2006 LMS, JzAzBz, darktable UCS 2022) and
``src/common/chromatic_adaptation.h`` (the CAT16 D50 <-> D65 matrices). Every
constant is darktable's own float; the per-pixel maths runs in the input's dtype
(float32 as darktable's), differentiable in the image and in every float slider.

The stage works on ``(B, 3, H, W)`` linear Rec2020 (darktable's working profile,
D50-adapted ICC matrix profile) and returns the same. The gamut LUTs of the working
profile (one per saturation formula) depend on no slider: they are built once with
numpy in float32, as ``commit_params()`` builds them.

darktable 5 (5.0.1 and 5.4.1 measured, the same; :attr:`StageContext.darktable_version`) computes it otherwise
at the same params version: 512-entry gamut LUTs (``LUT_ELEM`` of ``common/math.h``), the darktable UCS one
averaged over the boundary's samples per entry (``dt_UCS_22_build_gamut_LUT``) and read through darktable's
bitmask wrap (``lookup_gamut`` of ``darktable_ucs_22_helpers.h``), the midtones' power by darktable's polynomial
``dt_vector_powf``, XYZ clamped at 0 before xyY and the UCS luminance no longer clamped; what 4.2.1 did is kept
for 4.2 (the ``dt5`` switches below; the LUTs: :mod:`darkproxy.replica.ports.colorbalancergb_lut`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import (
    FILMLIGHT_D65_RG,
    FILMLIGHT_RGB_TO_LMS,
    LMS_2006_TO_XYZ_D65,
    LMS_TO_FILMLIGHT_RGB,
    Y_LMS_2006,
)
from darkproxy.replica.dtmath import vector_powf
from darkproxy.replica.ports.colorbalancergb_lut import (
    UCS_FACT,
    UCS_HALF,
    UCS_OFF,
    UCS_X,
    UCS_Y,
    gamut_lut,
    lookup_gamut,
    pipe_matrices,
)
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import (
    JZ_B,
    JZ_C1,
    JZ_C2,
    JZ_C3,
    JZ_D,
    JZ_D0,
    JZ_G,
    JZ_N,
    JZ_P,
    Vec3,
    mix3,
    safe_atan2,
    safe_div,
    safe_hypot,
    safe_pow,
    xyz_d65_to_jzazbz,
)

Tensor = torch.Tensor

_F = np.float32

# ------------------------------------------------------------------ darktable's constants
# darktable's float32 values of the shared matrices (colour.matrices holds them as written)
_LMS_2006_TO_XYZ_D65 = LMS_2006_TO_XYZ_D65.astype(_F)
_FILMLIGHT_TO_LMS = FILMLIGHT_RGB_TO_LMS.astype(_F)
_LMS_TO_FILMLIGHT = LMS_TO_FILMLIGHT_RGB.astype(_F)
_Y_L, _Y_M = float(Y_LMS_2006[0]), float(Y_LMS_2006[1])  # Y of CIE 2006 LMS (LMS_to_Yrg)
_D65_R, _D65_G = FILMLIGHT_D65_RG  # Filmlight rg of the D65 white (Yrg_to_Ych)

# JzAzBz (dt_XYZ_2_JzAzBz, dt_JzAzBz_2_XYZ)
# the forward constants and conversion are science.py's (shared with the blend's parametric masks)
_JZ_MI = np.array(
    [
        [1.9242264357876067, -1.0047923125953657, 0.0376514040306180],
        [0.3503167620949991, 0.7264811939316552, -0.0653844229480850],
        [-0.0909828109828475, -0.3127282905230739, 1.5227665613052603],
    ],
    dtype=_F,
)
_JZ_AI = np.array(
    [
        [1.0, 0.1386050432715393, 0.0580473161561189],
        [1.0, -0.1386050432715393, -0.0580473161561189],
        [1.0, -0.0960192420263190, -0.8118918960560390],
    ],
    dtype=_F,
)

# darktable UCS 2022 (xyY_to_dt_UCS_UV, dt_UCS_JCH_to_xyY, ...)
_UCS_U_F = (0.167171472114775, -0.150959086409163, 0.940254742367256)
_UCS_V_F = (0.141299802443708, -0.155185060382272, 1.000000000000000)
_UCS_OFF_INV = (-0.00801531300850582, -0.00843312433578007, -0.0256325967652889)
_UCS_L_MAX = 2.098883  # DT_UCS_L_STAR_UPPER_LIMIT
_UCS_Y_MAX = 13237757000.0  # DT_UCS_Y_UPPER_LIMIT
_UCS_C = 15.932993652962535
_UCS_L_EXP, _UCS_M_EXP = 0.6523997524738018, 0.6007557017508491
_UCS_B_EXP = 1.33654221029386

_MASK_EXP = 0.4101205819200422  # opacity masks on Y^0.41: middle grey at 50 %
_UCS_L_MAX_5 = 2.09885  # darktable 5's DT_UCS_L_STAR_UPPER_LIMIT


# ------------------------------------------------------------------ helpers
def _soft_clip(x: Tensor, soft: Tensor, hard: Tensor) -> Tensor:
    """soft_clip(): exponential roll-off of ``x`` above ``soft``, asymptotic to ``hard``."""
    over = x > soft
    norm = hard - soft
    ok = over & (norm > 0)
    s = torch.where(ok, soft, torch.zeros_like(soft))
    n = torch.where(ok, norm, torch.ones_like(norm))
    xs = torch.where(ok, x, torch.zeros_like(x))
    rolled = s + (1.0 - torch.exp(-(xs - s) / n)) * n
    # norm == 0 (soft == hard == 0): expf(-inf) = 0, the result is soft
    return torch.where(over, torch.where(ok, rolled, soft), x)


# ------------------------------------------------------------------ colour spaces (torch)
def _lms_to_yrg(lms: Vec3) -> Vec3:
    """LMS_to_Yrg: CIE 2006 LMS -> Filmlight Y, r, g."""
    L, M, S = lms
    Y = _Y_L * L + _Y_M * M
    a = L + M + S
    nz = a != 0
    n = (safe_div(L, a, nz), safe_div(M, a, nz), safe_div(S, a, nz))
    r, g, _ = mix3(_LMS_TO_FILMLIGHT, n)
    return Y, r, g


def _yrg_to_lms(Y: Tensor, r: Tensor, g: Tensor) -> Vec3:
    """Yrg_to_LMS."""
    lms = mix3(_FILMLIGHT_TO_LMS, (r, g, 1.0 - r - g))
    denom = _Y_L * lms[0] + _Y_M * lms[1]
    a = safe_div(Y, denom, denom != 0)
    return lms[0] * a, lms[1] * a, lms[2] * a


def _ych_to_grading_rgb(c: Tensor, h: Tensor) -> Vec3:
    """make_Ych(1, c, h) then Ych_to_gradingRGB (commit_params)."""
    r = c * torch.cos(h) + _D65_R
    g = c * torch.sin(h) + _D65_G
    return mix3(_LMS_TO_FILMLIGHT, _yrg_to_lms(torch.ones_like(r), r, g))


def _jzazbz_to_xyz(jz: Tensor, az: Tensor, bz: Tensor) -> Vec3:
    """dt_JzAzBz_2_XYZ (-> XYZ D65)."""
    iz = jz + JZ_D0
    iz = torch.clamp_min(iz / (1.0 + JZ_D - JZ_D * iz), 0.0)
    out = []
    for v in mix3(_JZ_AI, (iz, az, bz)):
        v = safe_pow(torch.clamp_min(v, 0.0), 1.0 / JZ_P)
        den = JZ_C3 * v - JZ_C2
        q = torch.clamp_min(safe_div(JZ_C1 - v, den, den != 0), 0.0)
        out.append(10000.0 * safe_pow(q, 1.0 / JZ_N))
    xp, yp, zp = mix3(_JZ_MI, (out[0], out[1], out[2]))
    X = (xp + (JZ_B - 1.0) * zp) / JZ_B
    Y = (yp + (JZ_G - 1.0) * X) / JZ_G
    return X, Y, zp


def _y_to_ucs_l(Y: Tensor) -> Tensor:
    """Y_to_dt_UCS_L_star."""
    yh = safe_pow(Y, 0.631651345306265)
    return 2.098883786377 * yh / (yh + 1.12426773749357)


def _ucs_l_to_y(L: Tensor) -> Tensor:
    """dt_UCS_L_star_to_Y (L in [0, DT_UCS_L_STAR_UPPER_LIMIT])."""
    return safe_pow(1.12426773749357 * L / (2.098883786377 - L), 1.5831518565279648)


def _xyy_to_ucs_jch(x: Tensor, y: Tensor, Y: Tensor, l_white: Tensor, y_max: float = _UCS_Y_MAX) -> Vec3:
    """xyY_to_dt_UCS_JCH (``y_max``: 4.2's clamp of Y; darktable 5 has none, ``inf``)."""
    uvd = [UCS_X[c] * x + UCS_Y[c] * y + UCS_OFF[c] for c in range(3)]
    # a chromaticity on the line uvd[2] = 0 (reached by a strong 4-ways tint) is inf / inf = NaN here, while
    # darktable's float arithmetic lands next to it (one pixel in 1 MP, measured): take a limit (u', v' saturate
    # at +-fact; which side darktable lands on is not reproduced)
    d = torch.where(uvd[2].abs() < 1e-20, torch.full_like(uvd[2], 1e-20), uvd[2])
    uv = [uvd[c] / d for c in range(2)]
    us = [UCS_FACT[c] * uv[c] / (uv[c].abs() + UCS_HALF[c]) for c in range(2)]
    u_p = -1.124983854323892 * us[0] - 0.980483721769325 * us[1]
    v_p = 1.86323315098672 * us[0] + 1.971853092390862 * us[1]
    l_star = _y_to_ucs_l(torch.clamp(Y, 0.0, y_max))
    m2 = u_p * u_p + v_p * v_p
    J = l_star / l_white
    C = _UCS_C * safe_pow(l_star, _UCS_L_EXP) * safe_pow(m2, _UCS_M_EXP) / l_white
    return J, C, safe_atan2(v_p, u_p)


def _ucs_jch_to_xyy(J: Tensor, C: Tensor, H: Tensor, l_white: Tensor, l_max: float = _UCS_L_MAX) -> Vec3:
    """dt_UCS_JCH_to_xyY (``l_max``: DT_UCS_L_STAR_UPPER_LIMIT, 4.2's or 5's)."""
    l_star = torch.clamp(J * l_white, 0.0, l_max)
    nz = l_star != 0
    base = safe_div(C * l_white, _UCS_C * safe_pow(l_star, _UCS_L_EXP), nz)
    M = torch.where(nz, safe_pow(base, 0.8322850678616855), torch.zeros_like(base))
    u_p = M * torch.cos(H)
    v_p = M * torch.sin(H)
    us = (
        -5.037522385190711 * u_p - 2.504856328185843 * v_p,
        4.760029407436461 * u_p + 2.874012963239247 * v_p,
    )
    uv = [-UCS_HALF[c] * us[c] / (us[c].abs() - UCS_FACT[c]) for c in range(2)]
    xyd = [_UCS_U_F[c] * uv[0] + _UCS_V_F[c] * uv[1] + _UCS_OFF_INV[c] for c in range(3)]
    return xyd[0] / xyd[2], xyd[1] / xyd[2], _ucs_l_to_y(l_star)


# ------------------------------------------------------------------ commit_params
def _deg_to_rad(h: Tensor) -> Tensor:
    """DEG_TO_RAD: the GUI's hue (red at 0°) -> Filmlight Yrg's angle (red at 330°)."""
    return (h - 30.0) * math.pi / 180.0


def _commit(v: Values, x: Tensor) -> dict[str, Any]:
    """commit_params(): the slider-derived coefficients, each ``(B or 1, 1, 1, 1)``
    (per-channel ones as 3-tuples), differentiable in the sliders."""

    def p(name: str, default: float = 0.0) -> Tensor:
        return column(v.get(name, default), x)

    zero = x.new_zeros((1, 1, 1, 1))
    rgb_norm = _ych_to_grading_rgb(zero, zero)  # grading RGB of white (Y = 1, c = 0)
    d: dict[str, Any] = {}
    g = _ych_to_grading_rgb(p("global_C"), _deg_to_rad(p("global_H")))
    d["global"] = tuple(g[c] - rgb_norm[c] + rgb_norm[c] * p("global_Y") for c in range(3))
    s = _ych_to_grading_rgb(p("shadows_C"), _deg_to_rad(p("shadows_H")))
    d["shadows"] = tuple(1.0 + (s[c] - rgb_norm[c]) + p("shadows_Y") for c in range(3))
    h = _ych_to_grading_rgb(p("highlights_C"), _deg_to_rad(p("highlights_H")))
    d["highlights"] = tuple(1.0 + (h[c] - rgb_norm[c]) + p("highlights_Y") for c in range(3))
    m = _ych_to_grading_rgb(p("midtones_C"), _deg_to_rad(p("midtones_H")))
    d["midtones"] = tuple(1.0 / (1.0 + (m[c] - rgb_norm[c])) for c in range(3))
    d["shadows_weight"] = 2.0 + 2.0 * p("shadows_weight", 1.0)
    d["highlights_weight"] = 2.0 + 2.0 * p("highlights_weight", 1.0)
    sw2, hw2 = d["shadows_weight"] ** 2, d["highlights_weight"] ** 2
    d["midtones_weight"] = sw2 * hw2 / (sw2 + hw2)
    d["midtones_Y"] = 1.0 / (1.0 + p("midtones_Y"))
    d["white_fulcrum"] = torch.exp2(p("white_fulcrum"))
    d["mask_grey_fulcrum"] = safe_pow(p("mask_grey_fulcrum", 0.1845), _MASK_EXP)
    d["grey_fulcrum"] = p("grey_fulcrum", 0.1845)
    d["contrast"] = 1.0 + p("contrast")
    d["vibrance"] = p("vibrance")
    d["hue_angle"] = math.pi * p("hue_angle") / 180.0
    for k in ("chroma", "saturation", "brilliance"):
        d[f"{k}_global"] = p(f"{k}_global")
        d[k] = (p(f"{k}_shadows"), p(f"{k}_midtones"), p(f"{k}_highlights"))
    return d


# ------------------------------------------------------------------ process
def _supported(v: Values, ctx: StageContext) -> str | None:
    try:
        formula = int(v.get("saturation_formula", 1))
    except (TypeError, ValueError):
        return f"colorbalancergb saturation_formula {v.get('saturation_formula')!r} is not modelled"
    return None if formula in (0, 1) else f"colorbalancergb saturation_formula {formula} is not modelled"


@register_exact(
    "colorbalancergb",
    params=(
        "saturation_global",
        "vibrance",
        "contrast",
        "chroma_global",
        "brilliance_global",
        "hue_angle",
        "shadows_Y",
        "midtones_Y",
        "highlights_Y",
        "global_Y",
        "shadows_C",
        "midtones_C",
        "highlights_C",
        "global_C",
        "shadows_H",
        "midtones_H",
        "highlights_H",
        "global_H",
    ),
    versions=(5,),
    note="darktable 4.2.1's and 5's colorbalancergb.c process() and commit_params() in torch: Yrg chroma, vibrance and "
    "hue shift, 4-way grading RGB wheels, luminance gamma and contrast, perceptual saturation and brilliance "
    "(JzAzBz or darktable UCS) with the working profile's gamut LUT; every option of params version 5",
    supports=_supported,
)
def colorbalancergb(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """color balance rgb on ``(B, 3, H, W)`` linear Rec2020 -> same shape and space
    (non-negative: darktable clips its output at 0)."""
    d = _commit(v, x)
    rgb_to_lms, xyz_to_rgb, _ = pipe_matrices()
    formula = int(v.get("saturation_formula", 1))
    dt5 = ctx.darktable5
    lut = torch.as_tensor(gamut_lut(formula, dt5), dtype=x.dtype, device=x.device)
    wf = d["white_fulcrum"]
    l_white = _y_to_ucs_l(wf)

    # pipe RGB (clipped at 0) -> CIE 2006 LMS D65 -> Yrg -> Ych
    rgb = torch.clamp_min(x, 0.0)
    Y, r, g = _lms_to_yrg(mix3(rgb_to_lms, (rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3])))
    r = r - _D65_R
    g = g - _D65_G
    c = safe_hypot(g, r)
    nz = c != 0
    cos_h = safe_div(r, c, nz, 1.0)
    sin_h = safe_div(g, c, nz, 0.0)
    Y = torch.clamp_min(Y, 0.0)

    # opacity_masks() on Y^0.41 (middle grey at 50 %)
    xm = safe_pow(Y, _MASK_EXP)
    off = xm - d["mask_grey_fulcrum"]
    off_n = off / d["mask_grey_fulcrum"]
    alpha = 1.0 / (1.0 + torch.exp(off_n * d["shadows_weight"]))
    beta = 1.0 / (1.0 + torch.exp(-off_n * d["highlights_weight"]))
    alpha_c, beta_c = 1.0 - alpha, 1.0 - beta
    gamma = torch.exp(-(off**2) * d["midtones_weight"] / 4.0) * alpha_c**2 * beta_c**2 * 8.0
    opac = (alpha, gamma, beta)

    def by_mask(k: str) -> Tensor:
        return opac[0] * d[k][0] + opac[1] * d[k][1] + opac[2] * d[k][2]

    # hue shift (a rotation of the hue's cosine and sine)
    ca, sa = torch.cos(d["hue_angle"]), torch.sin(d["hue_angle"])
    cos_h, sin_h = ca * cos_h - sa * sin_h, sa * cos_h + ca * sin_h

    # linear chroma and vibrance
    vib = d["vibrance"]
    vibrance = vib * (1.0 - safe_pow(c, vib.abs()))
    c = c * torch.clamp_min(1.0 + d["chroma_global"] + by_mask("chroma") + vibrance, 0.0)

    # gamut_check_Yrg: clip the chroma at constant hue and Y into Yrg's triangle
    r = c * cos_h + _D65_R
    g = c * sin_h + _D65_G
    lim_r = safe_div(torch.full_like(c, -_D65_R), cos_h, r < 0, c)
    lim_g = safe_div(torch.full_like(c, -_D65_G), sin_h, g < 0, c)
    lim_b = safe_div(torch.full_like(c, 1.0 - _D65_R - _D65_G), cos_h + sin_h, r + g > 1.0, c)
    c = torch.minimum(torch.minimum(torch.minimum(c, lim_r), lim_g), lim_b)

    # Ych -> Yrg -> LMS -> grading RGB, then the 4 ways
    lms = _yrg_to_lms(Y, c * cos_h + _D65_R, c * sin_h + _D65_G)
    grgb = mix3(_LMS_TO_FILMLIGHT, lms)
    out = []
    for k in range(3):
        t = grgb[k] + d["global"][k]
        t = t * (beta_c * (alpha_c + alpha * d["shadows"][k]) + beta * d["highlights"][k])
        sign = torch.where(t < 0, -1.0, 1.0)
        mid = d["midtones"][k]
        out.append(sign * (vector_powf(t.abs() / wf, mid) if dt5 else safe_pow(t.abs() / wf, mid)) * wf)

    # luminance gamma and fulcrumed contrast in Yrg
    Y, r, g = _lms_to_yrg(mix3(_FILMLIGHT_TO_LMS, (out[0], out[1], out[2])))
    Y = safe_pow(torch.clamp_min(Y / wf, 0.0), d["midtones_Y"]) * wf
    Y = d["grey_fulcrum"] * safe_pow(Y / d["grey_fulcrum"], d["contrast"])
    xyz = mix3(_LMS_2006_TO_XYZ_D65, _yrg_to_lms(Y, r, g))

    sat = d["saturation_global"] + by_mask("saturation")
    bri = 1.0 + d["brilliance_global"] + by_mask("brilliance")
    if formula == 0:
        xyz, ok = _saturation_jzazbz(xyz, sat, bri, lut)
    else:
        xyz, ok = _saturation_ucs(xyz, sat, bri, lut, l_white, dt5)
    res = torch.cat(mix3(xyz_to_rgb, xyz), 1)
    # a NaN of darktable's maths (black: xyY of XYZ = 0) becomes 0 through fmaxf(NaN, 0)
    return torch.where(ok, torch.clamp_min(res, 0.0), torch.zeros_like(res))


def _saturation_jzazbz(xyz: Vec3, sat: Tensor, bri: Tensor, lut: Tensor) -> tuple[Vec3, Tensor]:
    """process()'s JzAzBz branch: saturation/brilliance along the J-C eigenvector, then
    the gamut LUT's soft clip and the L'M'S' chroma clip. XYZ D65 -> XYZ D65."""
    J, az, bz = xyz_d65_to_jzazbz(xyz)
    C = safe_hypot(az, bz)
    h = safe_atan2(bz, az)
    T = safe_atan2(C, J)
    sin_t, cos_t = torch.sin(T), torch.cos(T)
    so0 = J * cos_t + C * sin_t
    so1 = so0 * torch.minimum(torch.maximum(T * sat, -T), math.pi / 2.0 - T)
    so0 = torch.clamp_min(so0 * bri, 0.0)
    J = torch.clamp_min(so0 * cos_t - so1 * sin_t, 0.0)
    C = torch.clamp_min(so0 * sin_t + so1 * cos_t, 0.0)

    # gamut mapping: soft clip of the saturation C/J at the LUT's maximum for this hue
    max_sat = lookup_gamut(lut, h)
    s = torch.where(J > 0, _soft_clip(safe_div(C, J, J > 0), 0.8 * max_sat, max_sat), max_sat)
    max_c_at_sat = J * s
    max_j_at_sat = safe_div(C, s, s > 0, J)
    J = (J + max_j_at_sat) / 2.0
    C = (C + max_c_at_sat) / 2.0

    # clip the chroma at constant hue and lightness so that L'M'S' stay >= 0
    cos_hh, sin_hh = torch.cos(h), torch.sin(h)
    iz = J + JZ_D0
    iz = torch.clamp_min(iz / (1.0 + JZ_D - JZ_D * iz), 0.0)
    max_c = C
    for k in range(3):
        den = float(_JZ_AI[k, 1]) * cos_hh + float(_JZ_AI[k, 2]) * sin_hh
        lms_k = iz + C * den
        max_c = torch.minimum(max_c, safe_div(-iz, den, lms_k < 0, max_c))
    out = _jzazbz_to_xyz(J, max_c * cos_hh, max_c * sin_hh)
    return out, torch.ones_like(J, dtype=torch.bool)


def _saturation_ucs(
    xyz: Vec3, sat: Tensor, bri: Tensor, lut: Tensor, l_white: Tensor, dt5: bool = False
) -> tuple[Vec3, Tensor]:
    """process()'s darktable UCS 2022 branch: saturation/brilliance in HCB (hue,
    chroma, brightness), then the soft gamut clip of the saturation at constant
    brightness. XYZ D65 -> XYZ D65, and where darktable's maths is defined (not NaN). ``dt5``: darktable 5's
    xyY (XYZ clamped at 0, colorspaces.h's D65 where it sums to 0), no clamp of Y, its L* limit."""
    X, Y, Z = xyz
    if dt5:
        X, Y, Z = (torch.clamp_min(t, 0.0) for t in (X, Y, Z))
    tot = X + Y + Z
    ok = tot > 0 if dt5 else tot != 0
    x = safe_div(X, tot, ok, 0.31271 if dt5 else 0.3127)
    y = safe_div(Y, tot, ok, 0.32902 if dt5 else 0.3290)
    ok = torch.ones_like(ok) if dt5 else ok  # darktable 5 takes D65 there and goes on
    J, C, H = _xyy_to_ucs_jch(x, y, Y, l_white, math.inf if dt5 else _UCS_Y_MAX)
    B = J * (safe_pow(C, _UCS_B_EXP) + 1.0)  # dt_UCS_JCH_to_HCB

    radius = safe_hypot(C, B)
    pos = radius > 0
    sin_t = safe_div(C, radius, pos)
    cos_t = safe_div(B, radius, pos)
    P = C
    W = sin_t * C + cos_t * B
    a = torch.clamp_min(1.0 + sat, 0.0)
    b = torch.clamp_min(bri, 0.0)
    # max_a = hypot(P, W) / P: +inf (no clipping) where P == 0
    pp = P > 0
    max_a = safe_div(safe_hypot(P, W), P, pp, math.inf)
    a = torch.where(pp, _soft_clip(a, 0.5 * torch.where(pp, max_a, 0.0), torch.where(pp, max_a, 1.0)), a)
    p_prime = (a - 1.0) * P
    w2 = P * P * (1.0 - a * a) + W * W
    w_prime = torch.where(w2 > 0, torch.sqrt(torch.where(w2 > 0, w2, 1.0)), 0.0) * b
    # sqrtf of a negative (rounding) is NaN in darktable, and fmaxf(NaN, 0) = 0
    real = w2 >= 0
    C = torch.where(real, torch.clamp_min(cos_t * p_prime + sin_t * w_prime, 0.0), 0.0)
    B = torch.where(real, torch.clamp_min(-sin_t * p_prime + cos_t * w_prime, 0.0), 0.0)
    J = B / (safe_pow(C, _UCS_B_EXP) + 1.0)  # dt_UCS_HCB_to_JCH

    # gamut mapping: the LUT holds M² of the gamut boundary per hue
    max_m2 = lookup_gamut(lut, H)
    max_chroma = _UCS_C * safe_pow(J * l_white, _UCS_L_EXP) * safe_pow(max_m2, _UCS_M_EXP) / l_white
    b_bound = J * (safe_pow(max_chroma, _UCS_B_EXP) + 1.0)  # dt_UCS_JCH_to_HSB
    s_bound = safe_div(max_chroma, b_bound, b_bound > 0)
    S = safe_div(C, B, B > 0)
    S = _soft_clip(S, 0.8 * s_bound, s_bound)
    C = S * B  # dt_UCS_HSB_to_JCH
    J = B / (safe_pow(C, _UCS_B_EXP) + 1.0)
    x, y, Y = _ucs_jch_to_xyy(J, C, H, l_white, _UCS_L_MAX_5 if dt5 else _UCS_L_MAX)
    ok = ok & (y != 0)
    X = safe_div(Y * x, y, ok)
    Z = safe_div(Y * (1.0 - x - y), y, ok)
    return (X, torch.where(ok, Y, 0.0), Z), ok
