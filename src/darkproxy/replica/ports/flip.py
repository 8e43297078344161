"""darktable's orientation (``flip``, params version 2) as an exact stage: ``src/iop/flip.c``.

darktable's orientation is three bits (``dt_image_orientation_t``): ``FLIP_Y`` (1, rows
reversed), ``FLIP_X`` (2, columns reversed), ``SWAP_XY`` (4, transposed after the flips):
0 none, 1 vertical mirror, 2 horizontal mirror, 3 rotation by 180 degrees, 4 transpose,
5 rotation by 90 degrees clockwise, 6 counter-clockwise, 7 transverse. ``-1`` (``ORIENTATION_NULL``,
the default history's) takes the raw's EXIF orientation. A pixel permutation: exact at every
orientation (tests/replica/test_geometry.py compares all eight with darktable's renders).
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, register_exact

FLIP_Y, FLIP_X, SWAP_XY = 1, 2, 4


def resolved_orientation(v: Values, ctx: StageContext) -> int | None:
    """The orientation darktable applies: the history's, or the raw's EXIF orientation
    for ``ORIENTATION_NULL`` (``None`` when that could not be read)."""
    o = int(v["orientation"])
    return ctx.orientation if o < 0 else o


def orient(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """``x (..., H, W)`` in darktable's orientation ``0..7``: ``(..., H, W)`` or ``(..., W, H)``
    for the orientations that swap the axes. Any colour space (a permutation of pixels)."""
    if not 0 <= orientation <= 7:
        raise ValueError(f"orientation {orientation} is not one of darktable's 0..7")
    dims = [d for bit, d in ((FLIP_Y, -2), (FLIP_X, -1)) if orientation & bit]
    y = torch.flip(x, dims) if dims else x
    return y.transpose(-2, -1) if orientation & SWAP_XY else y


def _flip_supported(v: Values, ctx: StageContext) -> str | None:
    o = resolved_orientation(v, ctx)
    if o is None:
        return "flip follows the raw's EXIF orientation, which could not be read"
    return None if 0 <= o <= 7 else f"flip orientation {o} is not one of darktable's 0..7"


@register_exact(
    "flip",
    versions=(2,),
    note="exact: rows and columns permuted as darktable orients them (mirrors, rotations by 90 degrees)",
    supports=_flip_supported,
    pointwise=lambda v, ctx: resolved_orientation(v, ctx) == 0,
)
def flip(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    o = resolved_orientation(v, ctx)
    if o is None:  # supports() refuses it before a chain is built
        raise ValueError("flip: the raw's EXIF orientation could not be read")
    return orient(x, o)
