"""darktable 4.2.1's color calibration (``channelmixerrgb``, params version 3), exact in torch.

A port of ``src/iop/channelmixerrgb.c`` (``commit_params()`` and the CPU ``process()`` /
``loop_switch()``, with ``gamut_mapping()`` and ``luma_chroma()``) and of what they inline from
``src/common/chromatic_adaptation.h`` (the Bradford and CAT16 cone spaces, the adaptations to D50),
``src/common/illuminants.h`` (the illuminants' chromaticities, the daylight and Planckian loci) and
``src/common/colorspaces_inline_conversions.h`` (xyY <-> u'v'Y).

Per pixel, in darktable's order: the working RGB (linear Rec2020, clipped at 0 when ``clip``) to XYZ
D50, to the cone space of ``adaptation`` (Bradford, CAT16, XYZ itself; ``RGB``: none), a von Kries
adaptation from the illuminant to D50 (non-linear Bradford: a power on the blue cone), the 3x3 mix of
the R/G/B rows, back to XYZ; gamut compression towards D50 in u'v' (``gamut``); to the cone space again
(RGB for ``RGB``), colorfulness (``saturation[]``) and brightness (``lightness[]``) on the norm of the
vector; then either the grey row (``grey[]`` non-zero: a monochrome image, the same value in the three
channels, written as it is in the cone space) or back to XYZ and the working RGB.

The stage is ``(B, 3, H, W)`` linear Rec2020 -> the same; the illuminant and the matrices follow from
the sliders in the input's dtype (float32 as darktable's), so the stage is differentiable in the image
and in ``temperature``, ``x``, ``y``, ``gamut`` and every element of the mixing, colorfulness,
brightness and grey rows (``red[0]``...: a value under that name overrides the array's element).
"as shot in camera" (the raw's white balance through the temperature module) is refused; the
"detect from image" illuminants run as darktable-cli runs them (its detection is the darkroom's:
outside it they apply the stored ``x``, ``y`` as "custom" does). Items of params versions 1 and 2 need
darktable's ``legacy_params`` upgrade, not ported in :mod:`darkproxy.darktable.legacy`: the chain refuses
them; the colorfulness formulas they upgrade to (``version`` v1, v2) are modelled.

Measured against darktable-cli's tap-outs (``tests/replica/test_channelmixerrgb.py``): 75-100 dB display
PSNR; what is left is darktable's pipe around the module (its approximate Lab conversion before colorout)
and pixels that differ between two darktable renders of one history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import BRADFORD, BRADFORD_LMS_TO_XYZ, CAT16_LMS_TO_XYZ, XYZ_TO_CAT16_LMS
from darkproxy.darktable.params import param_value
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import Vec3, mix3, safe_div, safe_pow, working_profile_matrices

Tensor = torch.Tensor

_F = np.float32
NORM_MIN = 1.52587890625e-05  # common/math.h: 2^-16
INVERSE_SQRT_3 = float(_F(0.5773502691896258))

# dt_adaptation_t
LINEAR_BRADFORD, CAT16, FULL_BRADFORD, XYZ, RGB = 0, 1, 2, 3, 4
ADAPTATIONS = {
    LINEAR_BRADFORD: "linear Bradford",
    CAT16: "CAT16",
    FULL_BRADFORD: "non-linear Bradford",
    XYZ: "XYZ",
    RGB: "none (RGB)",
}
# dt_illuminant_t
PIPE, ILL_A, ILL_D, ILL_E, ILL_F, ILL_LED, ILL_BB, CUSTOM, DETECT_SURFACES, DETECT_EDGES, CAMERA = range(11)
# dt_iop_channelmixer_rgb_version_t: the colorfulness formula
V_1, V_2, V_3 = 0, 1, 2

# the D50 white in each cone space (chromatic_adaptation.h: convert_D50_to_LMS)
_D50_LMS = {
    LINEAR_BRADFORD: (0.996078, 1.020646, 0.818155),
    FULL_BRADFORD: (0.996078, 1.020646, 0.818155),
    CAT16: (0.994535, 1.000997, 0.833036),
    XYZ: (0.9642119944211994, 1.0, 0.8251882845188288),
}
# gamut_mapping(): the u'v' of D50
_D50_UV = (0.20915914598542354, 0.488075320769787)

# illuminants.h: CIE F1-F12 and LED B1-V2 chromaticities (x, y), CIE 1931 2 deg
FLUORESCENT = (
    (0.31310, 0.33727),
    (0.37208, 0.37529),
    (0.40910, 0.39430),
    (0.44018, 0.40329),
    (0.31379, 0.34531),
    (0.37790, 0.38835),
    (0.31292, 0.32933),
    (0.34588, 0.35875),
    (0.37417, 0.37281),
    (0.34609, 0.35986),
    (0.38052, 0.37713),
    (0.43695, 0.40441),
)
LED = (
    (0.4560, 0.4078),
    (0.4357, 0.4012),
    (0.3756, 0.3723),
    (0.3422, 0.3502),
    (0.3118, 0.3236),
    (0.4474, 0.4066),
    (0.4557, 0.4211),
    (0.4560, 0.4548),
    (0.3781, 0.3775),
)
_FIXED_XY = {PIPE: (0.34567, 0.35850), ILL_A: (0.44757, 0.40745), ILL_E: (1.0 / 3.0, 1.0 / 3.0)}
T_MIN, T_MAX = 1667.0, 25000.0  # the loci's domain (and the temperature slider's $MIN/$MAX)

# the regressable sliders: the illuminant, the compression and every element of the rows
ROWS = ("red", "green", "blue", "saturation", "lightness", "grey")
PARAMS = ("temperature", "x", "y", "gamut", *(f"{r}[{i}]" for r in ROWS for i in range(3)))


def _f32(m: np.ndarray) -> np.ndarray:
    """A constant matrix as darktable's floats (float32 values in a float64 array, for :func:`mix3`)."""
    return np.asarray(m, np.float64).astype(_F).astype(np.float64)


