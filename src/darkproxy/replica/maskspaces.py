"""darktable's parametric mask in the "Lab" and "RGB (display)" blend colour spaces: the channels' combination,
the refinements and the tone curve, around the per-space channels of :mod:`darkproxy.replica.blend_lab` and
:mod:`darkproxy.replica.blend_display`.

A port of the part ``dt_develop_blendif_lab_make_mask`` (``src/develop/blends/blendif_lab.c``) and
``dt_develop_blendif_rgb_hsl_make_mask`` (``blendif_rgb_hsl.c``) share with the scene-RGB mask
(:func:`darkproxy.replica.mask.parametric_mask`): the inclusive combine inverting every channel of the space's
mask (``DEVELOP_BLENDIF_Lab_MASK`` 0x3377, ``DEVELOP_BLENDIF_RGB_MASK`` 0x77FF), a channel inverted but selecting
everything cancelling the mask, the product of the active channels' trapezoids, the opacity; then blend.c's
post-processing at the render scale: the feathering guided by the module's input or output *in the blend colour
space* (Lab values in Lab, darktable's guide weight 1 there; RGB weighted 100 in RGB (display)), the blur, the
tone curve (:func:`darkproxy.replica.mask.tone_curve`). Differentiable as the scene-RGB mask is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from darkproxy.darktable.blendop import BLUR, COMBINE_INCL, COMBINE_INV, FEATHER_IN, ParametricMask, post_operations
from darkproxy.replica.mask import tone_curve, trapezoid
from darkproxy.replica.maskrefine import feather_radius, gaussian_blur, guided_filter

Tensor = torch.Tensor
_F = np.float32
# (x (B, 3, H, W) in the blend colour space, blendif, raw breakpoints (16, 4), boost, offset 0 in / 4 out)
# -> the product of that side's active channels' factors, None: none active
Channels = Callable[[Tensor, int, Tensor, tuple[float, ...], int], Tensor | None]


def factor(value: Tensor, raw: Tensor, boost: tuple[float, ...], blendif: int, ch: int, offset: float = 0.0) -> Tensor:
    """``_blendif_compute_factor`` of channel ``ch`` on ``value`` (its polarity from ``blendif``'s bit ``ch + 16``);
    ``offset``: ``dt_develop_blendif_process_parameters``'s shift of the breakpoints in slider units (0.5 for Lab's
    a and b: ``(p - 0.5) * 2^boost``), applied to the value instead (``v`` against ``(p - o) s`` is ``v + o s``
    against ``p s``; the slopes and darktable's open-end tests on the raw values unchanged)."""
    shift = float(np.exp2(_F(boost[ch]))) * offset
    return trapezoid(value + shift if offset else value, raw[ch], boost[ch], bool(blendif & (1 << (ch + 16))))


def _refine(
    m: Tensor, guide_in: Tensor, guide_out: Tensor, mask: ParametricMask, weight: float, scale: float
) -> Tensor:
    """blend.c's feathering (guide weighted by ``weight``) and blur of ``m``, in darktable's order."""
    for op in post_operations(mask.feathering_radius, mask.feathering_guide, mask.blur_radius):
        if op == BLUR:
            m = gaussian_blur(m, float(_F(_F(mask.blur_radius) * _F(scale))))
        else:
            guide = guide_in if op == FEATHER_IN else guide_out
            m = guided_filter(guide, m, feather_radius(mask.feathering_radius, scale), weight=weight)
    return m


def space_mask(
    x_in: Tensor,
    x_out: Tensor,
    mask: ParametricMask,
    opacity: Tensor | float,
    channels: Channels,
    space_bits: int,
    weight: float,
    scale: float = 1.0,
    breakpoints: Tensor | None = None,
) -> Tensor:
    """The blend mask of ``mask`` on the module's input ``x_in`` and output ``x_out`` (``(B, 3, H, W)``, in the
    blend colour space: the guides of the feathering too), ``opacity`` in ``[0, 1]`` (a float or a tensor
    broadcasting to ``(B, 1, H, W)``), ``channels`` the space's channels, ``space_bits`` its blendif mask,
    ``weight`` its guide weight; ``breakpoints`` ``(16, 4)`` in place of ``mask.parameters``. -> ``(B, 1, H, W)``
    in ``[0, 1]``."""
    o = torch.as_tensor(opacity, dtype=x_in.dtype, device=x_in.device)
    raw = breakpoints if breakpoints is not None else torch.tensor(mask.parameters, dtype=torch.float64)
    raw = raw.reshape(16, 4)
    inclusive, inverted = bool(mask.combine & COMBINE_INCL), bool(mask.combine & COMBINE_INV)
    blendif = mask.blendif ^ (space_bits << 16 if inclusive else 0)
    active = blendif & space_bits
    canceling = (blendif >> 16) & ~blendif & space_bits
    fill = 0.0 if inclusive else 1.0  # the mask before the parametric one (no drawn mask)
    ones = torch.ones_like(x_in[:, :1])
    if not active and not canceling:
        m = ones * (o * (1.0 - fill) if inverted else o * fill)
    elif canceling or not active:
        m = ones * (o if (not inverted) ^ (not inclusive) else 0.0 * o)
    else:
        temp = ones
        for part in (channels(x_in, blendif, raw, mask.boost, 0), channels(x_out, blendif, raw, mask.boost, 4)):
            temp = temp if part is None else temp * part
        if inclusive:
            m = o * (1.0 - fill) * temp if inverted else o * (1.0 - (1.0 - fill) * temp)
        else:
            m = o * (1.0 - fill * temp) if inverted else o * fill * temp
    m = _refine(m, x_in, x_out, mask, weight, scale)
    if abs(_F(mask.contrast)) >= _F(0.01) or abs(_F(mask.brightness)) >= _F(0.01):
        m = tone_curve(m, mask.contrast, mask.brightness, o)
    return m
