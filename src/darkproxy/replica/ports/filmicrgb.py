"""darktable 4.2.1's filmic rgb (``filmicrgb``, params version 6) as an exact stage of the replica.

A port of ``src/iop/filmicrgb.c``: the spline of ``dt_iop_filmic_rgb_compute_spline()``
(solved in torch from the sliders, so that it is differentiable in them), the log
tone mapping, and the per-pixel paths of ``process()`` for every colour science
(``version`` 0-3: v3 2019 to v6 2022) and every ``preserve_color`` norm, with the
v6 gamut mapping (``gamut_mapping()``, ``common/gamut_mapping.h``) to the pipe's
output profile (:attr:`StageContext.output_profile`); and darktable 4.4's v7 (2023,
``version`` 4, darktable 5's default: ``filmic_v5()``, the per-channel and max RGB tone mappings mixed
by the saturation, then v6's gamut mapping).

Not modelled: the highlight reconstruction (``enable_highlight_reconstruction``:
spatial wavelets seeded with noise); :func:`_supported` refuses a history that
enables it. Input and output: ``(B, 3, H, W)`` linear Rec2020 (darktable's working
profile, D50-adapted), unbounded in, display-referred out (``[0, display white]``
after v6's gamut mapping).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import (
    FILMLIGHT_D65_RG,
    FILMLIGHT_RGB_TO_LMS,
    LMS_2006_TO_XYZ_D65,
    LMS_TO_FILMLIGHT_RGB,
    PROFILE_PRIMARIES,
    XYZ_D50_TO_D65_CAT16,
    XYZ_D65_TO_D50_CAT16,
    XYZ_D65_TO_LMS_2006,
    profile_rgb_to_xyz_d50,
)
from darkproxy.replica.gradops import channel_min, div_channels
from darkproxy.replica.registry import StageContext, Values, register_exact
from darkproxy.replica.science import mix, safe_div

NORM_MIN = 1.52587890625e-05  # common/math.h: 2^-16
SAFETY_MARGIN = 0.01  # filmicrgb.c
INVERSE_SQRT_3 = 0.5773502691896258
Y1931_TO_Y2006 = 1.05785528  # CIE_Y_1931_to_CIE_Y_2006 (common/gamut_mapping.h)
D65_R, D65_G = FILMLIGHT_D65_RG  # Yrg white (colorspaces_inline_conversions.h: Yrg_to_Ych)
BIG = 1e30  # stands for FLT_MAX: "this channel won't limit the chroma"

# enums of dt_iop_filmicrgb_params_t
METHOD_NONE, METHOD_MAX_RGB, METHOD_LUMINANCE, METHOD_POWER_NORM, METHOD_EUCLID_V1, METHOD_EUCLID_V2 = range(6)
CURVE_POLY_4, CURVE_POLY_3, CURVE_RATIONAL = range(3)
SPLINE_V1, SPLINE_V2, SPLINE_V3 = range(3)
COLORSCIENCE_V1, COLORSCIENCE_V2, COLORSCIENCE_V3, COLORSCIENCE_V4, COLORSCIENCE_V5 = range(5)


@functools.cache
def yrg_matrices(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``prepare_RGB_Yrg_matrices()`` (common/gamut_mapping.h): (RGB D50 -> LMS 2006 D65,
    LMS 2006 D65 -> RGB D50) of a profile."""
    m_in = profile_rgb_to_xyz_d50(name)
    to_lms = XYZ_D65_TO_LMS_2006 @ XYZ_D50_TO_D65_CAT16 @ m_in
    from_lms = np.linalg.inv(m_in) @ XYZ_D65_TO_D50_CAT16 @ LMS_2006_TO_XYZ_D65
    return to_lms, from_lms


WORK_PROFILE = "lin_rec2020"  # darktable's working profile (every tap-out)


# ------------------------------------------------------------------ params and the spline
def _p(v: Values, name: str, default: float, like: torch.Tensor) -> torch.Tensor:
    """A param as a float64 ``(Bp,)`` tensor (Bp = 1 or B) on ``like``'s device."""
    return torch.as_tensor(v.get(name, default), dtype=torch.float64, device=like.device).reshape(-1)


DEFAULTS: dict[str, float] = {
    "grey_point_source": 18.45,
    "black_point_source": -8.0,
    "white_point_source": 4.0,
    "grey_point_target": 18.45,
    "black_point_target": 0.01517634,
    "white_point_target": 100.0,
    "output_power": 4.0,
    "latitude": 0.01,
    "contrast": 1.0,
    "saturation": 0.0,
    "balance": 0.0,
}
INT_DEFAULTS: dict[str, int] = {
    "preserve_color": METHOD_POWER_NORM,
    "version": COLORSCIENCE_V4,
    "custom_grey": 0,
    "shadows": CURVE_POLY_4,
    "highlights": CURVE_POLY_4,
    "spline_version": SPLINE_V3,
    "enable_highlight_reconstruction": 0,
}


def _i(v: Values, name: str) -> int:
    return int(v.get(name, INT_DEFAULTS[name]))