# XYZ <-> each adaptation's cone space (convert_any_XYZ_to_LMS / convert_any_LMS_to_XYZ; XYZ: itself)
_TO_LMS = {LINEAR_BRADFORD: _f32(BRADFORD), FULL_BRADFORD: _f32(BRADFORD), CAT16: _f32(XYZ_TO_CAT16_LMS)}
_FROM_LMS = {
    LINEAR_BRADFORD: _f32(BRADFORD_LMS_TO_XYZ),
    FULL_BRADFORD: _f32(BRADFORD_LMS_TO_XYZ),
    CAT16: _f32(CAT16_LMS_TO_XYZ),
}


# ------------------------------------------------------------------ the params
def _get(v: Values, name: str, x: Tensor) -> Tensor:
    """A scalar param as a ``(B or 1, 1, 1, 1)`` column on ``x``."""
    return column(v[name], x)


def _elem(v: Values, row: str, i: int, x: Tensor) -> Tensor:
    """Element ``i`` of the array param ``row`` (``v["row[i]"]`` when given: a regressed slider)."""
    return column(param_value(v, f"{row}[{i}]"), x)


def _row(v: Values, row: str, x: Tensor) -> list[Tensor]:
    return [_elem(v, row, i, x) for i in range(3)]


def _daylight_xy(t: Tensor) -> tuple[Tensor, Tensor]:
    """``CCT_to_xy_daylight``: the CIE daylight locus for 4000-25000 K (x = 0 outside)."""
    lo = ((-4.6070e9 / t + 2.9678e6) / t + 0.09911e3) / t + 0.244063
    hi = ((-2.0064e9 / t + 1.9018e6) / t + 0.24748e3) / t + 0.237040
    zero = torch.zeros_like(t)
    x = torch.where((t >= 4000.0) & (t <= 7000.0), lo, torch.where((t > 7000.0) & (t <= 25000.0), hi, zero))
    return x, (-3.0 * x + 2.87) * x - 0.275


