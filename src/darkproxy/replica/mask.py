"""darktable's parametric mask (blend-if) in the "RGB (scene)" blend colour space, exact and differentiable.

A port of ``dt_develop_blendif_rgb_jzczhz_make_mask`` (``src/develop/blends/blendif_rgb_jzczhz.c``), of
``dt_develop_blendif_process_parameters`` and ``dt_develop_blendif_init_masking_profile`` (``blend.c``) and of
the mask's tone curve (``_develop_blend_process_mask_tone_curve``, blend.c: the "contrast" and "brightness" of
the mask refinement), for a module whose pipe is the working profile's RGB (linear Rec2020: between colorin
and colorout, the replica's own space). Per pixel, each active channel of the module's input (channels 0-3,
8-10) and of its output (4-7, 12-14) gives a factor: a trapezoid in the channel's value with linear feathered
edges (1 between the middle breakpoints, 0 outside the outer ones), ``1 - factor`` where its polarity is
inverted; the channels are multiplied, then combined with ``mask_combine`` (inverted, inclusive) and scaled by
the opacity (:func:`combined_mask`, which the Lab and RGB (display) masks share:
:mod:`darkproxy.replica.blend_lab`, :mod:`darkproxy.replica.blend_display`). The channels: ``g`` (luminance:
the Y of the profile's RGB -> XYZ D50 matrix), R, G, B, and Jz, Cz, hz of JzAzBz (the profile's matrix
premultiplied by blend.c's Bradford D50 -> D65, then
dt_XYZ_2_JzAzBz; hz in ``[0, 1)``). Breakpoints are darktable's slider values times ``2^boost``.

Between the mask and its tone curve, darktable's feathering (guided filter) and blur (gaussian), in its order
and at the render scale: :mod:`darkproxy.replica.maskrefine` (``tests/replica/test_mask_refine.py``).

Piecewise linear in the breakpoints (the slopes are ``1 / max(0.001, width)``) and linear in the opacity (but
for the tone curve, smooth in it), the refinements linear (blur) or smooth (guided filter) in the mask: torch
autograd differentiates them (``tests/replica/test_masks.py`` and ``test_mask_refine.py`` gradcheck them). The
details threshold is not ported: :func:`darkproxy.darktable.blendop.mask_problems` refuses it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from darkproxy.colour.matrices import XYZ_D50_TO_D65_BRADFORD_BLEND
from darkproxy.darktable.blendop import BLENDIF_RGB_MASK, COMBINE_INCL, COMBINE_INV, ParametricMask
from darkproxy.replica.maskrefine import GUIDE_WEIGHT, feather_constants, refine
from darkproxy.replica.science import mix3, safe_atan2, safe_hypot, working_profile_matrices, xyz_d65_to_jzazbz

Tensor = torch.Tensor
_F = np.float32
_FLT_EPSILON = float(np.finfo(_F).eps)
_PI_F = float(_F(np.pi))  # DT_M_PI_F
_JZ = 8  # DEVELOP_BLENDIF_Jz_in: Jz, Cz, hz are 8, 9, 10 (in) and 12, 13, 14 (out)


@functools.cache
def _profile() -> tuple[np.ndarray, np.ndarray]:
    """The working profile's ``matrix_in`` (RGB -> XYZ D50) and the masking profile's ``matrix_out`` (RGB ->
    XYZ D65: Bradford times ``matrix_in``, summed in float32 as init_masking_profile sums), float32 values."""
    return masking_profile(working_profile_matrices()[0])


def masking_profile(matrix_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A profile's ``matrix_in`` (RGB -> XYZ D50, ``(3, 3)``) and its masking ``matrix_out`` (see
    :func:`_profile`), float32 values as float64: what the mask's channels read (``parametric_mask``'s
    ``profile``; before colorin, the camera's input profile: :mod:`darkproxy.replica.blend_camera`)."""
    m_in = np.asarray(matrix_in).astype(_F)
    brad = XYZ_D50_TO_D65_BRADFORD_BLEND.astype(_F)
    m_out = np.zeros((3, 3), _F)
    for y in range(3):
        for x in range(3):
            s = _F(0.0)
            for i in range(3):
                s = _F(s + brad[y, i] * m_in[i, x])
            m_out[y, x] = s
    return m_in.astype(np.float64), m_out.astype(np.float64)


