"""darktable's raster masks in the replica: a stage blending through another stage's final blend mask.

darktable 4.2 (``src/develop/blend.c``, ``dt_develop_blend_process``): a module whose blend ``mask_mode`` has
the raster bit takes, in place of any drawn or parametric mask of its own (nor details, feathering, blur or
tone curve on it), the mask its source (``raster_mask_source``, instance ``raster_mask_instance``) blended with:
the source's final mask, after feathering, blur and the tone curve, the opacity in it (a uniform blend: the
opacity everywhere), stored in the source's ``piece->raster_masks`` under id 0 when a module uses it. The
consumer's mask is ``opacity * raster`` (``raster_mask_invert``: ``opacity * (1 - raster)``).
``dt_dev_get_raster_mask`` (``pixelpipe_hb.c``) distorts it through every enabled module between with a
``distort_mask``; with no mask (the source disabled, not blending, later in the pipe, an id other than 0)
darktable fills 1 (inverted: 0) without the opacity.

darktable 5.4 (blend params version 14) refines a raster mask with the consumer's own details, feathering, blur
and tone curve (darktable 4.2 ignored them) and zeroes them when it upgrades an older blob: the replica refuses a
raster mask those would change there, and on 5.1 to 5.3 (not measured) any that has them set.

The replica reproduces it where the source is a stage of the chain before the consumer that blends (its mask
is the one the chain computes: uniform, parametric in each blend colour space, drawn; not a proxy's mask) and no
module between moves the pixels (a flip keeping the raw's orientation moves nothing); the rest is refused in one
line. The chain (:mod:`darkproxy.replica.chain`) hands the source's mask to the consumer, differentiable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from darkproxy.darktable.blendop import CS_LAB, CS_RGB_SCENE, UniformBlend

# darktable 4.2's modules with a distort_mask between demosaic and the output (iop/*.c), finalscale aside
_DISTORT_MASK: tuple[str, ...] = ("ashift", "borders", "clipping", "crop", "flip", "liquify", "lens")
_DISTORT_MASK += ("retouch", "rotatepixels", "scalepixels", "spots")


@dataclass(frozen=True)
class RasterSource:
    """A stage's raster mask: the chain's ``key`` of the stage whose final mask it is, ``invert``ed or not."""

    key: str
    invert: bool


def raster_source(
    item: Any, order: Sequence[str], history: Any, stages: Sequence[Any], ctx: Any = None
) -> tuple[RasterSource | None, str | None]:
    """The raster mask ``item`` (a history item) blends through: ``(source, None)``; ``(None, None)`` when it
    does not; ``(None, why)`` (one line) when the replica does not reproduce it. ``order``: darktable's pipe
    order (modules), ``history``: the compressed sidecar, ``stages``: the chain's stages planned so far
    (:class:`darkproxy.replica.plan.StagePlan`, those before the item in the pipe), ``ctx``: the raw's
    orientation (a flip between that keeps it is no move)."""
    from darkproxy.darktable.blendop import item_blend
    from darkproxy.darktable.xmp import instance_key
    from darkproxy.errors import XmpError

    try:
        bp = item_blend(item)
    except XmpError:
        return None, None  # (stage_blend says why)
    if bp is None or not bp.enabled or "raster mask" not in bp.masks:
        return None, None
    src, inst = bp.raster_mask_source, bp.raster_mask_instance
    name = f"of {src} instance {inst}" if src else "without a source"
    head = f"{item.operation} instance {item.multi_priority} blends (raster mask {name}"
    if bp.raster_mask_id != 0:  # darktable stores id 0 only: no mask, its fallback
        return None, f"{head}, id {bp.raster_mask_id}: darktable's fallback): the replica does not reproduce that"
    refined = _refinements(bp, item, getattr(ctx, "darktable_version", None))
    if refined:
        return None, f"{head}) refined by its own {', '.join(refined)}, which darktable 5.4 applies: not reproduced"
    key = instance_key(src, inst)
    st = next((s for s in stages if s.key == key), None)
    if st is None or st.kind == "passthrough" or st.mosaic or st.opacity is None:
        ran = st is not None and st.kind != "passthrough" and not st.mosaic
        what = "not blending" if ran else "not a stage of the chain before it"
        return None, f"{head}, {what}: darktable's fallback): the replica does not reproduce that"
    if st.kind == "proxy" and st.blend is not None and st.blend.mask is not None:  # it may read the output
        return None, f"{head}, masked on a proxy's output): the replica does not reproduce that exactly"
    lo, hi = order.index(src), order.index(item.operation)
    moved = [m for m in _DISTORT_MASK if m in order and lo < order.index(m) < hi and _moves(m, history, stages, ctx)]
    if moved:
        return None, f"{head}, distorted by {', '.join(moved)}): the replica does not reproduce that"
    return RasterSource(key, bp.raster_mask_invert), None


def _refinements(bp: Any, item: Any, version: tuple[int, ...] | None) -> list[str]:
    """The consumer's own mask refinements darktable ``version`` applies to its raster mask (none before 5.1;
    from 5.4 none in a blob older than version 14, whose upgrade zeroes them: blend.c's ``_fix_raster_blend``).
    The thresholds are 5.4.1's (``_get_post_operations``, ``_refine_with_detail_mask``)."""
    if version is None or version < (5, 1) or (version >= (5, 4) and (item.blendop_version or 0) < 14):
        return []
    out = ["details"] if abs(bp.details) > 1e-6 else []
    out += ["feathering"] if bp.feathering_radius > 0.1 else []
    out += ["blur"] if bp.blur_radius > 0.1 else []
    tone = abs(bp.contrast) >= 0.01 or abs(bp.brightness) >= 0.01
    return out + (["tone curve"] if tone and bp.opacity / 100.0 > 1e-4 else [])


