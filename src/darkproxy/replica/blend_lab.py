"""darktable's blending in the "Lab" blend colour space, exact and differentiable.

darktable 4.2 (``src/develop/pixelpipe_hb.c``) converts a blending module's input and output to the blend colour
space before ``dt_develop_blend_process`` (``blend.c``): in Lab, ``dt_ioppr_transform_image_colorspace`` with the
pipe's working profile (``_transform_rgb_to_lab_matrix``: ``matrix_in`` to XYZ D50, then ``dt_XYZ_to_Lab``, its
cube root ``cbrt_5f`` and one Halley step), whatever the module's own colour space (an RGB module's output is
converted; a Lab module's is Lab already); the blended image stays Lab, the next module converts it back
(``dt_Lab_to_XYZ``, ``matrix_out``). Between colorin and colorout the replica's linear Rec2020 is that working
RGB: the blend here converts both images to Lab as darktable does, blends, and converts back.

The blend: ``dt_develop_blendif_lab_blend`` (``src/develop/blends/blendif_lab.c``) with every mode of its
``_choose_blend_func`` (any other code: normal, unbounded), on Lab scaled to L / 100, a / 128, b / 128 with its
clamps (L in [0, 1], a and b in [-1, 1] where a mode clamps), the input and output swapped when reversed (the
mask not). Its mask: uniformly the opacity, or the parametric mask of ``dt_develop_blendif_lab_make_mask`` on the
unswapped Lab input and output: L / 100, a / 256, b / 256 (their breakpoints shifted by 0.5 slider units), C of
LCh / (128 sqrt 2), h in [0, 1] (``dt_Lab_2_LCH``: 1, not 0, where atan2 gives 0), feathered (guided by the
Lab image, weight 1) and blurred at the render scale (:func:`darkproxy.replica.mask.combined_mask`).

One departure, at darktable's discontinuity: a chroma up to :data:`NEUTRAL_CHROMA` (1e-3 in Lab units) is the
neutral axis (hue 1). A Lab module's exactly neutral output (monochrome: a = b = 0 in darktable) reaches the
blend through the replica's RGB with a and b up to 1.8e-4, whose hue the hue modes would mix at full weight
(measured: monochrome in mode color 27.7 dB without it, 100 dB with it); a pixel darktable holds between 0 and
1e-3 of chroma gets hue 1 too (its hue is that of a colour 1e-3 from grey).

Differentiable: the modes are piecewise smooth in the images and the opacity (torch autograd; the hue's
shortest path and LCh's atan2 through :func:`safe_atan2`); darktable's approximate cube root gives the value,
the exact cube root the gradient (straight through: they differ by ~3e-5 relative). Tested against darktable's
tap-outs in ``tests/replica/test_blend_spaces.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from darkproxy.darktable.blendop import ParametricMask, UniformBlend
from darkproxy.replica.mask import combined_mask, factor
from darkproxy.replica.science import LAB_KAPPA, lab_f, mix3, safe_atan2, safe_hypot, working_profile_matrices

Tensor = torch.Tensor
Vec3 = tuple[Tensor, Tensor, Tensor]
_F = np.float32
_D50 = tuple(float(_F(v)) for v in (0.9642, 1.0, 0.8249))  # colorspaces_inline_conversions.h d50
_TWO_PI = float(_F(2.0) * _F(np.pi))  # 2.0f * DT_M_PI_F
_C_SCALE = float(_F(1.0) / (_F(128.0) * np.sqrt(_F(2.0))))  # _blendif_lch: 1 / (128 sqrtf(2))
_SCALE = (float(_F(1.0) / _F(100.0)), 1.0 / 128.0, 1.0 / 128.0)  # _blend_Lab_scale
LAB_BITS = 0x3377  # DEVELOP_BLENDIF_Lab_MASK: L a b (0-2), C h (8, 9); +4 the output


def dt_lab_f(t: Tensor) -> Tensor:
    """``lab_f``: darktable's value (``cbrt_5f``, the float's bits over 3 plus 709921077, one Halley step, in
    float32; linear below epsilon) with the exact cube root's gradient."""
    t32 = t.detach().to(torch.float32)
    pos = t32 > float(_F(216.0) / _F(24389.0))
    bits = torch.where(pos, t32, torch.ones_like(t32)).view(torch.int32)
    a = (torch.div(bits, 3, rounding_mode="floor") + 709921077).to(torch.int32).view(torch.float32)
    a3 = a * a * a
    big = a * (a3 + t32 + t32) / (a3 + a3 + t32)
    kappa = float(_F(24389.0) / _F(27.0))
    exact = torch.where(pos, big, (kappa * t32 + 16.0) / 116.0).to(t.dtype)
    smooth = lab_f(t)
    return smooth + (exact - smooth).detach()


