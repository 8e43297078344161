"""darktable's exposure (``exposure``, params version 6) as an exact stage: ``src/iop/exposure.c``."""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, column, register_exact


def _exposure_supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", 0))
    return None if mode == 0 else f"exposure mode {mode} (deflicker) is not modelled"


@register_exact(
    "exposure",
    params=("exposure", "black"),
    versions=(6,),
    note="darktable's formula (x - black) / (2^-(exposure - bias) - black), exact (the camera matrix maps "
    "camera white to (1, 1, 1)); bias: the raw's EXIF exposure bias when compensate_exposure_bias is on",
    supports=_exposure_supported,
)
def exposure(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    black = column(v.get("black", -0.000244140625), x)
    ev = column(v.get("exposure", 0.0), x)
    if bool(v.get("compensate_exposure_bias", False)):  # exposure.c commit_params: exposure -= bias
        if ctx.exposure_bias is None:
            raise DarkproxyError("exposure: compensate_exposure_bias is on but the raw's exposure bias was not read")
        ev = ev - float(ctx.exposure_bias)
    return (x - black) / (torch.exp2(-ev) - black)
