"""darktable's raw black/white point (``rawprepare``, params version 2) as an exact mosaic stage:
``src/iop/rawprepare.c`` (the uint16 Bayer path: every raw rawspeed reads as integers).

darktable crops ``x``, ``y`` photosites off the left and top and ``width``, ``height`` off the
right and bottom, then scales each photosite ``(raw - black[k]) / (white - black[k])`` where ``k``
is its position in the 2x2 block of the *uncropped* sensor (``BL()``: ``((row + y) & 1) * 2 +
((col + x) & 1)``). Not clipped (highlights reach ~1, noise dips below 0). Exact (float32, the
same two operations).
"""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, register_exact


def _supported(v: Values, ctx: StageContext) -> str | None:
    if int(v.get("flat_field", 0)) != 0:
        return "rawprepare: the embedded flat field (gain maps) is not modelled"
    blacks = list(v.get("raw_black_level_separate", []))
    if len(blacks) != 4 or int(v.get("raw_white_point", 0)) <= max(blacks, default=0):
        return "rawprepare: black levels / white point not usable"
    return None


def crop_margins(v: Values) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the photosites darktable's crop takes off each side. darktable 4.2 names
    them ``x``, ``y``, ``width``, ``height``, 5.0 ``left``, ``top``, ``right``, ``bottom`` (the same params
    version 2, the same four ints): either is read, and a params without them is refused, not read as 0."""
    for names in (("left", "top", "right", "bottom"), ("x", "y", "width", "height")):
        if all(k in v for k in names):
            return tuple(int(v[k]) for k in names)  # type: ignore[return-value]
    raise DarkproxyError(f"rawprepare params without its crop ({', '.join(sorted(v))})")


def crop_box(v: Values, h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) bounds of darktable's crop of an uncropped ``(h, w)`` sensor."""
    left, top, right, bottom = crop_margins(v)
    return top, h - bottom, left, w - right


def _maximum(v: Values, ctx: StageContext, pm: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(pm)  # rawprepare.c: processed_maximum[k] = 1


@register_exact(
    "rawprepare",
    versions=(2,),
    mosaic=True,
    pointwise=False,
    maximum=_maximum,
    supports=_supported,
    note="exact: darktable's crop and per-site (raw - black) / (white - black) of the uncropped sensor",
)
def rawprepare(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` raw sensor values (uncropped) -> ``(B, 1, h, w)`` camera RGB mosaic,
    1 = the white point."""
    top, bottom, left, right = crop_box(v, x.shape[-2], x.shape[-1])
    x0, y0 = crop_margins(v)[:2]
    xc = x[..., top:bottom, left:right]
    h, w = xc.shape[-2:]
    blacks = torch.as_tensor([float(b) for b in v["raw_black_level_separate"]], dtype=torch.float32)
    white = torch.tensor(float(v["raw_white_point"]), dtype=torch.float32)
    pos = ((torch.arange(h)[:, None] + y0) % 2) * 2 + (torch.arange(w)[None, :] + x0) % 2
    sub = blacks[pos].to(x.device, x.dtype)
    div = (white - blacks)[pos].to(x.device, x.dtype)  # float32 as darktable's d->div, then cast
    return (xc - sub) / div
