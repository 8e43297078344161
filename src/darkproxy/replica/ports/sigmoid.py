"""darktable 4.2.1's sigmoid (``sigmoid``, params version 1) as an exact stage of the replica.

A port of ``src/iop/sigmoid.c``: ``commit_params()`` (the skewed log-logistic curve's
parameters) and the three pixel paths of ``process()`` (per channel, per channel with
hue preservation, RGB ratio). Pointwise; input and output ``(B, 3, H, W)`` linear
Rec2020 (darktable's working profile), display-referred out (``[0, white target]``).

``commit_params()`` measures two slopes by float32 finite differences (step 1e-6 at
middle grey): one last bit in either moves darktable's contrast power by up to ~1 %, so
the curve's parameters take the float32 values of darktable's build, operation by
operation as gcc compiled it (read from the disassembly of Debian's 4.2.1 libsigmoid.so,
-ffast-math: ``powf`` of a constant base became ``expf`` of a folded float32 logarithm,
the slopes' ``/ 2 / delta`` cancelled in their ratio), the C library's ``expf`` and
``powf`` called for the rounding; their gradient is the float64 one of the source's
formula (a straight-through estimate).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import D50_LCMS, PROFILE_PRIMARIES, normalised_primary_matrix, rgb_to_xyz_d50
from darkproxy.replica.registry import StageContext, Values, one_value, register_exact
from darkproxy.replica.science import libm_float32

MIDDLE_GREY = 0.1845
PER_CHANNEL, RGB_RATIO = 0, 1


def _loglogistic(v: Any, magnitude: Any, paper_exp: Any, fog: Any, film_power: Any, paper_power: Any) -> Any:
    """``generalized_loglogistic_sigmoid()`` on tensors (NaN gives ``magnitude``)."""
    clamped = torch.clamp(v, min=0.0)
    film = (fog + clamped) ** film_power
    paper = magnitude * (film / (paper_exp + film)) ** paper_power
    return torch.where(torch.isnan(paper), magnitude, paper)


def _commit(contrast: Any, skew: Any, white_t: Any, black_t: Any, f: Any) -> tuple[Any, ...]:
    """``commit_params()`` as the source writes it, on float64 tensors (the gradient's
    formula): (white, black, paper exposure, film fog, film power, paper power). ``f``
    makes a constant tensor."""
    grey, delta, one, zero = f(MIDDLE_GREY), f(1e-6), f(1.0), f(0.0)
    ref_paper_exp = grey**contrast * ((one / grey) - one)

    def slope(mag: Any, pexp: Any, fpow: Any, ppow: Any) -> Any:
        hi = _loglogistic(grey + delta, mag, pexp, zero, fpow, ppow)
        lo = _loglogistic(grey - delta, mag, pexp, zero, fpow, ppow)
        return (hi - lo) / f(2.0) / delta

    ref_slope = slope(one, ref_paper_exp, contrast, one)
    paper_power = f(5.0) ** -skew
    white = f(0.01) * white_t
    temp_paper_exp = grey * ((white / grey) ** (one / paper_power) - one)
    film_power = ref_slope / slope(white, temp_paper_exp, one, paper_power)
    black = f(0.01) * black_t
    wg = (white / grey) ** (one / paper_power) - one
    wb = (black / white) ** (-one / paper_power) - one
    fog = grey * wg ** (one / film_power) / (wb ** (one / film_power) - wg ** (one / film_power))
    paper_exp = (fog + grey) ** film_power * wg
    return white, black, paper_exp, fog, film_power, paper_power


def _commit_darktable(c: np.ndarray, skew: np.ndarray, white_t: np.ndarray, black_t: np.ndarray) -> tuple[Any, ...]:
    """``commit_params()`` in float32 as darktable 4.2.1's build computes it (Debian's
    libsigmoid.so, gcc -O3 -ffast-math): the constants gcc folded, ``powf(k, y)`` of a
    constant ``k`` as ``expf(y * logf(k))``, the finite differences' common ``/ 2 / delta``
    cancelled, NaN ratios as the magnitude. float32 arrays in, the same 6-tuple out."""
    f, one = np.float32, np.float32(1.0)
    grey = f(MIDDLE_GREY)
    hi_x, lo_x = grey + f(1e-6), grey - f(1e-6)

    def ln(k: np.float32) -> np.float32:  # folded at compile time
        return f(np.log(np.float64(k)))

    def exp(y: Any) -> np.ndarray:
        return libm_float32("expf", y)

    def pw(a: Any, b: Any) -> np.ndarray:
        return libm_float32("powf", a, b)

    def ratio(film: Any, pexp: Any, mag: Any) -> Any:
        r = film / (pexp + film)
        return np.where(np.isnan(r), mag, r)

    ref_pexp = exp(c * ln(grey)) * (one / grey - one)
    ref_diff = ratio(exp(c * ln(hi_x)), ref_pexp, one) - ratio(exp(c * ln(lo_x)), ref_pexp, one)
    paper_power = exp(skew * f(-np.log(5.0)))
    white = f(0.01) * white_t
    inv_pp = one / paper_power
    wg = pw(white * (one / grey), inv_pp) - one
    temp_pexp = grey * wg

    def temp(x: np.float32) -> Any:
        p = pw(x / (temp_pexp + x), paper_power) * white
        return np.where(np.isnan(p), white, p)

    film_power = ref_diff / (temp(hi_x) - temp(lo_x))
    black = f(0.01) * black_t
    inv_fp = one / film_power
    wb = pw(black / white, -inv_pp) - one
    a, b = pw(wg, inv_fp), pw(wb, inv_fp)
    fog = grey * a / (b - a)
    paper_exp = pw(fog + grey, film_power) * wg
    return white, black, paper_exp, fog, film_power, paper_power


def sigmoid_params(v: Values, x: torch.Tensor) -> list[torch.Tensor]:
    """The curve's parameters as ``(Bp, 1, 1, 1)`` tensors in ``x``'s dtype: darktable's
    float32 values, the float64 formula's gradient."""

    def p(name: str, default: float) -> torch.Tensor:
        return torch.as_tensor(v.get(name, default), dtype=torch.float64, device=x.device).reshape(-1)

    raw = [
        p("middle_grey_contrast", 1.5),
        p("contrast_skewness", 0.0),
        p("display_white_target", 100.0),
        p("display_black_target", 0.0152),
    ]
    bp = max(a.shape[0] for a in raw)
    c, sk, w, b = (a.expand(bp) for a in raw)
    exact64 = _commit(c, sk, w, b, f=lambda k: torch.tensor(k, dtype=torch.float64, device=x.device))
    c32, sk32, w32, b32 = (a.detach().cpu().numpy().astype(np.float32) for a in (c, sk, w, b))
    with np.errstate(all="ignore"):
        f32 = _commit_darktable(c32, sk32, w32, b32)
    out = []
    for t, n in zip(exact64, f32, strict=True):
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device).expand(bp)
        dt = torch.as_tensor(np.asarray(n, np.float64), device=x.device).expand(bp)
        out.append((t + (dt - t).detach()).to(x.dtype).reshape(-1, 1, 1, 1))
    return out


