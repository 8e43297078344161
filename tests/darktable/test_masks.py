"""darktable's drawn forms in a sidecar (darktable/masks.py): written by darkproxy, read by darktable, written
back by darktable (the XMP packet it embeds in its export), decoded by darkproxy."""

from __future__ import annotations

import tempfile
from pathlib import Path

from darkproxy.darktable.masks import (
    GROUP,
    STATE_INTERSECTION,
    STATE_UNION,
    Circle,
    Ellipse,
    Gradient,
    GroupMember,
    active_forms,
    read_forms,
)
from darkproxy.darktable.xmp import Sidecar


def _embedded_xmp(tif: Path) -> Sidecar:
    """The XMP packet darktable writes into its TIFF export (its history and masks history)."""
    data = tif.read_bytes()
    start, end = data.index(b"<x:xmpmeta"), data.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    return Sidecar.parse(data[start:end])


def test_darktable_writes_back_the_forms_darkproxy_wrote(dt, make_raw) -> None:
    """A sidecar with a group of a circle, an ellipse and a gradient (darkproxy's writer) rendered by
    darktable-cli: the masks history darktable embeds in its export (from its library, where it read ours)
    decodes to the same forms, points, group members and states; the history item's blend names the group."""
    from darkproxy.darktable.blendop import item_blend
    from darkproxy.darktable.render import RenderJob
    from tests.replica.test_drawn import CIRCLE, ELLIPSE, GRADIENT, GROUP_ID, USE, Case, case_forms, with_drawn

    raw: Path = make_raw(source="coffee", size=96)
    base = dt.edit(dt.default_history(raw), updates={"colorbalancergb": {"saturation_global": 0.3}})
    case = Case(
        "three", ((CIRCLE, USE, 1.0), (ELLIPSE, USE | STATE_UNION, 0.7), (GRADIENT, USE | STATE_INTERSECTION, 0.5))
    )
    h = with_drawn(base, case)
    with tempfile.TemporaryDirectory() as td:
        out = dt.renderer(max_size=48).render_batch([RenderJob(raw, h, Path(td) / "out.tif")])[0]
        back = _embedded_xmp(Path(out))
    forms = active_forms(read_forms(back.description), back.history_end)
    want = {f.formid: f for f in case_forms(case)}
    assert set(forms) == set(want)
    for fid, f in want.items():
        got = forms[fid]
        assert (got.kind, got.name, got.nb, got.version, got.points()) == (f.kind, f.name, f.nb, f.version, f.points())
    group = forms[GROUP_ID]
    assert group.kind == GROUP and [type(p) for p in group.points()] == [GroupMember] * 3
    kinds = [type(forms[GROUP_ID + k].points()[0]) for k in (1, 2, 3)]
    assert kinds == [Circle, Ellipse, Gradient]
    bp = item_blend(back.find("colorbalancergb"))
    assert bp is not None and bp.mask_id == GROUP_ID and "drawn mask" in bp.masks
