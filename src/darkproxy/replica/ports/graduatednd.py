"""darktable's graduated density (``graduatednd``, params version 1) as an exact stage: ``src/iop/graduatednd.c``.

Per pixel, with ``(i, j)`` its column and row in the render: the signed distance ``length`` from the filter's
line (turned by ``rotation``, moved by ``offset`` % along the image's half-height), scaled by ``hardness``;
the density ``2^(density * clip(0.5 + length, 0, 1))``, through darktable's 4-term Taylor ``e^x`` raised to
the 8th power (``compute_density``, up to 0.6 % off the true power, ported as is); each channel divided by
``c + (1 - c) density`` (``c``: the filter's HSL colour at lightness 0.5) for ``density > 0``, multiplied by
``c' + (1 - c') density'`` (``c' = 1 - c``, the density with both signs flipped) otherwise, clipped at 0.
darktable's SSE path (its default codepath): ``length`` is accumulated along the row in float32
(``length += length_inc``), emulated exactly here for float32 images (a straight-through surrogate,
``length0 + i inc``, carries the gradients); float64 images (gradcheck) take the surrogate's values.

Geometry: ``buf_in`` (darktable's full-resolution image at the module, :attr:`StageContext.full_size`)
times ``roi_out->scale`` (darktable-cli's export scale, corrected upwards as
:func:`.resample.export_scale` computes it from the full size and the render's size), ``roi_in->x = y = 0``
(a whole-image export); ``full_size`` ``None`` is taken as a render at scale 1 (``ctx.scale`` must be 1).

Colour space: in darktable's v3.0 order (and the legacy one) the module runs before colorin, on camera
RGB, so its colour filters camera channels and its clip is in camera RGB: when ``ctx.modules`` puts it
before colorin, the stage maps the linear Rec2020 image back to camera RGB with colorin's matrix
(:attr:`StageContext.camera_matrix`, measured from darktable by the chain: ``replica/run.py``), applies
the filter there and maps back; without the matrix it raises. After colorin (a non-raw's order) or with
``ctx.modules`` empty it runs on the image as given.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Differentiable in the image and in ``density``,
``hardness``, ``rotation``, ``offset``, ``hue`` and ``saturation`` (the clip of ``0.5 + length`` has zero
gradient outside the ramp, as darktable's value there is constant). Not pointwise. Refused: the module after
a geometry stage that crops or resizes (clipping, ashift, rotate/scale pixels: the full-resolution size
there is not known exactly); a flip that turns the raw is followed, and so is a crop (darktable's rectangle in px
and its export scale's check behind it: :func:`darkproxy.replica.ports.crop.crop_frame`, ``export_room``).

Measured (``tests/replica/test_graduatednd.py``, 10 settings at 96 px and at 50 px, the scale corrected
there, 7 runs): worst setting per run 86.2-87.4 dB, each setting 86.2-100; the remainder is darktable's Lab
round trip between colorin and colorout (approximate cube root), bit for bit once emulated around the stage.
The replica on darktable's presets (a 512 px synthetic raw at 256 px): "blue ND2" 95.5 dB alone,
"yellow ND2" 98.0 dB alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, column, register_exact, through_camera_rgb
from darkproxy.replica.science import hsl_to_rgb

Tensor = torch.Tensor
_F = np.float32
LN2 = float(_F(0.6931471805599453))  # DT_M_LN2f
THIRD = float(_F(0.333333333))


def render_geometry(ctx: StageContext, h: int, w: int) -> tuple[float, float]:
    """``(iw, ih)``: ``piece->buf_in.width * roi_out->scale`` and the height's, as darktable's float32, for an
    ``(h, w)`` render of the whole image (:func:`.resample.export_frame`)."""
    from darkproxy.replica.ports.resample import export_frame

    try:
        bw, bh, s = export_frame(ctx.full_size, ctx.scale, h, w, ctx.export_room, ctx.darktable_version)
    except ValueError as e:
        raise DarkproxyError(f"graduatednd: {e}") from None
    if s == 1.0:
        return float(_F(bw)), float(_F(bh))
    return float(_F(_F(bw) * _F(s))), float(_F(_F(bh) * _F(s)))


def _length_float32(
    rotation: float, offset: float, hardness: float, positive: bool, iw: float, ih: float, h: int, w: int
) -> np.ndarray:
    """darktable's ``length`` per pixel ``(h, w)`` in float32: the row's start (the positive branch in double,
    the negative one in float, as process_sse2 writes them), then ``length += length_inc`` along the row."""
    hw, hh = _F(_F(iw) / _F(2.0)), _F(_F(ih) / _F(2.0))
    hw_inv, hh_inv = _F(_F(1.0) / hw), _F(_F(1.0) / hh)
    v = _F(float(_F(-_F(rotation) / _F(180.0))) * math.pi)
    sinv, cosv = _F(math.sin(float(v))), _F(math.cos(float(v)))
    radie = _F(_F(math.sqrt(float(_F(hh * hh + hw * hw)))) / hh)
    off = _F(_F(_F(offset) / _F(100.0)) * _F(2.0))
    fh = _F(1.0 / float(radie) / (1.0 - (0.5 + (float(_F(hardness)) / 100.0) * 0.9 / 2.0)) * 0.5)
    inc = _F(_F(sinv * hw_inv) * fh)
    a = (np.arange(h, dtype=np.float32) * hh_inv).astype(np.float32)  # (iy + y) * hh_inv in float
    if positive:
        l0 = ((float(sinv) * -1.0 - float(cosv) * (-1.0 + a.astype(np.float64)) - 1.0 + float(off)) * float(fh)).astype(
            np.float32
        )
    else:
        t = (cosv * (a + _F(-1.0)).astype(np.float32)).astype(np.float32)
        l0 = ((((_F(-sinv) - t).astype(np.float32) - _F(1.0)).astype(np.float32) + off).astype(np.float32) * fh).astype(
            np.float32
        )
    out = np.empty((h, w), np.float32)
    cur = l0
    for i in range(w):  # the float32 running sum, one column at a time over all rows
        out[:, i] = cur
        cur = (cur + inc).astype(np.float32)
    return out


def _length(v: Values, x: Tensor, iw: float, ih: float) -> Tensor:
    """``length`` ``(Bp, 1, H, W)``: darktable's float32 values (float32 images), the gradients of its closed form."""
    h, w = x.shape[-2:]
    rot, off, hard = (column(v.get(k, d), x) for k, d in (("rotation", 0.0), ("offset", 50.0), ("hardness", 0.0)))
    ang = (-rot / 180.0) * math.pi
    sinv, cosv = torch.sin(ang), torch.cos(ang)
    hw, hh = iw / 2.0, ih / 2.0
    radie = math.sqrt(hh * hh + hw * hw) / hh
    fh = 1.0 / radie / (1.0 - (0.5 + (hard / 100.0) * 0.9 / 2.0)) * 0.5
    jj = torch.arange(h, dtype=x.dtype, device=x.device).reshape(1, 1, h, 1)
    ii = torch.arange(w, dtype=x.dtype, device=x.device).reshape(1, 1, 1, w)
    smooth = (-sinv - cosv * (-1.0 + jj / hh) - 1.0 + off / 100.0 * 2.0) * fh + ii * (sinv / hw * fh)
    if x.dtype != torch.float32:
        return smooth
    dens = column(v.get("density", 1.0), x)
    b = max(t.shape[0] for t in (rot, off, hard, dens))
    exact = np.stack(
        [
            _length_float32(
                float(rot[min(k, rot.shape[0] - 1)]),
                float(off[min(k, off.shape[0] - 1)]),
                float(hard[min(k, hard.shape[0] - 1)]),
                bool(dens[min(k, dens.shape[0] - 1)] > 0),
                iw,
                ih,
                h,
                w,
            )
            for k in range(b)
        ]
    )[:, None]
    return smooth + (torch.from_numpy(exact).to(x.device) - smooth).detach()


