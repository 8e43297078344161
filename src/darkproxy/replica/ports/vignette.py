"""darktable's vignetting (``vignette``, params version 4) as an exact stage: ``src/iop/vignette.c``.

An RGB module in the working profile whose effect depends on the pixel's place in the image. Per pixel,
with ``(i, j)`` its column and row in the render and ``s`` the render scale: its distance from the
vignette's centre (``center.x``, ``center.y`` in ``[-1, 1]`` of the half-sides of darktable's full-size
image ``buf_in``) in units where the image's longer side is 2 (``whratio`` stretches x or y; ``autoratio``:
each side 2), a superellipse norm of exponent ``2 / shape``; the weight is 0 inside ``scale`` % and ramps
linearly to 1 over ``falloff_scale`` % (at least ``100 / min side`` %, darktable's anti-aliasing floor).
Where the weight is positive: brightness ``b < 0`` scales the pixel by ``1 + w b``, ``b >= 0`` adds
``w b``; then each channel moves from the mean of the three by ``w saturation``; ``unbound`` off clips to
``[0, 1]`` after each step.

The stage is ``(B, 3, H, W)`` linear Rec2020 -> the same, its coordinates from
:attr:`StageContext.full_size` (``buf_in``'s width and height in raw px, turned with the image by a flip;
``None``: an error) and the render's size, through darktable-cli's export scale as darktable computes it
(:func:`.resample.export_frame`). Differentiable in the image and in ``scale``, ``falloff_scale``,
``brightness``, ``saturation``, ``center.x``, ``center.y``, ``whratio`` and ``shape``. Refused: dithering
(8- or 16-bit: darktable adds per-pixel random noise and uses a cosine ramp).
Measured against darktable's tap-outs: ``tests/replica/test_vignette.py``.
"""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import safe_pow

Tensor = torch.Tensor
DITHER_OFF = 0


def _vignette_supported(v: Values, ctx: StageContext) -> str | None:
    if int(v.get("dithering", DITHER_OFF)) != DITHER_OFF:
        return "vignette dithering adds per-pixel random noise (and a cosine fall-off): not modelled"
    return None


def vignette_weight(v: Values, ctx: StageContext, shape: tuple[int, int], x: Tensor) -> Tensor:
    """darktable's vignette weight in ``[0, 1]`` for an ``(H, W)`` render: ``(Bp, 1, H, W)`` in ``x``'s dtype."""
    from darkproxy.replica.ports.resample import export_frame

    if ctx.full_size is None:  # the chain sets it from the raw (replica/references.py): never a guess
        raise DarkproxyError("vignette depends on the image's full-resolution size, which is not known here")
    try:
        bwi, bhi, s = export_frame(ctx.full_size, ctx.scale, *shape, ctx.export_room, ctx.darktable_version)
    except ValueError as e:
        raise DarkproxyError(f"vignette: {e}") from None
    bw, bh = float(bwi), float(bhi)
    cx, cy = column(v.get("center.x", 0.0), x), column(v.get("center.y", 0.0), x)
    # vignette_center in buf_in, then in the render (roi_in->x = y = 0 for darktable's whole-image export)
    rcx, rcy = (bw * 0.5 + cx * bw / 2.0) * s, (bh * 0.5 + cy * bh / 2.0) * s
    if bool(v.get("autoratio", False)):
        xscale = torch.full_like(cx, 2.0 / (bw * s))
        yscale = torch.full_like(cy, 2.0 / (bh * s))
    else:  # proportional to the longer side; whratio in (1, 2] is the h/w ratio + 1
        basis = 2.0 / (max(bw, bh) * s)
        wh = column(v.get("whratio", 1.0), x)
        narrow = wh <= 1.0
        xscale = torch.where(narrow, basis / torch.where(narrow, wh, torch.ones_like(wh)), torch.full_like(wh, basis))
        yscale = torch.where(
            narrow, torch.full_like(wh, basis), basis / torch.where(narrow, torch.ones_like(wh), 2.0 - wh)
        )
    dscale = column(v.get("scale", 80.0), x) / 100.0
    fscale = torch.clamp_min(column(v.get("falloff_scale", 50.0), x), 100.0 / min(bw, bh)) / 100.0
    shp = torch.clamp_min(column(v.get("shape", 1.0), x), 0.001)
    exp1, exp2 = 2.0 / shp, shp / 2.0
    h, w = shape
    i = torch.arange(w, dtype=x.dtype, device=x.device).reshape(1, 1, 1, w)
    j = torch.arange(h, dtype=x.dtype, device=x.device).reshape(1, 1, h, 1)
    px = (i * xscale - rcx * xscale).abs()
    py = (j * yscale - rcy * yscale).abs()
    cplen = safe_pow(safe_pow(px, exp1) + safe_pow(py, exp1), exp2)
    ramp = ((cplen - dscale) / fscale).clamp(0.0, 1.0)
    return torch.where(cplen >= dscale, ramp, torch.zeros_like(ramp))


@register_exact(
    "vignette",
    params=("scale", "falloff_scale", "brightness", "saturation", "center.x", "center.y", "whratio", "shape"),
    versions=(4,),
    note="darktable's vignette.c: the superellipse fall-off in the image's coordinates, brightness and "
    "desaturation weighted by it (dithering refused)",
    supports=_vignette_supported,
    pointwise=False,
)
def vignette(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    wgt = vignette_weight(v, ctx, (x.shape[-2], x.shape[-1]), x)
    b = column(v.get("brightness", -0.5), x)
    unbound = bool(v.get("unbound", True))

    def clip(t: Tensor) -> Tensor:
        return t if unbound else t.clamp(0.0, 1.0)

    dark = b < 0
    col = clip(torch.where(dark, x * (1.0 + wgt * b), x + wgt * b))
    mv = col.mean(1, keepdim=True)
    col = clip(col - (mv - col) * (wgt * column(v.get("saturation", -0.5), x)))
    return torch.where(wgt > 0, col, x)
