"""darktable 4.2.1's lowpass (``lowpass``, params version 4) as an exact stage: ``src/iop/lowpass.c``.

A Lab module (``IOP_CS_LAB``). ``process()`` in its gaussian mode (``lowpass_algo`` 0, the default), or in its
bilateral mode (1: ``common/bilateral.c``'s grid on L with spatial sigma ``radius x render scale`` and range sigma
100, sliced at detail -1, its base layer; a* and b* unblurred: :func:`~darkproxy.replica.ports.monochrome.
bilateral_base`, which monochrome and local contrast share):

* ``common/gaussian.c`` (``dt_gaussian_blur_4c``) with ``sigma = radius x render scale``: per axis (columns,
  then rows) a causal and an anti-causal recursive filter of order 2 (Deriche's form, a double pole at
  ``e = exp(-1.695 / sigma)``; ``order`` 0, 1 or 2: the gaussian or its derivatives), each started from the
  steady state of its first sample repeated, summed. That is a linear map of each line, computed here as one
  ``(n, n)`` matrix from the closed-form impulse responses (:func:`iir_matrix`), applied by FFT
  (:func:`iir_filter`), so that it is exact at any sigma and size, batched and differentiable in sigma. The
  inputs of both passes are clamped to L in [0, 100], a* and b* in [-128, 128] unless ``unbound`` (the default
  since params version 3; legacy versions upgrade to 0).
* L through the contrast table then the brightness table (``commit_params``: ``contrast (L - 50) + 50`` for
  |contrast| <= 1, else a sigmoid; ``100 (L / 100)^gamma``), each extrapolated above L = 100 by
  ``dt_iop_estimate_exp`` through its entries at 0.7, 0.8, 0.9 and 1; below L = 0 the first entry. The tables
  are evaluated in closed form at L, not at darktable's 65536 floored entries (a difference of at most
  ``100 / 65536`` in L times the curve's slope).
* a* and b* times ``saturation``, clamped as above unless unbound.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise. Gradients: the image, radius, contrast,
brightness and saturation (the tables' branches are chosen by value; in bilateral mode the radius sets the grid:
no gradient, one value per batch). Refused: an algorithm or order darktable does not have, placements outside
colorin..colorout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from darkproxy.replica.ports.monochrome import bilateral_base, lab_placement
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab

Tensor = torch.Tensor

ALGO_GAUSSIAN, ALGO_BILATERAL = 0, 1
BILATERAL_SIGMA_R = 100.0  # process(): the range sigma does not depend on the scale
LAB_MIN, LAB_MAX = (0.0, -128.0, -128.0), (100.0, 128.0, 128.0)
# dt_iop_estimate_exp's points: x = 0.7f .. 1.0f and the table entries CLAMP((int)(x * 0x10000), 0, 0xffff)
_EXP_X = (0.7, 0.8, 0.9, 1.0)
_EXP_U = tuple(min(int(float(torch.tensor(x, dtype=torch.float32)) * 0x10000), 0xFFFF) / 0x10000 for x in _EXP_X)


def iir_coefficients(sigma: Tensor, order: int) -> tuple[Tensor, ...]:
    """``compute_gauss_params``: ``(a0, a1, a2, a3, e, coefp, coefn)`` for ``sigma`` (any shape), where the
    recursion's ``b1 = -2 e`` and ``b2 = e^2``."""
    alpha = 1.695 / sigma
    e = torch.exp(-alpha)
    e2 = torch.exp(-2.0 * alpha)
    if order == 0:
        k = (1.0 - e) ** 2 / (1.0 + 2.0 * alpha * e - e2)
        a0, a1, a2, a3 = k, k * (alpha - 1.0) * e, k * (alpha + 1.0) * e, -k * e2
    elif order == 1:
        a0 = (1.0 - e) ** 2
        a1, a2, a3 = torch.zeros_like(e), -a0, torch.zeros_like(e)
    elif order == 2:
        k = -(e2 - 1.0) / (2.0 * alpha * e)
        kn = -2.0 * (-1.0 + 3.0 * e - 3.0 * e * e + e**3) / (3.0 * e + 1.0 + 3.0 * e * e + e**3)
        a0, a1, a2, a3 = kn, -kn * (1.0 + k * alpha) * e, kn * (1.0 - k * alpha) * e, -kn * e2
    else:
        raise ValueError(f"gaussian order {order}")
    den = 1.0 - 2.0 * e + e2
    return a0, a1, a2, a3, e, (a0 + a1) / den, (a2 + a3) / den


