"""Drawn paths and brushes (darktable/masks.py's ``PathPoint``, ``BrushPoint``; replica/drawn_path.py,
drawn_brush.py) against darktable's tap-outs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from darkproxy.darktable.blendop import COMBINE_MASKS_POS
from darkproxy.darktable.masks import (
    STATE_DIFFERENCE,
    STATE_INVERSE,
    STATE_UNION,
    BrushPoint,
    Form,
    GroupMember,
    PathPoint,
    Point,
    active_forms,
    forms_problem,
    read_forms,
    write_forms,
)
from darkproxy.replica.drawn import Frame, form_mask
from tests.replica.blendtaps import colorbalance_blend_taps
from tests.replica.test_drawn import CIRCLE, ELLIPSE, GROUP_ID, USE, Case, edge_shift, with_drawn

Corners = tuple[tuple[float, float], ...]


def smooth_path(corners: Corners, border: float | tuple[float, float] = 0.05) -> tuple[PathPoint, ...]:
    """A path through ``corners`` with darktable's catmull-rom handles (``_path_init_ctrl_points``: what its GUI
    gives a new path) and feather ``border`` at every corner (one value, or before/after each corner)."""
    n, b = len(corners), border if isinstance(border, tuple) else (border, border)
    out = []
    for k in range(n):
        p1, p2, p3 = corners[k - 1], corners[k], corners[(k + 1) % n]
        ctrl1 = ((p1[0] + 6 * p2[0] - p3[0]) / 6, (p1[1] + 6 * p2[1] - p3[1]) / 6)
        ctrl2 = ((-p1[0] + 6 * p2[0] + p3[0]) / 6, (-p1[1] + 6 * p2[1] + p3[1]) / 6)
        out.append(PathPoint(p2, ctrl1, ctrl2, b, 1))
    return tuple(out)


def sharp_path(corners: Corners, border: float = 0.04) -> tuple[PathPoint, ...]:
    """A polygon: every handle on its corner (darktable's sharp nodes; the border's gaps filled by arcs)."""
    return tuple(PathPoint(c, c, c, (border, border), 2) for c in corners)


CONVEX = smooth_path(((0.3, 0.3), (0.7, 0.25), (0.75, 0.7), (0.35, 0.75)), 0.06)
CONCAVE = smooth_path(((0.25, 0.25), (0.75, 0.3), (0.7, 0.75), (0.5, 0.45), (0.3, 0.8)), (0.03, 0.08))
POLYGON = sharp_path(((0.2, 0.3), (0.8, 0.2), (0.6, 0.5), (0.75, 0.85), (0.3, 0.7)), 0.05)
ANTICLOCKWISE = tuple(reversed(smooth_path(((0.35, 0.25), (0.8, 0.45), (0.55, 0.8), (0.2, 0.6)), 0.1)))
OUTSIDE = smooth_path(((-0.2, 0.2), (0.6, -0.1), (1.2, 0.5), (0.5, 0.7)), 0.05)  # past the image's edges


def brush_stroke(
    corners: Corners, sizes: Sequence[float], hardness: Sequence[float], density: Sequence[float]
) -> tuple[BrushPoint, ...]:
    """An open brush stroke through ``corners`` (catmull-rom handles, the ends repeated), each corner's size,
    hardness and density."""
    n, out = len(corners), []
    for k in range(n):
        p1, p2, p3 = corners[max(k - 1, 0)], corners[k], corners[min(k + 1, n - 1)]
        ctrl1 = ((p1[0] + 6 * p2[0] - p3[0]) / 6, (p1[1] + 6 * p2[1] - p3[1]) / 6)
        ctrl2 = ((-p1[0] + 6 * p2[0] + p3[0]) / 6, (-p1[1] + 6 * p2[1] + p3[1]) / 6)
        out.append(BrushPoint(p2, ctrl1, ctrl2, (sizes[k], sizes[k]), density[k], hardness[k], 2))
    return tuple(out)


STROKE = brush_stroke(
    ((0.2, 0.3), (0.45, 0.5), (0.7, 0.35), (0.8, 0.7)), (0.06, 0.08, 0.08, 0.05), (0.5, 0.5, 0.3, 0.3),
    (1.0, 1.0, 0.7, 0.7),
)  # fmt: skip
STROKE2 = brush_stroke(((0.3, 0.8), (0.6, 0.6), (1.05, 0.9)), (0.1, 0.1, 0.1), (0.9, 0.9, 0.9), (1.0, 1.0, 1.0))
Shape = Point | tuple[PathPoint, ...] | tuple[BrushPoint, ...]


@dataclasses.dataclass(frozen=True)
class PathCase:
    """A drawn mask of paths (or shapes): ``members`` (shape, group state, opacity), ``combine`` (mask_combine),
    the item's opacity in %."""

    name: str
    members: tuple[tuple[Shape, int, float], ...]
    combine: int = 0
    opacity: float = 100.0

    def forms(self) -> list[Form]:
        shapes = [
            Form.of(GROUP_ID + 1 + k, f"shape #{k}", *(p if isinstance(p, tuple) else (p,)))
            for k, (p, _, _) in enumerate(self.members)
        ]
        members = [GroupMember(GROUP_ID + 1 + k, GROUP_ID, st, op) for k, (_, st, op) in enumerate(self.members)]
        return [*shapes, Form.of(GROUP_ID, "group #1", *members)]


