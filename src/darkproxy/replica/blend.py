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
Anything else (a drawn or raster mask, a mask's details threshold, another colour space, a
display-referred stage, a non-normal mode or a mask before colorin) is refused
(:func:`darkproxy.darktable.blendop.blend_problem`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from darkproxy.darktable.blendop import UniformBlend
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


def blend_scene(inp: torch.Tensor, out: torch.Tensor, blend: UniformBlend, scale: float = 1.0) -> torch.Tensor:
    """darktable's blend in scene RGB of the module's ``out`` with its ``inp`` (``(B, 3, H, W)``, the
    working profile's RGB) in ``blend.mode`` at ``blend.opacity`` (a float, or a tensor that broadcasts
    against the images: differentiable), uniformly or through ``blend.mask`` (a parametric mask of the
    unswapped input and output, whatever the reversal, feathered and blurred at render ``scale``:
    :func:`darkproxy.replica.mask.parametric_mask`)."""
    a, b = (out, inp) if blend.reverse else (inp, out)
    p = 2.0**blend.parameter
    o: float | torch.Tensor = blend.opacity
    if blend.mask is not None:
        o = parametric_mask(inp, out, blend.mask, o, scale=scale)
    if blend.mode in _ONE_CHANNEL:
        c = _ONE_CHANNEL[blend.mode]
        mixed = a[:, c : c + 1] * (1.0 - o) + p * b[:, c : c + 1] * o
        return torch.cat([mixed if k == c else a[:, k : k + 1] for k in range(3)], 1)
    return a * (1.0 - o) + _MODES[blend.mode](a, b, p) * o


def stage_blend(item: Any, module: str, order: Sequence[str]) -> tuple[UniformBlend | None, str | None]:
    """How the replica blends ``item`` (the history item of ``module``; ``order``: darktable's
    pipe order): ``(blend, None)`` for an exact uniform blend, ``(None, None)`` when it does not
    blend, ``(None, why)`` (one line) when the replica cannot reproduce it."""
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
    why = blend_problem(item, exact_uniform=linear, exact_modes=working)
    if why is not None:
        return None, why
    return uniform_blend(item), None
