"""darktable 4.2.1's shadows and highlights (``shadhi``, params version 5) as an exact stage: ``src/iop/shadhi.c``.

A Lab module (``IOP_CS_LAB``: :func:`~darkproxy.replica.science.working_rgb_to_lab` around it). ``process()``:

* L* blurred by common/gaussian.c's recursive gaussian of order ``order`` at ``sigma = radius x render scale``
  (each pass's input clamped to [0, 100] unless the flags' ``UNBOUND_GAUSSIAN``:
  :func:`~darkproxy.replica.ports.lowpass.gaussian_blur`), or bilateral.c's grid base layer (range sigma 100:
  :func:`~darkproxy.replica.ports.monochrome.bilateral_base`);
* per pixel, on Lab scaled to L / 100, a / 128, b / 128 (both L divided by the white point where positive): the
  blur inverted and desaturated, overlay-blended into the image ``highlights^2`` times in chunks of at most 1
  (weighted by ``1 - blur / (1 - compress)``), then ``shadows^2`` times (weighted by ``(blur - compress) /
  (1 - compress)``), the chroma scaled by the colour corrections, each step clamped where the flags say bounded.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise (whole-image exports at any scale). Gradients:
the image and the sliders but ``radius`` where the bilateral filter is chosen (it sets darktable's grid); the
overlay's number of passes follows ``shadows^2`` and ``highlights^2`` (one value per batch).
"""

from __future__ import annotations

import math

import torch

from darkproxy.replica.ports.lowpass import gaussian_blur
from darkproxy.replica.ports.monochrome import bilateral_base, lab_placement
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab

Tensor = torch.Tensor

UNBOUND_SHADOWS_L, UNBOUND_SHADOWS_A, UNBOUND_SHADOWS_B = 1, 2, 4
UNBOUND_HIGHLIGHTS_L, UNBOUND_HIGHLIGHTS_A, UNBOUND_HIGHLIGHTS_B = 8, 16, 32
UNBOUND_GAUSSIAN, UNBOUND_BILATERAL = 64, 128
UNBOUND_DEFAULT = 127
ALGO_GAUSSIAN, ALGO_BILATERAL = 0, 1
BILATERAL_SIGMA_R = 100.0


def _sign(x: Tensor) -> Tensor:
    """shadhi.c's ``sign``: -1 below 0, else 1."""
    return torch.where(x < 0.0, -torch.ones_like(x), torch.ones_like(x))


def _ref(v: Tensor, low: Tensor) -> Tensor:
    """``copysignf(|v| > low ? 1 / |v| : 1 / low, v)``."""
    return torch.copysign(torch.where(v.abs() > low, 1.0 / v.abs().clamp_min(1e-30), 1.0 / low), v)


def _overlay(
    ta: list[Tensor],
    tb: list[Tensor],
    amount: Tensor,
    passes: int,
    direction: Tensor,
    xform: Tensor,
    ccorrect: Tensor,
    shadows: bool,
    flags: int,
    unbound_mask: bool,
    low: Tensor,
) -> list[Tensor]:
    """The highlights' (``shadows`` False) or the shadows' overlay loop on scaled Lab ``ta`` with the inverted
    blur ``tb``: ``passes`` chunks of ``amount = strength^2`` (``(B or 1, 1, 1, 1)``)."""
    lmin, lmax, halfmax, doublemax = 0.0, 1.0, 0.5, 2.0
    bit = (UNBOUND_SHADOWS_L, UNBOUND_SHADOWS_A, UNBOUND_SHADOWS_B) if shadows else (
        UNBOUND_HIGHLIGHTS_L, UNBOUND_HIGHLIGHTS_A, UNBOUND_HIGHLIGHTS_B)  # fmt: skip
    L, a, b = ta
    left = amount
    for _ in range(passes):
        on = left > 0.0
        la = L if flags & UNBOUND_HIGHLIGHTS_L else L.clamp(lmin, lmax)  # darktable tests the highlights' L bit
        lb = (tb[0] - halfmax) * direction * _sign(lmax - la) + halfmax
        lb = lb if unbound_mask else lb.clamp(lmin, lmax)
        lref, href = _ref(la, low), _ref(1.0 - la, low)
        chunk = torch.where(left > 1.0, torch.ones_like(left), left)
        optrans = chunk * xform
        left = left - 1.0
        blend = torch.where(la > halfmax, lmax - (lmax - doublemax * (la - halfmax)) * (lmax - lb), doublemax * la * lb)
        L2 = la * (1.0 - optrans) + blend * optrans
        L2 = L2 if flags & bit[0] else L2.clamp(lmin, lmax)
        if shadows:
            chroma = L2 * lref * ccorrect + (1.0 - L2) * href * (1.0 - ccorrect)
        else:
            chroma = L2 * lref * (1.0 - ccorrect) + (1.0 - L2) * href * ccorrect
        a2 = a * (1.0 - optrans) + (a + tb[1]) * chroma * optrans
        a2 = a2 if flags & bit[1] else a2.clamp(-1.0, 1.0)
        b2 = b * (1.0 - optrans) + (b + tb[2]) * chroma * optrans
        b2 = b2 if flags & bit[2] else b2.clamp(-1.0, 1.0)
        L, a, b = (torch.where(on, new, old) for new, old in ((L2, L), (a2, a), (b2, b)))
    return [L, a, b]


