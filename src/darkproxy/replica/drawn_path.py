"""darktable's drawn path (``src/develop/masks/path.c`` of darktable 4.2), exact.

A port, in float32 as darktable computes it, of ``_path_get_pts_border`` (the outline and the border outline:
each bezier segment subdivided by ``_path_points_recurs`` until consecutive points share their integer px, the
border ``rad`` px along the normal, ``rad`` eased between the corners' feathers by ``t^2 (3 - 2 t)``; the gaps
at sharp corners filled by arcs, ``_path_points_recurs_border_gaps``; the border's self-intersections skipped,
``_path_find_self_intersection``) and of ``_path_get_mask_roi`` for a whole-image render (``roi->x``, ``y`` 0):
the outline cropped to the image (``_path_crop_to_roi``), filled at 1 by the edge-flag algorithm (a pixel toggled
where an edge crosses its row, rounded to the nearest px, then a scan of each row of the bounding box), and the
feather drawn as a line from each outline point (rounded) to its border point (truncated), ``1 - i / l`` at its
``i``-th of ``l`` px (and at the px right of / below it), kept where larger (``_path_falloff_roi``). Points are
fractions of the pipe's input (``iwidth``, ``iheight``), feathers fractions of its smaller side; the outline is
computed in its full-resolution px, then shifted by rawprepare's crop and scaled to the render.

darktable's path mask is integer rasterisation throughout: piecewise constant in the points and feathers, so
it has no gradient in them; :func:`moved` gives it one in the points (the mask carried along by its outline, to
first order), none in the feathers. darktable draws the falloff lines in parallel threads
that race on the ``MAX``: the replica takes every maximum.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from darkproxy.darktable.masks import PathPoint

Tensor = torch.Tensor
F = np.float32
NAN = float("nan")
INT_MIN = -(2**31)


def _int(v: float | np.floating) -> int:
    """C's float -> int conversion on x86 (truncation; NaN and out of range: INT_MIN)."""
    return INT_MIN if math.isnan(v) or abs(v) >= 2**31 else int(v)


def _xy(p: Sequence[F], t: F) -> tuple[F, F]:
    """``_path_get_XY``: the cubic bezier ``p`` (p0x, p0y, p1x, p1y, p2x, p2y, p3x, p3y) at ``t``, float32."""
    ti = F(1.0) - t
    a, b, c, d = ti * ti * ti, F(3.0) * t * ti * ti, F(3.0) * t * t * ti, t * t * t
    return p[0] * a + p[2] * b + p[4] * c + p[6] * d, p[1] * a + p[3] * b + p[5] * c + p[7] * d


def _border_xy(p: Sequence[F], t: float, rad: F) -> tuple[F, F, F, F]:
    """``_path_border_get_XY``: the point at ``t`` and its border point ``rad`` px along the normal (the
    derivative in double, as darktable; NaN where it vanishes)."""
    tf = F(t)
    xc, yc = _xy(p, tf)
    t64 = float(tf)
    ti = 1.0 - t64
    a, b = 3.0 * ti * ti, 3.0 * (ti * ti - 2.0 * t64 * ti)
    c, d = 3.0 * (2.0 * t64 * ti - t64 * t64), 3.0 * t64 * t64
    dx = -float(p[0]) * a + float(p[2]) * b + float(p[4]) * c + float(p[6]) * d
    dy = -float(p[1]) * a + float(p[3]) * b + float(p[5]) * c + float(p[7]) * d
    if dx == 0 and dy == 0:
        return xc, yc, F(NAN), F(NAN)
    ln = 1.0 / math.sqrt(dx * dx + dy * dy)
    return xc, yc, F(float(xc) + float(rad) * dy * ln), F(float(yc) - float(rad) * dx * ln)


def _ease(r0: F, r1: F, t: float) -> F:
    """The border's radius at ``t``: ``r0 + (r1 - r0) t^2 (3 - 2 t)`` (the difference in float, the rest in
    double)."""
    return F(float(r0) + float(r1 - r0) * t * t * (3.0 - 2.0 * t))