CASES = [
    PathCase("convex path", ((CONVEX, USE, 1.0),)),
    PathCase("concave path, feathers differing", ((CONCAVE, USE, 1.0),), opacity=90),
    PathCase("polygon (sharp corners)", ((POLYGON, USE, 1.0),)),
    PathCase("anticlockwise path, wide feather", ((ANTICLOCKWISE, USE, 0.8),)),
    PathCase("path inverted", ((CONCAVE, USE, 1.0),), combine=COMBINE_MASKS_POS),
    PathCase("path union circle", ((CONVEX, USE, 1.0), (CIRCLE, USE | STATE_UNION, 0.7))),
    PathCase("ellipse minus path", ((ELLIPSE, USE, 1.0), (POLYGON, USE | STATE_DIFFERENCE, 0.9))),
    PathCase("inverted path in union", ((CIRCLE, USE, 1.0), (CONCAVE, USE | STATE_UNION | STATE_INVERSE, 0.6))),
    PathCase("path past the image's edges", ((OUTSIDE, USE, 1.0),)),
    PathCase("brush stroke (size, hardness, density changing)", ((STROKE, USE, 1.0),)),
    PathCase(
        "brush strokes and a path",
        ((STROKE2, USE, 1.0), (STROKE, USE | STATE_UNION, 0.8), (CONVEX, USE | STATE_UNION, 0.5)),
    ),
]


def path_history(base: Any, case: PathCase) -> Any:
    """``base`` with colorbalancergb blended through ``case``'s drawn mask (scene RGB, normal)."""
    h = with_drawn(base, Case(case.name, ((CIRCLE, USE, 1.0),), combine=case.combine, opacity=case.opacity))
    write_forms(h.description, case.forms())
    return h