def _blackbody_xy(t: Tensor) -> tuple[Tensor, Tensor]:
    """``CCT_to_xy_blackbody``: the Planckian locus (Kim et al. splines) for 1667-25000 K."""
    lo = ((-0.2661239e9 / t - 0.2343589e6) / t + 0.8776956e3) / t + 0.179910
    hi = ((-3.0258469e9 / t + 2.1070379e6) / t + 0.2226347e3) / t + 0.240390
    zero = torch.zeros_like(t)
    x = torch.where((t >= 1667.0) & (t <= 4000.0), lo, torch.where((t > 4000.0) & (t <= 25000.0), hi, zero))
    y1 = ((-1.1063814 * x - 1.34811020) * x + 2.18555832) * x - 0.20219683
    y2 = ((-0.9549476 * x - 1.37418593) * x + 2.09137015) * x - 0.16748867
    y3 = ((3.0817580 * x - 5.87338670) * x + 3.75112997) * x - 0.37001483
    y = torch.where(
        (t >= 1667.0) & (t <= 2222.0),
        y1,
        torch.where((t > 2222.0) & (t <= 4000.0), y2, torch.where((t > 4000.0) & (t <= 25000.0), y3, zero)),
    )
    return x, y


def illuminant_xy(v: Values, x: Tensor) -> tuple[Tensor, Tensor]:
    """``illuminant_to_xy`` of the params' illuminant: its CIE 1931 xy chromaticity as two columns
    (``(B or 1, 1, 1, 1)``, ``x``'s dtype). Custom and the "detect" modes keep the params' ``x``, ``y``;
    "as shot in camera" is not modelled (see :func:`_supported`)."""
    ill = int(v["illuminant"])
    if ill in _FIXED_XY:
        a, b = _FIXED_XY[ill]
        return column(float(_F(a)), x), column(float(_F(b)), x)
    if ill in (ILL_F, ILL_LED):  # the tables of darktable's floats
        a, b = FLUORESCENT[int(v["illum_fluo"])] if ill == ILL_F else LED[int(v["illum_led"])]
        return column(float(_F(a)), x), column(float(_F(b)), x)
    if ill in (ILL_D, ILL_BB):
        t = _get(v, "temperature", x)
        bx, by = _blackbody_xy(t)
        if ill == ILL_BB:
            return bx, by
        dx, dy = _daylight_xy(t)
        day = (dx != 0.0) & (dy != 0.0)  # below 4000 K darktable falls through to the Planckian locus
        return torch.where(day, dx, bx), torch.where(day, dy, by)
    if ill in (CUSTOM, DETECT_EDGES, DETECT_SURFACES):
        return _get(v, "x", x), _get(v, "y", x)
    raise ValueError(f"channelmixerrgb: illuminant {ill} is not modelled")


def _commit(v: Values, x: Tensor) -> dict[str, Any]:
    """``commit_params()``: the mixing matrix, the colorfulness / brightness / grey rows, the
    illuminant in the adaptation's cone space, Bradford's blue exponent ``p`` and the gamut
    compression's exponent, as ``(B or 1, 1, 1, 1)`` columns in ``x``'s dtype."""
    one = column(1.0, x)
    rows = []
    for name, flag in (("red", "normalize_R"), ("green", "normalize_G"), ("blue", "normalize_B")):
        r = _row(v, name, x)
        norm = r[0] + r[1] + r[2] if bool(v[flag]) else one
        rows.append([c / norm for c in r])
    sat, light, grey = _row(v, "saturation", x), _row(v, "lightness", x), _row(v, "grey", x)
    norm_sat = (sat[0] + sat[1] + sat[2]) / 3.0 if bool(v["normalize_sat"]) else 0.0 * one
    norm_light = (light[0] + light[1] + light[2]) / 3.0 if bool(v["normalize_light"]) else 0.0 * one
    d_sat = [-s + norm_sat for s in sat]
    if int(v["version"]) == V_1:  # the v1 colorfulness reads R and B the other way round
        d_sat = [d_sat[2], d_sat[1], d_sat[0]]
    # darktable's apply_grey: any grey coefficient non-zero (a per-image switch of the output)
    apply_grey = (grey[0] != 0.0) | (grey[1] != 0.0) | (grey[2] != 0.0)
    norm_grey = grey[0] + grey[1] + grey[2]
    norm_grey = torch.where(norm_grey == 0.0, one, norm_grey) if bool(v["normalize_grey"]) else one
    gamut = _get(v, "gamut", x)
    kind = int(v["adaptation"])
    if kind == RGB:  # no adaptation: darktable computes the illuminant but never reads it
        illum: Vec3 = (one, one, one)
    else:
        ix, iy = illuminant_xy(v, x)
        illum = (ix / iy, one, (1.0 - ix - iy) / iy)  # illuminant_xy_to_XYZ
        illum = mix3(_TO_LMS[kind], illum) if kind in _TO_LMS else illum
    return {
        "mix": rows,
        "saturation": d_sat,
        "lightness": [c - norm_light for c in light],
        "grey": [c / norm_grey for c in grey],
        "apply_grey": apply_grey,
        "illuminant": illum,
        "p": safe_pow(0.818155 / illum[2], 0.0834),  # only the non-linear Bradford reads it
        "gamut": safe_div(one, gamut, gamut != 0.0),  # the exponent of the compression (0: none)
    }