def _poly_coeffs(
    rows: list[list[torch.Tensor | float]], rhs: list[torch.Tensor | float], like: torch.Tensor
) -> torch.Tensor:
    """Solve ``A m = b`` per batch item (``gauss_solve`` of filmicrgb.c, in torch:
    differentiable in the nodes). ``rows``/``rhs``: float or ``(Bp,)`` entries -> ``(Bp, n)``."""
    n = len(rhs)
    bp = like.shape[0]

    def col(e: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(e, dtype=torch.float64, device=like.device).reshape(-1).expand(bp)

    a = torch.stack([torch.stack([col(e) for e in r], -1) for r in rows], -2)  # (Bp, n, n)
    b = torch.stack([col(e) for e in rhs], -1).reshape(bp, n, 1)
    return torch.linalg.solve(a, b)[..., 0]


def _rational(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rational toe/shoulder's ``b``, ``c`` (``dt_iop_filmic_rgb_compute_spline()``) over a
    segment of width ``x``, height ``y``, slope ``g``. NaN where darktable's ``sqrtf`` gets a
    negative (too little contrast for the segment), as in darktable, without a NaN gradient."""
    disc = (x * g / y + 1.0) ** 2 - 4.0
    ok = disc >= 0.0
    bb = g / (2.0 * y) + (torch.sqrt(torch.where(ok, disc, torch.ones_like(disc))) - 1.0) / (2.0 * x)
    bb = torch.where(ok, bb, torch.full_like(bb, float("nan")))
    q = bb * x**2 + x
    cc = y / g * q / (q - (y / g))
    return bb, cc


def compute_spline(v: Values, like: torch.Tensor) -> dict[str, Any]:
    """``commit_params()`` + ``dt_iop_filmic_rgb_compute_spline()``: the curve's nodes
    and coefficients, float64 ``(Bp,)`` tensors (``M1..M5``: ``(Bp, 3)``, index 0 toe,
    1 shoulder, 2 latitude), plus the log-encoding params."""
    g = functools.partial(_p, v, like=like)
    grey_pt_src, black_src, white_src = (
        g("grey_point_source", DEFAULTS["grey_point_source"]),
        g("black_point_source", DEFAULTS["black_point_source"]),
        g("white_point_source", DEFAULTS["white_point_source"]),
    )
    grey_t, black_t, white_t = (
        g("grey_point_target", DEFAULTS["grey_point_target"]),
        g("black_point_target", DEFAULTS["black_point_target"]),
        g("white_point_target", DEFAULTS["white_point_target"]),
    )
    power = g("output_power", DEFAULTS["output_power"])
    lat_p, contrast_p, balance_p = (
        g("latitude", DEFAULTS["latitude"]),
        g("contrast", DEFAULTS["contrast"]),
        g("balance", DEFAULTS["balance"]),
    )
    custom_grey, spline_version = _i(v, "custom_grey"), _i(v, "spline_version")
    shadows, highlights = _i(v, "shadows"), _i(v, "highlights")
    bp = max(t.shape[0] for t in (grey_pt_src, black_src, white_src, grey_t, black_t, white_t, power, lat_p))
    bp = max(bp, contrast_p.shape[0], balance_p.shape[0])
    ref = torch.zeros(bp, dtype=torch.float64, device=like.device)

    if custom_grey:
        grey_display = (torch.minimum(torch.maximum(grey_t, black_t), white_t) / 100.0) ** (1.0 / power)
        grey_source = grey_pt_src / 100.0
    else:
        grey_display = 0.1845 ** (1.0 / power)
        grey_source = torch.full_like(grey_pt_src, 0.1845)
    dynamic_range = white_src - black_src
    black_log = 0.0
    grey_log = black_src.abs() / dynamic_range
    white_log = 1.0
    black_clamped = torch.minimum(torch.clamp(black_t, min=0.0), grey_t) / 100.0
    white_max = torch.maximum(white_t, grey_t) / 100.0
    if spline_version == SPLINE_V1:  # buggy v1: the output power is not taken into account
        black_display, white_display = black_clamped, white_max
    else:
        black_display, white_display = black_clamped ** (1.0 / power), white_max ** (1.0 / power)
    balance = torch.clamp(balance_p, -50.0, 50.0) / 100.0

    if spline_version < SPLINE_V3:
        latitude = torch.clamp(lat_p, 0.0, 100.0) / 100.0 * dynamic_range
        contrast = torch.clamp(contrast_p, 1.00001, 6.0)
        toe_log = grey_log - latitude / dynamic_range * (black_src / dynamic_range).abs()
        shoulder_log = grey_log + latitude / dynamic_range * (white_src / dynamic_range).abs()
        intercept = grey_display - contrast * grey_log
        toe_display = toe_log * contrast + intercept
        shoulder_display = shoulder_log * contrast + intercept
        norm = torch.sqrt(contrast * contrast + 1.0)
        coeff = -((2.0 * latitude) / dynamic_range) * balance
        toe_display = toe_display + coeff * contrast / norm
        shoulder_display = shoulder_display + coeff * contrast / norm
        toe_log = toe_log + coeff / norm
        shoulder_log = shoulder_log + coeff / norm
    else:  # v3: slope from contrast only, latitude as % of the display range
        latitude = torch.clamp(lat_p, 0.0, 100.0) / 100.0
        slope = contrast_p * dynamic_range / 8.0
        min_contrast = torch.maximum(
            torch.maximum(torch.ones_like(ref), (white_display - grey_display) / (white_log - grey_log)),
            (grey_display - black_display) / (grey_log - black_log),
        )
        min_contrast = min_contrast + SAFETY_MARGIN
        contrast = slope / (power * grey_display ** (power - 1.0))
        contrast = torch.minimum(torch.maximum(contrast, min_contrast), torch.full_like(contrast, 100.0))
        intercept = grey_display - contrast * grey_log
        span = white_display - black_display
        xmin = (black_display + SAFETY_MARGIN * span - intercept) / contrast
        xmax = (white_display - SAFETY_MARGIN * span - intercept) / contrast
        toe_log = (1.0 - latitude) * grey_log + latitude * xmin
        shoulder_log = (1.0 - latitude) * grey_log + latitude * xmax
        correction = torch.where(
            balance > 0.0, 2.0 * balance * (shoulder_log - grey_log), 2.0 * balance * (grey_log - toe_log)
        )
        toe_log = torch.maximum(toe_log - correction, xmin)
        shoulder_log = torch.minimum(shoulder_log - correction, xmax)
        toe_display = toe_log * contrast + intercept
        shoulder_display = shoulder_log * contrast + intercept

    def b(t: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(t, dtype=torch.float64, device=like.device).reshape(-1).expand(bp)

    black_display, toe_display, grey_display_b = b(black_display), b(toe_display), b(grey_display)
    shoulder_display, white_display = b(shoulder_display), b(white_display)
    toe_log, shoulder_log, contrast = b(toe_log), b(shoulder_log), b(contrast)
    zero = torch.zeros_like(ref)
    M = [[zero] * 3 for _ in range(5)]  # M[k][segment]
    M[1][2] = contrast
    M[0][2] = toe_display - contrast * toe_log

    tl = toe_log
    if shadows == CURVE_POLY_4:
        c = _poly_coeffs(
            [
                [0.0, 0.0, 0.0, 0.0, 1.0],
                [0.0, 0.0, 0.0, 1.0, 0.0],
                [tl**4, tl**3, tl**2, tl, 1.0],
                [4.0 * tl**3, 3.0 * tl**2, 2.0 * tl, 1.0, 0.0],
                [12.0 * tl**2, 6.0 * tl, 2.0, 0.0, 0.0],
            ],
            [black_display, 0.0, toe_display, contrast, 0.0],
            ref,
        )
        M[4][0], M[3][0], M[2][0], M[1][0], M[0][0] = c.unbind(-1)
    elif shadows == CURVE_POLY_3:
        c = _poly_coeffs(
            [
                [0.0, 0.0, 0.0, 1.0],
                [tl**3, tl**2, tl, 1.0],
                [3.0 * tl**2, 2.0 * tl, 1.0, 0.0],
                [6.0 * tl, 2.0, 0.0, 0.0],
            ],
            [black_display, toe_display, contrast, 0.0],
            ref,
        )
        M[3][0], M[2][0], M[1][0], M[0][0] = c.unbind(-1)
    else:  # rational toe
        bb, cc = _rational(toe_log - black_log, toe_display - black_display, contrast)
        M[0][0], M[1][0], M[2][0], M[3][0] = cc * contrast, bb, cc, toe_display

    sl = shoulder_log
    if highlights == CURVE_POLY_3:
        c = _poly_coeffs(
            [
                [1.0, 1.0, 1.0, 1.0],
                [sl**3, sl**2, sl, 1.0],
                [3.0 * sl**2, 2.0 * sl, 1.0, 0.0],
                [6.0 * sl, 2.0, 0.0, 0.0],
            ],
            [white_display, shoulder_display, contrast, 0.0],
            ref,
        )
        M[3][1], M[2][1], M[1][1], M[0][1] = c.unbind(-1)
    elif highlights == CURVE_POLY_4:
        c = _poly_coeffs(
            [
                [1.0, 1.0, 1.0, 1.0, 1.0],
                [4.0, 3.0, 2.0, 1.0, 0.0],
                [sl**4, sl**3, sl**2, sl, 1.0],
                [4.0 * sl**3, 3.0 * sl**2, 2.0 * sl, 1.0, 0.0],
                [12.0 * sl**2, 6.0 * sl, 2.0, 0.0, 0.0],
            ],
            [white_display, 0.0, shoulder_display, contrast, 0.0],
            ref,
        )
        M[4][1], M[3][1], M[2][1], M[1][1], M[0][1] = c.unbind(-1)
    else:  # rational shoulder
        bb, cc = _rational(white_log - shoulder_log, white_display - shoulder_display, contrast)
        M[0][1], M[1][1], M[2][1], M[3][1] = cc * contrast, bb, cc, shoulder_display

    return {
        "M": [torch.stack(m, -1) for m in M],  # M1..M5, each (Bp, 3)
        "latitude_min": toe_log,
        "latitude_max": shoulder_log,
        "y0": black_display,
        "y4": white_display,
        "grey_display": grey_display_b,
        "type": (shadows, highlights),
        "grey_source": b(grey_source),
        "black_source": b(black_src),
        "dynamic_range": b(dynamic_range),
        "output_power": b(power),
    }


# ------------------------------------------------------------------ per-pixel helpers
def _c(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A float64 ``(Bp,)`` scalar per batch item as ``(Bp, 1, 1, 1)`` in ``x``'s dtype."""
    return t.to(x.dtype).reshape(-1, 1, 1, 1)


def filmic_spline(t: torch.Tensor, sp: dict[str, Any]) -> torch.Tensor:
    """``filmic_spline()``: the curve at log-encoded ``t`` ``(B, 1 or 3, H, W)``."""
    M = [_c(m[:, 0], t) for m in sp["M"]], [_c(m[:, 1], t) for m in sp["M"]], [_c(m[:, 2], t) for m in sp["M"]]
    lo, hi = _c(sp["latitude_min"], t), _c(sp["latitude_max"], t)
    out = []
    for seg, kind in ((0, sp["type"][0]), (1, sp["type"][1])):
        # a NaN coefficient (a rational segment darktable cannot solve) gives NaN, with no NaN gradient
        bad = torch.stack([torch.isnan(m) for m in M[seg]]).any(0)
        m1, m2, m3, m4, m5 = (torch.where(torch.isnan(m), torch.zeros_like(m), m) for m in M[seg])
        if kind == CURVE_POLY_4:
            out.append(m1 + t * (m2 + t * (m3 + t * (m4 + t * m5))))
        elif kind == CURVE_POLY_3:
            out.append(m1 + t * (m2 + t * (m3 + t * m4)))
        else:
            xi = lo - t if seg == 0 else t - hi
            rat = xi * (xi * m2 + 1.0)
            den = rat + m3
            q = safe_div(m1 * rat, den, den != 0.0, 0.0)
            out.append(m4 - q if seg == 0 else m4 + q)
        if bool(bad.any()):
            out[-1] = torch.where(bad, torch.full_like(out[-1], float("nan")), out[-1])
    lin = M[2][0] + t * M[2][1]
    return torch.where(t < lo, out[0], torch.where(t > hi, out[1], lin))


def _log_tonemap_v2(x: torch.Tensor, sp: dict[str, Any]) -> torch.Tensor:
    """``log_tonemapping_v2()``: ``clamp((log2(x / grey) - black) / DR, 0, 1)`` (x <= 0 -> 0)."""
    grey, black, dr = _c(sp["grey_source"], x), _c(sp["black_source"], x), _c(sp["dynamic_range"], x)
    t = (torch.log2(_clamp_min_guard(x, 1e-30) / grey) - black) / dr
    pos = x > 0.0
    t = t.clamp(0.0, 1.0)
    return t if bool(pos.all()) else torch.where(pos, t, 0.0)


def _log_tonemap_v1(x: torch.Tensor, sp: dict[str, Any]) -> torch.Tensor:
    """``log_tonemapping_v1()``: clamped to ``[NORM_MIN, 1]``."""
    grey, black, dr = _c(sp["grey_source"], x), _c(sp["black_source"], x), _c(sp["dynamic_range"], x)
    t = (torch.log2(torch.clamp(x, min=1e-30) / grey) - black) / dr
    return torch.clamp(t, max=1.0).clamp_min(NORM_MIN)


def _work_luminance(rgb: torch.Tensor) -> torch.Tensor:
    """``dt_ioppr_get_rgb_matrix_luminance()`` of the (linear) working profile: ``(B, 1, H, W)``."""
    return mix(profile_rgb_to_xyz_d50(WORK_PROFILE)[1:2], rgb)


def _clamp_min_guard(x: torch.Tensor, lo: float) -> torch.Tensor:
    """``torch.clamp(x, min=lo)`` for a guard that rarely binds: ``x`` itself (the same values and
    gradient, without the clamp's costly backward) where it binds nowhere."""
    return x if bool((x >= lo).all()) else torch.clamp(x, min=lo)


def pixel_norm(rgb: torch.Tensor, variant: int) -> torch.Tensor:
    """``get_pixel_norm()``: ``(B, 3, H, W)`` -> ``(B, 1, H, W)``."""
    if variant == METHOD_MAX_RGB:
        return rgb.amax(1, keepdim=True)
    if variant == METHOD_POWER_NORM:  # pixel_rgb_norm_power(): sum |x|^3 / sum x^2
        a = rgb.abs()
        a2 = a * a  # a2 * a: the same values as a**3, a cheaper gradient
        return (a2 * a).sum(1, keepdim=True) / _clamp_min_guard(a2.sum(1, keepdim=True), 1e-12)
    if variant in (METHOD_EUCLID_V1, METHOD_EUCLID_V2):
        s2 = (rgb * rgb).sum(1, keepdim=True)
        n = torch.where(s2 > 0.0, torch.sqrt(torch.clamp(s2, min=1e-30)), torch.zeros_like(s2))
        return n * INVERSE_SQRT_3 if variant == METHOD_EUCLID_V2 else n
    return _work_luminance(rgb)  # luminance Y and the default


def rgb_to_y(rgb: torch.Tensor, to_lms: np.ndarray) -> torch.Tensor:
    """The Y of :func:`rgb_to_ych` alone (the same operations): ``(B, 3, H, W)`` -> ``(B, 1, H, W)``."""
    L, Mc, _ = mix(to_lms, rgb).split(1, 1)  # split, not slices: one cheap gradient for the three
    return 0.68990272 * L + 0.34832189 * Mc


def rgb_to_ych(rgb: torch.Tensor, to_lms: np.ndarray, hue: bool = True) -> tuple[torch.Tensor, ...]:
    """``RGB_to_Ych()``: RGB ``(B, 3, H, W)`` -> (Y, c, cos h, sin h), each ``(B, 1, H, W)``
    (Kirk/Filmlight Yrg of CIE 2006 LMS, polar); (Y, c) alone without ``hue``."""
    lms = mix(to_lms, rgb)
    L, Mc, _ = lms.split(1, 1)
    Y = 0.68990272 * L + 0.34832189 * Mc
    a = lms.sum(1, keepdim=True)
    nz = a != 0.0
    lms_n = div_channels(lms, a) if bool(nz.all()) else safe_div(lms, a, nz, 0.0)
    grading = mix(LMS_TO_FILMLIGHT_RGB[:2], lms_n)
    gr, gg = grading.split(1, 1)
    r = gr - D65_R
    g = gg - D65_G
    c2 = r * r + g * g
    nzc = c2 > 0.0
    c = torch.sqrt(_clamp_min_guard(c2, 1e-30))
    if not bool(nzc.all()):  # a grey pixel
        c = torch.where(nzc, c, 0.0)
    if not hue:
        return Y, c
    cos_h = safe_div(r, c, nzc, 1.0)
    sin_h = safe_div(g, c, nzc, 0.0)
    return Y, c, cos_h, sin_h


def ych_to_rgb(
    Y: torch.Tensor, c: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor, from_lms: np.ndarray
) -> torch.Tensor:
    """``Ych_to_RGB()``: (Y, c, cos h, sin h) ``(B, 1, H, W)`` each -> RGB ``(B, 3, H, W)``."""
    r = c * cos_h + D65_R
    g = c * sin_h + D65_G
    lms = mix(FILMLIGHT_RGB_TO_LMS, torch.cat([r, g, 1.0 - r - g], 1))
    L, Mc, _ = lms.split(1, 1)
    denom = 0.68990272 * L + 0.34832189 * Mc
    a = safe_div(Y, denom, denom != 0.0, 0.0)
    return mix(from_lms, lms * a)


def _den_y(coeffs: np.ndarray, cos_h: torch.Tensor, sin_h: torch.Tensor) -> torch.Tensor:
    """The hue term that ``_clip_chroma_white_raw()`` and ``_clip_chroma_black()`` share for the
    RGB channel of matrix row ``coeffs`` (the same float operations in both)."""
    c0, c1, c2 = (float(k) for k in coeffs)
    return (
        c0 * (0.979381443298969 * cos_h + 0.391752577319588 * sin_h)
        + c1 * (0.0206185567010309 * cos_h + 0.608247422680412 * sin_h)
        - c2 * (cos_h + sin_h)
    )


def _den_t(white: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor) -> torch.Tensor:
    """The hue term of ``_clip_chroma_white_raw()`` that no matrix row enters."""
    return white * (0.68285981628866 * cos_h + 0.482137060515464 * sin_h)


def _clip_chroma_white_raw(
    coeffs: np.ndarray,
    white: torch.Tensor,
    Y: torch.Tensor,
    cos_h: torch.Tensor,
    sin_h: torch.Tensor,
    den_y: torch.Tensor | None = None,
    den_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """``_clip_chroma_white_raw()`` (common/gamut_mapping.h): the chroma at which the
    RGB channel of matrix row ``coeffs`` reaches ``white`` at luminance ``Y``
    (``den_y``, ``den_t``: its hue terms, when already computed)."""
    c0, c1, c2 = (float(k) for k in coeffs)
    if den_y is None:
        den_y = _den_y(coeffs, cos_h, sin_h)
    if den_t is None:
        den_t = _den_t(white, cos_h, sin_h)
    nz = den_y != 0.0
    asym = safe_div(den_t, den_y, nz, 0.0)
    ok = nz & (asym < Y)
    den = Y * den_y - den_t
    num = -0.427506877216495 * (Y * (c0 + 0.856492345150334 * c1 + 0.554995960637719 * c2) - 0.988237752433297 * white)
    return safe_div(num, den, ok & (den != 0.0), BIG)


def _clip_chroma_white(
    coeffs: np.ndarray,
    white: torch.Tensor,
    Y: torch.Tensor,
    cos_h: torch.Tensor,
    sin_h: torch.Tensor,
    den_y: torch.Tensor | None = None,
    den_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """``_clip_chroma_white()``: linear fade to 0 chroma within 1e-3 of max luminance
    (``den_y``, ``den_t``: the hue terms of :func:`_clip_chroma_white_raw`, when already computed)."""
    eps = 1e-3
    if den_y is None:
        den_y = _den_y(coeffs, cos_h, sin_h)
    if den_t is None:
        den_t = _den_t(white, cos_h, sin_h)
    max_y = Y1931_TO_Y2006 * white
    delta_y = torch.clamp(max_y - Y, min=0.0)
    near = delta_y < eps
    mc = _clip_chroma_white_raw(coeffs, white, Y, cos_h, sin_h, den_y, den_t)
    if bool(near.any()):  # elsewhere the fade's value and gradient go unused
        top = _clip_chroma_white_raw(coeffs, white, (1.0 - eps) * max_y, cos_h, sin_h, den_y, den_t)
        # "no limit" (BIG) times the fade is still no limit, or 0 at the very top (darktable: 0 * FLT_MAX): the
        # same values without a 1e30-sized gradient through delta_y
        no_limit = top >= BIG
        faded = delta_y / (eps * max_y) * torch.where(no_limit, 0.0, top)
        at_top = torch.where(no_limit, torch.where(delta_y > 0.0, top, 0.0), faded)
        mc = torch.where(near, at_top, mc)
    return torch.where(mc >= 0.0, mc, BIG)


def _clip_chroma_black(
    coeffs: np.ndarray, cos_h: torch.Tensor, sin_h: torch.Tensor, den: torch.Tensor | None = None
) -> torch.Tensor:
    """``_clip_chroma_black()``: the chroma at which a channel reaches 0 (``den``: :func:`_den_y`)."""
    c0, c1, c2 = (float(k) for k in coeffs)
    if den is None:
        den = _den_y(coeffs, cos_h, sin_h)
    num = -0.427506877216495 * (c0 + 0.856492345150334 * c1 + 0.554995960637719 * c2)
    mc = safe_div(torch.full_like(den, num), den, den != 0.0, BIG)
    return torch.where(mc >= 0.0, mc, BIG)


def ych_max_chroma(
    from_lms: np.ndarray, white: torch.Tensor, Y: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor
) -> torch.Tensor:
    """``Ych_max_chroma()``: the largest chroma in gamut of the profile (rows of ``from_lms``)."""
    out = None
    den_t = _den_t(white, cos_h, sin_h)
    for row in from_lms:
        den_y = _den_y(row, cos_h, sin_h)
        m = torch.minimum(
            _clip_chroma_white(row, white, Y, cos_h, sin_h, den_y, den_t), _clip_chroma_black(row, cos_h, sin_h, den_y)
        )
        out = m if out is None else torch.minimum(out, m)
    assert out is not None
    return out


def _min_where_binding(c: torch.Tensor, bound: Any, *args: torch.Tensor) -> torch.Tensor:
    """``torch.minimum(c, bound(*args))`` (``args`` broadcast to ``c``'s shape), with ``bound``'s
    gradient graph only at the pixels where it binds (``bound <= c``): elsewhere its gradient
    is 0 and its graph the most costly part of the gamut mapping. The same values."""
    with torch.no_grad():
        m = bound(*args)
    grad = torch.is_grad_enabled() and any(a.requires_grad for a in args)
    if not grad:
        return torch.minimum(c, m)
    if torch.broadcast_shapes(c.shape, m.shape) != c.shape:  # the bound has more pixels than c: the full graph
        return torch.minimum(c, bound(*args))
    sel = m <= c
    if not bool(sel.any()):
        return torch.minimum(c, m)
    idx = sel.reshape(-1).nonzero().squeeze(1)  # once for every argument

    def pick(a: torch.Tensor) -> torch.Tensor:
        if a.numel() == 1:  # a scalar (display white): no full-size copy
            return a.reshape(1).expand(idx.shape[0])
        return a.expand_as(c).reshape(-1).index_select(0, idx)

    sub = bound(*(pick(a) for a in args))
    flat = c.reshape(-1)
    return flat.index_put((idx,), torch.minimum(flat.index_select(0, idx), sub)).view_as(c)


def _gamut_check_yrg(c: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor) -> torch.Tensor:
    """``gamut_check_Yrg()``: clip chroma so that Yrg (and LMS) stays valid."""
    return torch.minimum(c, _yrg_max_chroma(c, cos_h, sin_h))


def _yrg_max_chroma(c: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor) -> torch.Tensor:
    """:func:`_gamut_check_yrg`'s bound on the chroma (``c`` only picks which bounds apply)."""
    r = c * cos_h + D65_R
    g = c * sin_h + D65_G
    m = torch.where(r < 0.0, safe_div(torch.full_like(c, -D65_R), cos_h, r < 0.0, BIG), BIG)
    m = torch.minimum(m, torch.where(g < 0.0, safe_div(torch.full_like(c, -D65_G), sin_h, g < 0.0, BIG), BIG))
    over = (r + g) > 1.0
    return torch.minimum(m, safe_div(torch.full_like(c, 1.0 - D65_R - D65_G), cos_h + sin_h, over, BIG))


def gamut_mapping(
    final: tuple[torch.Tensor, ...],
    orig: tuple[torch.Tensor, ...],
    saturation: torch.Tensor,
    black: torch.Tensor,
    white: torch.Tensor,
    export: str,
) -> torch.Tensor:
    """``gamut_mapping()`` (v6 colour science, ``use_output_profile``): hue of the
    original, luminance clipped to the display range, chroma massaged
    (``filmic_desaturate_v4``) then fitted in the ``export`` profile's gamut
    (``gamut_check_RGB``), back to the working profile. -> ``(B, 3, H, W)``."""
    Yo, co, cos_h, sin_h = orig
    Yf, cf = final[0], final[1]
    y_lo, y_hi = Y1931_TO_Y2006 * black, Y1931_TO_Y2006 * white
    Yf = torch.minimum(torch.maximum(Yf, y_lo), y_hi)
    # filmic_desaturate_v4()
    chroma_o = co * Yo
    chroma_f = cf * Yf
    delta = saturation * (chroma_o - chroma_f)
    brightens, resat, desat = Yf > Yo, chroma_o < chroma_f, chroma_o > chroma_f
    user_resat, user_desat = saturation > 0.0, saturation < 0.0
    chroma = torch.where(
        brightens & resat,
        (chroma_o + chroma_f) / 2.0,
        torch.where((user_resat & desat) | user_desat, chroma_f + delta, chroma_f),
    )
    cf = torch.clamp(safe_div(chroma, Yf, Yf != 0.0, 0.0), min=0.0)
    cf = _min_where_binding(cf, _yrg_max_chroma, cf, cos_h, sin_h)  # _gamut_check_yrg()
    # gamut_check_RGB() in the export profile
    e_in, e_out = yrg_matrices(export)
    rgb = ych_to_rgb(Yf, cf, cos_h, sin_h, e_out)
    offset = torch.clamp(-channel_min(rgb), min=0.0)
    Yb = rgb_to_y(rgb + offset, e_in)
    Y = torch.minimum(torch.maximum((Yf + Yb) / 2.0, y_lo), y_hi)
    c_new = _min_where_binding(cf, functools.partial(ych_max_chroma, e_out), white, Y, cos_h, sin_h)
    rgb = ych_to_rgb(Y, c_new, cos_h, sin_h, e_out)
    rgb = torch.minimum(torch.clamp(rgb, min=0.0), white)
    # export RGB -> LMS -> pipeline RGB
    w_out = yrg_matrices(WORK_PROFILE)[1]
    return mix(w_out @ e_in, rgb)


# ------------------------------------------------------------------ the colour sciences
def _curve(t: torch.Tensor, sp: dict[str, Any], lo: Any, hi: Any, nan_to_hi: bool = False) -> torch.Tensor:
    """``powf(CLAMP(filmic_spline(t), lo, hi), output_power)``. A NaN of the spline
    becomes ``lo`` (``clamp_simd``'s ``fmaxf``, v3-v5) or ``hi`` (v6's ``CLAMP`` as
    darktable's build compiles it: measured, its tap-outs are white there)."""
    y = filmic_spline(t, sp)
    nan = torch.isnan(y)
    any_nan = bool(nan.any())
    if any_nan:
        y = torch.where(nan, torch.zeros_like(y), y)
    y = torch.maximum(y, lo) if isinstance(lo, torch.Tensor) else torch.clamp(y, min=lo)
    y = torch.minimum(y, hi) if isinstance(hi, torch.Tensor) else torch.clamp(y, max=hi)
    if any_nan:
        y = torch.where(nan, (hi if nan_to_hi else lo) * torch.ones_like(y), y)
    return y ** _c(sp["output_power"], t)


def _desaturate_v1(t: torch.Tensor, st: torch.Tensor, ss: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    key_toe = torch.exp(-0.5 * t * t / st)
    key_sh = torch.exp(-0.5 * (1.0 - t) ** 2 / ss)
    return 1.0 - torch.clamp((key_toe + key_sh) / sat, 0.0, 1.0)


def _desaturate_v2(t: torch.Tensor, st: torch.Tensor, ss: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    sat2 = 0.5 / torch.sqrt(sat)
    key_toe = torch.exp(-t * t / st * sat2)
    key_sh = torch.exp(-((1.0 - t) ** 2) / ss * sat2)
    return sat - (key_toe + key_sh) * sat


def _display_bounds(x: torch.Tensor, sp: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``black_display``, ``white_display`` of ``process()``: the spline's ends to the output power, linear."""
    return _c(sp["y0"], x) ** _c(sp["output_power"], x), _c(sp["y4"], x) ** _c(sp["output_power"], x)


def _rgb_tone_mapping_v4(x: torch.Tensor, sp: dict[str, Any], white: torch.Tensor) -> torch.Tensor:
    """``RGB_tone_mapping_v4()``: the curve per channel."""
    return _curve(_log_tonemap_v2(x, sp), sp, 0.0, white, nan_to_hi=True)


def _norm_tone_mapping_v4(
    x: torch.Tensor, sp: dict[str, Any], variant: int, black: torch.Tensor, white: torch.Tensor
) -> torch.Tensor:
    """``norm_tone_mapping_v4()``: the curve on the pixel's norm (clamped to the curve's range), ratios kept."""
    grey, bsrc, dr = _c(sp["grey_source"], x), _c(sp["black_source"], x), _c(sp["dynamic_range"], x)
    norm_min, norm_max = grey * torch.exp2(bsrc), grey * torch.exp2(dr + bsrc)
    norm = torch.minimum(torch.maximum(pixel_norm(x, variant), norm_min), norm_max)
    return div_channels(x, norm) * _curve(_log_tonemap_v2(norm, sp), sp, black, white, nan_to_hi=True)


def filmic_v4(x: torch.Tensor, sp: dict[str, Any], variant: int, sat: torch.Tensor, export: str) -> torch.Tensor:
    """``filmic_chroma_v4()`` / ``filmic_split_v4()`` (``variant`` 0): v6 colour science."""
    w_in = yrg_matrices(WORK_PROFILE)[0]
    black, white = _display_bounds(x, sp)
    orig = rgb_to_ych(x, w_in)
    if variant == METHOD_NONE:
        fin = rgb_to_ych(_rgb_tone_mapping_v4(x, sp, white), w_in, hue=False)
        fin = (fin[0], torch.minimum(orig[1], fin[1]))
    else:  # gamut_mapping() keeps the original's hue
        fin = rgb_to_ych(_norm_tone_mapping_v4(x, sp, variant, black, white), w_in, hue=False)
    return gamut_mapping(fin, orig, sat, black, white, export)


def filmic_v5(x: torch.Tensor, sp: dict[str, Any], sat: torch.Tensor, export: str) -> torch.Tensor:
    """``filmic_v5()``: v7 colour science (darktable 4.4 on): the per-channel and the max RGB tone mappings
    mixed ``(0.5 - sat)`` to ``(0.5 + sat)``, the chroma no higher than the input's, v6's gamut mapping at
    saturation 0 (darktable 5.0.1 renders so: bench/results/replica_darktable_5.0.1.md; with the slider's
    saturation there, as in darktable 4.4's source, its edits fell to 26-40 dB)."""
    w_in = yrg_matrices(WORK_PROFILE)[0]
    black, white = _display_bounds(x, sp)
    naive = _rgb_tone_mapping_v4(x, sp, white)
    max_rgb = _norm_tone_mapping_v4(x, sp, METHOD_MAX_RGB, black, white)
    out = (0.5 - sat) * naive + (0.5 + sat) * max_rgb
    orig = rgb_to_ych(x, w_in)
    fin = rgb_to_ych(out, w_in, hue=False)
    return gamut_mapping((fin[0], torch.minimum(orig[1], fin[1])), orig, torch.zeros_like(sat), black, white, export)


def filmic_v1_v3(x: torch.Tensor, sp: dict[str, Any], variant: int, version: int, sat: torch.Tensor) -> torch.Tensor:
    """``filmic_split_v1`` / ``filmic_split_v2_v3`` / ``filmic_chroma_v1`` /
    ``filmic_chroma_v2_v3``: colour sciences v3 (2019) to v5 (2021)."""
    st = _c((sp["latitude_min"] / 3.0) ** 2, x)
    ss = _c(((1.0 - sp["latitude_max"]) / 3.0) ** 2, x)
    desaturate = _desaturate_v1 if version == COLORSCIENCE_V1 else _desaturate_v2
    if variant == METHOD_NONE:
        if version == COLORSCIENCE_V1:
            t = _log_tonemap_v1(torch.clamp(x, min=NORM_MIN), sp)
        else:
            t = _log_tonemap_v2(torch.clamp(x, min=NORM_MIN), sp)
        lum = _work_luminance(t)
        d = desaturate(lum, st, ss, sat)
        return _curve(lum + d * (t - lum), sp, 0.0, 1.0)
    norm = torch.clamp(pixel_norm(x, variant), min=NORM_MIN)
    ratios = x / norm
    min_r = ratios.amin(1, keepdim=True)
    ratios = torch.where(min_r < 0.0, ratios - min_r, ratios)
    if version == COLORSCIENCE_V1:
        t = _log_tonemap_v1(norm, sp)
        d = desaturate(t, st, ss, sat)
        r = ratios * t
        lum = _work_luminance(r)
        ratios = (lum + d * (r - lum)) / t
        return ratios * _curve(t, sp, 0.0, 1.0)
    t = _log_tonemap_v2(norm, sp)
    d = desaturate(t, st, ss, sat)
    n = _curve(t, sp, 0.0, 1.0)
    ratios = torch.clamp(ratios + (1.0 - ratios) * (1.0 - d), min=0.0)
    if version == COLORSCIENCE_V3:  # normalise again after desaturation
        n = n / torch.clamp(pixel_norm(ratios, variant), min=NORM_MIN)
    out = ratios * n
    max_pix = out.amax(1, keepdim=True)
    penalised = torch.clamp(torch.clamp(ratios + (1.0 - max_pix), min=0.0) * n, 0.0, 1.0)
    return torch.where(max_pix > 1.0, penalised, out)


# ------------------------------------------------------------------ the stage
def _supported(v: Values, ctx: StageContext) -> str | None:
    if _i(v, "enable_highlight_reconstruction"):
        return "filmic rgb's highlight reconstruction (spatial wavelets seeded with noise) is not modelled"
    if _i(v, "preserve_color") not in range(6):
        return f"filmic rgb preserve_color {_i(v, 'preserve_color')} is unknown"
    if _i(v, "version") not in range(5):
        return f"filmic rgb color science {_i(v, 'version')} is unknown"
    if _i(v, "version") >= COLORSCIENCE_V4 and ctx.output_profile not in PROFILE_PRIMARIES:
        return f"output profile {ctx.output_profile!r}: filmic rgb v6 gamut-maps to it, not modelled"
    return None


@register_exact(
    "filmicrgb",
    params=("white_point_source", "black_point_source", "contrast", "latitude", "saturation", "balance"),
    versions=(6,),
    note="darktable 4.2.1's filmicrgb.c (params v6): the spline solved in torch from the sliders, every "
    "colour science (v3-v6, and darktable 4.4's v7) and chroma-preservation norm, v6's gamut mapping to the "
    "output profile; "
    "highlight reconstruction not modelled (refused)",
    supports=_supported,
)
def filmicrgb(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """filmic rgb: ``(B, 3, H, W)`` linear Rec2020 scene-referred -> display-referred
    linear Rec2020 (gamut-mapped to ``ctx.output_profile`` for colour science v6)."""
    sp = compute_spline(v, x)
    version, variant = _i(v, "version"), _i(v, "preserve_color")
    sat_p = _p(v, "saturation", DEFAULTS["saturation"], x)
    if version == COLORSCIENCE_V5:  # whatever preserve_color says
        return filmic_v5(x, sp, _c(sat_p / 100.0, x), ctx.output_profile)
    if version == COLORSCIENCE_V4:
        return filmic_v4(x, sp, variant, _c(sat_p / 100.0, x), ctx.output_profile)
    return filmic_v1_v3(x, sp, variant, version, _c(2.0 * sat_p / 100.0 + 1.0, x))
