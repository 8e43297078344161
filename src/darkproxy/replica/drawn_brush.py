"""darktable's drawn brush (``src/develop/masks/brush.c`` of darktable 4.2), exact.

A port, in float32 as darktable computes it, of ``_brush_get_pts_border`` (the stroke walked forth along its
corners and back, ``_brush_cyclic_cursor``: each bezier segment subdivided by ``_brush_points_recurs`` until both
ends' point and border point truncate to the same px, the border ``rad`` px along the normal (so on the other side
on the way back), ``rad`` eased between the corners' sizes; small gaps filled by the shorter arc, the gaps at
sharp corners, where the size changes and at the stroke's ends by arcs, ``_brush_points_recurs_border_gaps``;
a full circle, ``_brush_points_stamp``, where hardness or density changes by more than 0.05; every point with
its hardness and density, the payload) and of ``_brush_get_mask_roi`` for a whole-image render: from each point
(truncated) to its border point a line of ``l`` px, ``density`` on its first ``hardness l`` px, then falling by
``density / (l - solid)`` a px (float32, accumulated), at the px and the px right/left of and below/above it,
kept where larger (``_brush_falloff_roi``). Integer rasterisation throughout, as the path's
(:mod:`darkproxy.replica.drawn_path`): no gradient in the corners.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from darkproxy.darktable.masks import BrushPoint
from darkproxy.replica.drawn_path import _ease, _int

F = np.float32
NAN = F(float("nan"))
TWO_PI = 2.0 * math.pi


def _xy(p: Sequence[F], t: F) -> tuple[F, F]:
    ti = F(1.0) - t
    a, b, c, d = ti * ti * ti, F(3.0) * t * ti * ti, F(3.0) * (t * t) * ti, t * t * t
    return p[0] * a + p[2] * b + p[4] * c + p[6] * d, p[1] * a + p[3] * b + p[5] * c + p[7] * d


def _border_xy(p: Sequence[F], t: float, rad: F) -> tuple[F, F, F, F]:
    """``_brush_border_get_XY`` (float32 throughout, unlike the path's)."""
    tf = F(t)
    xc, yc = _xy(p, tf)
    ti = F(1.0) - tf
    a, b = F(3.0) * ti * ti, F(3.0) * (ti * ti - F(2.0) * tf * ti)
    c, d = F(3.0) * (F(2.0) * tf * ti - tf * tf), F(3.0) * (tf * tf)
    dx = -p[0] * a + p[2] * b + p[4] * c + p[6] * d
    dy = -p[1] * a + p[3] * b + p[5] * c + p[7] * d
    if dx == 0 and dy == 0:
        return xc, yc, NAN, NAN
    ln = F(1.0) / np.sqrt(dx * dx + dy * dy)
    return xc, yc, xc + rad * dy * ln, yc - rad * dx * ln


def _arc_points(cmax: Sequence[F], r1: F, incrr: F, a1: F, incra: F, n: int, out: _Stroke) -> None:
    rr, aa = r1 + incrr, a1 + incra
    for _ in range(1, n):
        out.points += [cmax[0], cmax[1]]
        out.border += [cmax[0] + rr * F(np.cos(aa)), cmax[1] + rr * F(np.sin(aa))]
        rr, aa = rr + incrr, aa + incra


def _dist(a: Sequence[F], c: Sequence[F]) -> F:
    return F(np.sqrt((a[1] - c[1]) * (a[1] - c[1]) + (a[0] - c[0]) * (a[0] - c[0])))


class _Stroke:
    """The points, border and payload (hardness, density) buffers of ``_brush_get_pts_border``."""

    def __init__(self, nb: int) -> None:
        self.points: list[F] = []
        self.border: list[F] = [F(0.0)] * (6 * nb)
        self.payload: list[F] = [F(0.0)] * (6 * nb)

    def sync(self, h: F, d: F) -> None:
        """The payload filled up to the points with ``(h, d)``."""
        while len(self.payload) < len(self.points):
            self.payload += [h, d]

    def gaps(self, cmax: Sequence[F], bmin: Sequence[F], bmax: Sequence[F], clockwise: bool = True) -> None:
        """``_brush_points_recurs_border_gaps``."""
        a1 = F(math.atan2(bmin[1] - cmax[1], bmin[0] - cmax[0]))
        a2 = F(math.atan2(bmax[1] - cmax[1], bmax[0] - cmax[0]))
        if a1 == a2:
            return
        if a2 < a1 and clockwise:
            a2 = F(float(a2) + TWO_PI)
        if a2 > a1 and not clockwise:
            a1 = F(float(a1) + TWO_PI)
        r1, r2 = _dist(bmin, cmax), _dist(bmax, cmax)
        n = _int((a2 - a1 if a2 > a1 else a1 - a2) * max(r1, r2))
        if n < 2:
            return
        _arc_points(cmax, r1, (r2 - r1) / F(n), a1, (a2 - a1) / F(n), n, self)

    def small_gaps(self, cmax: Sequence[F], bmin: Sequence[F], bmax: Sequence[F]) -> None:
        """``_brush_points_recurs_border_small_gaps``: the shorter arc."""

        def angle(p: Sequence[F]) -> F:
            return F(np.fmod(F(float(F(math.atan2(p[1] - cmax[1], p[0] - cmax[0]))) + TWO_PI), F(TWO_PI)))

        a1, a2 = angle(bmin), angle(bmax)
        if a1 == a2:
            return
        r1, r2 = _dist(bmin, cmax), _dist(bmax, cmax)
        delta = a2 - a1
        if abs(float(delta)) > math.pi:
            delta = delta - F(math.copysign(float(F(TWO_PI)), float(delta)))
        n = _int(abs(delta) * max(r1, r2))
        if n < 2:
            return
        _arc_points(cmax, r1, (r2 - r1) / F(n), a1, delta / F(n), n, self)

    def stamp(self, cmax: Sequence[F], bmin: Sequence[F]) -> None:
        """``_brush_points_stamp``: a circle about ``cmax`` through ``bmin`` (its last point written past the
        reserved buffer in darktable: lost)."""
        a1 = F(math.atan2(bmin[1] - cmax[1], bmin[0] - cmax[0]))
        rad = _dist(bmin, cmax)
        n = _int(TWO_PI * float(rad))
        if n < 2:
            return
        incra = F(TWO_PI / n)
        aa = a1 + incra
        for _ in range(n - 1):
            self.points += [cmax[0], cmax[1]]
            self.border += [cmax[0] + rad * F(np.cos(aa)), cmax[1] + rad * F(np.sin(aa))]
            aa = aa + incra

    def recurs(
        self, p1: Sequence[F], p2: Sequence[F], tmin: float, tmax: float,
        pmin: list[F], pmax: list[F], bmin: list[F], bmax: list[F], rp: list[F], rb: list[F], ry: list[F],
    ) -> None:  # fmt: skip
        """``_brush_points_recurs`` (with border and payload)."""
        bez = (p1[0], p1[1], p1[2], p1[3], p2[2], p2[3], p2[0], p2[1])
        if math.isnan(pmin[0]):
            pmin[0], pmin[1], bmin[0], bmin[1] = _border_xy(bez, tmin, _ease(p1[4], p2[4], tmin))
        if math.isnan(pmax[0]):
            pmax[0], pmax[1], bmax[0], bmax[1] = _border_xy(bez, tmax, _ease(p1[4], p2[4], tmax))
        same = all(_int(u) == _int(v) for u, v in zip((*pmin, *bmin), (*pmax, *bmax), strict=True))
        if tmax - tmin < float(F(0.0001)) or same:
            rp[0], rp[1] = pmax[0], pmax[1]
            self.points += [rp[0], rp[1]]
            if math.isnan(bmax[0]):
                bmax[0], bmax[1] = bmin[0], bmin[1]
            elif math.isnan(bmin[0]):
                bmin[0], bmin[1] = bmax[0], bmax[1]
            if abs(_int(bmax[0]) - _int(bmin[0])) > 2 or abs(_int(bmax[1]) - _int(bmin[1])) > 2:
                self.small_gaps(pmax, bmin, bmax)
            rb[0], rb[1] = bmax[0], bmax[1]
            self.border += [rb[0], rb[1]]
            ry[0] = F(float(p1[5]) + tmax * float(p2[5] - p1[5]))
            ry[1] = F(float(p1[6]) + tmax * float(p2[6] - p1[6]))
            self.sync(ry[0], ry[1])
            return
        tx = (tmin + tmax) / 2.0
        c, b = [NAN, NAN], [NAN, NAN]
        rc, rbb, ryy = [F(0.0)] * 2, [F(0.0)] * 2, [F(0.0)] * 2
        self.recurs(p1, p2, tmin, tx, pmin, c, bmin, b, rc, rbb, ryy)
        self.recurs(p1, p2, tx, tmax, rc, pmax, rbb, bmax, rp, rb, ry)


def _cursor(n: int, nb: int) -> int:
    """``_brush_cyclic_cursor``: 0 .. nb - 1, then back down, each end twice."""
    o = n % (2 * nb)
    p = o % nb
    return o if o <= p else o - 2 * p - 1


def stroke(pts: Sequence[BrushPoint], wd: int, ht: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_brush_get_pts_border`` (no source, no distortion): points, border points and payload (hardness,
    density), each ``(n, 2)`` float32 in the input's full-resolution px (the first ``3 nb`` rows darktable's
    control points, unused)."""
    nb = len(pts)
    w, h, mind = F(wd), F(ht), F(min(wd, ht))
    s = _Stroke(nb)
    for p in pts:
        s.points += [F(p.ctrl1[0]) * w, F(p.ctrl1[1]) * h, F(p.corner[0]) * w, F(p.corner[1]) * h]
        s.points += [F(p.ctrl2[0]) * w, F(p.ctrl2[1]) * h]

    def node(p: BrushPoint, ctrl: tuple[float, float], side: int) -> tuple[F, ...]:
        return (F(p.corner[0]) * w, F(p.corner[1]) * h, F(ctrl[0]) * w, F(ctrl[1]) * h, F(p.border[side]) * mind,
                F(p.hardness), F(p.density))  # fmt: skip

    cw, start_stamp = 1, False
    for n in range(2 * nb):
        k, k1, k2 = _cursor(n, nb), _cursor(n + 1, nb), _cursor(n + 2, nb)
        a, b, c = pts[k], pts[k1], pts[k2]
        fwd = cw > 0
        p1 = node(a, a.ctrl2 if fwd else a.ctrl1, 1)
        p2 = node(b, b.ctrl1 if fwd else b.ctrl2, 0)
        p3 = node(b, b.ctrl2 if fwd else b.ctrl1, 1)
        p4 = node(c, c.ctrl1 if fwd else c.ctrl2, 0)
        if abs(p1[5] - p2[5]) > F(0.05) or abs(p1[6] - p2[6]) > F(0.05) or (start_stamp and n == 2 * nb - 1):
            if n == 0:
                start_stamp = True
            else:
                s.stamp(s.points[-2:], s.border[-2:])
                s.sync(p1[5], p1[6])
        if abs(p1[4] - p2[4]) > F(0.0001) and n > 0:
            cmax, bmin = s.points[-2:], s.border[-2:]
            s.gaps(cmax, bmin, [F(2) * cmax[0] - bmin[0], F(2) * cmax[1] - bmin[1]])
            s.sync(p1[5], p1[6])
        if k == k1:
            cmax, bmin = s.points[-2:], s.border[-2:]
            s.gaps(cmax, bmin, [F(2) * cmax[0] - bmin[0], F(2) * cmax[1] - bmin[1]])
            s.sync(p1[5], p1[6])
            cw = -cw
            continue
        rc, rb, ry = [F(0.0)] * 2, [F(0.0)] * 2, [F(0.0)] * 2
        s.recurs(p1, p2, 0.0, 1.0, [NAN, NAN], [NAN, NAN], [NAN, NAN], [NAN, NAN], rc, rb, ry)
        s.points += [rc[0], rc[1]]
        s.payload += [ry[0], ry[1]]
        if math.isnan(rb[0]):
            if math.isnan(s.border[-2]):
                s.border[-2], s.border[-1] = s.border[-4], s.border[-3]
            rb = [s.border[-2], s.border[-1]]
        s.border += [rb[0], rb[1]]
        if nb >= 3:
            nxt = (p3[0], p3[1], p3[2], p3[3], p4[2], p4[3], p4[0], p4[1])
            bmax = list(_border_xy(nxt, 0.0, p3[4])[2:])
            if math.isnan(bmax[0]):
                bmax = list(_border_xy(nxt, 0.0001, p3[4])[2:])
            if abs(bmax[0] - rb[0]) > 1 or abs(bmax[1] - rb[1]) > 1:
                s.gaps(rc, rb, bmax)
        s.sync(ry[0], ry[1])
    shape = (-1, 2)
    return (
        np.array(s.points, F).reshape(shape),
        np.array(s.border, F).reshape(shape),
        np.array(s.payload, F).reshape(shape),
    )


def brush_mask(pts: Sequence[BrushPoint], iwidth: int, iheight: int, height: int, width: int, scale: float,
               crop: tuple[int, int] = (0, 0)) -> np.ndarray:  # fmt: skip
    """darktable's mask of the brush stroke ``pts`` (``iwidth``, ``iheight`` the pipe's input, px) rendered at
    ``scale`` on the module's ``(height, width)`` image (``crop``: rawprepare's crop off the left and top, raw px)
    -> ``(height, width)`` float32 in ``[0, 1]`` (a new array; the last 16 are kept)."""
    return _brush_mask(tuple(pts), iwidth, iheight, height, width, scale, crop).copy()


@functools.lru_cache(maxsize=16)
def _brush_mask(pts: tuple[BrushPoint, ...], iwidth: int, iheight: int, height: int, width: int, scale: float,
                crop: tuple[int, int]) -> np.ndarray:  # fmt: skip
    nb = len(pts)
    p, b, pay = stroke(pts, iwidth, iheight)
    sc, off = F(scale), np.array(crop, F)
    p, b = (p[nb * 3 :] - off) * sc, (b[nb * 3 :] - off) * sc
    buf = np.zeros((height, width), np.float32)
    for i in range(len(b)):
        x0, y0, x1, y1 = _int(p[i, 0]), _int(p[i, 1]), _int(b[i, 0]), _int(b[i, 1])
        if max(x0, x1) < 0 or min(x0, x1) >= width or max(y0, y1) < 0 or min(y0, y1) >= height:
            continue
        _falloff(buf, x0, y0, x1, y1, pay[nb * 3 + i, 0], pay[nb * 3 + i, 1])
    return buf


def _falloff(buf: np.ndarray, x0: int, y0: int, x1: int, y1: int, hardness: F, density: F) -> None:
    """``_brush_falloff_roi``, in place."""
    h, w = buf.shape
    n = int(math.sqrt(float((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0))) + 1)
    solid = _int(hardness * F(n))
    lx, ly = F(x1 - x0) / F(n), F(y1 - y0) / F(n)
    dx, dy = (-1 if lx <= 0 else 1), (-1 if ly <= 0 else 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        dop = density / F(n - solid)
        steps = np.arange(n)
        fx = np.add.accumulate(np.concatenate([[F(x0)], np.full(n - 1, lx, F)]).astype(F), dtype=F)
        fy = np.add.accumulate(np.concatenate([[F(y0)], np.full(n - 1, ly, F)]).astype(F), dtype=F)
        dec = np.where(steps[1:] > solid, -dop, F(0.0)).astype(F)
        op = np.add.accumulate(np.concatenate([[density], dec]).astype(F), dtype=F)
    x, y = fx.astype(np.int64), fy.astype(np.int64)
    ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    for xx, yy, keep in (
        (x, y, ok),
        (x + dx, y, ok & (x + dx >= 0) & (x + dx < w)),
        (x, y + dy, ok & (y + dy >= 0) & (y + dy < h)),
    ):
        np.maximum.at(buf, (yy[keep], xx[keep]), op[keep])