# ------------------------------------------------------------------ the per-pixel maths
def _matvec(m: Sequence[Sequence[Tensor]], v: Vec3) -> Vec3:
    """``dot_product`` with the sliders' matrix (entries ``(B or 1, 1, 1, 1)`` columns): row by row, each
    a sum of three products in darktable's order."""
    a, b, c = v
    return (
        m[0][0] * a + m[0][1] * b + m[0][2] * c,
        m[1][0] * a + m[1][1] * b + m[1][2] * c,
        m[2][0] * a + m[2][1] * b + m[2][2] * c,
    )


def _adapt(lms: Vec3, y: Tensor, illum: Vec3, kind: int, p: Tensor) -> Vec3:
    """The von Kries adaptation of ``loop_switch``: ``downscale_vector`` by Y, ``bradford_adapt_D50``
    (non-linear: the blue ratio to the power ``p`` where positive), ``CAT16_adapt_D50`` (full
    adaptation) or ``XYZ_adapt_D50``, ``upscale_vector`` by Y."""
    scale = torch.where(y > NORM_MIN, y + NORM_MIN, torch.full_like(y, NORM_MIN))
    down = [c / scale for c in lms]
    d50 = _D50_LMS[kind]
    if kind in (LINEAR_BRADFORD, FULL_BRADFORD):
        t = [down[c] / illum[c] for c in range(3)]
        if kind == FULL_BRADFORD:
            t[2] = torch.where(t[2] > 0.0, safe_pow(t[2], p), t[2])
        out = [float(_F(d50[c])) * t[c] for c in range(3)]
    else:
        out = [down[c] * float(_F(d50[c])) / illum[c] for c in range(3)]
    return out[0] * scale, out[1] * scale, out[2] * scale


def _correction(delta: Tensor, compression: Tensor, dt5: bool) -> tuple[Tensor, Tensor]:
    """``powf(Delta, compression)`` (0 where ``compression`` is 0) and where it is NaN: darktable 5 reaches a
    negative ``Delta`` (negative Y), whose power is NaN for a non-integer exponent."""
    zero = torch.zeros_like(delta)
    if not dt5:
        return torch.where(compression == 0.0, zero, safe_pow(delta, compression)), torch.zeros_like(
            delta, dtype=torch.bool
        )
    neg = delta < 0.0
    whole = compression == torch.round(compression)
    odd = whole & (torch.remainder(compression, 2.0) == 1.0)
    mag = safe_pow(delta.abs(), compression)
    corr = torch.where(compression == 0.0, zero, torch.where(neg & odd, -mag, mag))
    return corr, neg & ~whole & (compression != 0.0)


