"""darktable's demosaic (``demosaic``, params versions 4 and 6: darktable 5's, capture sharpening off) as an
exact stage: RCD
(``src/iop/rcd_demosaic.c``, darktable 4.2's default for Bayer sensors) at full scale, then
darktable's resampling to the output size (``dt_iop_clip_and_zoom_roi``). The kernels, RCD as darktable
tiles it and PPG, are :mod:`darkproxy.raw.demosaic` (the ``demosaic-rcd`` proxies run them too).

darktable-cli's export pipe always demosaics at full scale (``demosaic_qual_flags``:
``DT_DEV_PIXELPIPE_EXPORT`` -> ``DT_DEMOSAIC_FULL_SCALE``). Input: the white-balanced camera RGB mosaic
``(B, 1, H, W)``; output camera RGB ``(B, 3, H, W)`` (then resampled when ``ctx.out_size`` is smaller:
:mod:`.resample`). PPG (``demosaic_ppg``, darktable 3.x's default, found in old edits): the same border and
interpolation on the photosites as they are (no clamp), over the whole image; its median pre-filter
(``median_thrs`` > 0) is refused. Refused: other methods, green equilibration, colour smoothing, capture
sharpening, images under 16 px. darktable 5 (by the context's version; 5.4.1's ``src/iop/demosaicing/``): RCD's
frame 7 photosites, its scaler at least 1, PPG's passes stored clamped at 0. Below full size on darktable 4.8 and
later the chain hands it the region darktable's demosaic reads (:func:`.resample.demosaic_roi`), resampled at the
whole image's export scale (``ctx.mosaic_size``).
"""

from __future__ import annotations

import torch

from darkproxy.raw.demosaic import PPG, RCD, ppg_border, rcd
from darkproxy.replica.registry import StageContext, Values, cfa_map, register_exact


def _supported(v: Values, ctx: StageContext) -> str | None:
    method = int(v.get("demosaicing_method", RCD))
    if method not in (RCD, PPG):
        return f"demosaic method {method} is not modelled (RCD, method {RCD}, and PPG, method {PPG}, are)"
    if method == PPG and float(v.get("median_thrs", 0.0)) > 0.0:
        return "demosaic PPG's median pre-filter (edge threshold > 0) is not modelled"
    if int(v.get("green_eq", 0)) != 0:
        return f"demosaic green equilibration {int(v['green_eq'])} is not modelled (only 'no')"
    if int(v.get("color_smoothing", 0)) != 0:
        return f"demosaic colour smoothing {int(v['color_smoothing'])} is not modelled (only 'disabled')"
    if bool(v.get("cs_enabled", False)):
        return "demosaic's capture sharpening (darktable 5, params version 6) is not modelled"
    return None


@register_exact(
    "demosaic",
    versions=(4, 6),
    mosaic=True,
    pointwise=False,
    supports=_supported,
    note="RCD at full scale as darktable tiles it (ppg border, 112 px tiles), vectorised, or PPG; then darktable's "
    "lanczos3 resampling to the output size; the chain then applies colorin's camera matrix, measured from "
    "darktable's renders (colorin is the identity after it)",
)
def demosaic(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` white-balanced camera RGB mosaic -> camera RGB ``(B, 3, h, w)`` (``ctx.out_size``)."""
    from darkproxy.errors import DarkproxyError

    h, w = x.shape[-2:]
    if h < 16 or w < 16:
        raise DarkproxyError(f"demosaic: RCD refuses a {w}x{h} mosaic (under 16 px), as darktable does")
    if ctx.processed_maximum is None:
        raise DarkproxyError("demosaic: darktable's processed_maximum is unknown (the chain sets it)")
    pm = torch.as_tensor(ctx.processed_maximum, dtype=x.dtype, device=x.device).reshape(-1, 3)
    fc = cfa_map(ctx, h, w, x.device)
    # darktable 5 (5.4.1's demosaicing/): PPG stores max(value, 0) after each pass; RCD's scaler is
    # dt_iop_get_processed_maximum (at least 1) and its frame RCD_MARGIN 7 photosites
    dt5 = ctx.darktable5
    if int(v.get("demosaicing_method", RCD)) == PPG:
        y = ppg_border(x[:, 0], fc, clamp=False, clamp_out=dt5)
    else:
        y = rcd(x, fc, pm.amax(dim=1).clamp_min(1.0), 7) if dt5 else rcd(x, fc, pm.amax(dim=1))
    if ctx.out_size is None or tuple(ctx.out_size) == (h, w):
        return y
    from darkproxy.replica.ports.resample import clip_and_zoom

    return clip_and_zoom(y, ctx.out_size, ctx.darktable_version, ctx.mosaic_size)
