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

from typing import Any

import numpy as np
import torch

from darkproxy.replica.registry import StageContext, Values, register_exact
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


def _preserve_hue(pos: torch.Tensor, pc: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """``preserve_hue_and_energy()``: the middle channel's hue from the input, energy kept."""
    imax, imid, imin = _order(pos)
    g = torch.gather
    p_max, p_mid, p_min = g(pc, 1, imax), g(pc, 1, imid), g(pc, 1, imin)
    i_max, i_mid, i_min = g(pos, 1, imax), g(pos, 1, imid), g(pos, 1, imin)
    flat = ((p_max - p_min) < 1e-9) | ((p_mid - p_min) < 1e-9)
    one = torch.ones_like(p_max)
    span = torch.where(flat, one, i_max - i_min)
    full = p_min + (p_max - p_min) * (i_mid - i_min) / span
    naive_mid = (1.0 - hue) * p_mid + hue * full
    pc_energy = p_min + p_mid + p_max
    naive_energy = p_min + naive_mid + p_max
    den = i_min + i_mid
    blend = 2.0 * i_min / torch.where(flat | (den == 0.0), one, den)
    mids = (i_mid - i_min) / span
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


@register_exact(
    "sigmoid",
    params=("middle_grey_contrast", "contrast_skewness", "hue_preservation"),
    versions=(1,),
    note="darktable 4.2.1's sigmoid.c (params v1): its three pixel paths (per channel, with hue "
    "preservation, RGB ratio) and commit_params' float32 finite-difference contrast power as Debian's "
    "build computes it (14 random edits: 93-100 dB alone, median 100)",
)
def sigmoid(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """sigmoid: ``(B, 3, H, W)`` linear Rec2020 scene-referred -> display-referred linear Rec2020."""
    prm = sigmoid_params(v, x)
    white, _, pexp, fog, fpow, ppow = prm
    pos = _desaturate_negative(x)
    if int(v.get("color_processing", PER_CHANNEL)) == RGB_RATIO:
        return _rgb_ratio(pos, prm)
    pc = _loglogistic(pos, white, pexp, fog, fpow, ppow)
    hue_t = torch.as_tensor(v.get("hue_preservation", 100.0), dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    hue = torch.clamp(0.01 * hue_t, 0.0, 1.0)
    interpolated = _preserve_hue(pos, pc, hue)
    # process(): hue preservation below 0.1 % takes the plain per-channel path
    return torch.where(hue >= 0.001, interpolated, pc)