def trapezoid(value: Tensor, raw: Tensor, boost: float, inverted: bool) -> Tensor:
    """``_blendif_compute_factor`` of one channel: ``value`` (any shape) against its 4 breakpoints ``raw``
    (``(4,)``, darktable's slider values, differentiable), scaled by ``2^boost``; an end whose two breakpoints
    are at or past the slider's end (<= 0, >= 1) is open (darktable's -inf / +inf). In ``[0, 1]``."""
    scale = float(np.exp2(_F(boost)))  # exp2f
    p = raw.to(value.dtype) * scale
    up = 1.0 / torch.clamp_min(p[1] - p[0], 0.001)  # the slopes from the finite breakpoints, as darktable
    down = 1.0 / torch.clamp_min(p[3] - p[2], 0.001)
    r = raw.detach()
    low_open = bool(r[0] <= 0.0) and bool(r[1] <= 0.0)
    high_open = bool(r[2] >= 1.0) and bool(r[3] >= 1.0)
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    # darktable's if-chain, first match wins; an open end's tests never (low) or always (high) hold
    f = torch.where(value < p[3], 1.0 - (value - p[2]) * down, zero) if not high_open else one
    f = torch.where(value <= p[2], one, f) if not high_open else f
    if not low_open:
        f = torch.where(value < p[1], (value - p[0]) * up, f)
        f = torch.where(value <= p[0], zero, f)
    return 1.0 - f if inverted else f


def _channels(
    x: Tensor,
    blendif: int,
    raw: Tensor,
    boost: tuple[float, ...],
    off: int,
    profile: tuple[np.ndarray, np.ndarray] | None = None,
) -> Tensor | None:
    """``_blendif_combine_channels`` on ``x`` (``(B, 3, H, W)``: the module's input, ``off`` 0, or output,
    ``off`` 4): the product of its active channels' factors (``None``: none active); ``profile``: the
    :func:`masking_profile` of ``x``'s RGB (``None``: the working profile's)."""
    m_in, m_out = profile if profile is not None else _profile()
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    out: Tensor | None = None

    def mul(v: Tensor, ch: int) -> None:
        nonlocal out
        f = trapezoid(v, raw[ch], boost[ch], bool(blendif & (1 << (ch + 16))))
        out = f if out is None else out * f

    def on(ch: int) -> bool:
        return bool(blendif & (1 << ch))

    if on(off):  # g: the luminance of dt_ioppr_get_rgb_matrix_luminance (a linear profile: no TRC)
        mul(float(m_in[1, 0]) * r + float(m_in[1, 1]) * g + float(m_in[1, 2]) * b, off)
    for k, v in enumerate((r, g, b)):
        if on(off + 1 + k):
            mul(v, off + 1 + k)
    if any(on(_JZ + off + k) for k in range(3)):
        jz, az, bz = xyz_d65_to_jzazbz(mix3(m_out, (r, g, b)))
        h = safe_atan2(bz, az) / (2.0 * _PI_F)
        # an inactive channel of the three is 1 in darktable (open breakpoints; not inverted: that cancels)
        for k, v in enumerate((jz, safe_hypot(az, bz), torch.where(h >= 0.0, h, 1.0 + h))):
            if on(_JZ + off + k):
                mul(v, _JZ + off + k)
    return out


def factor(value: Tensor, raw: Tensor, boost: tuple[float, ...], blendif: int, ch: int, offset: float = 0.0) -> Tensor:
    """``_blendif_compute_factor`` of channel ``ch`` on ``value`` (its polarity from ``blendif``'s bit ``ch + 16``);
    ``offset``: ``dt_develop_blendif_process_parameters``'s shift of the breakpoints in slider units (0.5 for Lab's
    a and b: ``(p - 0.5) * 2^boost``), applied to the value instead (``v`` against ``(p - o) s`` is ``v + o s``
    against ``p s``; the slopes and darktable's open-end tests on the raw values unchanged)."""
    shift = float(np.exp2(_F(boost[ch]))) * offset
    return trapezoid(value + shift if offset else value, raw[ch], boost[ch], bool(blendif & (1 << (ch + 16))))


def tone_curve(mask: Tensor, contrast: float, brightness: float, opacity: Tensor | float) -> Tensor:
    """``_develop_blend_process_mask_tone_curve``: the mask refinement's contrast and brightness on ``mask``
    (``[0, opacity]``), relative to the opacity; darktable runs it only where ``|contrast|`` or
    ``|brightness|`` is at least 0.01 and the opacity above 1e-4 (:func:`parametric_mask` checks)."""
    eps = 16.0 * _FLT_EPSILON  # darktable's threshold for fully transparent masks
    e = float(np.exp(_F(3.0) * _F(contrast)))
    o = torch.as_tensor(opacity, dtype=mask.dtype, device=mask.device)
    x = 2.0 * (mask / o.clamp_min(1e-4)) - 1.0
    if 1.0 - brightness <= 0.0:
        x = torch.where(mask <= eps, -torch.ones_like(x), torch.ones_like(x))
    elif 1.0 + brightness <= 0.0:
        x = torch.where(mask >= 1.0 - eps, torch.ones_like(x), -torch.ones_like(x))
    elif brightness > 0.0:
        x = torch.clamp_max((x + brightness) / (1.0 - brightness), 1.0)
    else:
        x = torch.clamp_min((x + brightness) / (1.0 + brightness), -1.0)
    y = ((x * e / (1.0 + (e - 1.0) * x.abs())) / 2.0 + 0.5) * o
    return torch.where(o > 1e-4, y.clamp(0.0, 1.0), mask)


