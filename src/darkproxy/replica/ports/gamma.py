"""darktable's ``gamma`` (display encoding to 8 bits) as an exact stage: the identity on display values."""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, register_exact


@register_exact(
    "gamma",
    output="display",
    reads_params=False,
    note="identity on display values (its 8-bit quantisation is not modelled)",
)
def gamma(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x