def _desaturate_negative(x: torch.Tensor) -> torch.Tensor:
    """``desaturate_negative_values()``: towards the pixel's mean until no channel is negative."""
    avg = torch.clamp(x.mean(1, keepdim=True), min=0.0)
    mn = x.amin(1, keepdim=True)
    neg = mn < 0.0
    factor = torch.where(neg, -avg / torch.where(neg, mn - avg, -torch.ones_like(mn)), torch.ones_like(mn))
    return avg + factor * (x - avg)


def _order(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``pixel_channel_order()``: channel indices (max, mid, min), ``(B, 1, H, W)`` int64, ties as darktable."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]

    def idx(*v: int) -> list[torch.Tensor]:
        return [torch.full_like(r, float(k)) for k in v]

    cases = [  # (condition, (max, mid, min)), first match wins
        ((r >= g) & (g > b), idx(0, 1, 2)),
        ((r >= g) & (b > r), idx(2, 0, 1)),
        ((r >= g) & (b > g), idx(0, 2, 1)),
        (r >= g, idx(0, 1, 2)),
        (r >= b, idx(1, 0, 2)),
        (b > g, idx(2, 1, 0)),
    ]
    out = idx(1, 2, 0)  # g >= b > r
    for cond, val in reversed(cases):
        out = [torch.where(cond, v, o) for v, o in zip(val, out, strict=True)]
    mx, md, mn = (o.long() for o in out)
    return mx, md, mn


def _preserve_hue(pos: torch.Tensor, pc: torch.Tensor, hue: torch.Tensor, v3: bool = False) -> torch.Tensor:
    """``preserve_hue_and_energy()``: the middle channel's hue from the input, energy kept. ``v3``: darktable
    5.4's (no early return where the curve flattens the pixel; a zero chroma or min + mid gives 0)."""
    imax, imid, imin = _order(pos)
    g = torch.gather
    p_max, p_mid, p_min = g(pc, 1, imax), g(pc, 1, imid), g(pc, 1, imin)
    i_max, i_mid, i_min = g(pos, 1, imax), g(pos, 1, imid), g(pos, 1, imin)
    flat = ((p_max - p_min) < 1e-9) | ((p_mid - p_min) < 1e-9)
    one = torch.ones_like(p_max)
    if v3:
        flat = torch.zeros_like(flat)
        chroma, den = i_max - i_min, i_min + i_mid
        mids = torch.where(chroma != 0.0, (i_mid - i_min) / torch.where(chroma != 0.0, chroma, one), 0.0 * one)
        blend = torch.where(den != 0.0, 2.0 * i_min / torch.where(den != 0.0, den, one), 0.0 * one)
        full = p_min + (p_max - p_min) * mids
        pc_energy = pc.sum(1, keepdim=True)
    else:
        span = torch.where(flat, one, i_max - i_min)
        full = p_min + (p_max - p_min) * (i_mid - i_min) / span
        pc_energy = p_min + p_mid + p_max
        den = i_min + i_mid
        blend = 2.0 * i_min / torch.where(flat | (den == 0.0), one, den)
        mids = (i_mid - i_min) / span
    naive_mid = (1.0 - hue) * p_mid + hue * full
    naive_energy = p_min + naive_mid + p_max
    target = blend * pc_energy + (1.0 - blend) * naive_energy
    low = naive_mid <= p_mid
    mid_a = ((1.0 - hue) * p_mid + hue * (mids * p_max + (1.0 - mids) * (target - p_max))) / (1.0 + hue * (1.0 - mids))
    mid_b = ((1.0 - hue) * p_mid + hue * (p_min * (1.0 - mids) + mids * (target - p_min))) / (1.0 + hue * mids)
    o_min = torch.where(low, target - p_max - mid_a, p_min)
    o_mid = torch.where(low, mid_a, mid_b)
    o_max = torch.where(low, p_max, target - p_min - mid_b)
    o_min, o_mid, o_max = (torch.where(flat, a, b) for a, b in ((p_min, o_min), (p_mid, o_mid), (p_max, o_max)))
    ch = torch.arange(3, device=pos.device).reshape(1, 3, 1, 1)
    return torch.where(ch == imax, o_max, torch.where(ch == imid, o_mid, o_min))


def _rgb_ratio(pos: torch.Tensor, prm: list[torch.Tensor]) -> torch.Tensor:
    """``process_loglogistic_rgb_ratio()``: the curve on the channels' mean, hyperbolic gamut compression."""
    white, black, pexp, fog, fpow, ppow = prm
    luma = pos.mean(1, keepdim=True)
    mapped = _loglogistic(luma, white, pexp, fog, fpow, ppow)
    big = luma > 1e-9
    pre = torch.where(big, mapped / torch.where(big, luma, torch.ones_like(luma)) * pos, mapped.expand_as(pos))
    imax, _, imin = _order(pre)
    p_min, p_max = torch.gather(pre, 1, imin), torch.gather(pre, 1, imax)
    eps = 1e-6
    vs_white = (white - mapped) / (p_max - mapped + eps)
    vs_black = (black - mapped) / (p_min - mapped - eps)
    border = torch.minimum(vs_white, vs_black)
    chroma = (mapped - p_min) / (mapped + eps)
    adjust = 1.0 / (chroma * border + eps)
    hyper = 2.0 * chroma / (1.0 - chroma * chroma + eps) * adjust
    z = torch.sqrt(hyper * hyper + 1.0)
    factor = hyper / (1.0 + z) * border
    return mapped + factor * (pre - mapped)


def _apply(m: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """A 3x3 matrix (column vectors) on ``(B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", torch.as_tensor(m, dtype=x.dtype, device=x.device), x)


def _xy(xyz: np.ndarray) -> np.ndarray:
    """darktable's ``cmsCIEXYZ_to_xy`` (``dt_D50_XYZ_to_xyY``): XYZ clamped at 0 first, so that a colorant
    outside the spectral locus (Rec2020's and P3's red, adapted to D50, have Z < 0) lands on it."""
    c = np.maximum(xyz, 0.0)
    return c[:2] / c.sum()


def _rotate_and_scale(prim: np.ndarray, white: np.ndarray, scaling: float, rotation: float, i: int) -> np.ndarray:
    """custom_primaries.c ``dt_rotate_and_scale_primary``: primary ``i`` (xy) turned by ``rotation`` (radians)
    about the white, at ``scaling`` of the distance to the gamut triangle's edge in that direction."""
    d = prim[i] - white
    angle = math.atan2(d[1], d[0]) + rotation
    c, sn = math.cos(angle), math.sin(angle)
    best = math.inf
    for k in range(3):  # _find_distance_to_edge: the ray from the white against each edge
        p3, p4 = prim[k], prim[(k + 1) % 3]
        den = (-c) * (p3[1] - p4[1]) - (p3[0] - p4[0]) * (-sn)
        if den == 0.0:
            continue
        t = ((white[0] - p3[0]) * (p3[1] - p4[1]) - (p3[0] - p4[0]) * (white[1] - p3[1])) / den
        if t >= 0.0:
            best = min(best, t)
    return white + scaling * best * np.array([c, sn])


def primaries_matrices(v: Values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """darktable 5.4's ``_calculate_adjusted_primaries`` (sigmoid v3, per channel): ``(pipe_to_base,
    base_to_rendering, rendering_to_pipe)``, 3x3 float64 (column vectors), from the working profile (linear
    Rec2020) through the base primaries' profile to the inset, rotated primaries and back (purity scales the
    way back's inset). A profile's primaries and white are its D50-adapted colorants' and media white's xy (lcms's
    tags, ``dt_colorspaces_get_primaries_and_whitepoint_from_profile``, negative XYZ clamped: :func:`_xy`)."""
    base_id = int(one_value(v.get("base_primaries", 0), "sigmoid: one base primaries"))
    work_in = rgb_to_xyz_d50(PROFILE_PRIMARIES["lin_rec2020"])
    base_in = work_in if base_id in (0, 1) else rgb_to_xyz_d50(_BASE[base_id])
    base_out = np.linalg.inv(base_in)
    pipe_to_base = base_out @ work_in if base_id not in (0, 1) else np.eye(3)
    prim = np.stack([_xy(base_in[:, i]) for i in range(3)])
    white = _xy(D50_LCMS)

    def custom_to_xyz(scale: list[float]) -> np.ndarray:
        rot = [one_value(v.get(f"{c}_rotation", 0.0), "sigmoid: one rotation") for c in _RGB]
        xy = [_rotate_and_scale(prim, white, scale[i], rot[i], i) for i in range(3)]
        return normalised_primary_matrix(tuple((float(a), float(b)) for a, b in xy), (float(white[0]), float(white[1])))

    inset = [one_value(v.get(f"{c}_inset", 0.0), "sigmoid: one inset per primary") for c in _RGB]
    purity = one_value(v.get("purity", 0.0), "sigmoid: one purity")
    base_to_rendering = base_out @ custom_to_xyz([1.0 - i for i in inset])
    rendering_to_base = np.linalg.inv(base_out @ custom_to_xyz([1.0 - purity * i for i in inset]))
    return pipe_to_base, base_to_rendering, np.linalg.inv(pipe_to_base) @ rendering_to_base


_RGB = ("red", "green", "blue")
_BASE = {  # dt_iop_sigmoid_base_primaries_t -> darktable's built-in profile's primaries (1: Rec2020, the work one)
    2: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),  # Display P3
    3: PROFILE_PRIMARIES["adobergb"],
    4: PROFILE_PRIMARIES["srgb"],
}


def _per_channel_v3(x: torch.Tensor, v: Values, prm: list[torch.Tensor]) -> torch.Tensor:
    """darktable 5.4's ``process_loglogistic_per_channel``: to the base primaries, negatives desaturated, to the
    rendering (inset) primaries, the curve per channel, hue and energy preserved, back to the working profile."""
    white, _, pexp, fog, fpow, ppow = prm
    p2b, b2r, r2p = primaries_matrices(v)
    rendering = _apply(b2r, _desaturate_negative(_apply(p2b, x)))
    pc = _loglogistic(rendering, white, pexp, fog, fpow, ppow)
    hue_t = torch.as_tensor(v.get("hue_preservation", 100.0), dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    return _apply(r2p, _preserve_hue(rendering, pc, torch.clamp(0.01 * hue_t, 0.0, 1.0), v3=True))


@register_exact(
    "sigmoid",
    params=("middle_grey_contrast", "contrast_skewness", "hue_preservation"),
    versions=(1, 3),
    note="darktable 4.2.1's sigmoid.c (params v1): its three pixel paths (per channel, with hue "
    "preservation, RGB ratio) and commit_params' float32 finite-difference contrast power as Debian's "
    "build computes it (14 random edits: 93-100 dB alone, median 100); v3 (darktable 5.4.1): per channel through "
    "the base, inset and rotated primaries (_calculate_adjusted_primaries), RGB ratio as v1",
)
def sigmoid(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """sigmoid: ``(B, 3, H, W)`` linear Rec2020 scene-referred -> display-referred linear Rec2020."""
    prm = sigmoid_params(v, x)
    white, _, pexp, fog, fpow, ppow = prm
    ratio = int(v.get("color_processing", PER_CHANNEL)) == RGB_RATIO
    if "base_primaries" in v and not ratio:  # version 3's values (version 1 has no primaries), per channel
        return _per_channel_v3(x, v, prm)  # it desaturates the negatives in the base primaries itself
    pos = _desaturate_negative(x)
    if ratio:
        return _rgb_ratio(pos, prm)
    pc = _loglogistic(pos, white, pexp, fog, fpow, ppow)
    hue_t = torch.as_tensor(v.get("hue_preservation", 100.0), dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    hue = torch.clamp(0.01 * hue_t, 0.0, 1.0)
    interpolated = _preserve_hue(pos, pc, hue)
    # process(): hue preservation below 0.1 % takes the plain per-channel path
    return torch.where(hue >= 0.001, interpolated, pc)
