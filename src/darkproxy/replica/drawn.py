"""darktable's drawn masks (circle, ellipse, gradient and their groups), exact and differentiable.

A port of ``_circle_get_mask_roi`` (``src/develop/masks/circle.c``), ``_ellipse_get_mask_roi`` and
``_fill_mask`` (``ellipse.c``), ``_gradient_get_mask_roi`` and ``dt_gradient_lookup`` (``gradient.c``) and
``_group_get_mask_roi`` with its ``_combine_masks_*`` (``group.c``) of darktable 4.2, for a whole-image render
(``roi->x``, ``roi->y`` 0) with no geometry module before the blended one but rawprepare (its crop shifts the
coordinates: ``distort_backtransform`` adds ``x``, ``y``). darktable evaluates a shape on a grid of every
``grid`` px (``grid = CLAMP((10 scale + 2) / 3, 1, 4)``), grid node ``(i, j)`` at ``(grid i / scale + crop_x,
grid j / scale + crop_y)`` in the raw's full-resolution pixels (a pixel's left/top edge, no half-pixel shift),
and fills the pixels by bilinear interpolation between the nodes (weights ``(grid - ii) / grid`` ...): here
``Wy @ P @ Wx^T``. The scale is darktable's own export scale (:func:`export_scale`: darktable raises it a little
where the output would read past the raw's border, 0.7587 for 0.75 at 128x86 px; the grid moves with it).
Per node:

* circle: ``f = clamp((total^2 - l^2) / (total^2 - r^2), 0, 1)^2`` with ``r = radius * min(W, H)``, ``total =
  (radius + border) * min(W, H)``, ``l`` the distance to the centre ``(cx W, cy H)``;
* ellipse: the same along the ray from the centre, ``r^2`` and ``total^2`` the ellipse's radius in that
  direction (rotation in degrees; the border proportional to the radii with flag 1);
* gradient: ``d = y0 - curvature x0^2`` in the frame turned by ``-rotation`` about the anchor, in units of
  the image's diagonal; 0 below ``-4 c``, 1 above ``4 c`` (``c = max(compression, 0.001)``), between them
  darktable's table of ``0.5 + 0.5 d / c`` (linear) or ``0.5 + 0.5 erf(d / c)`` (sigmoid), clamped, at every
  diagonal px, interpolated as ``dt_gradient_lookup`` does (``bin0 = (int) i``, ``bin1 = (int)(i + 1)``:
  truncations, so below 0 extrapolated from the segment towards zero, and the centre's value flat on ``(-1,
  0)``).

darktable skips the nodes outside a bounding box of the shape's outline: every one of them is 0 in the
formulas above (the box has a reserve of a node), so evaluating all nodes changes nothing. A group combines its
members in order, each at its opacity and inverted or not (``1 - m``): the first one copied, then union (max),
intersection (min), difference (``a (1 - m)``) or exclusion (``max((1 - a) m, a (1 - m))``); a group in a
group starts from 0. Torch ops throughout: differentiable in the shapes' positions, sizes, feathers, rotations,
curvature and compression and in the members' opacities (the grid and the table's bins are integers, as in
darktable). Where darktable computes in float32 the replica computes in the tensor's dtype. A path is
:mod:`darkproxy.replica.drawn_path`'s, a brush :mod:`darkproxy.replica.drawn_brush`'s (per pixel, no grid;
piecewise constant in their corners in darktable: their gradient in them is their outline's (the stroke's)
motion, to first order, :func:`darkproxy.replica.drawn_path.moved`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from darkproxy.darktable.masks import (
    ELLIPSE_PROPORTIONAL,
    GRADIENT_LINEAR,
    STATE_DIFFERENCE,
    STATE_EXCLUSION,
    STATE_INTERSECTION,
    STATE_INVERSE,
    STATE_UNION,
    BrushPoint,
    Circle,
    DrawnMask,
    Ellipse,
    Form,
    Gradient,
    GroupMember,
    PathPoint,
)
from darkproxy.replica.drawn_brush import brush_mask
from darkproxy.replica.drawn_path import moved, path_mask

Tensor = torch.Tensor
_F = np.float32


@dataclass(frozen=True)
class Frame:
    """Where darktable draws a shape: ``iwidth``, ``iheight`` the pipe's input (the raw before rawprepare's
    crop, px), ``crop_x``, ``crop_y`` rawprepare's crop off the left and top, ``scale`` the render scale
    (output px per raw px), ``height``, ``width`` the module's image (px)."""

    iwidth: int
    iheight: int
    height: int
    width: int
    scale: float = 1.0
    crop_x: int = 0
    crop_y: int = 0

    @property
    def grid(self) -> int:
        """``CLAMP((10.0f * roi->scale + 2.0f) / 3.0f, 1, 4)`` assigned to an int."""
        g = _F(_F(_F(10.0) * _F(self.scale) + _F(2.0)) / _F(3.0))
        return int(min(max(g, _F(1.0)), _F(4.0)))

    def nodes(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The grid nodes' ``x`` ``(1, gw)`` and ``y`` ``(gh, 1)`` in the raw's full-resolution px."""
        g = self.grid
        gw, gh = (self.width + g - 1) // g + 1, (self.height + g - 1) // g + 1
        iscale = float(_F(1.0) / _F(self.scale))
        x = (np.arange(gw) * g).astype(_F) * _F(iscale) + _F(self.crop_x)
        y = (np.arange(gh) * g).astype(_F) * _F(iscale) + _F(self.crop_y)
        return torch.as_tensor(x, dtype=dtype)[None], torch.as_tensor(y, dtype=dtype)[:, None]

    def interpolate(self, p: Tensor) -> Tensor:
        """The nodes' values ``(gh, gw)`` filled into the image ``(height, width)`` as darktable does."""
        g = self.grid

        def weights(n: int, m: int) -> Tensor:
            w = np.zeros((n, m))
            i = np.arange(n)
            w[i, i // g] = (g - i % g) / g
            w[i, i // g + 1] = (i % g) / g
            return torch.as_tensor(w, dtype=p.dtype, device=p.device)

        return weights(self.height, p.shape[0]) @ p @ weights(self.width, p.shape[1]).T


def _t(v: float | Tensor, ref: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=ref.dtype, device=ref.device)


def circle_mask(frame: Frame, center: Tensor, radius: Tensor | float, border: Tensor | float) -> Tensor:
    """A circle (``center`` ``(2,)`` fractions of the frame's ``iwidth``, ``iheight``; ``radius`` and ``border``
    fractions of its smaller side, ``border`` > 0) -> ``(height, width)`` in ``[0, 1]``."""
    x, y = frame.nodes(center.dtype)
    mindim = float(min(frame.iwidth, frame.iheight))
    r2 = (_t(radius, center) * mindim) ** 2
    total2 = ((_t(radius, center) + _t(border, center)) * mindim) ** 2
    l2 = (x - center[0] * frame.iwidth) ** 2 + (y - center[1] * frame.iheight) ** 2
    f = ((total2 - l2) / (total2 - r2)).clamp(0.0, 1.0)
    return frame.interpolate(f * f)


def ellipse_mask(
    frame: Frame,
    center: Tensor,
    radius: Tensor,
    rotation: Tensor | float,
    border: Tensor | float,
    proportional: bool = False,
) -> Tensor:
    """An ellipse (``center`` and ``radius`` ``(2,)`` as the circle's, ``rotation`` in degrees, ``border``:
    added to the radii, or a fraction of them when ``proportional``) -> ``(height, width)`` in ``[0, 1]``."""
    x, y = frame.nodes(center.dtype)
    mindim = float(min(frame.iwidth, frame.iheight))
    b = _t(border, center)
    a2, b2 = (radius[0] * mindim) ** 2, (radius[1] * mindim) ** 2
    total = radius * (1.0 + b) if proportional else radius + b
    ta2, tb2 = (total[0] * mindim) ** 2, (total[1] * mindim) ** 2
    alpha = _t(rotation, center) / 180.0 * math.pi
    dx, dy = x - center[0] * frame.iwidth, y - center[1] * frame.iheight
    l2 = dx * dx + dy * dy
    nonzero = l2 > 0.0
    ln = torch.sqrt(torch.where(nonzero, l2, torch.ones_like(l2)))
    xn = torch.where(nonzero, dx / ln, torch.zeros_like(l2))
    yn = torch.where(nonzero, dy / ln, torch.ones_like(l2))
    ca, sa = torch.cos(alpha), torch.sin(alpha)
    cos2 = (xn * ca + yn * sa) ** 2
    sin2 = (-xn * sa + yn * ca) ** 2
    r2 = a2 * b2 / (a2 * sin2 + b2 * cos2)
    t2 = ta2 * tb2 / (ta2 * sin2 + tb2 * cos2)
    f = ((t2 - l2) / (t2 - r2)).clamp(0.0, 1.0)
    return frame.interpolate(f * f)


def gradient_mask(
    frame: Frame,
    anchor: Tensor,
    rotation: Tensor | float,
    compression: Tensor | float,
    curvature: Tensor | float,
    linear: bool = False,
) -> Tensor:
    """A gradient (``anchor`` ``(2,)`` fractions of ``iwidth``, ``iheight``; ``rotation`` in degrees;
    ``compression`` and ``curvature`` in units of the image's diagonal; ``linear`` or sigmoid) -> ``(height,
    width)`` in ``[0, 1]``."""
    x, y = frame.nodes(anchor.dtype)
    wd, ht = float(frame.iwidth), float(frame.iheight)
    hwscale = 1.0 / math.sqrt(wd * wd + ht * ht)
    v = -_t(rotation, anchor) / 180.0 * math.pi
    sinv, cosv = torch.sin(v), torch.cos(v)
    xoff = cosv * anchor[0] * wd + sinv * anchor[1] * ht
    yoff = sinv * anchor[0] * wd - cosv * anchor[1] * ht
    c = _t(compression, anchor).clamp_min(0.001)
    x0 = (cosv * x + sinv * y - xoff) * hwscale
    y0 = (sinv * x - cosv * y - yoff) * hwscale
    d = y0 - _t(curvature, anchor) * x0 * x0
    i = d / hwscale  # the table's index: one entry per diagonal px
    bin0 = torch.trunc(i.detach())
    f = i - bin0

    def lut(n: Tensor) -> Tensor:
        dist = n * hwscale
        val = 0.5 + 0.5 * (dist / c if linear else torch.erf(dist / c))
        return val.clamp(0.0, 1.0)

    bin1 = torch.trunc(i.detach() + 1.0)  # int bin1 = i + 1: bin0 itself for -1 < i < 0 (the table's centre)
    inside = lut(bin1) * f + lut(bin0) * (1.0 - f)
    m = torch.where(d <= -4.0 * c, torch.zeros_like(d), torch.where(d >= 4.0 * c, torch.ones_like(d), inside))
    return frame.interpolate(m)


def form_mask(
    forms: Mapping[int, Form],
    fid: int,
    frame: Frame,
    dtype: torch.dtype = torch.float64,
    params: Mapping[tuple[int, str], Tensor] | None = None,
) -> Tensor:
    """darktable's mask of form ``fid`` (a shape or a group, :func:`darkproxy.darktable.masks.forms_problem`
    checked) on ``frame`` -> ``(height, width)``; ``params``: ``(formid, field) -> tensor`` in place of a
    shape's value (``center``, ``radius``, ``border``, ``rotation``, ``anchor``, ``compression``,
    ``curvature``; a path's or brush's ``points`` ``(nb, 3, 2)``: :func:`darkproxy.replica.drawn_path.moved`;
    ``(group id, "opacity")`` ``(n,)`` the members' opacities) to differentiate in it."""
    params = params or {}
    f = forms[fid]
    pts = f.points()

    def val(name: str, v: float | tuple[float, ...]) -> Tensor:
        got = params.get((fid, name))
        return got.to(dtype) if got is not None else torch.tensor(v, dtype=dtype)

    p, crop = pts[0], (frame.crop_x, frame.crop_y)
    if isinstance(p, PathPoint | BrushPoint):  # integer rasterisation in darktable: drawn_path.moved's gradient
        corners = [q for q in pts if isinstance(q, PathPoint | BrushPoint)]
        got = params.get((fid, "points"))  # (nb, 3, 2): each corner's ctrl1, corner, ctrl2
        if got is not None:
            v = got.detach().double().cpu().numpy()
            corners = [
                dataclasses.replace(q, ctrl1=(v[k, 0, 0], v[k, 0, 1]), corner=(v[k, 1, 0], v[k, 1, 1]),
                                    ctrl2=(v[k, 2, 0], v[k, 2, 1]))
                for k, q in enumerate(corners)
            ]  # fmt: skip
        draw = path_mask if isinstance(p, PathPoint) else brush_mask
        raster = draw(corners, frame.iwidth, frame.iheight, frame.height, frame.width, frame.scale, crop)  # type: ignore[arg-type]
        exact = torch.as_tensor(raster, dtype=dtype)
        if got is None:
            return exact
        return moved(exact, got.to(dtype), frame.iwidth, frame.iheight, frame.scale, crop, isinstance(p, PathPoint))
    if isinstance(p, Circle):
        return circle_mask(frame, val("center", p.center), val("radius", p.radius), val("border", p.border))
    if isinstance(p, Ellipse):
        return ellipse_mask(
            frame, val("center", p.center), val("radius", p.radius), val("rotation", p.rotation),
            val("border", p.border), bool(p.flags & ELLIPSE_PROPORTIONAL),
        )  # fmt: skip
    if isinstance(p, Gradient):
        return gradient_mask(
            frame, val("anchor", p.anchor), val("rotation", p.rotation), val("compression", p.compression),
            val("curvature", p.curvature), p.state == GRADIENT_LINEAR,
        )  # fmt: skip
    members = [m for m in pts if isinstance(m, GroupMember)]
    opac = val("opacity", tuple(m.opacity for m in members))
    out = torch.zeros(frame.height, frame.width, dtype=dtype)
    for k, m in enumerate(members):
        sel = form_mask(forms, m.formid, frame, dtype, params)
        mask = opac[k] * (1.0 - sel if m.state & STATE_INVERSE else sel)
        if m.state & STATE_UNION:
            out = torch.maximum(out, mask)
        elif m.state & STATE_INTERSECTION:
            out = torch.minimum(out.clamp_min(0.0), mask.clamp_min(0.0))
        elif m.state & STATE_DIFFERENCE:
            out = out * (1.0 - mask * ((out > 0.0) & (mask > 0.0)))
        elif m.state & STATE_EXCLUSION:
            pos = (out > 0.0) & (mask > 0.0)
            out = torch.where(pos, torch.maximum((1.0 - out) * mask, out * (1.0 - mask)), torch.maximum(out, mask))
        else:
            out = mask
    return out


def export_scale(
    full: tuple[int, int],
    shape: tuple[int, int],
    crop: tuple[int, int, int, int],
    version: tuple[int, ...] | None = None,
) -> float | None:
    """darktable ``version``'s ``roi->scale`` of a whole-image export of the raw (``full``: ``(width, height)``
    after rawprepare's ``crop``, darktable's ``processed_width``, ``height``) to ``shape`` ``(H, W)`` with the same
    maximum width and height (darkproxy's renderer): :func:`darkproxy.darktable.exportsize.export_scale`, the
    read-back checked against the raw uncut on the right and bottom (before 4.8 the scale is raised where it runs
    past them: an export of 128x86 px to 96 px at 0.7587, not 0.75). ``None`` when ``shape`` is not such an
    export."""
    from darkproxy.darktable.exportsize import export_scale as scale_of

    pw, ph = full
    return scale_of((pw, ph), shape, (pw + crop[2], ph + crop[3]), version)


def drawn_mask(
    drawn: DrawnMask,
    shape: tuple[int, int],
    scale: float,
    full_size: tuple[float, float] | None,
    dtype: torch.dtype = torch.float64,
    params: Mapping[tuple[int, str], Tensor] | None = None,
    version: tuple[int, ...] | None = None,
) -> Tensor:
    """blend.c's mask before the parametric one for a drawn mask: the group's mask on the module's image of
    ``shape`` ``(H, W)`` at render ``scale`` (``full_size``: ``(width, height)`` in raw px after rawprepare's
    crop, :attr:`StageContext.full_size`; ``None``: ``shape`` at ``scale``), ``1 - m`` where inverted; the
    group absent, 1 (0 inverted). The scale is darktable's export scale where ``shape`` is an export of
    ``full_size`` (:func:`export_scale`), else ``scale``. -> ``(1, 1, H, W)``."""
    h, w = shape
    forms = drawn.by_id
    if drawn.group not in forms:
        return torch.full((1, 1, h, w), 0.0 if drawn.inverted else 1.0, dtype=dtype)
    cx, cy, cw, ch = drawn.crop
    if full_size is None:
        full_size = (w / scale, h / scale)
    pw, ph = int(round(full_size[0])), int(round(full_size[1]))
    exact = export_scale((pw, ph), (h, w), drawn.crop, version)  # darktable's own (the chain's is rounded)
    frame = Frame(pw + cx + cw, ph + cy + ch, h, w, exact if exact is not None else scale, cx, cy)
    m = form_mask(forms, drawn.group, frame, dtype, params)
    return (1.0 - m if drawn.inverted else m)[None, None]
