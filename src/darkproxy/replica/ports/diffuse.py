"""darktable 4.2.1's diffuse or sharpen (``diffuse``, params version 2) as an exact stage: ``src/iop/diffuse.c``.

An RGB module (``IOP_CS_RGB``: the working profile's linear Rec2020). ``process()``, ``iterations`` times (at least
once), on the previous iteration's output:

* an a-trous wavelet decomposition (``common/bspline.h``'s ``decompose_2D_Bspline``: the 5-tap B-spline
  ``[1, 4, 6, 4, 1] / 16`` at spacing ``2^s``, a vertical then a horizontal pass, indices clamped at the edges,
  each pass clipped at 0; detail = input - blur) into ``scales`` layers, ``scales`` =
  ``num_steps_to_reach_equivalent_sigma(B_SPLINE_SIGMA, 2 (radius + radius_center) / zoom)`` clamped to 1..10,
  ``zoom = max(1 / render scale, 1)``;
* from the coarsest layer to the finest, ``heat_PDE_diffusion`` on the 3x3 stencil at spacing ``2^s`` (clamped):
  the gradients of the low frequencies (the reconstruction so far) and of the layer's details set, per pixel and
  channel, four anisotropic laplacian kernels (isotropic, along the isophote or along the gradient by the sign
  of each ``anisotropy_*``; ``c^2 = dt_fast_expf(-|grad| anisotropy^2)``, darktable's bit-trick exponential,
  emulated bit for bit); their responses weighted by ``{first, second, third, fourth} x 0.25 x norm``, divided
  by ``10^variance_threshold + sum(details^2) (10^regularization - 1) sigma_s^2 / 9``, plus ``details x
  (1 + sharpness x norm)`` and the low frequencies, clipped at 0, where ``norm = exp(-(sigma_s zoom -
  radius_center)^2 / radius^2)`` and ``sigma_s`` is the B-spline's equivalent sigma at scale ``s``.

With a luminance masking threshold (``threshold`` > 0) only the pixels with a channel above it diffuse (the
others keep details + low frequencies), and before the first iteration those pixels are replaced by ``|x + x
z|``, ``z`` a standard gaussian per channel from darktable's xoshiro128+ state seeded as ``inpaint_mask`` seeds it
(``i = 4 p / width``, ``j = 4 p - i`` of the pixel's index ``p``, as darktable computes them:
:func:`~darkproxy.replica.ports.censorize.gaussian_draws`).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise (whole-image exports: the stencils are clamped
at the image's edges, which a region does not have). Gradients: the image and the float sliders (``c^2``'s
exponential through the true ``exp``'s derivative); ``iterations``, ``radius`` and ``radius_center`` set the
number of passes and scales (one value per batch), ``radius`` and ``radius_center`` also differentiable in
``norm``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.replica.dtmath import vector_exp
from darkproxy.replica.ports.censorize import gaussian_draws
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact

Tensor = torch.Tensor

B_SPLINE_SIGMA = 1.0553651328015339  # common/bspline.h (a float there)
MAX_NUM_SCALES = 10
KAPPA = 0.25
BSPLINE_5TAP = (1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0)
_ISOTROPE = (0.25, 0.5, 0.25, 0.5, -3.0, 0.5, 0.25, 0.5, 0.25)


def _f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


def equivalent_sigma_at_step(s: int) -> float:
    """``equivalent_sigma_at_step(B_SPLINE_SIGMA, s)`` in float32, as bspline.h computes it."""
    sigma = torch.tensor(B_SPLINE_SIGMA, dtype=torch.float32)
    r = sigma
    for k in range(1, s + 1):
        r = torch.sqrt(r * r + (torch.tensor(2.0**k, dtype=torch.float32) * sigma) ** 2)
    return float(r)


def num_scales(final_radius: float) -> int:
    """``num_steps_to_reach_equivalent_sigma(B_SPLINE_SIGMA, final_radius)`` clamped to ``1..MAX_NUM_SCALES``."""
    sigma = torch.tensor(B_SPLINE_SIGMA, dtype=torch.float32)
    target = torch.tensor(final_radius, dtype=torch.float32)
    s, radius = 0, sigma
    while bool(radius < target) and s < 64:
        s += 1
        radius = torch.sqrt(radius * radius + (torch.tensor(float(1 << s), dtype=torch.float32) * sigma) ** 2)
    return min(max(s + 1, 1), MAX_NUM_SCALES)


def clamped_shift(x: Tensor, offset: int, dim: int) -> Tensor:
    """``x`` read ``offset`` px along ``dim`` (-2 rows, -1 columns), the indices clamped to the image."""
    n = x.shape[dim]
    return x.index_select(dim, (torch.arange(n, device=x.device) + offset).clamp(0, n - 1))


def _bspline_pass(x: Tensor, mult: int, dim: int) -> Tensor:
    """One 5-tap B-spline pass at spacing ``mult`` along ``dim``, summed left to right as
    ``sparse_scalar_product`` does, clipped at 0."""
    acc = BSPLINE_5TAP[0] * clamped_shift(x, -2 * mult, dim)
    for k in range(1, len(BSPLINE_5TAP)):
        acc = acc + BSPLINE_5TAP[k] * clamped_shift(x, (k - 2) * mult, dim)
    return acc.clamp_min(0.0)


def decompose(x: Tensor, mult: int) -> tuple[Tensor, Tensor]:
    """``decompose_2D_Bspline``: ``(details, blur)`` of ``x`` ``(B, C, H, W)`` at spacing ``mult``."""
    blur = _bspline_pass(_bspline_pass(x, mult, -2), mult, -1)
    return x - blur, blur


def _neighbours(x: Tensor, mult: int) -> list[Tensor]:
    """The 3x3 stencil at spacing ``mult``, indices clamped: ``[k]`` for ``k = 3 ii + jj`` (``ii`` the row
    offset -1, 0, 1 times ``mult``, ``jj`` the column offset), as ``heat_PDE_diffusion`` gathers them."""
    rows = [clamped_shift(x, d * mult, -2) for d in (-1, 0, 1)]
    return [clamped_shift(r, d * mult, -1) for r in rows for d in (-1, 0, 1)]


def _direction(n: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(|grad|, cos^2, sin^2, cos sin)`` of the centred differences of stencil ``n`` (x vertical)."""
    gx = (n[7] - n[1]) / 2.0
    gy = (n[5] - n[3]) / 2.0
    sq = gx * gx + gy * gy
    nz = sq > 0.0
    mag = torch.where(nz, torch.sqrt(torch.where(nz, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    safe = torch.where(nz, mag, torch.ones_like(mag))
    cos = torch.where(nz, gx / safe, torch.ones_like(gx))
    sin = torch.where(nz, gy / safe, torch.zeros_like(gy))
    return mag, cos * cos, sin * sin, cos * sin


def _kernel(c2: Tensor, cs: Tensor, cos2: Tensor, sin2: Tensor, aniso: Tensor) -> list[Tensor]:
    """``compute_kernel``: the 9 taps of the isotropic laplacian (``aniso`` = 0), the isophote's (> 0) or the
    gradient's (< 0) rotated anisotropic laplacian, per batch item by the sign of the user's ``aniso``."""
    iso = (c2 - 1.0) * cs
    a00 = torch.where(aniso > 0.0, cos2 + c2 * sin2, c2 * cos2 + sin2)
    a11 = torch.where(aniso > 0.0, c2 * cos2 + sin2, cos2 + c2 * sin2)
    a01 = torch.where(aniso > 0.0, iso, (1.0 - c2) * cs)
    b11 = a01 / 2.0
    b13 = -b11
    b22 = -2.0 * (a00 + a11)
    taps = [b11, a11, b13, a00, b22, a00, b13, a11, b11]
    flat = aniso == 0.0
    return [torch.where(flat, torch.full_like(t, w), t) for t, w in zip(taps, _ISOTROPE, strict=True)]


def _pde(
    hf: Tensor,
    lf: Tensor,
    mult: int,
    aniso: list[Tensor],
    factors: list[Tensor],
    abcd: list[Tensor],
    strength: Tensor,
    var_threshold: Tensor,
    reg_factor: Tensor,
    mask: Tensor,
) -> Tensor:
    """``heat_PDE_diffusion`` of details ``hf`` on low frequencies ``lf`` ``(B, 3, H, W)`` at spacing ``mult``,
    where ``mask`` ``(B, 1, H, W)``; elsewhere ``hf + lf``."""
    n_lf, n_hf = _neighbours(lf, mult), _neighbours(hf, mult)
    mag_g, cos2_g, sin2_g, cs_g = _direction(n_lf)
    mag_l, cos2_l, sin2_l, cs_l = _direction(n_hf)
    c2 = [
        vector_exp(-mag_g * factors[0]),
        vector_exp(-mag_l * factors[1]),
        vector_exp(-mag_g * factors[2]),
        vector_exp(-mag_l * factors[3]),
    ]
    kernels = [
        _kernel(c2[0], cs_g, cos2_g, sin2_g, aniso[0]),
        _kernel(c2[1], cs_l, cos2_l, sin2_l, aniso[1]),
        _kernel(c2[2], cs_g, cos2_g, sin2_g, aniso[2]),
        _kernel(c2[3], cs_l, cos2_l, sin2_l, aniso[3]),
    ]
    sources = (n_lf, n_lf, n_hf, n_hf)
    derivatives = []
    for kern, src in zip(kernels, sources, strict=True):
        d = kern[0] * src[0]
        for k in range(1, 9):
            d = d + kern[k] * src[k]
        derivatives.append(d)
    variance = n_hf[0] * n_hf[0]
    for k in range(1, 9):
        variance = variance + n_hf[k] * n_hf[k]
    variance = var_threshold + variance * reg_factor
    acc = derivatives[0] * abcd[0]
    for k in range(1, 4):
        acc = acc + derivatives[k] * abcd[k]
    acc = hf * strength + acc / variance
    return torch.where(mask, (acc + lf).clamp_min(0.0), hf + lf)


def inpaint(x: Tensor, threshold: Tensor) -> tuple[Tensor, Tensor]:
    """``build_mask`` and ``inpaint_mask``: ``(x with the masked pixels noised, mask (B, 1, H, W))`` for
    ``threshold`` ``(B or 1, 1, 1, 1)``; where it is 0 nothing is masked (every pixel diffuses)."""
    on = threshold > 0.0
    if not bool(on.any()):
        return x, torch.ones_like(x[:, :1], dtype=torch.bool)
    h, w = x.shape[-2:]
    k = 4 * np.arange(h * w, dtype=np.uint64)
    i = k // np.uint64(w)
    z = gaussian_draws(i, k - i, 3)  # the 4th channel's draw is darktable's alpha
    noise = torch.from_numpy(np.stack(z).reshape(1, 3, h, w)).to(x.dtype).to(x.device)
    mask = ((x > threshold).any(1, keepdim=True) & on) | ~on
    return torch.where(mask & on, (x * noise + x).abs(), x), mask


@register_exact(
    "diffuse",
    params=(
        "sharpness",
        "regularization",
        "variance_threshold",
        "anisotropy_first",
        "anisotropy_second",
        "anisotropy_third",
        "anisotropy_fourth",
        "first",
        "second",
        "third",
        "fourth",
        "radius",
        "radius_center",
        "iterations",
        "threshold",
    ),
    versions=(2,),
    pointwise=False,
    note="darktable's diffuse.c: a-trous B-spline wavelets, the anisotropic heat PDE per scale with dt_fast_expf "
    "emulated, the luminance mask's seeded inpainting noise; whole-image exports at any scale",
)
def diffuse(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """diffuse or sharpen on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    why = "diffuse: {} sets the number of passes or wavelet scales; one value per batch, it cannot be fitted"
    iterations = max(math.ceil(one_value(v.get("iterations", 1), why.format("iterations"))), 1)
    radius_i = one_value(v.get("radius", 8), why.format("radius"))
    center_i = one_value(v.get("radius_center", 0), why.format("radius_center"))
    zoom = _f32(max(1.0 / ctx.scale, 1.0))
    final_radius = _f32(_f32(radius_i + center_i) * 2.0 / zoom)
    scales = num_scales(final_radius)

    def col(name: str, default: float) -> Tensor:
        return column(v.get(name, default), x)

    user_aniso = [col(f"anisotropy_{k}", 0.0) for k in ("first", "second", "third", "fourth")]
    factors = [a * a for a in user_aniso]
    speeds = [col(k, 0.0) for k in ("first", "second", "third", "fourth")]
    regularization = torch.pow(10.0, col("regularization", 0.0)) - 1.0
    var_threshold = torch.pow(10.0, col("variance_threshold", 0.0))
    radius = col("radius", 8.0)
    center = col("radius_center", 0.0)

    y, mask = inpaint(x, col("threshold", 0.0))
    for _ in range(iterations):
        details = []
        low = y
        for s in range(scales):
            hf, low = decompose(low, 1 << s)
            details.append(hf)
        for s in range(scales - 1, -1, -1):
            sigma = _f32(equivalent_sigma_at_step(s))
            real = _f32(sigma * zoom)
            norm = torch.exp(-((real - center) ** 2) / (radius * radius))
            abcd = [sp * KAPPA * norm for sp in speeds]
            strength = col("sharpness", 0.0) * norm + 1.0
            reg_factor = regularization * _f32(sigma * sigma) / 9.0
            low = _pde(details[s], low, 1 << s, user_aniso, factors, abcd, strength, var_threshold, reg_factor, mask)
        y = low
    return y