class _Outline:
    """The points and border buffers of ``_path_get_pts_border`` (flat lists of float32 x, y)."""

    def __init__(self) -> None:
        self.points: list[F] = []
        self.border: list[F] = []

    def recurs(
        self, bez: Sequence[F], r0: F, r1: F, tmin: float, tmax: float,
        pmin: list[F], pmax: list[F], bmin: list[F], bmax: list[F], rp: list[F], rb: list[F],
    ) -> None:  # fmt: skip
        """``_path_points_recurs`` (with its border): halve ``[tmin, tmax]`` until both ends' outline and
        border points truncate to the same px."""
        if math.isnan(pmin[0]):
            pmin[0], pmin[1], bmin[0], bmin[1] = _border_xy(bez, tmin, _ease(r0, r1, tmin))
        if math.isnan(pmax[0]):
            pmax[0], pmax[1], bmax[0], bmax[1] = _border_xy(bez, tmax, _ease(r0, r1, tmax))
        same = all(_int(u) == _int(v) for u, v in zip((*pmin, *bmin), (*pmax, *bmax), strict=True))
        if tmax - tmin < 0.0001 or same:
            self.points += [pmax[0], pmax[1]]
            rp[0], rp[1] = pmax[0], pmax[1]
            self.border += [bmax[0], bmax[1]]
            rb[0], rb[1] = bmax[0], bmax[1]
            return
        tx = (tmin + tmax) / 2.0
        c, b = [F(NAN), F(NAN)], [F(NAN), F(NAN)]
        rc, rbb = [F(0.0), F(0.0)], [F(0.0), F(0.0)]
        self.recurs(bez, r0, r1, tmin, tx, pmin, c, bmin, b, rc, rbb)
        self.recurs(bez, r0, r1, tx, tmax, rc, pmax, rbb, bmax, rp, rb)

    def gap_arc(self, cmax: list[F], bmin: list[F], bmax: list[F], clockwise: bool) -> None:
        """``_path_points_recurs_border_gaps``: the border's gap at a sharp corner filled by an arc about it."""
        a1 = float(F(math.atan2(bmin[1] - cmax[1], bmin[0] - cmax[0])))
        a2 = float(F(math.atan2(bmax[1] - cmax[1], bmax[0] - cmax[0])))
        if a1 == a2:
            return
        if a2 < a1 and clockwise:
            a2 += 2 * math.pi
        if a2 > a1 and not clockwise:
            a1 += 2 * math.pi
        r1 = F(np.sqrt((bmin[1] - cmax[1]) * (bmin[1] - cmax[1]) + (bmin[0] - cmax[0]) * (bmin[0] - cmax[0])))
        r2 = F(np.sqrt((bmax[1] - cmax[1]) * (bmax[1] - cmax[1]) + (bmax[0] - cmax[0]) * (bmax[0] - cmax[0])))
        n = int(abs(a2 - a1) * float(max(r1, r2)))
        if n < 2:
            return
        incra, incrr = F((a2 - a1) / n), F((r2 - r1) / n)
        rr, aa = r1 + incrr, F(a1 + float(incra))
        for _ in range(1, n):
            self.points += [cmax[0], cmax[1]]
            self.border += [cmax[0] + rr * F(np.cos(aa)), cmax[1] + rr * F(np.sin(aa))]
            rr, aa = rr + incrr, aa + incra


def clockwise(pts: Sequence[PathPoint]) -> bool:
    """``_path_is_clockwise`` (on the corners, fractions)."""
    s = F(0.0)
    for k, p in enumerate(pts):
        q = pts[(k + 1) % len(pts)]
        s += (F(q.corner[0]) - F(p.corner[0])) * (F(q.corner[1]) + F(p.corner[1]))
    return bool(s < 0)


def _fill_gaps(lastx: int, lasty: int, x: int, y: int) -> list[tuple[int, int]]:
    """``_path_fill_gaps``: ``(x, y)`` and the px of a line back towards ``(lastx, lasty)``."""
    out = [(x, y)]
    if abs(x - lastx) > 1:
        step = -1 if x > lastx else 1
        for j in range(x + step, lastx, step):
            yyy = _int(float(F(F((j - lastx) * (y - lasty)) / F(x - lastx)) + F(lasty)))
            last = out[-1][1]
            if last - yyy > 1:
                out += [(j, jj) for jj in range(last + 1, yyy)]  # as darktable (an empty range)
            elif last - yyy < -1:
                out += [(j, jj) for jj in range(last - 1, yyy, -1)]
            out.append((j, yyy))
    return out