def parametric_mask(
    inp: Tensor,
    out: Tensor,
    mask: ParametricMask,
    opacity: Tensor | float,
    breakpoints: Tensor | None = None,
    scale: float = 1.0,
    drawn: Tensor | None = None,
    profile: tuple[np.ndarray, np.ndarray] | None = None,
) -> Tensor:
    """darktable's blend mask of a parametric mask in scene RGB (``profile``: the :func:`masking_profile` of the
    images' RGB where it is not the working profile's): ``inp`` and ``out`` the module's input and
    output (``(B, 3, H, W)``, linear Rec2020, darktable's working RGB), ``opacity`` in ``[0, 1]`` (a float or
    a tensor broadcasting to ``(B, 1, H, W)``); ``breakpoints``: ``(16, 4)`` in place of ``mask.parameters``
    (to differentiate in them); ``scale``: darktable's render scale (the feathering's and the blur's radii
    scale with it); ``drawn``: the drawn mask before it (``(1, 1, H, W)``,
    :func:`darkproxy.replica.drawn.drawn_mask`; ``None``: none, darktable's fill). -> ``(B, 1, H, W)`` in
    ``[0, 1]`` (a blurred mask within float rounding of it): the per-pixel opacity of the blend."""
    return combined_mask(
        inp,
        out,
        mask,
        opacity,
        lambda x, blendif, raw, boost, off: _channels(x, blendif, raw, boost, off, profile),
        BLENDIF_RGB_MASK,
        GUIDE_WEIGHT,
        scale,
        breakpoints,
        drawn,
    )


# (x (B, 3, H, W) in the blend colour space, blendif, raw breakpoints (16, 4), boost, offset 0 in / 4 out)
# -> the product of that side's active channels' factors, None: none active
Channels = Callable[[Tensor, int, Tensor, tuple[float, ...], int], Tensor | None]


def combined_mask(
    x_in: Tensor,
    x_out: Tensor,
    mask: ParametricMask,
    opacity: Tensor | float,
    channels: Channels,
    space_bits: int,
    weight: float,
    scale: float = 1.0,
    breakpoints: Tensor | None = None,
    drawn: Tensor | None = None,
) -> Tensor:
    """What darktable's ``make_mask`` of every blend colour space shares, and blend.c's refinements after it: the
    blend mask of ``mask`` on the module's input ``x_in`` and output ``x_out`` (``(B, 3, H, W)`` in the blend
    colour space: the feathering's guides too, weighted by ``weight``), ``opacity`` in ``[0, 1]`` (a float or a
    tensor broadcasting to ``(B, 1, H, W)``), ``channels`` the space's channels, ``space_bits`` its blendif mask
    (the inclusive combine inverts each of them; one inverted but selecting everything cancels the mask),
    ``breakpoints`` ``(16, 4)`` in place of ``mask.parameters``, ``drawn`` the drawn mask before it (``None``:
    darktable's fill) -> ``(B, 1, H, W)`` in ``[0, 1]``."""
    o = torch.as_tensor(opacity, dtype=x_in.dtype, device=x_in.device)
    raw = breakpoints if breakpoints is not None else torch.tensor(mask.parameters, dtype=torch.float64)
    raw = raw.reshape(16, 4)
    inclusive, inverted = bool(mask.combine & COMBINE_INCL), bool(mask.combine & COMBINE_INV)
    # the inclusive combine inverts every channel (darktable XORs the polarity bits), then the product
    blendif = mask.blendif ^ (space_bits << 16 if inclusive else 0)
    active = blendif & space_bits
    canceling = (blendif >> 16) & ~blendif & space_bits  # inverted but selecting everything: nothing
    fill: Tensor | float = drawn if drawn is not None else (0.0 if inclusive else 1.0)  # the mask before it
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
    w, e = feather_constants(weight != 1.0, mask.feather_version)  # weight 1: Lab's, 100: the RGB spaces'
    m = refine(m, x_in, x_out, mask.feathering_radius, mask.feathering_guide, mask.blur_radius, scale, w, e)
    if abs(_F(mask.contrast)) >= _F(0.01) or abs(_F(mask.brightness)) >= _F(0.01):  # fabsf(.) >= 0.01f
        m = tone_curve(m, mask.contrast, mask.brightness, o)
    return m