def _gamut_mapping(xyz: Vec3, compression: Tensor, clip: bool, dt5: bool = False) -> Vec3:
    """``gamut_mapping()``: XYZ D50 -> XYZ, the chromaticity moved towards D50 in u'v' by
    ``(Y |D50 - uv|^2)^compression`` of its distance (never past it), negative xy clipped when
    ``clip``, x + y kept below 1; black where X + Y + Z <= 0 or Y <= 0 (darktable 4.2). darktable 5
    (``dt5``) maps every pixel: D50's xy where X + Y + Z <= 0, and a NaN correction (a negative Y's
    non-integer power) leaves u'v' at D50 (``fmaxf``/``fminf`` return the number)."""
    big_x, big_y, big_z = xyz
    s = big_x + big_y + big_z
    ok = (s > 0.0) if dt5 else (s > 0.0) & (big_y > 0.0)
    cx, cy = safe_div(big_x, s, ok), safe_div(big_y, s, ok)
    if dt5:  # D50xyY (doubles) read as floats
        cx = torch.where(ok, cx, torch.full_like(cx, float(_F(_FIXED_XY[PIPE][0]))))
        cy = torch.where(ok, cy, torch.full_like(cy, float(_F(_FIXED_XY[PIPE][1]))))
    den = -2.0 * cx + 12.0 * cy + 3.0  # dt_xyY_to_uvY (den = 3 where not ok: no division by 0)
    u, v = 4.0 * cx / den, 9.0 * cy / den
    du, dv = float(_F(_D50_UV[0])) - u, float(_F(_D50_UV[1])) - v
    delta = big_y * (du * du + dv * dv)
    corr, nan = _correction(delta, compression, dt5)
    uv = []
    for c, d, w in ((u, du, _D50_UV[0]), (v, dv, _D50_UV[1])):
        w32 = float(_F(w))
        tmp = corr * d + c
        mapped = torch.where(c > w32, tmp.clamp_min(w32), tmp.clamp_max(w32))
        uv.append(torch.where(nan, torch.full_like(mapped, w32), mapped))
    den2 = 6.0 * uv[0] - 16.0 * uv[1] + 12.0  # dt_uvY_to_xyY
    cx, cy = 9.0 * uv[0] / den2, 4.0 * uv[1] / den2
    if clip:
        cx, cy = cx.clamp_min(0.0), cy.clamp_min(0.0)
    cy = cy.clamp_min(NORM_MIN)  # darktable divides by y next
    scale = cx + cy
    over = scale >= 1.0  # x + y >= 1 would make Z negative
    cx, cy = torch.where(over, cx / scale, cx), torch.where(over, cy / scale, cy)
    out = (big_y * cx / cy, big_y, big_y * (1.0 - cx - cy) / cy)
    if dt5:
        return out
    zero = torch.zeros_like(big_y)
    return (torch.where(ok, out[0], zero), torch.where(ok, out[1], zero), torch.where(ok, out[2], zero))


def _norm(v: Vec3) -> Tensor:
    """``euclidean_norm``: max(|v|, NORM_MIN), written so that its gradient stays finite at 0."""
    return torch.sqrt((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).clamp_min(NORM_MIN * NORM_MIN))


def _luma_chroma(v: Vec3, sat: Sequence[Tensor], light: Sequence[Tensor], version: int) -> Vec3:
    """``luma_chroma()``: colorfulness (the ratios to the norm pulled towards or away from grey by the
    saturation row) and brightness (the norm scaled by 1 + lightness . v / mean(v), at least 0) in
    the adaptation's space; the version picks darktable's colorfulness formula (v3: norm-preserving)."""
    norm = _norm(v)
    avg = ((v[0] + v[1] + v[2]) / 3.0).clamp_min(NORM_MIN)
    mix = v[0] * light[0] + v[1] * light[1] + v[2] * light[2]
    if version == V_3:  # ratios (1, 1, 1) for grey pixels
        norm = norm * INVERSE_SQRT_3
    ratio = [c / norm for c in v]
    if version == V_1:
        coeff = sum((1.0 - ratio[c]) ** 2 * sat[c] for c in range(3))
    else:
        coeff = (ratio[0] * sat[0] + ratio[1] * sat[1] + ratio[2] * sat[2]) / 3.0
    # a ratio already negative may stay so (darktable: else saturated blues turn black)
    out = [torch.maximum((1.0 - r) * coeff + r, r.clamp_max(0.0)) for r in ratio]
    if version == V_3:  # keep the norm of the ratios
        norm = norm / (_norm((out[0], out[1], out[2])) * INVERSE_SQRT_3)
    norm = norm * (1.0 + mix / avg).clamp_min(0.0)
    return out[0] * norm, out[1] * norm, out[2] * norm


def _clip(v: Vec3, clip: bool) -> Vec3:
    return (v[0].clamp_min(0.0), v[1].clamp_min(0.0), v[2].clamp_min(0.0)) if clip else v


def _into(kind: int, xyz: Vec3) -> Vec3:
    """XYZ D50 -> the space the adaptation works in (``convert_any_XYZ_to_LMS``: its cone space, XYZ
    itself) or, for ``RGB`` (no adaptation), the working RGB."""
    if kind == RGB:
        return mix3(working_profile_matrices()[1], xyz)
    return mix3(_TO_LMS[kind], xyz) if kind in _TO_LMS else xyz


