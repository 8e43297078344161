"""A reference aligned to darktable's render: its size, a small zoom per axis and a
translation, by phase correlation of edge maps; a reference of another scene is refused
on the edge correlation of the final alignment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from darkproxy.match._common import MatchError

MIN_CORRELATION = 0.5  # edge-map correlation below which a reference is not the raw's scene


@dataclass
class Alignment:
    """How a reference maps onto darktable's render: ``scale`` (render px per
    reference px: its resize to the render's size times the zoom found), ``shift``
    (dy, dx) in render px, ``correlation`` (edge maps, after alignment), ``box`` (top, left, bottom,
    right): the render's region the reference covers."""

    scale: tuple[float, float]
    shift: tuple[float, float]
    correlation: float
    box: tuple[int, int, int, int]
    size: tuple[int, int]  # the reference's own (width, height)

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": list(self.scale),
            "shift": list(self.shift),
            "correlation": self.correlation,
            "box": list(self.box),
            "reference_size": list(self.size),
        }


def _edges(lum: np.ndarray) -> np.ndarray:
    """Edge magnitude of a luminance image ``(H, W)``, zero-mean, unit-norm (tone-curve tolerant); NaN -> 0."""
    from skimage.filters import sobel

    ok = np.isfinite(lum)
    g = sobel(np.where(ok, lum, np.nanmean(lum) if ok.any() else 0.0))
    g = np.where(ok, g - g[ok].mean(), 0.0) if ok.any() else g
    return g / (np.linalg.norm(g) + 1e-12)


def _place(
    img: np.ndarray, scale: float | tuple[float, float], shift: tuple[float, float], shape: tuple[int, int]
) -> np.ndarray:
    """``img (C, h, w)`` scaled by ``scale`` (one, or (x, y)) about its centre, centred on a
    ``shape`` canvas and moved by ``shift`` (dy, dx) px: render px
    ``q = scale (p - c_ref) + c_render + shift``; NaN outside."""
    from skimage.transform import AffineTransform, warp

    H, W = shape
    h, w = img.shape[-2:]
    sc = np.array(scale if isinstance(scale, tuple) else (scale, scale), np.float64)
    c_ref = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    c_out = np.array([(W - 1) / 2.0, (H - 1) / 2.0]) + np.array(shift[::-1])
    fwd = AffineTransform(scale=tuple(sc), translation=c_out - sc * c_ref)
    return np.stack(
        [warp(ch, fwd.inverse, output_shape=shape, order=1, cval=np.nan) for ch in np.asarray(img, np.float64)]
    )


