"""darktable's blending of a module's output with its input, where the replica reproduces it exactly.

darktable 4.2 (``src/develop/blend.c``, ``blendif_rgb_jzczhz.c``) blends an item whose blend
params enable it: with ``mask_mode`` "uniformly" (no drawn, parametric or raster mask) the mask
is the opacity everywhere (clipped to [0, 1]); in scene-referred RGB, mode normal is
``out = in * (1 - opacity) + processed * opacity`` per channel. That is linear in the pixel, so
it commutes with the linear colour-space changes between darktable's pipe and the replica's
linear Rec2020 (a module before colorin sees camera RGB): exact for every stage before colorout,
whatever runs it (exact port or proxy), but colorin (its input and output are in different spaces)
and flip (geometry). Anything else (a mask, another mode or blend colour
space, a display-referred stage) is refused (:func:`darkproxy.darktable.blendop.blend_problem`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

_NOT_LINEAR = ("colorin", "flip")


def blend_uniform(inp: torch.Tensor, out: torch.Tensor, opacity: float | torch.Tensor) -> torch.Tensor:
    """darktable's normal blend with a uniform mask: ``inp * (1 - opacity) + out * opacity``
    (``(B, 3, H, W)``; ``opacity`` in [0, 1], a float or a ``(B,)`` tensor: differentiable)."""
    if isinstance(opacity, torch.Tensor) and opacity.ndim == 1:
        opacity = opacity.to(out.dtype).reshape(-1, 1, 1, 1)
    return inp * (1.0 - opacity) + out * opacity


def stage_blend(item: Any, module: str, order: Sequence[str]) -> tuple[float | None, str | None]:
    """How the replica blends ``item`` (the history item of ``module``; ``order``: darktable's
    pipe order): ``(opacity, None)`` for an exact uniform blend, ``(None, None)`` when it does not
    blend, ``(None, why)`` (one line) when the replica cannot reproduce it."""
    from darkproxy.darktable.blendop import blend_problem, uniform_opacity

    if item is None:
        return None, None
    # scene-referred linear RGB up to colorout (exclusive): a linear blend commutes with the replica's space;
    # not across a change of space (colorin blends camera RGB with working RGB: measured, darktable does) or
    # of geometry (flip)
    linear = (
        "colorout" in order
        and module in order
        and order.index(module) < order.index("colorout")
        and module not in _NOT_LINEAR
    )
    why = blend_problem(item, exact_uniform=linear)
    if why is not None:
        return None, why
    return uniform_opacity(item), None