def _moves(module: str, history: Any, stages: Sequence[Any], ctx: Any) -> bool:
    """Whether ``module``'s enabled instance moves the pixels (flip: not when it keeps the raw's orientation)."""
    it = history.find(module)
    if it is None or not it.enabled:
        return False
    if module != "flip" or ctx is None:
        return True
    from darkproxy.replica.ports.flip import resolved_orientation

    st = next((s for s in stages if s.module == "flip"), None)
    values = st.values if st is not None else None
    return values is None or resolved_orientation(values, ctx) != 0


def final_mask(
    inp: Tensor,
    out: Tensor,
    blend: UniformBlend | None,
    opacity: Tensor,
    scale: float = 1.0,
    full_size: tuple[float, float] | None = None,
    version: tuple[int, ...] | None = None,
) -> Tensor:
    """The final mask a stage blends with (what darktable stores as its raster mask): ``inp``, ``out`` the
    stage's input and output ``(B, 3, H, W)`` working RGB, ``blend`` its blend (``None``: normal, uniformly),
    ``opacity`` broadcasting to ``(B, 1, H, W)`` (``(B, 1, 1, 1)``: the slider; per pixel: a raster mask's)
    -> ``(B, 1, H, W)`` in ``[0, 1]``, differentiable."""
    ones = torch.ones_like(inp[:, :1])
    if blend is None or blend.mask is None:
        return ones * opacity
    if blend.colorspace == CS_RGB_SCENE:
        from darkproxy.replica.drawn import drawn_mask
        from darkproxy.replica.mask import parametric_mask

        drawn = None
        if blend.drawn is not None:
            hw = (int(inp.shape[-2]), int(inp.shape[-1]))
            drawn = drawn_mask(blend.drawn, hw, scale, full_size, inp.dtype, version=version).to(inp.device)
        return parametric_mask(inp, out, blend.mask, opacity, scale=scale, drawn=drawn)
    if blend.colorspace == CS_LAB:
        from darkproxy.replica.blend_lab import lab_mask, rgb_to_lab

        return lab_mask(rgb_to_lab(inp), rgb_to_lab(out), blend.mask, opacity, scale=scale)
    from darkproxy.replica.blend_display import display_mask

    return display_mask(inp, out, blend.mask, opacity, scale=scale)


def raster_opacity(source: RasterSource, masks: Mapping[str, Tensor] | None, opacity: Tensor, key: str) -> Tensor:
    """A consumer's mask: ``opacity * raster`` or ``opacity * (1 - raster)`` of its source's final mask in
    ``masks`` (the chain's, by stage key); raises :class:`ValueError` when the source has not run (``key``:
    the consumer's, for the message)."""
    if masks is None or source.key not in masks:
        raise ValueError(f"{key} blends through {source.key}'s raster mask: run the chain from {source.key} on")
    r = masks[source.key]
    return opacity * (1.0 - r) if source.invert else opacity * r
