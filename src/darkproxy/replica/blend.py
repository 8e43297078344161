"""darktable's blending of a module's output with its input, where the replica reproduces it exactly.

darktable 4.2 (``src/develop/blend.c``, ``blendif_rgb_jzczhz.c``) blends an item whose blend
params enable it: with ``mask_mode`` "uniformly" (no drawn, parametric or raster mask) the mask
is the opacity everywhere (clipped to [0, 1]); in scene-referred RGB, mode normal is
``out = in * (1 - opacity) + processed * opacity`` per channel. That is linear in the pixel, so
it commutes with the linear colour-space changes between darktable's pipe and the replica's
linear Rec2020 (a module before colorin sees camera RGB): exact for every stage before colorout,
whatever runs it (exact port or proxy), but colorin (its input and output are in different spaces)
and flip (geometry). The other modes of darktable's scene-RGB blend (multiply, add, subtract,
difference, divide, average, geometric and harmonic means, lightness, chromaticity, one RGB channel;
reversed or not; ``2^blend_parameter`` scaling the output where darktable scales it) are not linear:
exact where darktable's pipe is the working profile's linear Rec2020, the replica's own space
(between colorin and colorout); there too, a parametric mask (:mod:`darkproxy.replica.mask`), feathered
and blurred at the render scale (:mod:`darkproxy.replica.maskrefine`), gives the per-pixel opacity.
There too the Lab and RGB (display) blend colour spaces, each mode and parametric mask of theirs
(:mod:`darkproxy.replica.blend_lab`, :mod:`darkproxy.replica.blend_display`).
A drawn mask (circles, ellipses, gradients and their groups, :mod:`darkproxy.replica.drawn`) comes before the
parametric one there, where no module before the stage moves the pixels (but rawprepare's crop).
A raster mask (another stage's final mask) where :mod:`darkproxy.replica.raster` says.
Before colorin, each mode and mask of the scene-RGB blend on camera RGB (:mod:`darkproxy.replica.blend_camera`).
Anything else (another raster mask, a path or brush, a mask's details threshold, another colour space, a
display-referred stage, a raster mask read before colorin) is refused
(:func:`darkproxy.darktable.blendop.blend_problem`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from darkproxy.darktable.blendop import CS_LAB, CS_RGB_SCENE, UniformBlend
from darkproxy.darktable.masks import PATH
from darkproxy.replica.drawn import drawn_mask
from darkproxy.replica.mask import parametric_mask

_NOT_LINEAR = ("colorin", "flip")
BLEND_OPACITY = "blend.opacity"  # a blending stage's opacity as a slider of the replica (0..1): MODULE.blend.opacity


def blend_uniform(inp: torch.Tensor, out: torch.Tensor, opacity: float | torch.Tensor) -> torch.Tensor:
    """darktable's normal blend with a uniform mask: ``inp * (1 - opacity) + out * opacity``
    (``(B, 3, H, W)``; ``opacity`` in [0, 1], a float or a ``(B,)`` tensor: differentiable)."""
    if isinstance(opacity, torch.Tensor) and opacity.ndim == 1:
        opacity = opacity.to(out.dtype).reshape(-1, 1, 1, 1)
    return inp * (1.0 - opacity) + out * opacity


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((x * x).sum(1, keepdim=True)).clamp_min(1e-6)


# mode code -> the blended value f(a, b, p) that darktable mixes with a at the opacity (a: the input, b: the
# module's output, swapped when reversed; p = 2^blend_parameter), blendif_rgb_jzczhz.c's _blend_* functions
_MODES: dict[int, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    0x18: lambda a, b, p: b,
    0x04: lambda a, b, p: a * b * p,
    0x05: lambda a, b, p: (a + b) / 2.0,
    0x06: lambda a, b, p: a + p * b,
    0x07: lambda a, b, p: (a - p * b).clamp_min(0.0),
    0x25: lambda a, b, p: (b - p * a).clamp_min(0.0),
    0x08: lambda a, b, p: (a - b).abs(),
    0x17: lambda a, b, p: (a - b).abs(),
    0x26: lambda a, b, p: a / (p * b).clamp_min(1e-6),
    0x27: lambda a, b, p: b / (p * a).clamp_min(1e-6),
    0x28: lambda a, b, p: torch.sqrt((a * b).clamp_min(0.0)),
    0x29: lambda a, b, p: 2.0 * a * b / (a.clamp_min(5e-7) + b.clamp_min(5e-7)),
    0x10: lambda a, b, p: a * _norm(b) / _norm(a),
    0x11: lambda a, b, p: b * _norm(a) / _norm(b),
}
_ONE_CHANNEL = {0x21: 0, 0x22: 1, 0x23: 2}  # RGB red, green, blue channel: p * b in that channel only


def blend_scene(
    inp: torch.Tensor,
    out: torch.Tensor,
    blend: UniformBlend,
    scale: float = 1.0,
    full_size: tuple[float, float] | None = None,
    version: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """darktable's blend in scene RGB of the module's ``out`` with its ``inp`` (``(B, 3, H, W)``, the
    working profile's RGB) in ``blend.mode`` at ``blend.opacity`` (a float, or a tensor that broadcasts
    against the images: differentiable), uniformly or through ``blend.mask`` (a parametric mask of the
    unswapped input and output, whatever the reversal, feathered and blurred at render ``scale``:
    :func:`darkproxy.replica.mask.parametric_mask`), after ``blend.drawn`` (a drawn mask, drawn on the frame
    of ``full_size``: :func:`darkproxy.replica.drawn.drawn_mask`)."""
    if blend.colorspace != CS_RGB_SCENE:  # Lab, RGB (display): replica/blend_lab.py, blend_display.py
        from darkproxy.replica.blend_display import blend_display
        from darkproxy.replica.blend_lab import blend_lab

        return (blend_lab if blend.colorspace == CS_LAB else blend_display)(inp, out, blend, scale)
    a, b = (out, inp) if blend.reverse else (inp, out)
    p = 2.0**blend.parameter
    o: float | torch.Tensor = blend.opacity
    if blend.mask is not None:
        drawn = None
        if blend.drawn is not None:
            hw = (int(inp.shape[-2]), int(inp.shape[-1]))
            drawn = drawn_mask(blend.drawn, hw, scale, full_size, inp.dtype, version=version).to(inp.device)
        o = parametric_mask(inp, out, blend.mask, o, scale=scale, drawn=drawn)
    if blend.mode in _ONE_CHANNEL:
        c = _ONE_CHANNEL[blend.mode]
        mixed = a[:, c : c + 1] * (1.0 - o) + p * b[:, c : c + 1] * o
        return torch.cat([mixed if k == c else a[:, k : k + 1] for k in range(3)], 1)
    return a * (1.0 - o) + _MODES[blend.mode](a, b, p) * o


def stage_blend(
    item: Any,
    module: str,
    order: Sequence[str],
    history: Any = None,
    prefix: Sequence[Any] = (),
    ctx: Any = None,
    raster: bool = False,
) -> tuple[UniformBlend | None, str | None]:
    """How the replica blends ``item`` (the history item of ``module``; ``order``: darktable's
    pipe order): ``(blend, None)`` for an exact uniform blend, ``(None, None)`` when it does not
    blend, ``(None, why)`` (one line) when the replica cannot reproduce it. A drawn mask needs the
    (compressed) ``history`` (its forms), the plan's ``prefix`` stages (rawprepare's crop, flip) and its
    ``ctx`` (the raw's orientation); without them it is refused. ``raster``: the plan hands the item its raster
    mask (:mod:`darkproxy.replica.raster`): the blend without a mask of its own."""
    from darkproxy.darktable.blendop import blend_problem, uniform_blend

    if item is None:
        return None, None
    pos = order.index(module) if module in order else -1
    before_out = "colorout" in order and 0 <= pos < order.index("colorout")
    # scene-referred linear RGB up to colorout (exclusive): a linear blend commutes with the replica's space;
    # not across a change of space (colorin blends camera RGB with working RGB: measured, darktable does) or
    # of geometry (flip); the other modes only where the pipe is the working profile's RGB (after colorin)
    linear = before_out and module not in _NOT_LINEAR
    working = linear and "colorin" in order and pos > order.index("colorin")
    forms, crop, moved = _drawn_context(module, order, history, prefix, ctx)
    camera = linear and "demosaic" in order and "colorin" in order  # (the stage on camera RGB: any scene mode)
    camera = camera and order.index("demosaic") < pos < order.index("colorin")
    why = blend_problem(item, linear, working, forms, raster, camera_modes=camera)  # camera: blend_camera.py
    if why is not None:
        return None, why
    blend = uniform_blend(item, forms, crop, raster)
    where = f"{item.operation} instance {item.multi_priority}"
    if blend is not None and blend.drawn is not None and moved:  # the forms' coordinates move with the pixels
        return None, f"{where} blends (a drawn mask behind {moved}): the replica does not reproduce that"
    dt5 = bool(getattr(ctx, "darktable5", False))  # ctx: a StageContext or None
    if blend is not None and blend.drawn is not None and dt5 and blend.drawn.uses(PATH):
        return None, (  # tests/replica/test_drawn_path.py on 5.0.1 and 5.4.1
            f"{where} blends through a drawn path, which darktable 5 rasterises otherwise than 4.2's, the "
            "port's (sharp corners 56.0-58.2 dB, an anticlockwise path's wide feather 47.9 against 5.4.1)"
        )
    return blend, None


# darktable's modules that move pixels (an ``distort_backtransform``: iop/*.c), but rawprepare (its crop is ported)
_DISTORTING = ("ashift", "borders", "clipping", "crop", "flip", "liquify", "lens", "rotatepixels", "scalepixels")


def _drawn_context(
    module: str, order: Sequence[str], history: Any, prefix: Sequence[Any], ctx: Any
) -> tuple[dict[Any, Any] | None, tuple[int, ...], str]:
    """``(forms, crop, moved)`` for a drawn mask of ``module``: the history's active drawn forms (``None``: no
    history given), rawprepare's ``x, y, width, height`` crop and what before it moves the pixels (``""``:
    nothing; a flip that keeps the raw's orientation 0 moves nothing). The forms' frame is the raw's size as the
    chain's :attr:`StageContext.full_size` reads it (rawpy's visible size: darktable's for darkproxy's synthetic
    DNGs, the frame vignette and graduated density use too); a rawprepare crop is refused (not verified)."""
    if history is None:
        return None, (0, 0, 0, 0), ""
    from darkproxy.darktable.masks import active_forms, read_forms
    from darkproxy.replica.ports.flip import resolved_orientation
    from darkproxy.replica.ports.rawprepare import crop_margins

    forms = active_forms(read_forms(history.description), history.history_end)
    stages = {st.module: st for st in prefix}
    raw = stages.get("rawprepare")
    crop = crop_margins(raw.values) if raw is not None else (0, 0, 0, 0)
    pos = order.index(module) if module in order else -1
    moved = []
    for m in _DISTORTING:
        it = history.find(m)
        if it is None or not it.enabled or m not in order or order.index(m) > pos:
            continue
        flip = stages.get("flip") if m == "flip" and ctx is not None else None
        if flip is not None and resolved_orientation(flip.values, ctx) == 0:
            continue
        moved.append(m)
    if raw is None and "rawprepare" in order and history.find("rawprepare") is not None:
        moved.append("rawprepare (its crop not known)")
    if any(crop):  # drawn.py follows darktable's shift, but the chain's full_size is the raw's uncropped size
        moved.append(f"rawprepare's crop {crop} (not verified)")
    return forms, crop, ", ".join(moved)
