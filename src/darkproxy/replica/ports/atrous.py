"""darktable 4.2.1's equalizer (``atrous``, params version 2; version 1 through ``darktable.legacy``) as an
exact stage: ``src/iop/atrous.c`` and ``src/common/eaw.c``.

A Lab module (``IOP_CS_LAB``). Five Catmull-Rom curves of six nodes (``x[ch][k]``, ``y[ch][k]``; ``mix`` moves each
node away from the defaults' by ``mix - 1``, clamped to [0, 1], as ``commit_params()`` does) give, per wavelet scale,
the luma and chroma boosts ``(2 curve)^2``, the luma and chroma thresholds ``2^(-7 (1 - t)) 10 (20) curve`` and the
edge sharpness ``0.0025 curve``, each read at the scale's place ``t`` on the curve (``get_scales()``: a 5 px filter
at the finest scale, ``2 2^(i+1) + 1`` px at scale ``i``, mapped to the full-resolution image, its largest filter 20 %
of ``piece->buf_in``; scales stop where ``t < 0`` and where ``4 2^scale`` exceeds the render's shorter side; an image
too small for any scale comes out unchanged, as on x86).

Each scale's edge-avoiding a-trous decomposition (``eaw_decompose_sse2``: darktable runs the SSE2 code path) weighs
the 5x5 taps ``filter[ii] filter[jj]`` (``1 4 6 4 1 / 16``, spaced ``2^scale`` px, indices clamped at the borders) by
``dt_fast_expf_sse2(-sharpness d)`` of the taps' squared L* difference (for L*) and a* b* distance (for both), in
darktable's summation order. The argument first goes through ``weight_sse2``'s mask ``o111 = { ~0, ~0, ~0, 0 }``,
which, an ``__m128`` of floats, holds -1.0f, not all-ones bits: ``_mm_and_ps`` keeps the argument's sign and the low 7
bits of its exponent and drops its mantissa, so a weight's argument is a power of two at most 1 in magnitude and an
argument of magnitude 2 or more becomes nearly 0 (weight ~1: no edge avoidance across strong edges), as darktable
computes it; the detail ``px - coarse`` is soft-thresholded and boosted into the output
(``eaw_synthesize_sse2``), the last coarse image added at the end.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise (whole-image exports). Gradients: the image
(through the weights as if the mask were the identity and ``dt_fast_expf`` the true exponential); the curves set
per-scale constants (one value per batch).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from darkproxy.darktable.params import param_value
from darkproxy.replica.dtmath import vector_exp
from darkproxy.replica.ports.diffuse import BSPLINE_5TAP, clamped_shift
from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.ports.rgbcurve import CATMULL_ROM, curve_at
from darkproxy.replica.ports.soften import whole_export
from darkproxy.replica.registry import StageContext, Values, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor

BANDS = 6
MAX_NUM_SCALES = 8
CH_L, CH_C, CH_S, CH_LT, CH_CT = range(5)
# dt_fast_expf_sse2's constants as floats: dt__fone = 0x3f800000 and femo = 0x402DF854 - 0x3f800000
_FONE = 1065353216.0
_FEMO = 11401344.0
# weight_sse2's mask o111 = { ~0, ~0, ~0, 0 } is an __m128 of floats: ~0 becomes -1.0f, whose bits 0xbf800000 then
# mask the exponent argument (_mm_and_ps): its sign and the exponent's low 7 bits survive, the mantissa does not
_O111 = -1082130432  # 0xbf800000 as an int32


_f32 = np.float32


def _default_y(ch: int) -> float:
    return 0.0 if ch in (CH_LT, CH_CT) else 0.5


def curve_nodes(v: Values) -> list[tuple[np.ndarray, np.ndarray]]:
    """The five curves' nodes ``(xs, ys)`` (float32 ``(6,)`` each) after ``_apply_mix``: ``p + (mix - 1)(p - d)``
    clamped to [0, 1], ``d`` the default node (``x = k / 5``; ``y = 0.5``, 0 for the thresholds)."""
    mix = _f32(one_value(v.get("mix", 1.0), "atrous: mix sets the curves' nodes; one value per batch"))
    out = []
    for ch in range(5):
        xs, ys = np.zeros(BANDS, np.float32), np.zeros(BANDS, np.float32)
        for k in range(BANDS):
            dx, dy = _f32(k) / _f32(BANDS - 1.0), _f32(_default_y(ch))
            px = _f32(float(param_value(v, f"x[{ch}][{k}]", dx)))
            py = _f32(float(param_value(v, f"y[{ch}][{k}]", dy)))
            xs[k] = min(_f32(1.0), max(_f32(0.0), px + (mix - _f32(1.0)) * (px - dx)))
            ys[k] = min(_f32(1.0), max(_f32(0.0), py + (mix - _f32(1.0)) * (py - dy)))
        out.append((xs, ys))
    return out


def _curve_value(nodes: tuple[np.ndarray, np.ndarray], t: np.float32) -> np.float32:
    """``dt_draw_curve_calc_value``: the Catmull-Rom curve at ``t``, clamped to [0, 1]."""
    xs, ys = nodes
    val = curve_at(xs, torch.from_numpy(ys)[None], CATMULL_ROM, torch.tensor([float(t)], dtype=torch.float32), True)
    return _f32(min(max(float(val[0, 0]), 0.0), 1.0))


Scale = tuple[float, float, float, float, float]


def scales(v: Values, buf: tuple[int, int], scale: float, h: int, w: int) -> list[Scale]:
    """``get_scales()``: per wavelet scale ``(sharp, boost L, boost c, threshold L, threshold c)`` (float32 values)
    for the full-resolution ``buf`` ``(width, height)``, the export's float ``scale`` and an ``(h, w)`` render."""
    curves = curve_nodes(v)
    s = _f32(scale)  # roi_in->scale / piece->iscale (1)
    supp0 = min(_f32(2 * (2 << (MAX_NUM_SCALES - 1)) + 1), _f32(max(buf[1], buf[0])) * _f32(0.2))
    i0 = np.log2((supp0 - _f32(1.0)) * _f32(0.5))
    out: list[Scale] = []
    for i in range(MAX_NUM_SCALES):
        supp = _f32(2 * (2 << i) + 1)
        supp_in = supp * (_f32(1.0) / s)
        i_in = np.log2((supp_in - _f32(1.0)) * _f32(0.5)) - _f32(1.0)
        t = _f32(1.0) - (i_in + _f32(0.5)) / i0
        if t < 0.0:
            break
        bl = _f32(2.0) * _curve_value(curves[CH_L], t)
        bc = _f32(2.0) * _curve_value(curves[CH_C], t)
        pw = _f32(math.pow(2.0, float(_f32(-7.0) * (_f32(1.0) - t))))  # powf: correctly rounded here
        tl = pw * _f32(10.0) * _curve_value(curves[CH_LT], t)
        tc = pw * _f32(20.0) * _curve_value(curves[CH_CT], t)
        sharp = _f32(0.0025) * _curve_value(curves[CH_S], t)
        out.append((float(sharp), float(bl * bl), float(bc * bc), float(tl), float(tc)))
    max_scale_roi = int(math.floor(float(np.log2(_f32(min(w, h)))))) - 2
    return out[: max(0, min(max_scale_roi, len(out)))]


