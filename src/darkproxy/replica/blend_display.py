"""darktable's blending in the "RGB (display)" blend colour space, exact and differentiable.

In RGB (display) darktable 4.2 blends the pipe's RGB as it is (``pixelpipe_hb.c`` converts a Lab module's input
and output to the working RGB; an RGB module's are already): between colorin and colorout the working profile's
linear Rec2020, the replica's own space. The blend: ``dt_develop_blendif_rgb_hsl_blend``
(``src/develop/blends/blendif_rgb_hsl.c``) with every mode of its ``_choose_blend_func`` (any other code: normal,
unbounded): display-referred maths, clamped to [0, 1] where the mode clamps (the input and output first, for the
light modes and the HSL ones), HSL (``dt_RGB_2_HSL``, ``dt_HSL_2_RGB``) and HSV (``dt_RGB_2_HSV``, ``dt_HSV_2_RGB``)
as darktable writes them, the input and output swapped when reversed (the mask not). Its parametric mask
(``dt_develop_blendif_rgb_hsl_make_mask``): gray (the Y of the working profile's RGB -> XYZ D50 matrix), R, G,
B, and H, S, L of HSL, on the unswapped input and output; feathered (guide weight 100) and blurred at the
render scale (:func:`darkproxy.replica.mask.combined_mask`).

Differentiable (torch autograd) almost everywhere: the modes are piecewise smooth in the images and the opacity;
HSL's and HSV's hue is piecewise linear in the channels (its branches by which channel is the largest), its
divisions guarded where darktable's tests leave the value 0. Tested against darktable's tap-outs in
``tests/replica/test_blend_spaces.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from darkproxy.darktable.blendop import ParametricMask, UniformBlend
from darkproxy.replica.blend_lab import hue_mix
from darkproxy.replica.mask import combined_mask, factor
from darkproxy.replica.science import safe_atan2, safe_hypot, working_profile_matrices

Tensor = torch.Tensor
Vec3 = tuple[Tensor, Tensor, Tensor]
_F = np.float32
_TWO_PI = float(_F(2.0) * _F(np.pi))  # 2.0f * DT_M_PI_F
DISPLAY_BITS = 0x77FF  # DEVELOP_BLENDIF_RGB_MASK: gray R G B (0-3), H S L (8-10); +4 the output


def _guard(den: Tensor, ok: Tensor) -> Tensor:
    return torch.where(ok & (den != 0), den, torch.ones_like(den))


def _hue(rgb: Vec3, mx: Tensor, delta: Tensor, ok: Tensor) -> Tensor:
    """``_dt_RGB_2_Hue``: in ``[0, 1]`` by which channel is the largest (red first, then green)."""
    r, g, b = rgb
    d = _guard(delta, ok)
    h = torch.where(r == mx, (g - b) / d, torch.where(g == mx, 2.0 + (b - r) / d, 4.0 + (r - g) / d)) / 6.0
    h = torch.where(h < 0.0, h + 1.0, h)
    return torch.where(h > 1.0, h - 1.0, h)


def _extremes(rgb: Vec3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r, g, b = rgb
    mn, mx = torch.minimum(r, torch.minimum(g, b)), torch.maximum(r, torch.maximum(g, b))
    delta = mx - mn
    return mn, mx, delta, (mx.abs() > 1e-6) & (delta.abs() > 1e-6)


def rgb_to_hsl(rgb: Vec3) -> Vec3:
    """``dt_RGB_2_HSL`` on three ``(B, 1, H, W)`` channels (any values: darktable's mask reads them unclamped)."""
    mn, mx, delta, ok = _extremes(rgb)
    lum = (mx + mn) / 2.0
    den = torch.where(lum < 0.5, mx + mn, 2.0 - mx - mn)
    zero = torch.zeros_like(lum)
    return torch.where(ok, _hue(rgb, mx, delta, ok), zero), torch.where(ok, delta / _guard(den, ok), zero), lum


def rgb_to_hsv(rgb: Vec3) -> Vec3:
    """``dt_RGB_2_HSV``."""
    _, mx, delta, ok = _extremes(rgb)
    zero = torch.zeros_like(mx)
    return torch.where(ok, _hue(rgb, mx, delta, ok), zero), torch.where(ok, delta / _guard(mx, ok), zero), mx


def hue_to_rgb(h: Tensor, c: Tensor, mn: Tensor) -> Vec3:
    """``_dt_Hue_2_RGB(H, C, min)``: the sextant ``floor(6 H)`` (0-4, anything else the last) picks the channels."""
    h6 = h * 6.0
    i = torch.floor(h6.detach())
    fc = (h6 - i) * c
    top, inc = c + mn, fc + mn
    dec = top - fc
    cases = ((top, inc, mn), (dec, top, mn), (mn, top, inc), (mn, dec, top), (inc, mn, top))
    out = [top, mn, dec]  # the else branch
    for k in range(4, -1, -1):
        sel = i == float(k)
        out = [torch.where(sel, cases[k][j], out[j]) for j in range(3)]
    return out[0], out[1], out[2]


def hsl_to_rgb(h: Tensor, s: Tensor, lum: Tensor) -> Vec3:
    """``dt_HSL_2_RGB``."""
    c = torch.where(lum < 0.5, lum * s, (1.0 - lum) * s)
    return hue_to_rgb(h, 2.0 * c, lum - c)


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Vec3:
    """``dt_HSV_2_RGB``."""
    c = s * v
    return hue_to_rgb(h, c, v - c)


# ---- the modes ----


def _light(la: Tensor, lb: Tensor, mode: int) -> Tensor:
    """The light modes' blended value on the clamped ``la``, ``lb``."""
    one = torch.ones_like(la)
    if mode == 0x09:  # screen
        return 1.0 - (1.0 - la) * (1.0 - lb)
    if mode == 0x0A:  # overlay
        return torch.where(la > 0.5, 1.0 - (1.0 - 2.0 * (la - 0.5)) * (1.0 - lb), 2.0 * la * lb)
    if mode == 0x0B:  # softlight
        return torch.where(lb > 0.5, 1.0 - (1.0 - la) * (1.0 - (lb - 0.5)), la * (lb + 0.5))
    if mode == 0x0C:  # hardlight
        return torch.where(lb > 0.5, 1.0 - (1.0 - 2.0 * (la - 0.5)) * (1.0 - lb), 2.0 * la * lb)
    if mode == 0x0D:  # vividlight
        hi = torch.where(lb >= 1.0, one, la / (2.0 * torch.where(lb >= 1.0, one, 1.0 - lb)))
        lo = torch.where(lb <= 0.0, 0.0 * one, 1.0 - (1.0 - la) / (2.0 * torch.where(lb <= 0.0, one, lb)))
        return torch.where(lb > 0.5, hi, lo)
    if mode == 0x0E:  # linearlight
        return la + 2.0 * lb - 1.0
    return torch.where(lb > 0.5, torch.maximum(la, 2.0 * (lb - 0.5)), torch.minimum(la, 2.0 * lb))  # pinlight


def _three(xs: list[Tensor]) -> Vec3:
    return xs[0], xs[1], xs[2]


_PLAIN: dict[int, Callable[[Tensor, Tensor], Tensor]] = {  # per channel, clamped to [0, 1]: the blended value f(a, b)
    0x19: lambda a, b: b,
    0x02: torch.maximum,
    0x03: torch.minimum,
    0x04: lambda a, b: a * b,
    0x05: lambda a, b: (a + b) / 2.0,
    0x06: lambda a, b: a + b,
    0x07: lambda a, b: (b + a) - 1.0,
    0x08: lambda a, b: (a - b).abs(),
    0x17: lambda a, b: (a - b).abs(),
}


def _hsl_mode(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """lightness, chromaticity, hue, color, coloradjust: both clamped, through HSL, clamped again."""
    ha, sa, la = rgb_to_hsl(ta)
    hb, sb, lb = rgb_to_hsl(tb)
    hue = ha if mode in (0x10, 0x11) else hue_mix(ha, hb, o)
    sat = sa if mode in (0x10, 0x12) else sa * (1.0 - o) + sb * o
    lum = {0x10: la * (1.0 - o) + lb * o, 0x16: lb}.get(mode, la)
    r, g, b = hsl_to_rgb(hue, sat, lum)
    return r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)


def _hsv_mode(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """HSV value, HSV color: unclamped."""
    ha, sa, va = rgb_to_hsv(ta)
    hb, sb, vb = rgb_to_hsv(tb)
    if mode == 0x1C:
        return hsv_to_rgb(ha, sa, va * (1.0 - o) + vb * o)
    xa, ya = sa * torch.cos(_TWO_PI * ha), sa * torch.sin(_TWO_PI * ha)
    xb, yb = sb * torch.cos(_TWO_PI * hb), sb * torch.sin(_TWO_PI * hb)
    xc, yc = xa * (1.0 - o) + xb * o, ya * (1.0 - o) + yb * o
    h = safe_atan2(yc, xc) / _TWO_PI
    return hsv_to_rgb(torch.where(h < 0.0, h + 1.0, h), safe_hypot(xc, yc), va)


def blend_display_values(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """One mode of ``blendif_rgb_hsl.c`` on RGB channels ``ta`` (the blend's a: the input, the output when
    reversed) and ``tb`` at the per-pixel opacity ``o``; any code it does not implement: normal (unbounded)."""
    if mode in _PLAIN:
        f = _PLAIN[mode]
        return _three([(a * (1.0 - o) + f(a, b) * o).clamp(0.0, 1.0) for a, b in zip(ta, tb, strict=True)])
    if mode in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F):
        w = o if mode == 0x09 else o * o  # screen at the opacity, the others at its square
        out = []
        for a, b in zip(ta, tb, strict=True):
            la, lb = a.clamp(0.0, 1.0), b.clamp(0.0, 1.0)
            out.append((la * (1.0 - w) + _light(la, lb, mode) * w).clamp(0.0, 1.0))
        return _three(out)
    if mode in (0x10, 0x11, 0x12, 0x13, 0x16):
        ca = (ta[0].clamp(0.0, 1.0), ta[1].clamp(0.0, 1.0), ta[2].clamp(0.0, 1.0))
        cb = (tb[0].clamp(0.0, 1.0), tb[1].clamp(0.0, 1.0), tb[2].clamp(0.0, 1.0))
        return _hsl_mode(ca, cb, o, mode)
    if mode in (0x1C, 0x1D):
        return _hsv_mode(ta, tb, o, mode)
    if mode in (0x21, 0x22, 0x23):  # one channel, unclamped
        k = mode - 0x21
        return _three([a * (1.0 - o) + b * o if j == k else a for j, (a, b) in enumerate(zip(ta, tb, strict=True))])
    return _three([a * (1.0 - o) + b * o for a, b in zip(ta, tb, strict=True)])


# ---- the parametric mask's channels ----


def display_channels(x: Tensor, blendif: int, raw: Tensor, boost: tuple[float, ...], off: int) -> Tensor | None:
    """``_blendif_combine_channels`` of ``blendif_rgb_hsl.c`` on RGB ``x`` (the input, ``off`` 0, or the output, 4)."""
    m_in = working_profile_matrices()[0]
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    out: Tensor | None = None

    def mul(v: Tensor, ch: int) -> None:
        nonlocal out
        f = factor(v, raw, boost, blendif, ch)
        out = f if out is None else out * f

    if blendif & (1 << off):  # gray: dt_ioppr_get_rgb_matrix_luminance (a linear profile: no TRC)
        mul(float(m_in[1, 0]) * r + float(m_in[1, 1]) * g + float(m_in[1, 2]) * b, off)
    for k, v in enumerate((r, g, b)):
        if blendif & (1 << (off + 1 + k)):
            mul(v, off + 1 + k)
    if blendif & (0x7 << (8 + off)):
        for k, v in enumerate(rgb_to_hsl((r, g, b))):
            if blendif & (1 << (8 + off + k)):  # an inactive one is 1 there (open breakpoints)
                mul(v, 8 + off + k)
    return out


def display_mask(
    inp: Tensor,
    out: Tensor,
    mask: ParametricMask,
    opacity: Tensor | float,
    scale: float = 1.0,
    breakpoints: Tensor | None = None,
) -> Tensor:
    """darktable's blend mask of a parametric mask in RGB (display) on the module's input and output
    ``(B, 3, H, W)`` (working RGB; ``opacity``, ``scale``, ``breakpoints``: as
    :func:`darkproxy.replica.mask.parametric_mask`) -> ``(B, 1, H, W)`` in ``[0, 1]``."""
    return combined_mask(inp, out, mask, opacity, display_channels, DISPLAY_BITS, 100.0, scale, breakpoints)


def blend_display(inp: Tensor, out: Tensor, blend: UniformBlend, scale: float = 1.0) -> Tensor:
    """darktable's blend in RGB (display) of the module's ``out`` with its ``inp`` (``(B, 3, H, W)`` working RGB)
    in ``blend.mode`` at ``blend.opacity`` (a float or a broadcasting tensor: differentiable), uniformly or
    through ``blend.mask`` at render ``scale``."""
    if blend.drawn is not None:  # (blendop.blend_problem refuses it: replica/drawn.py is scene RGB's)
        raise ValueError("a drawn mask outside scene RGB: the replica does not reproduce it")
    o: Tensor | float = blend.opacity
    if blend.mask is not None:
        o = display_mask(inp, out, blend.mask, o, scale=scale)
    ot = torch.as_tensor(o, dtype=inp.dtype, device=inp.device)
    a, b = (out, inp) if blend.reverse else (inp, out)
    ta = (a[:, 0:1], a[:, 1:2], a[:, 2:3])
    tb = (b[:, 0:1], b[:, 1:2], b[:, 2:3])
    return torch.cat(blend_display_values(ta, tb, ot, blend.mode), 1)