def _supports(v: Values, ctx: StageContext) -> str | None:
    why = lab_placement("shadhi")(v, ctx)
    if why:
        return why
    if int(v.get("shadhi_algo", ALGO_GAUSSIAN)) not in (ALGO_GAUSSIAN, ALGO_BILATERAL):
        return "shadhi: unknown soften algorithm"
    if int(v.get("order", 0)) not in (0, 1, 2):
        return "shadhi: unknown gaussian order"
    return None


@register_exact(
    "shadhi",
    params=("radius", "shadows", "highlights", "whitepoint", "compress", "shadows_ccorrect", "highlights_ccorrect"),
    versions=(5,),
    pointwise=False,
    note="darktable's shadhi.c: L* blurred by common/gaussian.c's filter (sigma = radius x render scale) or "
    "bilateral.c's grid, the overlay of its inverse in chunks, the colour corrections; any render scale",
    supports=_supports,
)
def shadhi(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """shadows and highlights on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    lab = working_rgb_to_lab(x)
    flags = int(v.get("flags", UNBOUND_DEFAULT))
    algo = int(v.get("shadhi_algo", ALGO_GAUSSIAN))
    unbound_mask = bool(flags & UNBOUND_BILATERAL) if algo == ALGO_BILATERAL else bool(flags & UNBOUND_GAUSSIAN)
    radius = column(v.get("radius", 100.0), x).reshape(-1).clamp_min(0.1)
    if algo == ALGO_BILATERAL:
        sigma = one_value(radius, "shadhi: the bilateral filter's radius sets darktable's grid") * ctx.scale
        blurL = bilateral_base(lab[:, 0:1], sigma, BILATERAL_SIGMA_R, -1.0)
    else:
        lo = None if unbound_mask else torch.zeros(1, 1, 1, 1, dtype=x.dtype, device=x.device)
        hi = None if unbound_mask else torch.full((1, 1, 1, 1), 100.0, dtype=x.dtype, device=x.device)
        blurL = gaussian_blur(lab[:, 0:1], radius * ctx.scale, int(v.get("order", 0)), lo, hi)

    def pct(name: str, default: float) -> Tensor:
        return column(v.get(name, default), x) / 100.0

    shadows = 2.0 * pct("shadows", 50.0).clamp(-1.0, 1.0)
    highlights = 2.0 * pct("highlights", -50.0).clamp(-1.0, 1.0)
    whitepoint = (1.0 - pct("whitepoint", 0.0)).clamp_min(0.01)
    compress = pct("compress", 50.0).clamp(0.0, 0.99)
    s_cc = (pct("shadows_ccorrect", 100.0).clamp(0.0, 1.0) - 0.5) * _sign(shadows) + 0.5
    h_cc = (pct("highlights_ccorrect", 50.0).clamp(0.0, 1.0) - 0.5) * _sign(-highlights) + 0.5
    low = column(v.get("low_approximation", 1e-6), x)

    ta = [lab[:, 0:1] / 100.0, lab[:, 1:2] / 128.0, lab[:, 2:3] / 128.0]
    tbL = (100.0 - blurL) / 100.0
    ta[0] = torch.where(ta[0] > 0.0, ta[0] / whitepoint, ta[0])
    tbL = torch.where(tbL > 0.0, tbL / whitepoint, tbL)
    tb = [tbL, torch.zeros_like(tbL), torch.zeros_like(tbL)]
    h2, s2 = highlights * highlights, shadows * shadows
    why = "shadhi: shadows and highlights set the overlay's passes; one value per batch"
    h_passes = max(math.ceil(one_value(h2, why)), 0)
    s_passes = max(math.ceil(one_value(s2, why)), 0)
    h_xform = (1.0 - tb[0] / (1.0 - compress)).clamp(0.0, 1.0)
    ta = _overlay(ta, tb, h2, h_passes, _sign(-highlights), h_xform, h_cc, False, flags, unbound_mask, low)
    s_xform = (tb[0] / (1.0 - compress) - compress / (1.0 - compress)).clamp(0.0, 1.0)
    ta = _overlay(ta, tb, s2, s_passes, _sign(shadows), s_xform, s_cc, True, flags, unbound_mask, low)
    out = torch.cat([ta[0] * 100.0, ta[1] * 128.0, ta[2] * 128.0], 1)
    return lab_to_working_rgb(out)