def _self_intersections(nb: int, border: list[F]) -> list[tuple[int, int]]:
    """``_path_find_self_intersection``: the border's self-intersecting stretches ``(from, to)`` (indices of
    border points); fixes NaN border points in place, as darktable."""
    count = len(border) // 2
    if nb == 0 or count == 0:
        return []
    xmin, xmax, ymin, ymax = 2**31 - 1, INT_MIN, 2**31 - 1, INT_MIN
    posextr = [-1, 0, 0, 0]
    for i in range(nb * 3, count):
        if math.isnan(border[2 * i]) or math.isnan(border[2 * i + 1]):
            border[2 * i], border[2 * i + 1] = border[2 * i - 2], border[2 * i - 1]
        x, y = border[2 * i], border[2 * i + 1]
        if xmin > x:
            xmin, posextr[0] = _int(x), i
        if xmax < x:
            xmax, posextr[1] = _int(x), i
        if ymin > y:
            ymin, posextr[2] = _int(y), i
        if ymax < y:
            ymax, posextr[3] = _int(y), i
    xmin, ymin, xmax, ymax = xmin - 1, ymin - 1, xmax + 1, ymax + 1
    hb, wb = ymax - ymin, xmax - xmin
    ss = hb * wb
    if ss < 10 or hb < 0 or wb < 0:
        return []
    binter = np.zeros(ss + 1, np.int64)  # darktable reads one past the end (idx == ss passes its check)
    inter: list[list[int]] = []
    lastx, lasty = _int(border[(posextr[1] - 1) * 2]), _int(border[(posextr[1] - 1) * 2 + 1])
    for ii in range(nb * 3, count):
        i = ii - nb * 3 + posextr[1]
        if i >= count:
            i = i - count + nb * 3
        if len(inter) >= nb * 4:
            break
        extra = _fill_gaps(lastx, lasty, _int(border[2 * i]), _int(border[2 * i + 1]))
        for xx, yy in reversed(extra):
            idx = (yy - ymin) * wb + (xx - xmin)
            if idx < 0 or idx > ss:
                return []
            v = [int(binter[idx]), int(binter[idx - 1]) if xx > xmin else 0, int(binter[idx - wb]) if yy > ymin else 0]
            for vk in v:
                if vk > 0:
                    if (xx == lastx and yy == lasty) or vk == i - 1:
                        binter[idx] = i
                    elif (i > vk and all(p < vk or p > i for p in posextr)) or (
                        i < vk and all(i < p < vk for p in posextr)
                    ):
                        if (
                            inter
                            and (vk - i) * (inter[-1][0] - inter[-1][1]) > 0
                            and inter[-1][0] >= vk
                            and (inter[-1][1] <= i)
                        ):
                            inter[-1] = [vk, i]
                        else:
                            inter.append([vk, i])
                else:
                    binter[idx] = i
            lastx, lasty = xx, yy
    return [(a, b) for a, b in inter]