def masked_argument(x: Tensor) -> Tensor:
    """``_mm_and_ps(x, o111)`` on float32 ``x``: the bits of ``x`` and of -1.0f (see ``_O111``). Gradient: 1."""
    bits = x.detach().to(torch.float32).contiguous().view(torch.int32) & _O111
    return straight_through(bits.view(torch.float32).to(x.dtype), x)


def _fast_expf_sse2(x: Tensor) -> Tensor:
    """``dt_fast_expf_sse2`` on float32 ``x <= 0``: ``1065353216 + x 11401344`` in float32, rounded to the nearest
    integer (``_mm_cvtps_epi32``), negatives 0, the bits read as a float. Gradient: the true ``exp``'s."""
    x32 = x.detach().to(torch.float32)
    f = (x32 * _FEMO + _FONE).clamp(-(2.0**31), 2.0**31 - 128)
    k = torch.round(f).to(torch.int64).clamp_min(0).to(torch.int32)
    smooth = torch.exp(x)
    return straight_through(k.view(torch.float32).to(x.dtype), smooth)


def decompose(lab: Tensor, scale: int, sharpen: float, darktable5: bool = False) -> Tensor:
    """``eaw_decompose_sse2``'s coarse image of ``lab`` ``(B, 3, H, W)`` at ``scale``: 25 taps summed row by row;
    ``darktable5``: ``eaw_decompose_and_synthesize``'s, whose weights are ``dt_vector_exp`` of the argument itself
    (no mask)."""
    mult = 1 << scale
    total = torch.zeros_like(lab)
    wgt = torch.zeros_like(lab)
    neg = -float(_f32(sharpen))
    for jj in range(5):
        for ii in range(5):
            px2 = clamped_shift(clamped_shift(lab, mult * (jj - 2), -2), mult * (ii - 2), -1)
            sq = (lab - px2) ** 2
            d = torch.cat([sq[:, 0:1], sq[:, 1:2] + sq[:, 2:3]], 1)
            wp = vector_exp(d * neg) if darktable5 else _fast_expf_sse2(masked_argument(d * neg))
            wp = torch.cat([wp[:, 0:1], wp[:, 1:2], wp[:, 1:2]], 1)
            w = float(_f32(BSPLINE_5TAP[ii]) * _f32(BSPLINE_5TAP[jj])) * wp
            total = total + px2 * w
            wgt = wgt + w
    return total / wgt


