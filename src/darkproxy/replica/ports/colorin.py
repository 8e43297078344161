"""darktable's input colour profile (``colorin``) as an exact stage: the identity on tap-outs."""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, register_exact


@register_exact(
    "colorin", reads_params=False, note="identity: every tap-out is already in linear Rec2020, colorin's output"
)
def colorin(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x
