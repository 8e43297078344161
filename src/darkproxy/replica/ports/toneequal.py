"""darktable 4.2.1's tone equalizer (``toneequal``, params version 2) as an exact stage: ``src/iop/toneequal.c``.

An RGB module (``IOP_CS_RGB``) that darktable's v3.0 order runs before colorin, on camera RGB (through colorin's
matrix as darktable's renders measure it: :func:`~darkproxy.replica.registry.through_camera_rgb`).

* ``commit_params()``: the nine user gains (EV) as ``2^g`` are fitted by eight gaussians of width ``smoothing``
  centred every 8/7 EV in [-8, 0] EV: least squares by the normal equations and iop/choleski.h's float Cholesky
  (emulated step for step in float32).
* ``compute_luminance_mask`` (common/luminance_mask.h): per pixel a norm of the RGB (``method``) times
  ``2^exposure_boost``, with the guided filters' contrast boost ``2^contrast_boost`` around 2^-4 EV, floored at
  2^-16; then, by ``details``, nothing, common/fast_guided_filter.h's guided filter (on a 4x smaller image: bilinear
  ``interpolate_bilinear`` down, ``dt_box_mean`` variance analysis, up) or common/eigf.h's exposure-independent
  guided filter (its averages by common/gaussian.c's recursive gaussian: :func:`~darkproxy.replica.ports.lowpass.
  gaussian_blur`), ``iterations`` times, linear or geometric-mean blending, optional log quantization. Their radius
  follows the whole image: ``(int)((blending / 100 x max(W, H) x scale - 1) / 2)`` of ``piece->iwidth /
  iheight`` at full resolution and darktable-cli's float export scale (``modify_roi_in``).
* ``apply_toneequalizer``: the correction LUT (``10000`` entries per EV) at ``round((clamp(log2 mask, -8, 0) + 8)
  10000)``: the sum of the gaussians at that entry's exposure, clamped to [0.25, 4], times the pixel.

Refused: an order that puts the module before flip (darktable's ``sanity_check`` switches it off there).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise (whole-image exports). Gradients: the image
(the LUT's rounding straight through) and the nine gains; the filter's settings are discrete or set its radius.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.replica.ports.lowpass import gaussian_blur
from darkproxy.replica.ports.soften import box_mean, whole_export
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact, through_camera_rgb
from darkproxy.replica.science import straight_through

Tensor = torch.Tensor

GAINS = ("noise", "ultra_deep_blacks", "deep_blacks", "blacks", "shadows", "midtones", "highlights", "whites",
         "speculars")  # fmt: skip
NONE, AVG_GUIDED, GUIDED, AVG_EIGF, EIGF = range(5)
MEAN, LIGHTNESS, VALUE, NORM_1, NORM_2, NORM_POWER, GEOMEAN = range(7)
LUT_RESOLUTION = 10000
MIN_FLOAT = 2.0**-16
CONTRAST_FULCRUM = 2.0**-4
_F32 = torch.float32


def _f(v: float) -> Tensor:
    return torch.tensor(v, dtype=_F32)


CENTERS_OPS = [float(_f(-56.0 + 8.0 * i) / _f(7.0)) for i in range(8)]  # -56/7 ... 0/7 in float
CENTERS_PARAMS = [float(i) for i in range(-8, 1)]


def _gauss(r: Tensor, denom: Tensor) -> Tensor:
    """``gaussian_func``: ``expf(-r r / denom)``."""
    return torch.exp(-r * r / denom)


def _solve_as_darktable(gains: list[float], sigma: float) -> list[float]:
    """``commit_params()``'s ``pseudo_solve`` for one image, as darktable 4.2.1 computes it on this machine: float32
    normal equations and iop/choleski.h's Cholesky with the AVX2 clone's fused multiply-adds (``__DT_CLONE_TARGETS__``:
    darktable dispatches it on a CPU with FMA) and correctly rounded ``expf`` / ``exp2f``. The system is badly
    conditioned for a wide ``smoothing`` (2 gives 20-50 dB without the fused rounding, 97.8 with it); where its
    Cholesky meets a negative root the factors are NaN, as darktable's."""
    f32 = np.float32

    def fma(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
        return f32(float(a) * float(b) + float(c))  # the float32 product is exact in double: one rounding

    s = f32(sigma)
    denom = f32(f32(2.0) * s) * s
    co = [f32(c) for c in CENTERS_OPS]
    A = []
    for cp in CENTERS_PARAMS:
        r = [f32(f32(cp) - c) for c in co]
        A.append([f32(math.exp(float(f32(f32(-ri) * ri) / denom))) for ri in r])
    y = [f32(2.0 ** float(f32(g))) for g in gains]
    n = 8

    def dot(u: list[np.float32], w: list[np.float32]) -> np.float32:
        acc = f32(0.0)  # sum += u[k] w[k] in order, each step fused
        for a, b in zip(u, w, strict=True):
            acc = fma(a, b, acc)
        return acc

    cols = [[row[i] for row in A] for i in range(n)]  # A's columns
    with np.errstate(invalid="ignore", divide="ignore"):
        ata = [[dot(cols[i], cols[j]) for j in range(i + 1)] for i in range(n)]  # transpose_dot_matrix
        aty = [dot(cols[i], y) for i in range(n)]  # transpose_dot_vector
        L = [[f32(0.0)] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1):
                acc = dot(L[i][:j], L[j][:j])
                L[i][j] = f32(np.sqrt(f32(ata[i][i] - acc))) if i == j else f32(f32(ata[i][j] - acc) / L[j][j])
        b: list[np.float32] = []
        for i in range(n):
            acc = aty[i]
            for j in range(i):
                acc = fma(f32(-L[i][j]), b[j], acc)
            b.append(f32(acc / L[i][i]))
        x = [f32(0.0)] * n
        for i in range(n - 1, -1, -1):
            acc = b[i]
            for j in range(n - 1, i, -1):
                acc = fma(f32(-L[j][i]), x[j], acc)
            x[i] = f32(acc / L[i][i])
    return [float(v) for v in x]


def channel_factors(gains: list[Tensor], sigma: Tensor) -> list[Tensor]:
    """``commit_params()``'s eight gaussian weights for the nine ``gains`` (EV, ``(B or 1,)``) and ``smoothing``
    ``sigma`` ``(B or 1,)``: darktable's values (:func:`_solve_as_darktable`, per batch item), the gradient of the
    same least squares solved in float64."""
    b = max([g.shape[0] for g in gains] + [sigma.shape[0]])
    g64 = torch.stack([g.reshape(-1).expand(b) for g in gains], 1).to(torch.float64)  # (b, 9)
    s64 = sigma.detach().reshape(-1).expand(b).to(torch.float64)
    cp = torch.tensor(CENTERS_PARAMS, dtype=torch.float64)
    co = torch.tensor(CENTERS_OPS, dtype=torch.float64)
    A = torch.exp(-((cp[None, :, None] - co[None, None, :]) ** 2) / (2.0 * s64[:, None, None] ** 2))  # (b, 9, 8)
    smooth = torch.linalg.lstsq(A, torch.exp2(g64)[..., None]).solution[..., 0]  # (b, 8)
    exact = torch.tensor([_solve_as_darktable(g64[k].tolist(), float(s64[k])) for k in range(b)], dtype=torch.float64)
    out = straight_through(exact, smooth)
    return [out[:, i].to(gains[0].dtype) for i in range(8)]


def correction(exposure: Tensor, factors: list[Tensor], sigma: Tensor) -> Tensor:
    """The correction of an exposure (EV, clamped to [-8, 0]): the eight gaussians' weighted sum clamped to
    [0.25, 4] (``compute_correction_lut``'s entry)."""
    denom = 2.0 * sigma * sigma
    result = torch.zeros_like(exposure)
    for i in range(8):
        result = result + _gauss(exposure - CENTERS_OPS[i], denom) * factors[i]
    # fast_clamp is fmaxf(fminf(.)): a NaN (darktable's failed Cholesky) gives 4
    return torch.fmax(torch.fmin(result, torch.full_like(result, 4.0)), torch.full_like(result, 0.25))


def _linear_contrast(v: Tensor, fulcrum: float | Tensor, contrast: Tensor | float) -> Tensor:
    return ((v - fulcrum) * contrast + fulcrum).clamp_min(MIN_FLOAT)


def luminance(x: Tensor, method: int, boost: Tensor, fulcrum: float, contrast: Tensor | float) -> Tensor:
    """``luminance_mask``: ``(B, 1, H, W)`` of camera RGB ``x`` by ``method``."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if method == MEAN:
        lum = boost * ((r + g) + b) / 3.0
    elif method == LIGHTNESS:
        mx = torch.maximum(torch.maximum(r, g), b)
        mn = torch.minimum(torch.minimum(r, g), b)
        lum = boost * (mx + mn) / 2.0
    elif method == VALUE:
        lum = boost * torch.maximum(torch.maximum(r, g), b)
    elif method == NORM_1:
        lum = boost * ((r.abs() + g.abs()) + b.abs())
    elif method == NORM_2:
        lum = boost * torch.sqrt((r * r + g * g) + b * b)
    elif method == NORM_POWER:
        a = [c.abs() for c in (r, g, b)]
        sq = [c * c for c in a]
        num = (sq[0] * a[0] + sq[1] * a[1]) + sq[2] * a[2]
        den = (sq[0] + sq[1]) + sq[2]
        lum = boost * num / den
    elif method == GEOMEAN:
        lum = boost * torch.pow((r.abs() * g.abs()) * b.abs(), 1.0 / 3.0)
    else:
        raise ValueError(f"toneequal: unknown luminance estimator {method}")
    return _linear_contrast(lum, fulcrum, contrast)


def interpolate_bilinear(x: Tensor, h_out: int, w_out: int) -> Tensor:
    """fast_guided_filter.h's ``interpolate_bilinear`` of ``x`` ``(B, C, H, W)`` to ``(h_out, w_out)``: output
    pixel ``(i, j)`` reads input ``(i H / h_out, j W / w_out)`` (float32), its floor and the next, clamped."""
    h_in, w_in = x.shape[-2:]

    def axis(n_out: int, n_in: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pos = torch.arange(n_out, dtype=_F32) / _f(float(n_out)) * _f(float(n_in))
        prev = torch.floor(pos).to(torch.int64)
        prev_c, next_c = prev.clamp_max(n_in - 1), (prev + 1).clamp_max(n_in - 1)
        d_next = next_c.to(_F32) - pos  # from the clamped index, as darktable computes it
        return prev_c, next_c, d_next, 1.0 - d_next

    yp, yn, dyn, dyp = axis(h_out, h_in)
    xp, xn, dxn, dxp = axis(w_out, w_in)
    dyn, dyp = (t.to(x.dtype).to(x.device).reshape(-1, 1) for t in (dyn, dyp))
    dxn, dxp = (t.to(x.dtype).to(x.device).reshape(1, -1) for t in (dxn, dxp))

    def at(rows: Tensor, cols: Tensor) -> Tensor:
        return x.index_select(-2, rows.to(x.device)).index_select(-1, cols.to(x.device))

    nw, ne, se, sw = at(yp, xp), at(yp, xn), at(yn, xn), at(yn, xp)
    return dyp * (sw * dxn + se * dxp) + dyn * (nw * dxn + ne * dxp)


def quantize(x: Tensor, sampling: float, lo: float, hi: float) -> Tensor:
    """``quantize``: ``exp2(floor(log2 x / sampling) sampling)`` clamped to ``[lo, hi]`` (a copy at 0)."""
    if sampling == 0.0:
        return x
    if sampling == 1.0:
        return torch.exp2(torch.floor(torch.log2(x))).clamp(lo, hi)
    return torch.exp2(torch.floor(torch.log2(x) / sampling) * sampling).clamp(lo, hi)


def surface_blur(img: Tensor, radius: int, feathering: float, iterations: int, geomean: bool, quant: float) -> Tensor:
    """``fast_surface_blur`` of the mask ``img`` ``(B, 1, H, W)``: the guided filter on a 4x smaller image."""
    h, w = img.shape[-2:]
    ds_radius = 1 if radius < 4 else int(radius / 4.0)
    ds_h, ds_w = int(h / 4.0), int(w / 4.0)
    ds = interpolate_bilinear(img, ds_h, ds_w)
    ab = ds
    for i in range(iterations):
        g = quantize(ds, quant, 2.0**-14, 4.0)  # variance_analyse(guide = the quantized mask, mask = the image)
        m = box_mean(torch.cat([g, ds, g * g, g * ds], 1), ds_radius, 1)
        d = ((m[:, 2:3] - m[:, 0:1] * m[:, 0:1]) + feathering).clamp_min(1e-15)
        a = (m[:, 3:4] - m[:, 0:1] * m[:, 1:2]) / d
        b = m[:, 1:2] - a * m[:, 0:1]
        ab = box_mean(torch.cat([a, b], 1), ds_radius, 1)
        if i != iterations - 1:
            ds = (ds * ab[:, 0:1] + ab[:, 1:2]).clamp_min(MIN_FLOAT)
    up = interpolate_bilinear(ab, h, w)
    out = (img * up[:, 0:1] + up[:, 1:2]).clamp_min(MIN_FLOAT)
    return torch.sqrt(img * out) if geomean else out


def _blur_bounded(x: Tensor, sigma: float) -> Tensor:
    """``dt_gaussian_init`` with each channel's min and max over the image (``min`` from 1e7, ``max`` from 0), then
    ``dt_gaussian_blur``."""
    lo = torch.minimum(x.amin(dim=(2, 3), keepdim=True), torch.full_like(x[:, :, :1, :1], 1e7))
    hi = torch.maximum(x.amax(dim=(2, 3), keepdim=True), torch.zeros_like(x[:, :, :1, :1]))
    s = torch.full((1,), float(sigma), dtype=x.dtype, device=x.device)
    return gaussian_blur(x, s, 0, lo, hi)


def eigf_surface_blur(
    img: Tensor, sigma: float, feathering: float, iterations: int, geomean: bool, quant: float
) -> Tensor:
    """``fast_eigf_surface_blur`` of the mask ``img`` ``(B, 1, H, W)``."""
    h, w = img.shape[-2:]
    scaling = float(_f(max(min(sigma, 4.0), 1.0)))
    ds_sigma = float(torch.clamp_min(_f(sigma) / _f(scaling), 1.0))
    ds_h, ds_w = int(float(h) / scaling), int(float(w) / scaling)
    for i in range(iterations):
        geo = geomean and i == iterations - 1
        ds = interpolate_bilinear(img, ds_h, ds_w)
        if quant != 0.0:
            mask = quantize(img, quant, 2.0**-14, 4.0)
            ds_mask = interpolate_bilinear(mask, ds_h, ds_w)
            # eigf_variance_analysis(guide = ds_mask, mask = ds_image)
            g, m = ds_mask, ds
            av = _blur_bounded(torch.cat([g, g * g, m, m * g], 1), ds_sigma)
            av = torch.cat([av[:, 0:1], av[:, 1:2] - av[:, 0:1] * av[:, 0:1], av[:, 2:3],
                            av[:, 3:4] - av[:, 0:1] * av[:, 2:3]], 1)  # fmt: skip
            av = interpolate_bilinear(av, h, w)
            avg_g, var_g, avg_m, covar = av[:, 0:1], av[:, 1:2], av[:, 2:3], av[:, 3:4]
            norm_g = (avg_g * img).clamp_min(1e-6)
            norm_m = (avg_m * mask).clamp_min(1e-6)
            a = (covar / torch.sqrt(norm_g * norm_m)) / (var_g / norm_g + feathering)
            b = avg_m - a * avg_g
        else:
            av = _blur_bounded(torch.cat([ds, ds * ds], 1), ds_sigma)
            av = torch.cat([av[:, 0:1], av[:, 1:2] - av[:, 0:1] * av[:, 0:1]], 1)
            av = interpolate_bilinear(av, h, w)
            avg_g, var_g = av[:, 0:1], av[:, 1:2]
            nv = var_g / (avg_g * img).clamp_min(1e-6)
            a = nv / (nv + feathering)
            b = avg_g - a * avg_g
        blended = (img * a + b).clamp_min(MIN_FLOAT)
        img = torch.sqrt(img * blended) if geo else blended
    return img


def _supports(v: Values, ctx: StageContext) -> str | None:
    mods = ctx.modules
    if "toneequal" in mods and "flip" in mods and mods.index("toneequal") < mods.index("flip"):
        return "toneequal before flip: darktable disables the tone equalizer there (its sanity_check)"
    if int(one_value(v.get("method", NORM_2), "toneequal: method")) not in range(7):
        return "toneequal: unknown luminance estimator"
    if int(one_value(v.get("details", EIGF), "toneequal: details")) not in range(5):
        return "toneequal: unknown filter"
    return None


@register_exact(
    "toneequal",
    params=GAINS,
    versions=(2,),
    pointwise=False,
    note="darktable's toneequal.c on camera RGB: the gains' gaussian fit by its float Cholesky, the luminance mask "
    "and its guided or exposure-independent guided filter at the whole image's radius, the correction LUT; "
    "whole-image exports",
    supports=_supports,
)
def toneequal(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """tone equalizer on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same (on camera RGB where the pipe runs it
    before colorin, as darktable's v3.0 order does)."""
    why = "toneequal: {} sets the luminance mask's filter; one value per batch, it cannot be fitted"
    method = int(one_value(v.get("method", NORM_2), why.format("method")))
    details = int(one_value(v.get("details", EIGF), why.format("details")))
    iterations = int(one_value(v.get("iterations", 1), why.format("iterations")))
    blending = float(_f(one_value(v.get("blending", 5.0), why.format("blending"))) / _f(100.0))
    feathering = float(_f(1.0) / _f(one_value(v.get("feathering", 1.0), why.format("feathering"))))
    quant = one_value(v.get("quantization", 0.0), why.format("quantization"))
    sigma = column(v.get("smoothing", 2.0**0.5), x).reshape(-1)
    exposure_boost = torch.exp2(column(v.get("exposure_boost", 0.0), x))
    contrast_boost = torch.exp2(column(v.get("contrast_boost", 0.0), x))
    gains = [column(v.get(k, 0.0), x).reshape(-1) for k in GAINS]
    factors = [f.reshape(-1, 1, 1, 1) for f in channel_factors(gains, sigma)]
    sig = sigma.reshape(-1, 1, 1, 1)
    radius = 0
    if details != NONE:
        bw, bh, s = whole_export("toneequal", ctx, *x.shape[-2:])
        diameter = _f(blending) * _f(float(max(bw, bh))) * _f(s)
        radius = int((diameter - 1.0) / 2.0)

    def apply(cam: Tensor) -> Tensor:
        boosted = details in (GUIDED, EIGF)
        fulcrum, contrast = (CONTRAST_FULCRUM, contrast_boost) if boosted else (0.0, 1.0)
        lum = luminance(cam, method, exposure_boost, fulcrum, contrast)
        geo = details in (AVG_GUIDED, AVG_EIGF)
        if details in (AVG_GUIDED, GUIDED):
            lum = surface_blur(lum, radius, feathering, iterations, geo, quant)
        elif details in (AVG_EIGF, EIGF):
            lum = eigf_surface_blur(lum, float(radius), feathering, iterations, geo, quant)
        exposure = torch.log2(lum).clamp(-8.0, 0.0)
        at = (exposure.detach().to(_F32) + 8.0) * float(LUT_RESOLUTION)  # >= 0
        index = torch.floor(at) + ((at - torch.floor(at)) >= 0.5).to(_F32)  # roundf: halves away from 0
        entry = (index / _f(float(LUT_RESOLUTION)) - 8.0).to(x.dtype)  # (float)j / (float)LUT_RESOLUTION + min_ev
        smooth = correction(exposure, [f.detach() for f in factors], sig)  # the image's gradient only
        corr = correction(entry, factors, sig) + (smooth - smooth.detach())
        return corr * cam

    return through_camera_rgb(x, ctx, "toneequal", apply)