def _compute_density(dens: Tensor, length: Tensor) -> Tensor:
    """``compute_density``: ``2^(dens clip(0.5 + length, 0, 1))`` as ``(e^(ln2 x / 8))^8``, the exponential a
    4-term Taylor series."""
    t = LN2 * (dens * (0.5 + length).clamp(0.0, 1.0) / 8.0)
    d1 = t * t * 0.5
    d2 = d1 * t * THIRD
    d3 = d2 * t * 0.25
    d = 1.0 + t + d1 + d2 + d3
    d = d * d
    d = d * d
    return d * d


# geometry before the module whose full-resolution output size the chain does not know exactly (crop's it does:
# darktable 4.2's truncation of its float32 rectangle, ports.crop.crop_frame)
RESIZING = ("clipping", "ashift", "rotatepixels", "scalepixels")


def _supported(v: Values, ctx: StageContext) -> str | None:
    m = ctx.modules
    if "graduatednd" in m:
        before = [g for g in RESIZING if g in m and m.index(g) < m.index("graduatednd")]
        if before:
            return (
                f"graduatednd after {before[0]}: darktable's full-resolution size after it (where the gradient "
                "is placed) is not modelled exactly"
            )
    return None


@register_exact(
    "graduatednd",
    params=("density", "hardness", "rotation", "offset", "hue", "saturation"),
    versions=(1,),
    note="darktable's graduatednd.c (SSE path): the gradient in the image's coordinates at the render scale, "
    "its Taylor exp2, the colour filter on camera RGB (colorin's matrix)",
    supports=_supported,
    pointwise=False,
)
def graduatednd(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    iw, ih = render_geometry(ctx, x.shape[-2], x.shape[-1])
    dens = column(v.get("density", 1.0), x)
    hue, sat = column(v.get("hue", 0.0), x), column(v.get("saturation", 0.0), x)
    color = torch.cat(hsl_to_rgb(hue, sat, torch.full_like(sat, 0.5)), 1)  # commit_params: hsl2rgb(h, s, 0.5)
    pos = dens > 0
    color = torch.where(pos, color, 1.0 - color)  # commit_params inverts it for density < 0
    length = _length(v, x, iw, ih)
    density = torch.where(pos, _compute_density(dens, length), _compute_density(-dens, -length))
    factor = color + (1.0 - color) * density
    safe = torch.where(pos, factor, torch.ones_like(factor))  # the unused branch: no division by a product
    try:  # on camera RGB before colorin: through colorin's measured matrix
        return through_camera_rgb(
            x, ctx, "graduatednd", lambda rgb: torch.where(pos, rgb / safe, rgb * factor).clamp_min(0.0)
        )
    except ValueError as e:
        raise DarkproxyError(str(e)) from None