def outline(pts: Sequence[PathPoint], wd: int, ht: int) -> tuple[list[F], list[F], int]:
    """``_path_get_pts_border`` (no source, no distortion): the flat outline and border ``[x0, y0, x1, ...]`` in
    the input's full-resolution px (their first ``3 nb`` points darktable's control points, unused here), the
    border's skips written as darktable writes them (``NaN, to``: jump to ``to``; ``NaN, NaN``: stop), and
    the count of self-intersections."""
    nb = len(pts)
    w, h, mind = F(wd), F(ht), F(min(wd, ht))
    o = _Outline()
    for p in pts:
        o.points += [F(p.ctrl1[0]) * w, F(p.ctrl1[1]) * h, F(p.corner[0]) * w, F(p.corner[1]) * h]
        o.points += [F(p.ctrl2[0]) * w, F(p.ctrl2[1]) * h]
    o.border = [F(0.0)] * (6 * nb)
    cwise = clockwise(pts)
    cw = F(1.0 if cwise else -1.0)
    for k in range(nb):
        a, b, c = pts[k], pts[(k + 1) % nb], pts[(k + 2) % nb]

        def fx(v: tuple[float, float]) -> tuple[F, F]:
            return F(v[0]) * w, F(v[1]) * h

        bez = (*fx(a.corner), *fx(a.ctrl2), *fx(b.ctrl1), *fx(b.corner))
        r0, r1 = cw * F(a.border[1]) * mind, cw * F(b.border[0]) * mind
        rc, rb = [F(0.0), F(0.0)], [F(0.0), F(0.0)]
        nan2 = lambda: [F(NAN), F(NAN)]  # noqa: E731
        o.recurs(bez, r0, r1, 0.0, 1.0, nan2(), nan2(), nan2(), nan2(), rc, rb)
        o.points += [rc[0], rc[1]]
        if math.isnan(rb[0]):
            if math.isnan(o.border[-2]):
                o.border[-2], o.border[-1] = o.border[-4], o.border[-3]
            rb = [o.border[-2], o.border[-1]]
        o.border += [rb[0], rb[1]]
        nxt = (*fx(b.corner), *fx(b.ctrl2), *fx(c.ctrl1), *fx(c.corner))
        rad = cw * F(b.border[1]) * mind
        bmax = list(_border_xy(nxt, float(F(0.00001)), rad)[2:])
        if abs(bmax[0] - rb[0]) > 1 or abs(bmax[1] - rb[1]) > 1:
            o.gap_arc(rc, rb, bmax, cwise)
    border = o.border
    inter = _self_intersections(nb, border)
    for v, wto in inter:
        if v <= wto:
            border[2 * v], border[2 * v + 1] = F(NAN), F(wto)
        else:
            if wto > nb * 3:
                b0, b1 = border[nb * 6], border[nb * 6 + 1]
                if math.isnan(b0) and math.isnan(b1):
                    border[nb * 6 + 1] = F(wto)
                elif math.isnan(b0):
                    border[nb * 6 + 1] = max(b1, F(wto))
                else:
                    border[nb * 6 + 1] = F(wto)
                border[nb * 6] = F(NAN)
            border[2 * v], border[2 * v + 1] = F(NAN), F(NAN)
    return o.points, border, len(inter)


def _border_indices(border: np.ndarray, start: int) -> list[int]:
    """The border points darktable visits, following its skips."""
    out, i = [], start
    while i < len(border):
        if math.isnan(border[i, 0]):
            if math.isnan(border[i, 1]):
                break
            i = _int(float(border[i, 1]))
            continue
        out.append(i)
        i += 1
    return out


def _crop_to_roi(path: np.ndarray, xmin: F, xmax: F, ymin: F, ymax: F) -> bool:
    """``_path_crop_to_roi`` on ``path`` ``(n, 2)`` float32, in place; ``False``: the roi inside the path."""
    n = len(path)
    start = next((k for k in range(n) if xmin + 1 <= path[k, 0] <= xmax - 1 and ymin + 1 <= path[k, 1] <= ymax - 1), -1)
    if start < 0:
        return False
    for axis, lim, out in ((0, xmin, lambda v: v < xmin), (0, xmax, lambda v: v > xmax)) + (
        (1, ymin, lambda v: v < ymin),
        (1, ymax, lambda v: v > ymax),
    ):
        other = 1 - axis
        left = right = -1
        for k in range(n):
            kk = (k + start) % n
            if left < 0 and out(path[kk, axis]):
                left = k
            if left >= 0 and not out(path[kk, axis]):
                right = k - 1
            if left >= 0 and right >= 0:
                cnt = right - left + 1
                ll, rr = (left - 1 + start) % n, (right + 1 + start) % n
                delta = F(0.0) if cnt == 1 else (path[rr, other] - path[ll, other]) / F(cnt - 1)
                s = path[ll, other]
                for m in range(cnt):
                    nn = (m + left + start) % n
                    path[nn, axis] = lim
                    path[nn, other] = s + F(m) * delta
                left = right = -1
    return True


