"""darktable's mask refinements after the parametric mask: the feathering (guided filter) and the blur (gaussian).

A port of the CPU path of ``dt_develop_blend_process`` (``src/develop/blend.c``) after the mask is made (the
opacity already in it): ``_develop_mask_get_post_operations`` orders the refinements (feathering above a radius
of 0.1, before the blur where ``feathering_guide`` says "before blur", after it otherwise; the blur above a
radius of 0.1; then the mask's tone curve, :func:`darkproxy.replica.mask.tone_curve`), both at darktable's
render scale (``roi_out->scale / piece->iscale``: the replica's :attr:`StageContext.scale`, ``iscale`` 1 in an
export):

* the blur: ``dt_gaussian_init``/``dt_gaussian_blur`` (``src/common/gaussian.c``, order 0): Deriche's
  recursive gaussian of ``sigma = blur_radius * scale`` (its float32 coefficients), down the columns then
  along the rows, each pass a causal and an anti-causal recursion started in the steady state of the edge
  pixel (darktable's boundary), its input clamped to ``[0, 1]`` (blend.c's ``mmin``/``mmax``) before each
  pass, the output not. The recursion is linear: here it is the matrix of its impulse responses (float64,
  exact up to rounding), applied to the columns and rows;
* the feathering: ``_develop_blend_process_feather`` and ``guided_filter`` (``src/common/guided_filter.c``): He et
  al.'s guided filter of the mask by the module's input ("in") or output ("out") RGB, window radius ``w = (int)(2 *
  feathering_radius * scale + 0.5f)`` (at least 1), ``eps = 1`` (``sqrt_eps`` 1), the guide weighted by 100
  (blend.c's weight in RGB; darktable 5's feathering version 1: 10 and ``sqrt_eps`` 0.5), each box mean the mean over
  the window cut at the border (``box_filters.c``: horizontal then vertical, each stored in float32), the 3x3 system
  solved by Cramer's rule in the tensor's dtype as darktable writes it (float32 in the replica's chain), the result
  clamped to ``[0, 1]`` (darktable's tiles of 512 px with a border of ``2 w`` change nothing: :func:`guided_filter`).

Differentiable in the mask (hence in the parametric mask's breakpoints and opacity) and in the guide (the
module's input or output: the image and the module's sliders); not in the blur's sigma nor in the
feathering radius (an integer window). The box means sum in float64: darktable's float32 running sums
(Kahan-compensated or not, divided or multiplied by the reciprocal), emulated, moved no tested setting by 0.1
dB. Measured (``tests/replica/test_mask_refine.py``: blur, feathering by the input and the output, before and
after the blur, at render scale 1 and 0.5; color balance rgb blended through the refined mask against
darktable's tap-out): 81.1-100 dB over 7 darktable batches (the same masks unrefined: 20.5-31.9 dB). The blur
builds an ``(n, n)`` matrix per image side: fine at the replica's sizes (512 px by default), heavy at tens of
megapixels.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from darkproxy.darktable.blendop import BLUR, FEATHER_IN, post_operations

Tensor = torch.Tensor
_F = np.float32
_FLT_EPSILON = float(np.finfo(_F).eps)
GUIDE_WEIGHT = 100.0  # blend.c: the guide's weight where the blend colour space is RGB


def feather_constants(rgb: bool, feather_version: int) -> tuple[float, float]:
    """``(guide weight, sqrt_eps)`` of blend.c's ``_get_guide_weight`` and ``_get_feathering_eps`` (darktable 5.4.1):
    in an RGB blend colour space 100 and 1, or 10 and 0.5 for darktable 5's feathering (``feather_version`` 1,
    its new blends' default); in Lab 1 and 1 either way."""
    if not rgb:
        return 1.0, 1.0
    return (10.0, 0.5) if feather_version else (GUIDE_WEIGHT, 1.0)


# ---- the gaussian (gaussian.c) ----


def gauss_coefficients(sigma: float) -> tuple[float, ...]:
    """``compute_gauss_params`` for order 0 in float32: ``(a0, a1, a2, a3, b1, b2, coefp, coefn)``."""
    s = _F(sigma)
    alpha = _F(_F(1.695) / s)
    ema = _F(np.exp(-alpha))
    ema2 = _F(np.exp(_F(-2.0) * alpha))
    b1, b2 = _F(_F(-2.0) * ema), ema2
    k = _F(_F(_F(1.0) - ema) * _F(_F(1.0) - ema) / _F(_F(_F(1.0) + _F(_F(_F(2.0) * alpha) * ema)) - ema2))
    a0 = k
    a1 = _F(_F(k * _F(alpha - _F(1.0))) * ema)
    a2 = _F(_F(k * _F(alpha + _F(1.0))) * ema)
    a3 = _F(-k * ema2)
    den = _F(_F(_F(1.0) + b1) + b2)
    coefp = _F(_F(a0 + a1) / den)
    coefn = _F(_F(a2 + a3) / den)
    return tuple(float(v) for v in (a0, a1, a2, a3, b1, b2, coefp, coefn))