def _lab_f_inv(f: Tensor) -> Tensor:
    """``lab_f_inv``: ``f^3`` above ``cbrtf(216 / 24389)``, linear below."""
    return torch.where(f > 0.20689655172413796, f * f * f, (116.0 * f - 16.0) / LAB_KAPPA)


def rgb_to_lab(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` working RGB (linear Rec2020) -> Lab D50 as darktable's pipe converts it for the blend
    (``_transform_rgb_to_lab_matrix``: ``matrix_in`` in float32 values, ``dt_XYZ_to_Lab``)."""
    xyz = mix3(working_profile_matrices()[0], (x[:, 0:1], x[:, 1:2], x[:, 2:3]))
    fx, fy, fz = (dt_lab_f(v / w) for v, w in zip(xyz, _D50, strict=True))
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """The inverse (``_transform_lab_to_rgb_matrix``: ``dt_Lab_to_XYZ``, ``matrix_out``): Lab -> working RGB."""
    fy = (lab[:, 0:1] + 16.0) / 116.0
    fx = lab[:, 1:2] / 500.0 + fy
    fz = -lab[:, 2:3] / 200.0 + fy
    xyz = tuple(w * _lab_f_inv(f) for f, w in zip((fx, fy, fz), _D50, strict=True))
    return torch.cat(mix3(working_profile_matrices()[1], (xyz[0], xyz[1], xyz[2])), 1)


# ---- LCh (dt_Lab_2_LCH, dt_LCH_2_Lab) ----


# a chroma below this (Lab units) is the neutral axis: hue 1, as darktable's for a = b = 0. A Lab module's exactly
# neutral output (monochrome) reaches the blend through the replica's RGB with a and b up to 1.8e-4 (measured,
# float32 round trip): its hue would be noise, and the hue modes mix it at full weight
NEUTRAL_CHROMA = 1e-3


def lab_to_lch(a: Tensor, b: Tensor, neutral: float = NEUTRAL_CHROMA) -> tuple[Tensor, Tensor]:
    """``dt_Lab_2_LCH``'s C and h: ``hypotf(a, b)`` and atan2 / 2 pi, in ``(0, 1]`` (``1 - |H| / 2 pi`` where
    atan2 is not positive: 1 for the neutral axis, here any chroma up to ``neutral``: :data:`NEUTRAL_CHROMA`,
    in ``a``'s and ``b``'s units)."""
    h = safe_atan2(b, a) / _TWO_PI
    c = safe_hypot(a, b)
    return c, torch.where((h > 0.0) & (c > neutral), h, torch.where(c > neutral, 1.0 - h.abs(), torch.ones_like(h)))


def hue_mix(ha: Tensor, hb: Tensor, o: Tensor | float) -> Tensor:
    """The modes' hue blend along the shortest way round the circle: ``fmodf(ha (1 - s) + hb s + 1, 1)`` (Lab's
    and RGB (display)'s hue modes alike)."""
    d = (ha - hb).abs()
    far = d > 0.5
    s = torch.where(far, -o * (1.0 - d) / torch.where(far, d, torch.ones_like(d)), o * torch.ones_like(d))
    return torch.fmod(ha * (1.0 - s) + hb * s + 1.0, 1.0)


# ---- the modes, on scaled Lab (L / 100, a / 128, b / 128) ----


def _c(x: Tensor, k: int) -> Tensor:
    """Clamp channel ``k``'s value to darktable's min / max after scaling (L: [0, 1], a and b: [-1, 1])."""
    return x.clamp(0.0, 1.0) if k == 0 else x.clamp(-1.0, 1.0)


def _chroma_follows(ta: Vec3, tb: Vec3, lum: Tensor, o: Tensor, half: bool) -> Vec3:
    """The a and b of the light modes: ``ta (1 - o) + (ta + tb) [/ 2] L / max(ta_L, 0.01) o``, clamped."""
    f = ta[0].clamp_min(0.01)
    k = 0.5 if half else 1.0
    return (
        lum,
        _c(ta[1] * (1.0 - o) + k * (ta[1] + tb[1]) * lum / f * o, 1),
        _c(ta[2] * (1.0 - o) + k * (ta[2] + tb[2]) * lum / f * o, 2),
    )


def _light(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """overlay, softlight, hardlight, vividlight, linearlight, pinlight: L at ``o^2`` (lmax 1, lmin 0)."""
    o2 = o * o
    la, lb = ta[0].clamp(0.0, 1.0), tb[0].clamp(0.0, 1.0)
    one = torch.ones_like(la)
    if mode == 0x0A:  # overlay
        v = torch.where(la > 0.5, 1.0 - (1.0 - 2.0 * (la - 0.5)) * (1.0 - lb), 2.0 * la * lb)
    elif mode == 0x0B:  # softlight
        v = torch.where(lb > 0.5, 1.0 - (1.0 - la) * (1.0 - (lb - 0.5)), la * (lb + 0.5))
    elif mode == 0x0C:  # hardlight
        v = torch.where(lb > 0.5, 1.0 - (1.0 - 2.0 * (la - 0.5)) * (1.0 - lb), 2.0 * la * lb)
    elif mode == 0x0D:  # vividlight
        hi = torch.where(lb >= 1.0, one, la / (2.0 * torch.where(lb >= 1.0, one, 1.0 - lb)))
        lo = torch.where(lb <= 0.0, 0.0 * one, 1.0 - (1.0 - la) / (2.0 * torch.where(lb <= 0.0, one, lb)))
        v = torch.where(lb > 0.5, hi, lo)
    elif mode == 0x0E:  # linearlight
        v = la + 2.0 * lb - 1.0
    else:  # pinlight
        v = torch.where(lb > 0.5, torch.maximum(la, 2.0 * (lb - 0.5)), torch.minimum(la, 2.0 * lb))
    lum = (la * (1.0 - o2) + v * o2).clamp(0.0, 1.0)
    if mode == 0x0F:
        return lum, _c(ta[1], 1), _c(ta[2], 2)
    return _chroma_follows(ta, tb, lum, o2, half=False)


def _lch_mode(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """chromaticity, hue, color, coloradjust: both clamped, through LCh, clamped again."""
    ta = (_c(ta[0], 0), _c(ta[1], 1), _c(ta[2], 2))
    tb = (_c(tb[0], 0), _c(tb[1], 1), _c(tb[2], 2))
    ca, ha = lab_to_lch(ta[1], ta[2], NEUTRAL_CHROMA / 128.0)  # scaled Lab
    cb, hb = lab_to_lch(tb[1], tb[2], NEUTRAL_CHROMA / 128.0)
    lum = tb[0] if mode == 0x16 else ta[0]
    chroma = ca if mode == 0x12 else ca * (1.0 - o) + cb * o
    hue = ha if mode == 0x11 else hue_mix(ha, hb, o)
    return _c(lum, 0), _c(torch.cos(_TWO_PI * hue) * chroma, 1), _c(torch.sin(_TWO_PI * hue) * chroma, 2)


def _mix(x: Tensor, y: Tensor, o: Tensor) -> Tensor:
    return x * (1.0 - o) + y * o


def blend_lab_scaled(ta: Vec3, tb: Vec3, o: Tensor, mode: int) -> Vec3:
    """One mode of ``blendif_lab.c`` on scaled Lab channels ``ta`` (the blend's a: the input, the output when
    reversed) and ``tb`` at the per-pixel opacity ``o``; any code it does not implement: normal (unbounded)."""
    if mode in (0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F):
        return _light(ta, tb, o, mode)
    if mode in (0x11, 0x12, 0x13, 0x16):
        return _lch_mode(ta, tb, o, mode)
    if mode in (0x02, 0x03):  # lighten, darken: a and b follow by |L change|
        pick = torch.maximum if mode == 0x02 else torch.minimum
        lum = _c(_mix(ta[0], pick(ta[0], tb[0]), o), 0)
        d = (lum - ta[0]).abs()
        return lum, _c(_mix(ta[1], 0.5 * (ta[1] + tb[1]), d), 1), _c(_mix(ta[2], 0.5 * (ta[2] + tb[2]), d), 2)
    if mode == 0x04:  # multiply
        return _chroma_follows(ta, tb, _c(_mix(ta[0], ta[0] * tb[0], o), 0), o, half=False)
    if mode == 0x09:  # screen
        la, lb = ta[0].clamp(0.0, 1.0), tb[0].clamp(0.0, 1.0)
        lum = _mix(la, 1.0 - (1.0 - la) * (1.0 - lb), o).clamp(0.0, 1.0)
        return _chroma_follows(ta, tb, lum, o, half=True)
    if mode in (0x05, 0x06, 0x07, 0x19):  # average, add, subtract, bounded: per channel, clamped
        off = (1.0, 0.0, 0.0)  # subtract's |min + max|

        def each(k: int) -> Tensor:
            a, b = ta[k], tb[k]
            v = {0x05: (a + b) / 2.0, 0x06: a + b, 0x07: (b + a) - off[k], 0x19: b}[mode]
            return _c(_mix(a, v, o), k)

        return each(0), each(1), each(2)
    if mode == 0x08:  # difference (deprecated): shifted to [0, max + |min|]
        out = []
        for k, (lo, hi) in enumerate(((0.0, 1.0), (1.0, 2.0), (1.0, 2.0))):
            la, lb = (ta[k] + lo).clamp(0.0, hi), (tb[k] + lo).clamp(0.0, hi)
            out.append(_mix(la, (la - lb).abs(), o).clamp(0.0, hi) - lo)
        return out[0], out[1], out[2]
    if mode == 0x17:  # difference: the largest scaled difference as lightness, no colour
        d = torch.maximum(
            (ta[0] - tb[0]).abs(), torch.maximum((ta[1] - tb[1]).abs() / 2.0, (ta[2] - tb[2]).abs() / 2.0)
        )
        zero = torch.zeros_like(ta[0])
        return _c(_mix(ta[0], d, o), 0), zero, zero
    if mode == 0x10:  # lightness (clamped)
        return _c(_mix(ta[0], tb[0], o), 0), _c(ta[1], 1), _c(ta[2], 2)
    if mode in (0x1A, 0x1E):  # Lab lightness, Lab L-channel: unclamped
        return _mix(ta[0], tb[0], o), ta[1], ta[2]
    if mode == 0x1F:
        return ta[0], _mix(ta[1], tb[1], o), ta[2]
    if mode == 0x20:
        return ta[0], ta[1], _mix(ta[2], tb[2], o)
    if mode == 0x1B:  # Lab color
        return ta[0], _mix(ta[1], tb[1], o), _mix(ta[2], tb[2], o)
    return _mix(ta[0], tb[0], o), _mix(ta[1], tb[1], o), _mix(ta[2], tb[2], o)


# ---- the parametric mask's channels ----


def lab_channels(x: Tensor, blendif: int, raw: Tensor, boost: tuple[float, ...], off: int) -> Tensor | None:
    """``_blendif_combine_channels`` of ``blendif_lab.c`` on Lab ``x`` (the input, ``off`` 0, or the output, 4)."""
    out: Tensor | None = None

    def mul(v: Tensor, ch: int, offset: float = 0.0) -> None:
        nonlocal out
        f = factor(v, raw, boost, blendif, ch, offset)
        out = f if out is None else out * f

    if blendif & (1 << off):
        mul(x[:, 0:1] / 100.0, off)
    for k in (1, 2):  # a, b: / 256, breakpoints shifted by 0.5
        if blendif & (1 << (off + k)):
            mul(x[:, k : k + 1] / 256.0, off + k, 0.5)
    if blendif & ((1 << (8 + off)) | (1 << (9 + off))):
        chroma, hue = lab_to_lch(x[:, 1:2], x[:, 2:3])
        for k, v in ((8, chroma * _C_SCALE), (9, hue)):
            if blendif & (1 << (k + off)):  # an inactive one is 1 there (open breakpoints)
                mul(v, k + off)
    return out


def lab_mask(
    lab_in: Tensor,
    lab_out: Tensor,
    mask: ParametricMask,
    opacity: Tensor | float,
    scale: float = 1.0,
    breakpoints: Tensor | None = None,
) -> Tensor:
    """darktable's blend mask of a parametric mask in Lab on the module's Lab input and output ``(B, 3, H, W)``
    (``opacity``, ``scale``, ``breakpoints``: as :func:`darkproxy.replica.mask.parametric_mask`) ->
    ``(B, 1, H, W)`` in ``[0, 1]``."""
    return combined_mask(lab_in, lab_out, mask, opacity, lab_channels, LAB_BITS, 1.0, scale, breakpoints)


def blend_lab(inp: Tensor, out: Tensor, blend: UniformBlend, scale: float = 1.0) -> Tensor:
    """darktable's blend in Lab of the module's ``out`` with its ``inp`` (``(B, 3, H, W)`` working RGB, linear
    Rec2020) in ``blend.mode`` at ``blend.opacity`` (a float or a broadcasting tensor: differentiable), uniformly
    or through ``blend.mask`` at render ``scale`` -> working RGB (darktable's next conversion of the Lab result)."""
    if blend.drawn is not None:  # (blendop.blend_problem refuses it: replica/drawn.py is scene RGB's)
        raise ValueError("a drawn mask outside scene RGB: the replica does not reproduce it")
    lab_in, lab_out = rgb_to_lab(inp), rgb_to_lab(out)
    o: Tensor | float = blend.opacity
    if blend.mask is not None:
        o = lab_mask(lab_in, lab_out, blend.mask, o, scale=scale)
    ot = torch.as_tensor(o, dtype=inp.dtype, device=inp.device)
    a, b = (lab_out, lab_in) if blend.reverse else (lab_in, lab_out)
    ta = (a[:, 0:1] * _SCALE[0], a[:, 1:2] * _SCALE[1], a[:, 2:3] * _SCALE[2])
    tb = (b[:, 0:1] * _SCALE[0], b[:, 1:2] * _SCALE[1], b[:, 2:3] * _SCALE[2])
    res = blend_lab_scaled(ta, tb, ot, blend.mode)
    return lab_to_rgb(torch.cat([res[0] * 100.0, res[1] * 128.0, res[2] * 128.0], 1))