def path_mask(pts: Sequence[PathPoint], iwidth: int, iheight: int, height: int, width: int, scale: float,
              crop: tuple[int, int] = (0, 0)) -> np.ndarray:  # fmt: skip
    """darktable's mask of the path ``pts`` (its corners in order; ``iwidth``, ``iheight`` the pipe's input, px)
    rendered at ``scale`` on the module's ``(height, width)`` image (``crop``: rawprepare's crop off the left and
    top, raw px) -> ``(height, width)`` float32 in ``[0, 1]`` (a new array; the last 16 are kept: a chain
    evaluates the same mask at every step)."""
    return _path_mask(tuple(pts), iwidth, iheight, height, width, scale, crop).copy()


@functools.lru_cache(maxsize=16)
def _path_mask(pts: tuple[PathPoint, ...], iwidth: int, iheight: int, height: int, width: int, scale: float,
               crop: tuple[int, int]) -> np.ndarray:  # fmt: skip
    nb = len(pts)
    points, border, _ = outline(pts, iwidth, iheight)
    buf = np.zeros((height, width), np.float32)
    if len(points) // 2 <= 2:
        return buf
    sc = F(scale)
    p = np.array(points, np.float32).reshape(-1, 2)
    b = np.array(border, np.float32).reshape(-1, 2)
    cx, cy = F(crop[0]), F(crop[1])
    vis = _border_indices(b, nb * 3)
    b[vis, 0], b[vis, 1] = (b[vis, 0] - cx) * sc, (b[vis, 1] - cy) * sc
    p[nb * 3 :, 0], p[nb * 3 :, 1] = (p[nb * 3 :, 0] - cx) * sc, (p[nb * 3 :, 1] - cy) * sc
    q = p[nb * 3 :]
    qi = [(_int(float(x)), _int(float(y))) for x, y in q]
    inside = any(x > 1 and y > 1 and x < width - 2 and y < height - 2 for x, y in qi)
    encircles = False
    if not inside:
        crossings, last = 0, -9999
        for (_, yy), (x, _) in zip(qi, q, strict=True):
            if yy != last and yy == height // 2 and x > width // 2:
                crossings += 1
            last = yy
        inside = encircles = bool(crossings & 1)
    feather_in = any(1 < b[i, 0] < width - 2 and 1 < b[i, 1] < height - 2 for i in vis)
    if not inside and not feather_in:
        return buf
    xs = np.concatenate([b[vis, 0], q[:, 0]])
    ys = np.concatenate([b[vis, 1], q[:, 1]])
    xmin, xmax, ymin, ymax = xs.min(), xs.max(), ys.min(), ys.max()
    if inside:
        cp = q.copy()
        encircles = encircles or not _crop_to_roi(cp, F(0), F(width - 1), F(0), F(height))
        if encircles:
            buf[:] = 1.0
        else:
            xl, yl = cp[-1]
            for xe, ye in cp:
                xs0, ys0, xe0, ye0 = xl, yl, xe, ye
                xl, yl = xe, ye
                if ys0 > ye0:
                    xs0, ys0, xe0, ye0 = xe0, ye0, xs0, ys0
                with np.errstate(divide="ignore", invalid="ignore"):
                    m = (xs0 - xe0) / (ys0 - ye0)
                yy = int(np.ceil(ys0))
                while F(yy) < ye0:
                    xc = xs0 + m * (F(yy) - ys0)
                    xx = int(np.floor(xc))
                    if F(xx) + F(0.5) <= xc:
                        xx += 1
                    if 0 <= xx < width and 0 <= yy < height:
                        buf[yy, xx] = 1.0 - buf[yy, xx]
                    yy += 1
            x0, x1 = _int(float(max(xmin, F(0)))), _int(float(min(xmax, F(width - 1))))
            y0, y1 = _int(float(max(ymin, F(0)))), _int(float(min(ymax, F(height - 1))))
            if x1 >= x0 and y1 >= y0:
                block = buf[y0 : y1 + 1, x0 : x1 + 1]
                state = np.cumsum(block > 0.5, axis=1) % 2 == 1
                block[state] = 1.0
    if not encircles:
        _falloff(buf, p, b, nb)
    return buf


