"""darktable 4.2.1's monochrome (``monochrome``, params version 2) as an exact stage: ``src/iop/monochrome.c``.

A Lab module (``IOP_CS_LAB``, after colorin in every pipe order: darktable converts the working RGB to Lab
before it and back after it). ``process()``, ported with what it inlines:

* the colour filter: ``100 dt_fast_expf(-clamp(((a_in - a)^2 + (b_in - b)^2) / (2 sigma2), 0, 1))`` with
  ``sigma2 = (128 size)^2``: a gaussian in a*, b* around the filter colour, through darktable's *approximate*
  exponential (``common/math.h``: a float's bits as an integer linear in the argument, 0.41 at -1 where exp
  gives 0.37, up to 6 % off; no LUT anywhere), the argument clamped to ``[0, 1]`` (the filter never goes
  below ``dt_fast_expf(-1)``);
* its bilateral base layer (``common/bilateral.c``, ``dt_bilateral_*`` with ``detail`` -1): the filter's
  values splatted (bilinear in x, y, linear in the filter value) as a density into a grid of spatial sigma
  ``20 / max(1 / scale, 1)`` px (``scale``: darktable's render scale; grid size and the effective sigma as
  ``dt_bilateral_grid_size`` rounds and clamps them) and range sigma 25 (range 100 over 4 cells), blurred by
  ``[1 4 6 4 1] / 16`` in x and y and by the derivative kernel ``[-2 -4 0 4 2] / 16`` in the range axis,
  sliced trilinearly and added to the filter (``max(0, .)``);
* the highlights protection: ``t = e + (1 - e)(1 - highlights)`` with ``e`` darktable's envelope of L*, and
  ``L_out = (1 - t) L + t (filter / 100) L``; a* = b* = 0.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same (grey). Not pointwise (the bilateral grid). Values:
darktable's float32 arithmetic (the approximate exponential's bit trick emulated, the grid's sums and
blur in float32, the summation order of the splat aside); gradients (image, ``a``, ``b``, ``size``,
``highlights``) those of a smooth surrogate (a straight-through estimate, as rgb curve's): the same
maths in the input's dtype with ``dt_fast_expf`` as the continuous piecewise-linear-in-the-bits function
it rounds (exact between its float32 steps). Refused: placements outside colorin..colorout.

Measured against darktable-cli's tap-outs (``tests/replica/test_monochrome_lowlight_channelmixer.py``, 6 settings
at render scales 1 and 0.5, 8 runs): 93.0-100 dB display PSNR, 100 dB (the cap, MSE <= 1e-10) but for darktable's
own run-to-run noise. darktable's "red filter" preset and the coverage corpus's default edit through the replica
(512 px raws at 256 px): the stage alone 100 dB, the replica 58.9 dB against darktable's 8-bit export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from darkproxy.replica.dtmath import fast_expf
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor
_F = np.float32

# common/bilateral.c
MAX_RES_S, MAX_RES_R = 3000, 50
L_RANGE, SIGMA_R, DETAIL = 100.0, 250.0, -1.0
BETA = 0.6  # envelope()'s knee


def _roundf(v: float) -> int:
    """C's ``roundf`` (half away from zero) of a float32 value."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def grid_geometry(width: int, height: int, sigma_s: float, sigma_r: float = SIGMA_R) -> dict[str, Any]:
    """``dt_bilateral_grid_size`` (``L_range`` 100; monochrome's range sigma 250) in float32: the grid's sizes
    and its effective sigmas."""
    s = _F(max(_F(sigma_s), _F(0.5)))
    gx = float(min(max(_roundf(float(_F(width) / s)), 4), MAX_RES_S))
    gy = float(min(max(_roundf(float(_F(height) / s)), 4), MAX_RES_S))
    gz = float(min(max(_roundf(float(_F(L_RANGE) / _F(sigma_r))), 4), MAX_RES_R))
    ss = max(_F(height) / _F(gy), _F(width) / _F(gx))
    sr = _F(L_RANGE) / _F(gz)
    return {
        "sigma_s": _F(ss),
        "sigma_r": _F(sr),
        "nx": int(math.ceil(_F(width) / ss)) + 1,
        "ny": int(math.ceil(_F(height) / ss)) + 1,
        "nz": int(math.ceil(_F(L_RANGE) / sr)) + 1,
    }