def _score(
    e_dt: np.ndarray, lum: np.ndarray, scale: float, shape: tuple[int, int], max_shift: float
) -> tuple[float, tuple[float, float]]:
    """The best shift at ``scale`` (phase correlation of edge maps, 1/10 px) and the edge correlation there."""
    from skimage.registration import phase_cross_correlation

    H, W = shape
    placed = _place(lum[None], scale, (0.0, 0.0), shape)[0]
    shift, _, _ = phase_cross_correlation(e_dt, _edges(placed), upsample_factor=10, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    if abs(dy) > max_shift * H or abs(dx) > max_shift * W:
        return -1.0, (dy, dx)
    moved = _place(lum[None], scale, (dy, dx), shape)[0]
    ok = np.isfinite(moved)
    if ok.mean() < 0.5:
        return -1.0, (dy, dx)
    return _edge_corr(e_dt, moved), (dy, dx)


def _edge_corr(e_dt: np.ndarray, moved: np.ndarray) -> float:
    """Correlation of the render's edge map with the placed reference's, over where the reference reaches."""
    e = np.where(np.isfinite(moved), e_dt, 0.0)
    return float((_edges(moved) * e).sum() / (np.linalg.norm(e) + 1e-12))


def _refine(
    e_dt: np.ndarray,
    lum: np.ndarray,
    sxy: tuple[float, float],
    shift: tuple[float, float],
    rounds: int = 2,
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Refine the x and y scales apart (a reference resized to whole px, or cropped
    unevenly, is not scaled alike in both): after placing, phase correlation of
    the left and right (top and bottom) thirds gives the residual stretch per axis
    and shift; ``rounds`` times. Returns the scales, the shift and the edge correlation."""
    from skimage.registration import phase_cross_correlation

    H, W = e_dt.shape
    for _ in range(rounds):
        moved = _place(lum[None], sxy, shift, (H, W))[0]
        e_ref = _edges(moved)
        d = []
        for axis, n in ((1, W), (0, H)):
            a, b = (slice(None), slice(0, n // 3)), (slice(None), slice(n - n // 3, n))
            if axis == 0:
                a, b = a[::-1], b[::-1]
            sa = phase_cross_correlation(e_dt[a], e_ref[a], upsample_factor=20, normalization=None)[0][axis]
            sb = phase_cross_correlation(e_dt[b], e_ref[b], upsample_factor=20, normalization=None)[0][axis]
            d.append((float(sa), float(sb), n))
        (ax, bx, nx), (ay, by, ny) = d
        # ref content at the thirds' centres moves by sa / sb: stretch about the centre, shift by the mean
        new_sxy = (sxy[0] * (1 + (bx - ax) / (2 * nx / 3)), sxy[1] * (1 + (by - ay) / (2 * ny / 3)))
        if max(abs(new_sxy[0] / sxy[0] - 1), abs(new_sxy[1] / sxy[1] - 1)) > 0.01:
            break  # thirds that disagree this much are not a stretch: keep the global fit
        sxy, shift = new_sxy, (shift[0] + (ay + by) / 2, shift[1] + (ax + bx) / 2)
    return sxy, shift, _edge_corr(e_dt, _place(lum[None], sxy, shift, (H, W))[0])


def align_reference(reference: np.ndarray, render: np.ndarray, max_shift: float = 0.1) -> tuple[np.ndarray, Alignment]:
    """Align ``reference`` (``(3, h, w)`` display) to darktable's ``render``
    (``(3, H, W)`` display) with one scale and a translation (a reference is the
    shot at another size, maybe cropped by a few px): the scale is searched within
    4 % of the two sides' ratios (coarse on a small copy, then fine), the translation
    by phase correlation of edge maps (1/10 px). Returns the aligned reference
    ``(3, H, W)`` (NaN where it does not reach) and the :class:`Alignment`. Raises
    :class:`MatchError` (one line) for another aspect ratio (over 5 %), a shift over
    ``max_shift`` of the image, or an edge correlation under :data:`MIN_CORRELATION`."""
    _, h, w = reference.shape
    _, H, W = render.shape
    if abs((w / h) / (W / H) - 1.0) > 0.05:
        raise MatchError(
            f"the reference is {w}x{h} but darktable renders the raw at {W}x{H}: another aspect ratio "
            "(cropped or rotated?): crop it to the raw's framing"
        )
    lum_ref = np.asarray(reference, np.float64).mean(0)
    lum_dt = np.asarray(render, np.float64).mean(0)
    lo, hi = min(W / w, H / h) * 0.96, max(W / w, H / h) * 1.04
    # coarse: both images at most ~320 px; then fine at full size around the best
    k = max(1.0, max(H, W) / 320.0)
    small = (max(8, round(H / k)), max(8, round(W / k)))
    from skimage.transform import resize

    e_small = _edges(resize(lum_dt, small, anti_aliasing=k > 1))
    ref_small = resize(lum_ref, (max(8, round(h / k)), max(8, round(w / k))), anti_aliasing=k > 1)
    ks = (ref_small.shape[1] / w, ref_small.shape[0] / h)  # reference px of the small copy per px
    coarse = np.geomspace(lo, hi, 41)
    best_c = max(coarse, key=lambda s: _score(e_small, ref_small, s * (small[1] / W) / ks[0], small, max_shift)[0])
    step = float(coarse[1] / coarse[0])
    e_dt = _edges(lum_dt)
    fine = best_c * step ** np.linspace(-1.0, 1.0, 9)
    scored = [(_score(e_dt, lum_ref, float(s), (H, W), max_shift), float(s)) for s in fine]
    (corr, shift), scale = max(scored, key=lambda t: t[0][0])
    sxy = (scale, scale)
    if corr > -1.0:  # a shift within bounds: refine per axis (its scales are the closer ones, measured, even
        # where the edge correlation, biased by the coverage's border, comes out a little lower)
        r_sxy, r_shift, r_corr = _refine(e_dt, lum_ref, sxy, shift)
        if abs(r_shift[0]) <= max_shift * H and abs(r_shift[1]) <= max_shift * W:
            sxy, shift, corr = r_sxy, r_shift, r_corr
    # the verdict on the final alignment: the one reported and used
    if corr < MIN_CORRELATION:
        raise MatchError(
            f"the reference does not show the raw's scene (edge correlation {max(corr, 0.0):.2f} after alignment; "
            f"a match needs >= {MIN_CORRELATION}): give the same shot, uncropped"
        )
    al = _place(reference, sxy, shift, (H, W))
    # a scale and a shift leave an axis-aligned rectangle covered: its rows and columns, less one px of edge
    ok = np.isfinite(al).all(0)
    rows, cols = np.where(ok.any(1))[0], np.where(ok.any(0))[0]
    box = (int(rows.min()) + 1, int(cols.min()) + 1, int(rows.max()), int(cols.max()))
    if not ok[box[0] : box[2], box[1] : box[3]].all():
        raise MatchError("the reference's aligned region is not a rectangle (internal error in the alignment)")
    return al.astype(np.float32), Alignment(sxy, shift, corr, box, (w, h))