def _falloff(buf: np.ndarray, p: np.ndarray, b: np.ndarray, nb: int) -> None:
    """The feather: ``_path_get_mask_roi``'s falloff segments drawn by ``_path_falloff_roi``, in place."""
    h, w = buf.shape
    segs: list[tuple[int, int, int, int]] = []
    last = (-100, -100, -100, -100)
    nxt = 0
    for i in range(nb * 3, len(b)):
        p0 = (int(np.floor(p[i, 0] + F(0.5))), int(np.ceil(p[i, 1])))
        j = nxt if nxt > 0 else i
        pf = (float(b[j, 0]), float(b[j, 1]))
        if nxt == i:
            nxt = 0
        while math.isnan(pf[0]):
            nxt = i - 1 if math.isnan(pf[1]) else _int(pf[1])
            pf = (float(b[nxt, 0]), float(b[nxt, 1]))
        seg = (*p0, _int(pf[0]), _int(pf[1]))
        if seg != last:
            segs.append(seg)
            last = seg
    for x0, y0, x1, y1 in segs:
        n = int(math.sqrt(float((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0))) + 1)
        step = np.arange(n, dtype=np.float32)
        lx, ly = F(x1 - x0), F(y1 - y0)
        x = (step * lx / F(n)).astype(np.int64) + x0
        y = (step * ly / F(n)).astype(np.int64) + y0
        op = F(1.0) - step / F(n)
        dx, dy = (-1 if lx < 0 else 1), (-1 if ly < 0 else 1)
        for xx, yy in ((x, y), (x + dx, y), (x, y + dy)):
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            np.maximum.at(buf, (yy[ok], xx[ok]), op[ok])


def moved(
    mask: Tensor,
    pts: Tensor,
    iwidth: int,
    iheight: int,
    scale: float,
    crop: tuple[int, int] = (0, 0),
    closed: bool = True,
) -> Tensor:
    """``mask`` (the exact path mask ``(H, W)``) with a gradient in the path's points ``pts`` ``(nb, 3, 2)``
    (each corner's ``ctrl1``, ``corner``, ``ctrl2``, fractions of ``iwidth``, ``iheight``): darktable's mask is
    piecewise constant in them, so the replica's gradient is that of the mask carried along by its outline, each
    pixel where the mask changes moving with the outline's nearest point ``P``: ``m(x) - grad m(x) . (P - P0)``
    (first order; the value itself unchanged). The feathers get no gradient. ``closed``: a path (its last corner
    joined to its first); else a brush stroke, its centre line the outline."""
    gy, gx = torch.gradient(mask.detach())
    on = (gx != 0) | (gy != 0)
    if not bool(on.any()):
        return mask
    t = torch.linspace(0.0, 1.0, 33, dtype=pts.dtype, device=pts.device)[:, None]
    basis = torch.cat([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3], 1)  # (33, 4)
    nxt = torch.roll(pts, -1, 0)
    ctrl = torch.stack([pts[:, 1], pts[:, 2], nxt[:, 0], nxt[:, 1]], 1)  # (nb, 4, 2): corner, ctrl2, ctrl1', corner'
    ctrl = ctrl if closed else ctrl[:-1]
    size = torch.tensor([float(iwidth), float(iheight)], dtype=pts.dtype, device=pts.device)
    off = torch.tensor([float(crop[0]), float(crop[1])], dtype=pts.dtype, device=pts.device)
    outl = ((torch.einsum("sj,kjc->ksc", basis, ctrl) * size - off) * scale).reshape(-1, 2)  # render px
    yy, xx = torch.nonzero(on, as_tuple=True)
    pix = torch.stack([xx, yy], 1).to(pts.dtype)
    near = torch.cdist(pix, outl.detach()).argmin(1)
    step = outl[near] - outl[near].detach()
    carried = torch.zeros_like(mask, dtype=pts.dtype)
    carried = carried.index_put((yy, xx), -(gx[on].to(pts.dtype) * step[:, 0] + gy[on].to(pts.dtype) * step[:, 1]))
    return mask + carried
