"""darktable's orientation (``flip``, params version 2) as an exact stage: the identity; a rotation is refused."""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, register_exact


def _flip_supported(v: Values, ctx: StageContext) -> str | None:
    o = int(v["orientation"])
    if o < 0:  # ORIENTATION_NULL: darktable applies the raw's EXIF orientation
        if ctx.orientation is None:
            return "flip follows the raw's EXIF orientation, which could not be read"
        o = ctx.orientation
    return None if o == 0 else f"flip orientation {o} (a rotation) is not modelled"


@register_exact(
    "flip",
    versions=(2,),
    note="identity: the raw is not rotated (a rotation is refused)",
    supports=_flip_supported,
)
def flip(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x
