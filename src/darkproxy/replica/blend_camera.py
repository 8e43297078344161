"""darktable's scene-RGB blend of a stage that runs before colorin: on camera RGB.

A module between demosaic and colorin (exposure, in darktable's v3.0 order) blends in darktable's default
colour space for it, RGB (scene) (``blend.c``: its ``blend_colorspace`` is ``IOP_CS_RGB``; the "raw" blend
space, ``blendif_raw.c``, is only that of the one-channel mosaic modules: highlights, hotpixels, rawdenoise),
on the pipe's pixels there: camera RGB. The modes of ``blendif_rgb_jzczhz.c`` read no profile (per-channel
arithmetic, and the norms of lightness and chromaticity), so the replica, whose stages see linear Rec2020
(colorin's matrix ``M`` applied after demosaic), blends there as darktable does: ``M blend(M^-1 in,
M^-1 out)``, with ``M`` colorin's matrix as darktable's renders measure it (``ctx.camera_matrix``: the chain
measures it where :func:`camera_blend` says a stage needs it). Normal (reversed or not) is linear, so it
commutes with ``M`` and needs none. A parametric mask there reads the pipe's current profile, the camera's
input profile (``dt_ioppr_get_pipe_current_profile_info``): its R, G, B channels are camera RGB, its luminance
and JzCzhz go through the camera's ``matrix_in`` (camera RGB -> XYZ D50), here the working profile's times ``M``;
its feathering is guided by the camera RGB images. A drawn mask alone reads no colour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from darkproxy.darktable.blendop import BLEND_NORMAL, BLENDIF_RGB_MASK, CS_RGB_SCENE, UniformBlend
from darkproxy.replica.blend import blend_scene
from darkproxy.replica.drawn import drawn_mask
from darkproxy.replica.mask import masking_profile, parametric_mask
from darkproxy.replica.raster import final_mask
from darkproxy.replica.registry import StageContext
from darkproxy.replica.science import working_profile_matrices


def on_camera_rgb(order: Sequence[str], module: str) -> bool:
    """Does ``module`` run between demosaic and colorin in pipe ``order`` (darktable's pipe: camera RGB)?"""
    if "colorin" not in order or "demosaic" not in order or module not in order:
        return False
    return order.index("demosaic") < order.index(module) < order.index("colorin")


def camera_blend(blend: UniformBlend | None, order: Sequence[str], module: str) -> bool:
    """Whether ``module``'s ``blend`` (scene RGB) must run on camera RGB, before colorin: a mode other than normal,
    a parametric mask (its channels read the pipe's RGB and profile) or a feathered one (guided by the pipe's
    RGB); the chain so needs colorin's matrix."""
    if blend is None or blend.colorspace != CS_RGB_SCENE or not on_camera_rgb(order, module):
        return False
    mask = blend.mask
    return blend.mode != BLEND_NORMAL or (
        mask is not None and (bool(mask.blendif & BLENDIF_RGB_MASK) or mask.feathering_radius > 0.0)
    )


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", m, x)


def _matrix(blend: UniformBlend, module: str, ctx: StageContext, like: torch.Tensor) -> torch.Tensor:
    if ctx.camera_matrix is None:
        raise ValueError(
            f"{module} blends on camera RGB (before colorin) {blend.how} in {blend.mode_name}: colorin's matrix "
            "(StageContext.camera_matrix) is needed and was not measured"
        )
    return torch.as_tensor(ctx.camera_matrix, dtype=like.dtype, device=like.device)


def _camera_mask(
    xc: torch.Tensor, yc: torch.Tensor, blend: UniformBlend, opacity: Any, m: torch.Tensor, ctx: StageContext
) -> torch.Tensor:
    """The mask of ``blend`` on the camera RGB images ``xc``, ``yc``: its channels through the camera's input
    profile, ``matrix_in`` (camera RGB -> XYZ D50) the working profile's times colorin's matrix ``m``."""
    assert blend.mask is not None
    drawn = None
    if blend.drawn is not None:
        hw = (int(xc.shape[-2]), int(xc.shape[-1]))
        drawn = drawn_mask(blend.drawn, hw, ctx.scale, ctx.full_size, xc.dtype, version=ctx.darktable_version).to(
            xc.device
        )
    profile = masking_profile(working_profile_matrices()[0] @ m.detach().cpu().double().numpy())
    return parametric_mask(xc, yc, blend.mask, opacity, scale=ctx.scale, drawn=drawn, profile=profile)


def stage_mask(
    x: torch.Tensor, y: torch.Tensor, blend: UniformBlend | None, opacity: Any, module: str, ctx: StageContext
) -> torch.Tensor:
    """The final mask ``module`` blends with (:func:`darkproxy.replica.raster.final_mask`), on camera RGB where
    :func:`camera_blend` says (``x``, ``y``: linear Rec2020 ``(B, 3, H, W)``) -> ``(B, 1, H, W)``."""
    if blend is None or blend.mask is None or not camera_blend(blend, ctx.modules, module):
        return final_mask(x, y, blend, opacity, ctx.scale, ctx.full_size, ctx.darktable_version)
    m = _matrix(blend, module, ctx, x)
    inv = torch.linalg.inv(m)
    return _camera_mask(_mix(inv, x), _mix(inv, y), blend, opacity, m, ctx)


def blend_stage(x: torch.Tensor, y: torch.Tensor, blend: UniformBlend, module: str, ctx: StageContext) -> torch.Tensor:
    """darktable's blend of ``module``'s output ``y`` with its input ``x`` (``(B, 3, H, W)`` linear Rec2020) in
    scene RGB (:func:`darkproxy.replica.blend.blend_scene`), on camera RGB where darktable blends there
    (:func:`camera_blend`: through ``ctx.camera_matrix``; without it a :class:`ValueError`); differentiable."""
    if not camera_blend(blend, ctx.modules, module):
        return blend_scene(x, y, blend, ctx.scale, ctx.full_size, ctx.darktable_version)
    m = _matrix(blend, module, ctx, x)
    inv = torch.linalg.inv(m)
    xc, yc = _mix(inv, x), _mix(inv, y)
    if blend.mask is not None:  # the per-pixel opacity (a tensor, as the chain hands a raster mask's)
        o: Any = _camera_mask(xc, yc, blend, blend.opacity, m, ctx)
        blend = dataclasses.replace(blend, opacity=o, mask=None, drawn=None)
    return _mix(m, blend_scene(xc, yc, blend, ctx.scale, ctx.full_size, ctx.darktable_version))


def stage_needs_matrix(stages: Sequence[Any], order: Sequence[str]) -> bool:
    """Whether a stage of ``stages`` (plans with ``module`` and ``blend``) blends on camera RGB in ``order``."""
    return any(camera_blend(getattr(st, "blend", None), order, st.module) for st in stages)