def _out_of(kind: int, v: Vec3) -> Vec3:
    """The inverse of :func:`_into`: back to XYZ D50."""
    if kind == RGB:
        return mix3(working_profile_matrices()[0], v)
    return mix3(_FROM_LMS[kind], v) if kind in _FROM_LMS else v


# ------------------------------------------------------------------ the stage
def _supported(v: Values, ctx: StageContext) -> str | None:
    """``None`` when the setting is modelled exactly, else why not (one line)."""
    try:
        ver, kind, ill = int(v["version"]), int(v["adaptation"]), int(v["illuminant"])
    except (KeyError, TypeError, ValueError):
        return "channelmixerrgb: version, adaptation or illuminant missing from the params"
    if ver not in (V_1, V_2, V_3):
        return f"channelmixerrgb colorfulness version {ver} is not darktable's"
    if kind not in ADAPTATIONS:
        return f"channelmixerrgb adaptation {kind} is not modelled (darktable leaves the output unwritten)"
    if ill == CAMERA:
        return "channelmixerrgb illuminant 'as shot in camera' (the raw's white balance) is not modelled"
    if ill not in (*_FIXED_XY, ILL_D, ILL_BB, ILL_F, ILL_LED, CUSTOM, DETECT_EDGES, DETECT_SURFACES):
        return f"channelmixerrgb illuminant {ill} is not modelled"
    if kind == RGB:
        return None  # no adaptation: the illuminant is not read
    if ill == ILL_F and not 0 <= int(v["illum_fluo"]) < len(FLUORESCENT):
        return f"channelmixerrgb fluorescent illuminant {v['illum_fluo']} is not modelled"
    if ill == ILL_LED and not 0 <= int(v["illum_led"]) < len(LED):
        return f"channelmixerrgb LED illuminant {v['illum_led']} is not modelled"
    t = v.get("temperature")
    if ill in (ILL_D, ILL_BB) and isinstance(t, (int, float)) and not T_MIN <= float(t) <= T_MAX:
        return f"channelmixerrgb temperature {t} K is off the loci (darktable then reads the raw's white balance)"
    y = v.get("y")
    if ill in (CUSTOM, DETECT_EDGES, DETECT_SURFACES) and isinstance(y, (int, float)) and float(y) == 0.0:
        return "channelmixerrgb custom illuminant with y = 0 (darktable divides by it)"
    return None


@register_exact(
    "channelmixerrgb",
    params=PARAMS,
    versions=(3,),
    note="darktable's channelmixerrgb.c (CPU path): chromatic adaptation (Bradford, CAT16, XYZ, none), channel "
    "mixing, gamut compression, colorfulness/brightness, grey; 'as shot in camera' refused",
    supports=_supported,
)
def channelmixerrgb(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """color calibration on ``(B, 3, H, W)`` linear Rec2020 -> the same shape and space
    (non-negative when ``clip``; a grey image, equal channels, when the grey row is set)."""
    d = _commit(v, x)
    kind, clip, version = int(v["adaptation"]), bool(v["clip"]), int(v["version"])
    m_in, _ = working_profile_matrices()
    rgb = _clip((x[:, 0:1], x[:, 1:2], x[:, 2:3]), clip)
    if kind == RGB:  # no adaptation: the mix in the working RGB
        xyz = mix3(m_in, _matvec(d["mix"], rgb))
    else:
        xyz = mix3(m_in, rgb)
        lms = _matvec(d["mix"], _adapt(_into(kind, xyz), xyz[1], d["illuminant"], kind, d["p"]))
        xyz = _out_of(kind, lms)
    dt5 = ctx.darktable5
    if dt5:  # darktable 5 clips XYZ before the gamut mapping too
        xyz = _clip(xyz, clip)
    xyz = _gamut_mapping(xyz, d["gamut"], clip, dt5)
    lms = _clip(_luma_chroma(_clip(_into(kind, xyz), clip), d["saturation"], d["lightness"], version), clip)
    g = d["grey"]
    grey = (lms[0] * g[0] + lms[1] * g[1] + lms[2] * g[2]).clamp_min(0.0)
    colour = torch.cat(_clip(_into(RGB, _clip(_out_of(kind, lms), clip)), clip), 1)
    return torch.where(d["apply_grey"], grey.expand_as(colour), colour)