@functools.lru_cache(maxsize=32)
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """``(n, n)`` float64: one pass of ``dt_gaussian_blur`` along a line of ``n`` values (``y = T @ x``): its
    causal and anti-causal recursions run on the identity (each row the responses to every input)."""
    a0, a1, a2, a3, b1, b2, coefp, coefn = gauss_coefficients(sigma)
    eye = np.eye(n)
    t = np.zeros((n, n))
    xp = eye[0]
    yb = xp * coefp
    yp = yb
    for j in range(n):  # forward, started in the steady state of the first value
        yc = a0 * eye[j] + a1 * xp - b1 * yp - b2 * yb
        t[j] = yc
        xp, yb, yp = eye[j], yp, yc
    xn = eye[n - 1]
    xa, yn = xn, xn * coefn
    ya = yn
    for j in range(n - 1, -1, -1):  # backward: y[j] from x[j+1], x[j+2] (the last value repeated)
        yc = a2 * xn + a3 * xa - b1 * yn - b2 * ya
        xa, xn, ya, yn = xn, eye[j], yn, yc
        t[j] += yc
    return t


def gaussian_blur(mask: Tensor, sigma: float) -> Tensor:
    """``dt_gaussian_blur`` of a one-channel ``mask`` ``(B, 1, H, W)`` with clamping to ``[0, 1]`` (blend.c's
    ``mmin``, ``mmax``), ``sigma`` in px (not differentiable): columns, then rows, each input clamped."""
    h, w = mask.shape[-2:]
    s = float(_F(sigma))
    th = torch.as_tensor(_gauss_matrix(h, s), dtype=mask.dtype, device=mask.device)
    tw = torch.as_tensor(_gauss_matrix(w, s), dtype=mask.dtype, device=mask.device)
    temp = torch.matmul(th, mask.clamp(0.0, 1.0))
    return torch.matmul(temp.clamp(0.0, 1.0), tw.transpose(0, 1))


# ---- the guided filter (guided_filter.c, box_filters.c) ----


def _box_1d(x: Tensor, r: int, dim: int) -> Tensor:
    """The mean over ``[i - r, i + r]`` cut at the ends along ``dim`` (``blur_*_Kahan``: divided by the
    number of values in the window), summed in float64, returned in ``x``'s dtype (darktable stores it)."""
    n = x.shape[dim]
    x64 = x.to(torch.float64)
    zero = torch.zeros_like(x64.narrow(dim, 0, 1))
    c = torch.cat([zero, torch.cumsum(x64, dim)], dim)
    i = torch.arange(n, device=x.device)
    hi, lo = (i + r).clamp_max(n - 1) + 1, (i - r).clamp_min(0)
    shape = [1] * x.ndim
    shape[dim] = n
    count = (hi - lo).to(torch.float64).reshape(shape)
    return ((c.index_select(dim, hi) - c.index_select(dim, lo)) / count).to(x.dtype)


def box_mean(x: Tensor, r: int) -> Tensor:
    """darktable's box mean of radius ``r`` on ``(B, C, H, W)``: horizontal, then vertical."""
    return _box_1d(_box_1d(x, r, 3), r, 2)