@pytest.mark.parametrize("size", [96, 192])
def test_drawn_paths_match_darktable(dt, make_raw, expect, size: int) -> None:
    """color balance rgb blended in mode normal through drawn paths (convex and concave with darktable's
    catmull-rom handles, a polygon of sharp corners, an anticlockwise one with a wide feather, one past the
    image's edges; the mask inverted; in groups with a circle and an ellipse, inverted in one) and brush strokes
    (size, hardness and density changing along one: darktable's stamps and arcs; two strokes, one past the edge,
    and a path in a union): darktable's tap-outs (one darktable-cli process per size, rendered at 96 px: scale 1
    from the 96 px raw, 0.5 from the 192 px one) against the exact stage blended by replica/drawn_path.py and
    drawn_brush.py (the path's border self-intersections and the arcs at its gaps are drawn in the concave path,
    the polygon and the anticlockwise one). Measured (2026-12-03) over 4 runs of these cases, the worst setting
    of each run: scale 1 81.6, 80.6, 81.3, 80.7 dB (every setting 80.6-98.7: darktable's render noise, the worst
    case changing from run to run); scale 0.5 96.7 dB each (96.7-98.3); 8 earlier runs of fewer cases 80.4-97.3
    (scale 1) and 96.7-96.8 (0.5). The bound, 60 dB, is 20.4 dB under the worst run (issue 28 asks for 45). The
    mask darktable applied, recovered from the tap-outs as test_drawn does, against the replica's: the edge shift,
    worst of each run 0.007 px (scale 1) and 0.006 px (0.5); the bound, 0.5 px, 0.49 px above it (issue 28 asks
    for 1 px). darktable 5 rasterises paths otherwise (5.4.1: sharp corners 56.0-58.2 dB, an anticlockwise path's
    wide feather 47.9): there the plan refuses a path in the mask (one line), and the brushes are checked."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.blendop import uniform_blend
    from darkproxy.darktable.masks import PATH
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.replica.blend import blend_scene
    from darkproxy.replica.plan import replica_coverage

    raw: Path = make_raw(source="coffee", size=size)
    edit = {"saturation_global": 0.45, "contrast": 0.3, "vibrance": 0.2, "global_Y": 0.2}
    base = dt.edit(dt.default_history(raw), updates={"colorbalancergb": edit})
    histories = [path_history(base, c) for c in CASES]
    x, y, outputs = colorbalance_blend_taps(dt, raw, base, histories)
    wh = raw_size(raw)
    assert wh is not None
    scale, full = 96 / size, (float(wh[0]), float(wh[1]))
    d = (y - x)[0].numpy()
    c = np.abs(d).argmax(0)
    dc = np.take_along_axis(d, c[None], 0)[0]
    reliable = np.abs(dc) > 0.03
    dt5 = dt.install.version_tuple[:2] >= (5, 0)
    for h, case, want in zip(histories, CASES, outputs, strict=True):
        forms = active_forms(read_forms(h.compressed().description), 10**6)
        blend = uniform_blend(h.find("colorbalancergb"), forms)
        assert blend is not None and blend.drawn is not None, case.name
        if dt5 and blend.drawn.uses(PATH):  # darktable 5 rasterises paths otherwise: the plan refuses them
            cov = {c.module: c for c in replica_coverage(dt, h, raw)}["colorbalancergb"]
            assert cov.runs == "refused" and "drawn path" in cov.detail and "\n" not in cov.detail, case.name
            continue
        got = blend_scene(x, y, blend, scale, full)[0].numpy()
        expect(f"{case.name}: psnr", display_psnr(got, want), ">", 60)
        m_dt = np.take_along_axis(want - x[0].numpy(), c[None], 0)[0] / np.where(reliable, dc, 1.0)
        ones = torch.ones_like(x[:, :1])
        m_rep = (blend_scene(x, x + ones, blend, scale, full) - x)[0, 0].numpy()
        expect(f"{case.name}: edge shift px", edge_shift(m_dt, m_rep, reliable), "<", 0.5)
        assert 0.03 < float(m_rep.mean()) < 0.97, (case.name, float(m_rep.mean()))


def test_path_forms_roundtrip() -> None:
    """A path's corners written to a sidecar read back the same (36 bytes a corner, darktable's layout); a path
    of fewer than 3 corners is refused in one line."""
    import xml.etree.ElementTree as ET

    forms = CASES[6].forms()
    desc = ET.Element("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    write_forms(desc, forms)
    back = read_forms(desc)
    assert back == forms and len(back[1].blob) == 36 * len(POLYGON) and back[1].nb == len(POLYGON)
    assert [p.corner for p in back[1].points()] == [tuple(float(np.float32(v)) for v in p.corner) for p in POLYGON]
    two = {f.formid: f for f in PathCase("two", ((POLYGON[:2], USE, 1.0),)).forms()}
    assert forms_problem(two, GROUP_ID) == "drawn path 'shape #0' of 2 corners (darkproxy reproduces 3 or more)"


def test_path_group_gradcheck() -> None:
    """float64 gradcheck of a group with a path in its members' opacities (a path's own mask is darktable's
    integer rasterisation: piecewise constant in its points, so no gradient in them)."""
    frame = Frame(iwidth=40, iheight=28, height=28, width=40, scale=1.0)
    forms = {f.formid: f for f in CASES[5].forms()}

    def fn(op: torch.Tensor) -> torch.Tensor:
        return form_mask(forms, GROUP_ID, frame, torch.float64, {(GROUP_ID, "opacity"): op})

    op = torch.tensor([0.9, 0.6], dtype=torch.float64, requires_grad=True)
    assert 0.05 < float(fn(op).detach().mean()) < 0.95
    assert torch.autograd.gradcheck(fn, (op,))


def test_path_gradient_follows_the_outline() -> None:
    """The gradient of a path's or brush's mask in its points (replica/drawn_path.moved: the mask carried along by
    its outline) against central differences of the exact mask (+-2 px; the whole shape, its first and third
    corners with their handles, in x and in y), for ``sum(w m)`` with a smooth weight ``w``, at scale 1: the
    concave path and the brush stroke. Measured (deterministic, no darktable): the worst difference 0.031 (path)
    and 0.065 (brush) of the shape's largest derivative; the bound 0.1 (the polygon 0.013; every corner of the
    four paths of this file, checked once: 0.053 the worst). A float64 gradcheck does not apply: darktable's mask
    is piecewise constant in the points, so its finite differences at gradcheck's step are 0."""
    h, w = 64, 96
    frame = Frame(iwidth=w, iheight=h, height=h, width=w, scale=1.0)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    weight = torch.sin(xx / 13.0) + torch.cos(yy / 9.0) + xx / w
    worst = 0.0
    for path in (CONCAVE, STROKE):
        forms = {1: Form.of(1, "path", *path)}
        pts0 = torch.tensor([[p.ctrl1, p.corner, p.ctrl2] for p in path], dtype=torch.float64)

        def loss(pts: torch.Tensor, forms: dict[int, Form] = forms) -> torch.Tensor:
            return (form_mask(forms, 1, frame, torch.float64, {(1, "points"): pts}) * weight).sum()

        pts = pts0.clone().requires_grad_(True)
        loss(pts).backward()
        assert pts.grad is not None
        got, fd = [], []
        for k in (None, 0, 2):
            for c in (0, 1):
                d = torch.zeros_like(pts0)
                d[slice(None) if k is None else k, :, c] = 1.0 / (w, h)[c]  # one px
                got.append(float((pts.grad * d).sum()))
                with torch.no_grad():
                    fd.append(float(loss(pts0 + 2 * d) - loss(pts0 - 2 * d)) / 4)
        g, f = np.array(got), np.array(fd)
        assert np.abs(f).max() > 5.0  # the mask moves
        worst = max(worst, float(np.abs(g - f).max() / np.abs(f).max()))
    assert worst < 0.1, worst
