"""darktable 4.2.1's soften (``soften``, params version 1) as an exact stage: ``src/iop/soften.c``.

An RGB module (``IOP_CS_RGB``: the working profile's linear Rec2020). ``process()`` (the Orton effect):

* each pixel through ``rgb2hsl``, saturation times ``saturation / 100`` and lightness times
  ``2^brightness``, both clipped to [0, 1], and back through ``hsl2rgb``;
* ``dt_box_mean`` (``common/box_filters.c``) with ``BOX_ITERATIONS`` = 8: eight times a horizontal then a
  vertical running mean over ``2 radius + 1`` px, the window cut at the image's edges (the mean of the pixels
  inside it: :func:`box_matrix`), here by running sums in float64. The radius
  follows the whole raw, not the region rendered: ``mrad = (int)(0.01 hypot(W, H))`` of the pipe's input
  (``piece->iwidth x piece->iscale``: the raw, uncut by a crop, :attr:`StageContext.image_size`;
  ``tests/replica/test_soften_bloom.py`` with a crop), ``rad = (int)(mrad min(100, size + 1) / 100)``,
  ``radius = min(mrad, ceilf(rad x roi->scale))`` with darktable-cli's float export scale
  (:func:`~darkproxy.replica.ports.resample.export_frame`);
* ``dt_iop_image_linear_blend``: ``amount / 100`` of the blurred image plus the rest of the input.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise. Gradients: the image, ``saturation``,
``brightness`` and ``amount``; ``size`` sets an integer radius (no gradient, one value per batch). Refused: a
render that is not darktable-cli's whole-image export of a known full-resolution size (the radius follows it).
"""

from __future__ import annotations

import math

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact
from darkproxy.replica.science import hsl_to_rgb, rgb_to_hsl

Tensor = torch.Tensor

BOX_ITERATIONS = 8


def box_matrix(n: int, radius: int, dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
    """One pass of darktable's box mean over a line of ``n`` samples as an ``(n, n)`` matrix: row ``i`` the mean
    of the samples ``max(0, i - radius) .. min(n - 1, i + radius)``."""
    idx = torch.arange(n, device=device)
    inside = ((idx[:, None] - idx[None, :]).abs() <= radius).to(dtype)
    return inside / inside.sum(1, keepdim=True)


def _box_pass(x: Tensor, radius: int) -> Tensor:
    """One pass of :func:`box_matrix` along the last axis of ``x``, by running sums (any size)."""
    n = x.shape[-1]
    c = torch.nn.functional.pad(torch.cumsum(x, -1), (1, 0))
    i = torch.arange(n, device=x.device)
    hi, lo = (i + radius + 1).clamp_max(n), (i - radius).clamp_min(0)
    return (c[..., hi] - c[..., lo]) / (hi - lo).to(x.dtype)


def box_mean(x: Tensor, radius: int, iterations: int = BOX_ITERATIONS) -> Tensor:
    """``dt_box_mean`` of ``x`` ``(B, C, H, W)``: ``iterations`` horizontal and vertical passes of
    :func:`box_matrix` (they act on different axes: their order does not matter), in float64."""
    y = x.to(torch.float64)
    for _ in range(iterations):
        y = _box_pass(_box_pass(y, radius).transpose(-1, -2), radius).transpose(-1, -2)
    return y.to(x.dtype)


def whole_export(module: str, ctx: StageContext, h: int, w: int) -> tuple[int, int, float]:
    """``(bw, bh, s)``: ``piece->buf_in``'s full-resolution size and darktable-cli's float export scale of an
    ``(h, w)`` render (:func:`~darkproxy.replica.ports.resample.export_frame`), for a module whose radius follows
    them; a one-line error naming ``module`` where they are not known."""
    from darkproxy.replica.ports.resample import export_frame

    if ctx.full_size is None and abs(ctx.scale - 1.0) > 1e-6:
        raise DarkproxyError(f"{module}'s radius follows the image's full-resolution size, which is not known here")
    try:
        return export_frame(ctx.full_size, ctx.scale, h, w, ctx.export_room, ctx.darktable_version)
    except ValueError as e:
        raise DarkproxyError(f"{module}: {e}") from None


def one_size(module: str, value: object) -> float:
    """A ``size`` slider that sets an integer radius: one value per batch (no gradient)."""
    return one_value(value, f"{module}: size sets an integer blur radius; one value per batch, it cannot be fitted")


def scaled_radius(rad: int, scale: float, cap: int) -> int:
    """``MIN(cap, ceilf(rad x roi->scale))``: a full-resolution box radius at the export's float scale (soften,
    bloom, highpass)."""
    return min(cap, int(math.ceil(float(torch.tensor(rad * scale, dtype=torch.float32)))))


def blur_radius(size: float, ctx: StageContext, h: int, w: int) -> int:
    """``process()``'s box radius in render px for an ``(h, w)`` export (see the module docstring)."""
    bw, bh, s = whole_export("soften", ctx, h, w)
    if ctx.image_size is not None:  # pipe->iwidth, iheight: the raw's size, which a crop does not cut
        bw, bh = (int(round(float(d))) for d in ctx.image_size)
    mrad = int(math.sqrt(float(bw) * bw + float(bh) * bh) * 0.01)
    rad = int(mrad * (min(100.0, float(torch.tensor(size, dtype=torch.float32)) + 1.0) / 100.0))
    return scaled_radius(rad, s, mrad)


@register_exact(
    "soften",
    params=("saturation", "brightness", "amount"),
    versions=(1,),
    pointwise=False,
    note="darktable's soften.c: HSL saturation and lightness, box_filters.c's 8-pass box mean (running sums) "
    "(its radius from the whole image's size and the export scale), the linear mix; darktable-cli's whole-image "
    "exports at any scale",
)
def soften(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """soften on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    _, _, h, w = x.shape
    radius = blur_radius(one_size("soften", v.get("size", 50.0)), ctx, h, w)
    hue, sat, light = rgb_to_hsl(x[:, 0:1], x[:, 1:2], x[:, 2:3])
    sat = (sat * column(v.get("saturation", 100.0), x) / 100.0).clamp(0.0, 1.0)
    light = (light * 2.0 ** column(v.get("brightness", 0.33), x)).clamp(0.0, 1.0)
    over = torch.cat(torch.broadcast_tensors(*hsl_to_rgb(hue, sat, light)), 1)
    amt = column(v.get("amount", 50.0), x) / 100.0
    return amt * box_mean(over, radius) + (1.0 - amt) * x
