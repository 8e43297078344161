"""darktable's haze removal (``hazeremoval``, params versions 1 to 3: 4.2.1's, 5.0's and 5.4's) as an exact
stage: ``src/iop/hazeremoval.c`` and ``src/common/guided_filter.c``.

An RGB module (``IOP_CS_RGB``) that darktable's v3.0 order runs before exposure and colorin, on camera RGB: the
stage maps the linear Rec2020 image back through colorin's measured matrix
(:func:`~darkproxy.replica.registry.through_camera_rgb`), as graduated density does. ``process()`` as
darktable-cli runs it (no preview pipe: the ambient light is measured on the image itself):

* **ambient light** (``ambient_light``): the dark channel (each pixel's smallest channel, then its minimum over
  a 13 x 13 px window, ``dt_box_min`` with ``w1 = 6``, cut at the edges); the haze level at its 95 % order
  "statistic" (``quick_select`` at index ``(size_t)(0.95 N)``, emulated swap for swap: darktable's does not
  return the order statistic, :func:`quick_select`); among the pixels at or above it, the brightness ``r + g + b``
  selected the same way among theirs; ``A0`` the mean colour of the
  pixels above both; ``distance_max = -1.125 log(haze level)`` (``log(FLT_MAX) / 2`` when it is 0);
* **transition map**: ``1 - strength x min_c(pixel_c / A0_c)``, its maximum then its minimum over the same
  window (``dt_box_max``, ``dt_box_min``), refined by the colour guided filter (He et al.; ``guided_filter``
  with the image as guide, window ``w2 = 9``, ``eps = 0.025``, no clipping: box means over 19 x 19 px cut at the
  edges, the 3 x 3 system solved by Cramer's rule, 0 gain where its determinant is under ``4 FLT_EPSILON``;
  darktable's tiles overlap by twice the window, which makes them the untiled filter computed here);
* **dehaze**: ``(pixel - A0) / max(t, t_min) + A0`` with ``t_min = clamp(exp(-distance x distance_max),
  1 / 1024, 1)``.

Versions 2 and 3 (darktable 5.0, 5.4.1's source): ``compatibility_mode`` keeps all of the above (darktable's
"broken" quick_select, what version 1 ran); off, darktable's new quick_select (the pivot by a median of three with
the element at ``nth``, a Hoare partition; emulated too, :func:`quick_select_5`), and the hazy pixels' brightnesses
gathered outwards from the image's middle (the first half's in reverse order). ``adaptive`` (version 3) scales the
windows with the render scale: ``w1 = 2 + ceil(4 s)``, ``w2 = 3 + ceil(6 s)``, ``s = min(1, roi scale)``.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same, each image's ambient light its own. Not pointwise: the
ambient light reads the whole image, so a region is not the whole image's haze removal (the chain runs it on
whole images). Gradients: the image, ``strength`` and ``distance`` (the order statistics' selections, the box
extrema's argmin / argmax and the determinant's test are chosen by value).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from darkproxy.errors import DarkproxyError
from darkproxy.replica.ports.soften import box_mean
from darkproxy.replica.registry import StageContext, Values, column, register_exact, through_camera_rgb
from darkproxy.replica.science import safe_div

Tensor = torch.Tensor

W1, W2 = 6, 9
SQRT_EPS = math.sqrt(0.025)
QUANTILE = 0.95
FLT_EPSILON = float(np.finfo(np.float32).eps)
LOG_FLT_MAX_HALF = math.log(float(np.finfo(np.float32).max)) / 2.0


def box_max(x: Tensor, w: int) -> Tensor:
    """``dt_box_max`` of ``x`` ``(B, 1, H, W)``: the maximum over a ``(2w + 1)^2`` window cut at the edges."""
    return F.max_pool2d(x, 2 * w + 1, stride=1, padding=w)


def box_min(x: Tensor, w: int) -> Tensor:
    """``dt_box_min``: the minimum over a ``(2w + 1)^2`` window cut at the edges."""
    return -box_max(-x, w)


def _partition(seg: np.ndarray, val: float) -> np.ndarray:
    """``seg`` as darktable's ``partition(first, last, val)`` leaves it: the elements under ``val`` to the front in
    their order; the others, from the first of them on, in the order its swaps give. Each swap moves the oldest
    of the others seen to the back, so they form a queue written on a tape: the first one, then per later element
    itself (not under ``val``) or a copy of the queue's head (under), whose last entries are the final order;
    copies are resolved by pointer jumping."""
    small = seg < val
    big = np.flatnonzero(~small)
    if len(big) == 0:
        return seg
    f0 = int(big[0])
    rest = seg[f0:]
    ev_small = small[f0 + 1 :]
    n = len(rest)
    ptr = np.arange(n)
    if n > 1:
        heads = np.concatenate([[0], np.cumsum(ev_small)[:-1]])  # copies read the head: the smalls seen before
        ptr[1:] = np.where(ev_small, heads, np.arange(1, n))
    while not np.array_equal(ptr[ptr], ptr):
        ptr = ptr[ptr]
    rot = int(ev_small.sum())
    out = seg.copy()
    out[f0 : f0 + rot] = rest[1:][ev_small]
    out[f0 + rot :] = rest[ptr[rot:]]
    return out


def quick_select(values: np.ndarray, nth: int) -> float:
    """``quick_select(first, first + nth, last)`` of darktable 4.2.1 (``hazeremoval.c``) on a copy of ``values``
    (float32, darktable's memory order), returning the element it leaves at ``nth``. Not the order statistic: its
    partition's boundary is discarded and the pivot put back at the range's middle, so the element left at
    ``nth`` is whatever this sequence of swaps brings there (darktable's haze level and brightness thresholds)."""
    a = np.array(values, dtype=np.float32, copy=True)
    first, last = 0, len(a)
    if first == last:
        raise ValueError("quick_select of no values")

    def swap(i: int, j: int) -> None:
        a[i], a[j] = a[j], a[i]

    while True:
        p1, pivot, p3 = first, first + (last - first) // 2, last - 1
        if not a[p1] < a[pivot]:
            swap(p1, pivot)
        if not a[p1] < a[p3]:
            swap(p1, p3)
        if not a[pivot] < a[p3]:
            swap(pivot, p3)
        swap(pivot, last - 1)
        a[first : last - 1] = _partition(a[first : last - 1], a[last - 1])
        swap(last - 1, pivot)
        if nth == pivot:
            return float(a[nth])
        if nth < pivot:
            last = pivot
        else:
            first = pivot + 1


def quick_select_5(values: np.ndarray, nth: int) -> float:
    """darktable 5's ``_quick_select(first, first + nth, last, FALSE)`` (hazeremoval.c, 5.4.1) on a copy of
    ``values`` (float32, in the order darktable holds them), the element it leaves at ``nth``: the pivot the median
    of the first, ``nth`` and last elements (left at the last place), a Hoare partition scanning from both ends,
    the pivot's place where the scans met."""
    a = np.array(values, dtype=np.float32, copy=True)
    first, last = 0, len(a)
    if first == last:
        raise ValueError("quick_select of no values")

    def swap(i: int, j: int) -> None:
        a[i], a[j] = a[j], a[i]

    while last > first + 1:
        p1, p3, pivot = first, nth, last - 1
        if not a[p1] < a[pivot]:
            swap(p1, pivot)
        if not a[p1] < a[p3]:
            swap(p1, p3)
        if not a[pivot] < a[p3]:
            swap(pivot, p3)
        val = a[last - 1]
        lo, hi = first, last  # _partition(first, last - 1, val): last++ first
        while True:
            lo += 1
            while lo < hi and a[lo] < val:
                lo += 1
            hi -= 1
            while lo < hi and a[hi] > val:
                hi -= 1
            if lo >= hi:
                break
            swap(lo, hi)
        swap(last - 1, lo)
        if nth == lo:
            break
        if nth < lo:
            last = lo
        else:
            first = lo + 1
    return float(a[nth])


def _select_index(values: Tensor, picked: float) -> Tensor:
    """The first element of ``values`` (1-D) equal in float32 to ``picked``: the value darktable picked, with a
    gradient."""
    hit = torch.nonzero(values.detach().float() == picked)
    return values[int(hit[0, 0])]


def ambient_light(x: Tensor, w1: int = W1, compat: bool = True) -> tuple[Tensor, Tensor]:
    """``(A0 (3,), distance_max ())`` of one image ``x`` ``(3, H, W)`` (see the module docstring); ``compat``:
    darktable 4.2's selection (version 3's ``compatibility_mode``), else 5's."""
    select = quick_select if compat else quick_select_5
    dark = box_min(x.amin(0, keepdim=True)[None], w1).reshape(-1)
    dark32 = dark.detach().float().cpu().numpy()
    level = _select_index(dark, select(dark32, int(np.float32(dark32.size) * np.float32(QUANTILE))))
    hazy = dark >= level
    x32 = x.detach().float().cpu().numpy().reshape(3, -1)
    bright32 = (x32[0] + x32[1]) + x32[2]  # pixel_in[0] + pixel_in[1] + pixel_in[2] in float
    hazy_np = hazy.cpu().numpy()
    kept = bright32[hazy_np]
    if not compat:  # gathered outwards from the middle: the first half's hazy pixels reversed, then the second's
        half = hazy_np.size // 2
        kept = np.concatenate([bright32[:half][hazy_np[:half]][::-1], bright32[half:][hazy_np[half:]]])
    crit = select(kept, int(np.float32(kept.size) * np.float32(QUANTILE)))
    sel = hazy & torch.from_numpy(bright32 >= crit).to(hazy.device)
    a0 = x.reshape(3, -1)[:, sel].mean(1) if bool(sel.any()) else torch.zeros(3, dtype=x.dtype, device=x.device)
    dmax = torch.where(level > 0, -1.125 * torch.log(level.clamp_min(1e-30)), torch.full_like(level, LOG_FLT_MAX_HALF))
    return a0, dmax


def stable_ambient_light(x: Tensor, w1: int = W1, compat: bool = True) -> tuple[Tensor, Tensor]:
    """:func:`ambient_light`, refused (one line) where it rests on float rounding: darktable's thresholds compare
    pixels, and in near-black regions (a noise-free raw's black, after the black level) those are values under the
    rounding of the colour conversions the replica's input went through, whose order decides the haze level and
    the pixels averaged. The light is measured again with every channel moved by ``1e-8`` of its pixel's largest
    (about what a float32 matrix with near-zero off-diagonal terms rounds), twice; a light or depth that moves is
    not darktable's to the digit. Calibrated on two raws (2026-12-05): astronaut's light, which darktable's
    differs from, moves at ``6e-9`` already; motorcycle's at 128 px, where the stage gives 97.7-99.6 dB, stays at
    ``6e-9`` and ``1e-8`` and moves at ``2e-8`` on that AMD EPYC machine; on an Intel Xeon (2026-12-06) it moves at
    ``1e-8``, refused, where computed anyway it gives 34.9-47.3 dB (bench/results/hazeremoval_rounding_check.md)."""
    a0, dmax = ambient_light(x, w1, compat)
    gen = torch.Generator().manual_seed(0)
    size = 1e-8 * x.detach().abs().amax(0, keepdim=True)
    for _ in range(2):
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device) * size
        a1, d1 = ambient_light(x.detach() + noise, w1, compat)
        depth = float(dmax.detach())
        if not (torch.allclose(a1, a0.detach(), rtol=1e-5, atol=1e-7) and abs(float(d1) - depth) <= 1e-4 * abs(depth)):
            raise DarkproxyError(
                "hazeremoval: darktable's ambient light here rests on near-black values below the colour conversions' "
                f"float rounding, which the replica cannot reproduce (A0 {a0.detach().tolist()} moves to "
                f"{a1.tolist()} within that rounding; --prefer-proxy hazeremoval runs the zoo's proxy instead)"
            )
    return a0, dmax


def guided_filter(guide: Tensor, p: Tensor, w: int, sqrt_eps: float) -> Tensor:
    """``guided_filter`` (guide weight 1, no clipping) of ``p`` ``(B, 1, H, W)`` guided by ``guide``
    ``(B, 3, H, W)``: the colour guided filter, box means over ``2w + 1`` px cut at the edges."""
    eps = sqrt_eps * sqrt_eps
    r, g, b = guide[:, 0:1], guide[:, 1:2], guide[:, 2:3]
    prods = [p, r, g, b, r * p, g * p, b * p, r * r, r * g, r * b, g * g, g * b, b * b]
    m = box_mean(torch.cat(prods, 1), w, iterations=1)  # dt_box_mean's one pass per axis, as the filter runs it
    mp, mr, mg, mb = m[:, 0:1], m[:, 1:2], m[:, 2:3], m[:, 3:4]
    s00 = m[:, 7:8] - mr * mr + eps
    s01 = m[:, 8:9] - mr * mg
    s02 = m[:, 9:10] - mr * mb
    s11 = m[:, 10:11] - mg * mg + eps
    s12 = m[:, 11:12] - mg * mb
    s22 = m[:, 12:13] - mb * mb + eps
    cr, cg, cb = m[:, 4:5] - mr * mp, m[:, 5:6] - mg * mp, m[:, 6:7] - mb * mp
    det0 = s00 * (s11 * s22 - s12 * s12) - s01 * (s01 * s22 - s02 * s12) + s02 * (s01 * s12 - s02 * s11)
    det1 = cr * (s11 * s22 - s12 * s12) - s01 * (cg * s22 - cb * s12) + s02 * (cg * s12 - cb * s11)
    det2 = s00 * (cg * s22 - cb * s12) - cr * (s01 * s22 - s02 * s12) + s02 * (s01 * cb - s02 * cg)
    det3 = s00 * (s11 * cb - s12 * cg) - s01 * (s01 * cb - s02 * cg) + cr * (s01 * s12 - s02 * s11)
    ok = det0.abs() > 4.0 * FLT_EPSILON
    ar, ag, ab = (safe_div(d, det0, ok) for d in (det1, det2, det3))
    bb = mp - ar * mr - ag * mg - ab * mb
    coef = box_mean(torch.cat([ar, ag, ab, bb], 1), w, iterations=1)
    return coef[:, 0:1] * r + coef[:, 1:2] * g + coef[:, 2:3] * b + coef[:, 3:4]


@register_exact(
    "hazeremoval",
    params=("strength", "distance"),
    versions=(1, 2, 3),
    pointwise=False,
    note="darktable's hazeremoval.c on camera RGB: the ambient light from the dark channel as its quick_select "
    "picks it (emulated: 4.2's, or 5's out of compatibility mode), the transition map's box extrema refined by "
    "guided_filter.c's colour guided filter, the dehaze, 5.4's windows by the render scale where adaptive; whole "
    "images; refused where the light rests on float rounding",
)
def hazeremoval(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """haze removal on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same (on camera RGB where the pipe runs it
    before colorin, as darktable's v3.0 order does)."""
    try:
        return through_camera_rgb(x, ctx, "hazeremoval", lambda cam: dehaze(cam, v, ctx.scale))
    except ValueError as e:
        raise DarkproxyError(str(e)) from None


def windows(v: Values, scale: float) -> tuple[int, int]:
    """``(w1, w2)``: 6 and 9, or by the render ``scale`` where version 3's ``adaptive`` asks (``wscale`` in
    float: ``min(1, roi_in->scale / iscale)``, darktable-cli's pipe at input scale 1)."""
    if not bool(v.get("adaptive", False)):
        return W1, W2
    ws = min(np.float32(1.0), np.float32(scale))
    return 2 + math.ceil(np.float32(4.0) * ws), 3 + math.ceil(np.float32(6.0) * ws)


def dehaze(x: Tensor, v: Values, scale: float = 1.0) -> Tensor:
    """``process()`` on ``x`` ``(B, 3, H, W)``, the module's own RGB (see the module docstring), at render
    ``scale`` (version 3's adaptive windows)."""
    x64 = x.to(torch.float64)
    w1, w2 = windows(v, scale)
    compat = bool(v.get("compatibility_mode", True))  # version 1's values: 4.2's maths
    lights = [stable_ambient_light(img, w1, compat) for img in x64]
    a0 = torch.stack([a for a, _ in lights]).reshape(-1, 3, 1, 1)
    dmax = torch.stack([d for _, d in lights]).reshape(-1, 1, 1, 1)
    strength = column(v.get("strength", 0.2), x64)
    distance = column(v.get("distance", 0.2), x64)
    trans = 1.0 - (x64 / a0).amin(1, keepdim=True) * strength
    trans = box_min(box_max(trans, w1), w1)
    t = guided_filter(x64, trans, w2, SQRT_EPS)
    t_min = torch.exp(-distance * dmax).clamp(1.0 / 1024.0, 1.0)
    out = (x64 - a0) / torch.maximum(t, t_min) + a0
    return out.to(x.dtype)
