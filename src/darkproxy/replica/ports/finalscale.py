"""darktable's ``finalscale`` as an exact stage: the identity (renders are scaled at demosaic)."""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, register_exact


@register_exact(
    "finalscale", reads_params=False, note="identity: with darktable-cli --hq false the image is scaled at demosaic"
)
def finalscale(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x
