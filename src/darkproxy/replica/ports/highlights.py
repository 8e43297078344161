"""darktable's highlight reconstruction (``highlights``, params version 4) as an exact mosaic stage:
``src/iop/highlights.c`` and ``opposed.c`` (Bayer paths).

* mode 0, "clip highlights": every photosite ``min(x, clip * min(processed_maximum))``, the
  minimum of the white balance coefficients (``processed_maximum`` after temperature); then
  ``processed_maximum`` becomes their maximum. Exact, differentiable in ``clip`` and (through
  the level) in the coefficients.
* mode 5, "inpaint opposed" (4.2's default for a raw never edited): a photosite at or above
  ``0.987 * clip * coefficient`` is rebuilt from its opposed colours; every other one becomes
  ``max(x, 0)``. Only that identity part is modelled: an image with any photosite at its clip
  level is refused in one line when it runs (the test ``x * c >= 0.987 * clip * c`` does not
  depend on the coefficients, so a white balance regression never crosses it).

Other modes (LCh, reconstruct colour, guided laplacians, segmentation) are refused naming them.
"""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, cfa_map, column, register_exact

MODES = {0: "clip highlights", 1: "reconstruct in LCh", 2: "reconstruct color", 3: "guided laplacians"}
MODES |= {4: "segmentation based", 5: "inpaint opposed"}
OPPOSED_MAGIC = 0.987  # highlights_clip_magics[DT_IOP_HIGHLIGHTS_OPPOSED]


def _supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", 0))
    if mode not in (0, 5):
        return f"highlights mode {mode} ({MODES.get(mode, 'unknown')}) is not modelled (clip and inpaint opposed are)"
    if mode == 5 and "temperature" not in ctx.modules:
        return "highlights inpaint opposed without white balance (temperature off) is not modelled"
    return None


def _maximum(v: Values, ctx: StageContext, pm: torch.Tensor) -> torch.Tensor:
    if int(v.get("mode", 0)) == 0:  # clipped to one level: highlights.c sets all three to their maximum
        return pm.amax(dim=1, keepdim=True).expand_as(pm)
    return pm  # opposed keeps the signal scene-referred


@register_exact(
    "highlights",
    params=("clip",),
    versions=(4,),
    mosaic=True,
    pointwise=False,
    maximum=_maximum,
    supports=_supported,
    note="exact: clip at clip x min(white balance coefficients); inpaint opposed where no photosite "
    "reaches its clip level (max(x, 0)), refused on an image where one does",
)
def highlights(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` white-balanced camera RGB mosaic -> the same, highlights handled."""
    if ctx.processed_maximum is None:
        raise DarkproxyError("highlights: darktable's processed_maximum is unknown (the chain sets it)")
    pm = torch.as_tensor(ctx.processed_maximum, dtype=x.dtype, device=x.device).reshape(-1, 3)
    clip = column(v.get("clip", 1.0), x)
    if int(v.get("mode", 0)) == 0:
        level = clip * pm.amin(dim=1).reshape(-1, 1, 1, 1)
        return torch.minimum(x, level)
    fc = cfa_map(ctx, x.shape[-2], x.shape[-1], x.device)
    with torch.no_grad():  # opposed.c: clips[c] = 0.987 * clip * temperature coeffs[c] (float32)
        clips = (OPPOSED_MAGIC * clip.detach().float()).reshape(-1, 1, 1) * pm.detach().float()[:, fc]
        n = int((x.detach().float().clamp_min(0.0)[:, 0] >= clips).sum())
    if n:
        raise DarkproxyError(
            f"highlights inpaint opposed: {n} photosite(s) reach the clip level; only images without clipped "
            "photosites are modelled (set highlights.mode=0 for clip)"
        )
    return x.clamp_min(0.0)