def _axis(n: int, sigma: np.float32, size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``image_to_grid``'s spatial part for pixel indices ``0..n-1``: the cell index (clamped to ``size - 2``)
    and the fraction, float32."""
    pos = np.clip(np.arange(n, dtype=_F) / sigma, _F(0), _F(size - 1)).astype(_F)
    idx = np.minimum(pos.astype(np.int64), size - 2)
    return torch.from_numpy(idx).to(device), torch.from_numpy((pos - idx.astype(_F)).astype(_F)).to(device)


def _blur(g: Tensor, dim: int, deriv: bool) -> Tensor:
    """``blur_line`` (``[1 4 6 4 1] / 16``) or ``blur_line_z`` (``deriv``: ``[-2 -4 0 4 2] / 16``) along ``dim``,
    zero outside the grid, in darktable's order of operations."""
    n = g.shape[dim]
    pad = [0] * (2 * (g.dim() - dim - 1)) + [2, 2]
    p = torch.nn.functional.pad(g, pad)

    def at(o: int) -> Tensor:
        return p.narrow(dim, 2 + o, n)

    if deriv:
        return 0.25 * (at(1) - at(-1)) + 0.125 * (at(2) - at(-2))
    return g * 0.375 + 0.25 * (at(1) + at(-1)) + 0.0625 * (at(2) + at(-2))


def bilateral_base(L: Tensor, sigma_s: float, sigma_r: float = SIGMA_R, detail: Tensor | float = DETAIL) -> Tensor:
    """``dt_bilateral_init / splat / blur / slice`` on the channel ``L`` ``(B, 1, H, W)`` (values in
    ``[0, 100]``), splatted and sliced at itself: ``max(0, L - detail sigma_r 0.04 grid(x, y, L))`` (``sigma_r``
    the grid's effective one), in ``L``'s dtype; monochrome's defaults (range sigma 250, ``detail`` -1).
    ``detail``: a float (darktable's float32 product) or a ``(B or 1, 1, 1, 1)`` tensor (differentiable)."""
    B, _, H, W = L.shape
    geo = grid_geometry(W, H, sigma_s, sigma_r)
    nx, ny, nz = geo["nx"], geo["ny"], geo["nz"]
    dev, dt = L.device, L.dtype
    xi, xf = _axis(W, geo["sigma_s"], nx, dev)
    yi, yf = _axis(H, geo["sigma_s"], ny, dev)
    xf, yf = xf.to(dt).reshape(1, 1, 1, W), yf.to(dt).reshape(1, 1, H, 1)
    z = torch.clamp(L / float(geo["sigma_r"]), 0.0, float(nz - 1))
    zi = torch.clamp(torch.trunc(z.detach()), max=float(nz - 2)).long()
    zf = z - zi.to(dt)
    base = (yi.reshape(1, 1, H, 1) * nx + xi.reshape(1, 1, 1, W)) * nz + zi  # (B, 1, H, W)
    ox, oy = nz, nx * nz
    sig2 = float(geo["sigma_s"] * geo["sigma_s"])
    contrib = [
        (1.0 - xf) * (1.0 - yf) * 100.0 / sig2,
        xf * (1.0 - yf) * 100.0 / sig2,
        (1.0 - xf) * yf * 100.0 / sig2,
        xf * yf * 100.0 / sig2,
    ]
    offs = [0, ox, oy, ox + oy]
    idx, val = [], []
    for c, o in zip(contrib, offs, strict=True):
        idx += [base + o, base + o + 1]
        val += [(c * (1.0 - zf)).expand(B, 1, H, W), (c * zf).expand(B, 1, H, W)]
    index = torch.cat(idx, 1).reshape(B, -1)
    grid = torch.zeros(B, ny * nx * nz, dtype=dt, device=dev).scatter_add(1, index, torch.cat(val, 1).reshape(B, -1))
    grid = grid.reshape(B, ny, nx, nz)
    grid = _blur(_blur(grid, 2, False), 1, False)  # x, then y
    grid = _blur(grid, 3, True).reshape(B, -1)  # the range axis: the gaussian's derivative
    if isinstance(detail, Tensor):
        norm: Tensor | float = -detail * float(geo["sigma_r"] * _F(0.04))
    else:  # -detail * b->sigma_r * 0.04f
        norm = float(_F(_F(-detail) * geo["sigma_r"]) * _F(0.04))

    def at(o: int) -> Tensor:
        return grid.gather(1, (base + o).reshape(B, -1)).reshape(B, 1, H, W)

    s = (
        at(0) * (1.0 - xf) * (1.0 - yf) * (1.0 - zf)
        + at(ox) * xf * (1.0 - yf) * (1.0 - zf)
        + at(oy) * (1.0 - xf) * yf * (1.0 - zf)
        + at(ox + oy) * xf * yf * (1.0 - zf)
        + at(1) * (1.0 - xf) * (1.0 - yf) * zf
        + at(ox + 1) * xf * (1.0 - yf) * zf
        + at(oy + 1) * (1.0 - xf) * yf * zf
        + at(ox + oy + 1) * xf * yf * zf
    )
    return torch.clamp_min(L + norm * s, 0.0)


def envelope(L: Tensor) -> Tensor:
    """``envelope()``: 1 - (x / 0.6 - 1)^2 below x = 0.6, a smoothstep down to 0 at 1 (x = L / 100 clamped)."""
    x = torch.clamp(L / 100.0, 0.0, 1.0)
    low = 1.0 - (x / BETA - 1.0).abs() ** 2
    t = (1.0 - x) / float(_F(1.0) - _F(BETA))
    return torch.where(x < BETA, low, 3.0 * (t * t) - 2.0 * (t * t * t))


def spatial_sigma(ctx: StageContext) -> float:
    """``20 / fmaxf(iscale / roi_in->scale, 1)`` (``iscale`` 1 in an export; ``roi_in->scale``: the render
    scale), in float32."""
    scale = max(_F(1.0) / _F(ctx.scale), _F(1.0))
    return float(_F(20.0) / scale)


def _monochrome(x: Tensor, v: Values, ctx: StageContext, exact: bool) -> Tensor:
    """The module on ``x`` (linear Rec2020): darktable's float32 values (``exact``) or the surrogate in
    ``x``'s dtype."""
    dt = torch.float32 if exact else x.dtype
    xx = x.to(dt)
    lab = working_rgb_to_lab(xx)
    L, ain, bin_ = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    a, b = column(v.get("a", 0.0), xx), column(v.get("b", 0.0), xx)
    size, hl = column(v.get("size", 2.0), xx), column(v.get("highlights", 0.0), xx)
    s128 = size * 128.0
    sigma2 = s128 * s128
    num = (ain - a) * (ain - a) + (bin_ - b) * (bin_ - b)
    if exact:  # float / (2.0 * size): a double division, clamped in double, rounded back to float
        arg = torch.clamp(num.double() / (2.0 * sigma2.double()), 0.0, 1.0).neg().float()
    else:
        arg = -torch.clamp(num / (2.0 * sigma2), 0.0, 1.0)
    filt = 100.0 * fast_expf(arg, exact).to(dt)
    base = bilateral_base(filt, spatial_sigma(ctx))
    tt = envelope(L)
    t = tt + (1.0 - tt) * (1.0 - hl)
    out_l = (1.0 - t) * L + t * base * float(_F(1.0) / _F(100.0)) * L
    zero = torch.zeros_like(out_l)
    return lab_to_working_rgb(torch.cat([out_l, zero, zero], 1)).to(x.dtype)


def _grad_wanted(x: Tensor, v: Values) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(isinstance(t, Tensor) and t.requires_grad for t in v.values())


def monochrome_filter(x: Tensor, v: Values, ctx: StageContext, smooth: bool = False) -> Tensor:
    """monochrome on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same: darktable's values with the
    surrogate's gradients; ``smooth``: the differentiable surrogate alone (for gradient checks)."""
    if smooth:
        return _monochrome(x, v, ctx, exact=False)
    with torch.no_grad():
        out = _monochrome(x, v, ctx, exact=True)
    if not _grad_wanted(x, v):
        return out
    s = _monochrome(x, v, ctx, exact=False)
    return straight_through(out, s)


def lab_placement(module: str) -> Callable[[Values, StageContext], str | None]:
    """``supports`` for a Lab module: refuse a pipe that puts it before colorin or after colorout."""

    def check(v: Values, ctx: StageContext) -> str | None:
        mods = ctx.modules
        if module not in mods:
            return None
        k = mods.index(module)
        if "colorin" in mods and mods.index("colorin") > k:
            return f"{module} before colorin (camera RGB, not Lab) is not modelled"
        if "colorout" in mods and mods.index("colorout") < k:
            return f"{module} after colorout (display RGB, not Lab) is not modelled"
        return None

    return check


@register_exact(
    "monochrome",
    params=("a", "b", "size", "highlights"),
    versions=(2,),
    pointwise=False,
    note="darktable's monochrome.c: the a*/b* gaussian colour filter through dt_fast_expf (emulated), its "
    "bilateral base layer (bilateral.c's grid at the render scale), highlights protection; any render scale",
    supports=lab_placement("monochrome"),
)
def monochrome(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return monochrome_filter(x, v, ctx)