def _coefficients(guide: Tensor, mask: Tensor, r: int, eps: float, weight: float) -> tuple[Tensor, Tensor]:
    """``guided_filter_tiling``: the box-averaged coefficients ``(a (B, 3, h, w), b (B, 1,
    h, w))`` of the mask ``(B, 1, h, w)`` against the weighted ``guide`` ``(B, 3, h, w)``."""
    p = guide * weight
    p0, p1, p2 = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    mean = box_mean(torch.cat([mask, p], 1), r)
    var = box_mean(
        torch.cat([p0 * mask, p1 * mask, p2 * mask, p0 * p0, p0 * p1, p0 * p2, p1 * p1, p1 * p2, p2 * p2], 1), r
    )
    m, gr, gg, gb = mean[:, 0:1], mean[:, 1:2], mean[:, 2:3], mean[:, 3:4]
    s00 = var[:, 3:4] - (gr * gr) + eps
    s01 = var[:, 4:5] - (gr * gg)
    s02 = var[:, 5:6] - (gr * gb)
    s11 = var[:, 6:7] - (gg * gg) + eps
    s12 = var[:, 7:8] - (gg * gb)
    s22 = var[:, 8:9] - (gb * gb) + eps
    det0 = s00 * (s11 * s22 - s12 * s12) - s01 * (s01 * s22 - s02 * s12) + s02 * (s01 * s12 - s02 * s11)
    cr = var[:, 0:1] - gr * m
    cg = var[:, 1:2] - gg * m
    cb = var[:, 2:3] - gb * m
    det1 = cr * (s11 * s22 - s12 * s12) - s01 * (cg * s22 - cb * s12) + s02 * (cg * s12 - cb * s11)
    det2 = s00 * (cg * s22 - cb * s12) - cr * (s01 * s22 - s02 * s12) + s02 * (s01 * cb - s02 * cg)
    det3 = s00 * (s11 * cb - s12 * cg) - s01 * (s01 * cb - s02 * cg) + cr * (s01 * s12 - s02 * s11)
    ok = det0.abs() > 4.0 * _FLT_EPSILON  # else singular: a = 0, b = the mask's mean (never with eps = 1)
    d = torch.where(ok, det0, torch.ones_like(det0))
    zero = torch.zeros_like(det0)
    ar, ag, ab = (torch.where(ok, v / d, zero) for v in (det1, det2, det3))
    b = torch.where(ok, m - ar * gr - ag * gg - ab * gb, m)
    coef = box_mean(torch.cat([ar, ag, ab, b], 1), r)
    return coef[:, 0:3], coef[:, 3:4]


def guided_filter(guide: Tensor, mask: Tensor, r: int, sqrt_eps: float = 1.0, weight: float = GUIDE_WEIGHT) -> Tensor:
    """darktable's ``guided_filter(guide, mask, ..., w = r, sqrt_eps, guide_weight = weight, 0, 1)``: ``mask``
    ``(B, 1, H, W)`` filtered by ``guide`` ``(B, 3, H, W)`` (its first three channels), clamped to ``[0, 1]``.
    darktable's tiles (``GF_TILE_SIZE`` 512 or ``3 r``) each see a border of ``2 r``: every box mean of a
    target pixel then lies within its tile, so the tiling changes nothing (checked to 3e-14 on 600 px)."""
    if r < 1:
        raise ValueError(f"guided filter radius {r}: darktable's is at least 1")
    g = guide[:, :3].to(mask.dtype)
    a, b = _coefficients(g, mask, r, float(_F(_F(sqrt_eps) * _F(sqrt_eps))), weight)
    res = weight * (a[:, 0:1] * g[:, 0:1] + a[:, 1:2] * g[:, 1:2] + a[:, 2:3] * g[:, 2:3]) + b
    return res.clamp(0.0, 1.0)


def feather_radius(feathering_radius: float, scale: float) -> int:
    """``_develop_blend_process_feather``'s window: ``(int)(2 * feathering_radius * scale + 0.5f)``, >= 1."""
    return max(int(_F(_F(_F(2.0) * _F(feathering_radius)) * _F(scale)) + _F(0.5)), 1)


def refine(
    mask: Tensor,
    inp: Tensor,
    out: Tensor,
    feathering_radius: float,
    feathering_guide: int,
    blur_radius: float,
    scale: float = 1.0,
    weight: float = GUIDE_WEIGHT,
    sqrt_eps: float = 1.0,
) -> Tensor:
    """blend.c's post-processing of ``mask`` ``(B, 1, H, W)`` but the tone curve, in darktable's order: the
    feathering guided by the module's input ``inp`` or output ``out`` (``(B, 3, H, W)``, weighted by the blend
    colour space's ``weight``, regularised by ``sqrt_eps``: :func:`feather_constants`), the blur, at render
    ``scale``. No refinement asked: ``mask`` itself."""
    for op in post_operations(feathering_radius, feathering_guide, blur_radius):
        if op == BLUR:
            mask = gaussian_blur(mask, float(_F(_F(blur_radius) * _F(scale))))
        else:
            guide = inp if op == FEATHER_IN else out
            mask = guided_filter(guide, mask, feather_radius(feathering_radius, scale), sqrt_eps, weight)
    return mask