def _responses(sigma: Tensor, n: int, order: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The causal and anti-causal impulse responses ``(S, n)`` (lags 0..n-1) of ``sigma`` ``(S,)`` and what each
    leaves beyond lag ``j`` (``coefp`` / ``coefn`` less their sums up to ``j``): ``(hf, hb, tail_f, tail_b)``."""
    a0, a1, a2, a3, e, coefp, coefn = (t.reshape(-1, 1) for t in iir_coefficients(sigma.reshape(-1), order))
    k = torch.arange(n, dtype=sigma.dtype, device=sigma.device)[None]
    ek = torch.where(k > 0, e, torch.ones_like(e)) ** k  # e^k; 0^0 = 1 with a finite gradient when e underflows
    ek1 = torch.cat([torch.zeros_like(e), ek[:, :-1]], 1)  # e^(k-1), 0 at k = 0
    ek2 = torch.cat([torch.zeros_like(e), ek1[:, :-1]], 1)  # e^(k-2), 0 at k <= 1
    hf = a0 * (k + 1.0) * ek + a1 * k * ek1
    hb = a2 * k * ek1 + a3 * (k - 1.0) * ek2  # 0 at lag 0
    return hf, hb, coefp - torch.cumsum(hf, 1), coefn - torch.cumsum(hb, 1)


def iir_matrix(sigma: Tensor, n: int, order: int = 0) -> Tensor:
    """``dt_gaussian_blur``'s filter of one line of ``n`` samples as a matrix, ``(S, n, n)`` for ``sigma``
    ``(S,)`` px (``out = M @ line``): the causal part's impulse response is ``a0 (k + 1) e^k + a1 k e^(k-1)``,
    the anti-causal part's ``a2 k e^(k-1) + a3 (k - 1) e^(k-2)`` (``k >= 1``); darktable starts each from the
    steady state of the line's end sample repeated, which puts the responses' tails on the first and the last
    column. The definition :func:`iir_filter` computes by FFT."""
    hf, hb, tail_f, tail_b = _responses(sigma, n, order)
    idx = torch.arange(n, device=sigma.device)
    lag = idx[:, None] - idx[None, :]  # row j, column m: j - m
    m = torch.where(lag >= 0, hf[:, lag.clamp_min(0)], hb[:, (-lag).clamp_min(0)])
    first = torch.zeros(n, dtype=sigma.dtype, device=sigma.device)
    first[0] = 1.0
    return m + tail_f[:, :, None] * first + tail_b.flip(1)[:, :, None] * first.flip(0)


def _causal(x: Tensor, h: Tensor) -> Tensor:
    """``y[j] = sum_{m <= j} h[j - m] x[m]`` along the last axis of ``x`` ``(S or 1, ..., n)`` by FFT; ``h``
    ``(S, n)``."""
    n = x.shape[-1]
    size = 2 * n
    hs = h.reshape(h.shape[0], *([1] * (x.ndim - 2)), n)
    y = torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(hs, size), size)
    return y[..., :n]


def iir_filter(x: Tensor, sigma: Tensor, order: int = 0) -> Tensor:
    """``dt_gaussian_blur``'s filter (:func:`iir_matrix`) along the last axis of ``x`` ``(B, ..., n)`` with
    ``sigma`` ``(B,)`` or ``(1,)`` px, in float64 (the tails are differences of sums near ``coefp``)."""
    n = x.shape[-1]
    hf, hb, tail_f, tail_b = _responses(sigma.to(torch.float64), n, order)
    x64 = x.to(torch.float64)
    shape = (hf.shape[0], *([1] * (x.ndim - 2)), n)
    y = _causal(x64, hf) + _causal(x64.flip(-1), hb).flip(-1)
    y = y + tail_f.reshape(shape) * x64[..., :1] + tail_b.flip(1).reshape(shape) * x64[..., -1:]
    return y.to(x.dtype)


def gaussian_blur(
    x: Tensor, sigma: Tensor, order: int = 0, lo: Tensor | None = None, hi: Tensor | None = None
) -> Tensor:
    """``dt_gaussian_blur_4c`` of ``x`` ``(B, C, H, W)`` with ``sigma`` ``(B,)`` or ``(1,)`` px: columns first,
    then rows, each pass's input clamped to ``[lo, hi]`` ``(1, C, 1, 1)`` when given."""

    def clamp(t: Tensor) -> Tensor:
        return t if lo is None or hi is None else torch.maximum(torch.minimum(t, hi), lo)

    t = iir_filter(clamp(x).transpose(-1, -2), sigma, order).transpose(-1, -2)
    return iir_filter(clamp(t), sigma, order)


def _contrast(u: Tensor, c: Tensor) -> Tensor:
    """The contrast table at ``u = L / 100`` (``ctable[k]`` at ``u = k / 0x10000``)."""
    lin = c * (100.0 * u - 50.0) + 50.0
    m1sq = 5.0 * (c.abs() - 1.0) ** 2
    x = 2.0 * u - 1.0
    sig = 50.0 * (torch.sign(c) * torch.sqrt(1.0 + m1sq) * x / torch.sqrt(1.0 + m1sq * x * x) + 1.0)
    return torch.where(c.abs() <= 1.0, lin, sig)


def brightness_curve(u: Tensor, b: Tensor) -> Tensor:
    """The brightness table at ``u = L / 100``: ``100 u^gamma``."""
    gamma = torch.where(b >= 0.0, 1.0 / (1.0 + b.clamp_min(0.0)), 1.0 - b.clamp_max(0.0))
    return 100.0 * u.clamp_min(0.0) ** gamma


def lab_table(L: Tensor, curve: Callable[[Tensor, Tensor], Tensor], arg: Tensor) -> Tensor:
    """One table applied to L: the curve at ``max(L, 0) / 100`` below 100, ``dt_iop_eval_exp`` above."""
    ys = [curve(torch.full_like(arg, u), arg) for u in _EXP_U]
    y0 = ys[3]
    gs, cnt = torch.zeros_like(y0), torch.zeros_like(y0)
    for x, y in zip(_EXP_X[:3], ys[:3], strict=False):
        yy = y / y0
        ok = yy > 0.0
        gs = gs + torch.where(ok, torch.log(torch.where(ok, yy, torch.ones_like(yy))) / math.log(x), 0.0)
        cnt = cnt + ok.to(cnt.dtype)
    g = torch.where(cnt > 0, gs / cnt.clamp_min(1.0), torch.ones_like(gs))
    u = L / 100.0
    below = curve(u.clamp(0.0, 1.0), arg)
    above = y0 * u.clamp_min(1.0) ** g  # coeffs (1 / x0, y0, g) with x0 = 1
    return torch.where(L < 100.0, below, above)


def _supports(v: Values, ctx: StageContext) -> str | None:
    why = lab_placement("lowpass")(v, ctx)
    if why:
        return why
    algo = int(v.get("lowpass_algo", ALGO_GAUSSIAN))
    if algo not in (ALGO_GAUSSIAN, ALGO_BILATERAL):
        return f"lowpass: algorithm {algo} is not one darktable 4.2.1 has"
    order = int(v.get("order", 0))
    if order not in (0, 1, 2):
        return f"lowpass: gaussian order {order} is not one darktable 4.2.1 has"
    return None


@register_exact(
    "lowpass",
    params=("radius", "contrast", "brightness", "saturation"),
    versions=(4,),
    pointwise=False,
    note="darktable's lowpass.c: common/gaussian.c's recursive filter (sigma = radius x render scale; exact, by "
    "FFT) or bilateral.c's grid, the contrast and brightness tables with their extrapolation, saturation; any "
    "render scale",
    supports=_supports,
)
def lowpass(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """lowpass on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    lab = working_rgb_to_lab(x)
    radius = column(v.get("radius", 10.0), x).reshape(-1).clamp_min(0.1)
    unbound = bool(int(v.get("unbound", 1)))
    lo = None if unbound else torch.tensor(LAB_MIN, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    hi = None if unbound else torch.tensor(LAB_MAX, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    if int(v.get("lowpass_algo", ALGO_GAUSSIAN)) == ALGO_BILATERAL:  # L's bilateral base layer; a*, b* as they are
        why = "lowpass: the bilateral mode's radius sets darktable's grid; it cannot be fitted"
        sigma = one_value(radius, why) * ctx.scale
        blur = torch.cat([bilateral_base(lab[:, 0:1], sigma, BILATERAL_SIGMA_R, -1.0), lab[:, 1:3]], 1)
    else:
        blur = gaussian_blur(lab, radius * ctx.scale, int(v.get("order", 0)), lo, hi)
    L = lab_table(blur[:, 0:1], _contrast, column(v.get("contrast", 1.0), x))
    L = lab_table(L, brightness_curve, column(v.get("brightness", 0.0), x))
    ab = blur[:, 1:3] * column(v.get("saturation", 1.0), x)
    if not unbound:
        ab = ab.clamp(-128.0, 128.0)
    return lab_to_working_rgb(torch.cat([L, ab], 1))