def _supported(v: Values, ctx: StageContext) -> str | None:
    for ch, (xs, _) in enumerate(curve_nodes(v)):
        if not bool(np.all(np.diff(xs) > 0)):
            return f"atrous: curve {ch}'s nodes out of increasing order (after mix) are not modelled"
    return lab_placement("atrous")(v, ctx)


@register_exact(
    "atrous",
    versions=(2,),
    pointwise=False,
    note="darktable's atrous.c and eaw.c (SSE2 path): edge-avoiding a-trous wavelets with dt_fast_expf_sse2 "
    "weights, per-scale boosts and soft thresholds from the five Catmull-Rom curves; whole-image exports",
    supports=_supported,
)
def atrous(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """equalizer on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    h, w = x.shape[-2:]
    bw, bh, s = whole_export("atrous", ctx, h, w)
    per_scale = scales(v, (bw, bh), s, h, w)
    # no scale (a tiny image): darktable's max_mult = 1u << -1 is 1 << 31 on x86, and it copies the input
    if not per_scale:
        return x
    lab = working_rgb_to_lab(x)
    out: Tensor | None = None
    buf = lab
    dt5 = ctx.darktable5
    for i, (sharp, bl, bc, tl, tc) in enumerate(per_scale):
        coarse = decompose(buf, i, sharp, dt5)
        detail = buf - coarse
        thr = torch.tensor([tl, tc, tc], dtype=lab.dtype, device=lab.device).reshape(1, 3, 1, 1)
        boost = torch.tensor([bl, bc, bc], dtype=lab.dtype, device=lab.device).reshape(1, 3, 1, 1)
        amount = torch.sign(detail) * (detail.abs() - thr).clamp_min(0.0)
        term = boost * amount
        out = term if out is None else out + term
        buf = coarse
    assert out is not None
    return lab_to_working_rgb(out + buf)
