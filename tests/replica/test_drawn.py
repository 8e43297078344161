"""Drawn masks (darktable/masks.py, replica/drawn.py) against darktable's tap-outs, their gradient, and the
refusal of what is not ported."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from darkproxy.darktable.blendop import (
    COMBINE_INCL,
    COMBINE_INV,
    COMBINE_MASKS_POS,
    CS_RGB_SCENE,
    MASK_DRAWN,
    MASK_ENABLED,
    MASK_PARAMETRIC,
    item_blend,
)
from darkproxy.darktable.masks import (
    BRUSH,
    ELLIPSE_PROPORTIONAL,
    GRADIENT_LINEAR,
    GROUP,
    STATE_DIFFERENCE,
    STATE_EXCLUSION,
    STATE_INTERSECTION,
    STATE_INVERSE,
    STATE_UNION,
    Circle,
    Ellipse,
    Form,
    Gradient,
    GroupMember,
    Point,
    active_forms,
    forms_problem,
    read_forms,
    write_forms,
)
from darkproxy.replica.drawn import Frame, form_mask
from tests.replica.blendtaps import colorbalance_blend_taps

GROUP_ID = 1000
USE = 3  # DT_MASKS_STATE_USE | SHOW: the group's first shape (darktable's GUI adds UNION to the later ones)
CIRCLE = Circle((0.4, 0.5), 0.2, 0.1)
ELLIPSE = Ellipse((0.62, 0.45), (0.3, 0.14), 30.0, 0.08)
ELLIPSE_P = Ellipse((0.45, 0.55), (0.22, 0.32), -50.0, 0.4, ELLIPSE_PROPORTIONAL)
GRADIENT = Gradient((0.5, 0.45), 20.0, 0.15, 0.0, 0.3)
GRADIENT_LIN = Gradient((0.4, 0.6), -60.0, 0.3, 0.0, 0.0, GRADIENT_LINEAR)


@dataclasses.dataclass(frozen=True)
class Case:
    """A drawn mask: ``members`` (shape, group state, opacity), ``combine`` (mask_combine), the item's opacity
    in %, ``jz`` a parametric mask on Jz in (breakpoints in slider units) beside it."""

    name: str
    members: tuple[tuple[Point, int, float], ...]
    combine: int = 0
    opacity: float = 100.0
    jz: tuple[float, float, float, float] | None = None


CASES = [
    Case("circle", ((CIRCLE, USE, 1.0),)),
    Case("ellipse", ((ELLIPSE, USE, 1.0),), opacity=80),
    Case("ellipse, proportional feather", ((ELLIPSE_P, USE, 0.9),)),
    Case("gradient, sigmoid, curved", ((GRADIENT, USE, 1.0),)),
    Case("gradient, linear", ((GRADIENT_LIN, USE, 1.0),), opacity=90),
    Case("union", ((CIRCLE, USE, 1.0), (ELLIPSE, USE | STATE_UNION, 0.7))),
    Case("intersection", ((GRADIENT, USE, 1.0), (ELLIPSE_P, USE | STATE_INTERSECTION, 1.0))),
    Case("difference", ((ELLIPSE, USE, 1.0), (CIRCLE, USE | STATE_DIFFERENCE, 0.8))),
    Case("exclusion", ((CIRCLE, USE, 0.9), (ELLIPSE_P, USE | STATE_EXCLUSION, 1.0))),
    Case("inverted shape in union", ((GRADIENT_LIN, USE, 1.0), (CIRCLE, USE | STATE_UNION | STATE_INVERSE, 0.6))),
    Case("mask inverted", ((ELLIPSE, USE, 1.0),), combine=COMBINE_MASKS_POS, opacity=85),
    Case("drawn and parametric", ((CIRCLE, USE, 1.0),), jz=(0.1, 0.3, 0.9, 1.3)),
    Case(
        "drawn and parametric, inclusive, inverted",
        ((GRADIENT, USE, 1.0),),
        combine=COMBINE_INCL | COMBINE_INV,
        opacity=90,
        jz=(0.1, 0.3, 0.9, 1.3),
    ),
]
JZ_IN = 8
DEFAULT_BOOST = tuple(float(np.float32(-6.64385619)) if ch in (8, 9, 12, 13) else 0.0 for ch in range(16))


def case_forms(case: Case) -> list[Form]:
    """The group (``GROUP_ID``) and its shapes, darktable's layout."""
    shapes = [Form.of(GROUP_ID + 1 + k, f"shape #{k}", p) for k, (p, _, _) in enumerate(case.members)]
    members = [GroupMember(GROUP_ID + 1 + k, GROUP_ID, st, op) for k, (_, st, op) in enumerate(case.members)]
    return [*shapes, Form.of(GROUP_ID, "group #1", *members)]


def with_drawn(base: Any, case: Case) -> Any:
    """``base`` (a sidecar) with colorbalancergb blended through ``case``'s drawn mask (scene RGB, normal)."""
    h = base.copy()
    it = h.find("colorbalancergb")
    bp = item_blend(it).uniform(case.opacity)  # type: ignore[union-attr]
    mode, blendif, params = MASK_ENABLED | MASK_DRAWN, 0, list(bp.blendif_parameters)
    if case.jz is not None:
        mode, blendif = mode | MASK_PARAMETRIC, 1 << JZ_IN
        params[4 * JZ_IN : 4 * JZ_IN + 4] = case.jz
        if case.combine & COMBINE_INCL:  # darktable's GUI inverts the unused channels with this combine mode
            blendif ^= (0x77FF & ~blendif) << 16
    it.blendop_params = dataclasses.replace(  # type: ignore[union-attr]
        bp, mask_mode=mode, blend_cst=CS_RGB_SCENE, mask_id=GROUP_ID, mask_combine=case.combine, blendif=blendif,
        blendif_parameters=tuple(params), blendif_boost_factors=DEFAULT_BOOST,
    ).encode()  # fmt: skip
    write_forms(h.description, case_forms(case))
    return h


def edge_shift(m_dt: np.ndarray, m_rep: np.ndarray, reliable: np.ndarray) -> float:
    """The largest shift (px) of the replica's mask edge against darktable's: ``|m_dt - m_rep| / |grad m_rep|``
    over the reliable pixels of the transition (the mask's gradient above 0.02 per px)."""
    gy, gx = np.gradient(m_rep)
    g = np.hypot(gx, gy)
    on = reliable & (g > 0.02)
    return float((np.abs(m_dt - m_rep)[on] / g[on]).max()) if on.any() else 0.0


@pytest.mark.parametrize("size", [96, 192, 128])
def test_drawn_masks_match_darktable(dt, make_raw, expect, size: int) -> None:
    """color balance rgb (after colorin) blended in mode normal through drawn masks written into the sidecar
    (a circle, an ellipse, one with a proportional feather, a curved sigmoid gradient, a linear one; groups
    with union, intersection, difference, exclusion and an inverted shape; the mask inverted; a circle and a
    gradient with a parametric Jz mask, exclusive and inclusive-inverted): darktable's tap-outs (one
    darktable-cli process per size, rendered at 96 px: scale 1 from the 96 px raw, grid 4; 0.5 from the 192 px
    one, grid 2; from the 128x86 px one darktable's corrected export scale 0.7587, grid 3: drawn.export_scale)
    against the exact stage blended by replica/drawn.py. Measured (2026-12-03), the worst setting of each run:
    scale 1 over 12 runs 97.1, 87.3, 85.2, 82.6, 89.8, 86.2, 85.0, 85.2, 82.5, 83.6, 83.6, 82.2 dB (every
    setting 82.2-99.5: each case's spread darktable's render noise, e.g. the mask inverted 82.6-99.5); scale 0.5
    over 8 runs 96.0 dB each (every setting 96.0-99.7); scale 0.7587 over 4 runs 96.6 each (96.6-99.5; 40.9-64.0
    dB at the rounded 0.75 before export_scale). The bound, 60 dB, is 22.2 dB under the worst run (exact up to
    darktable's float noise: a stated margin, as test_masks'). Beside it the mask darktable applied, recovered
    from the tap-outs where the module changes a channel by at least 0.03 (``(out - in) / (module - in)``),
    against the replica's: the edge shift ``|dm| / |grad m|`` over the mask's transition, worst of each run
    0.010-0.062 px (scale 1), 0.010 px (0.5), 0.009 px (0.7587; 1.1-3.1 px at 0.75); the bound, 0.5 px, 0.44 px
    above it (issue 28 asks for 1 px)."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.blendop import uniform_blend
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.replica.blend import blend_scene
    from darkproxy.replica.chain import ReplicaChain
    from darkproxy.replica.plan import plan_replica

    raw: Path = make_raw(source="coffee", size=size)
    edit = {"saturation_global": 0.45, "contrast": 0.3, "vibrance": 0.2, "global_Y": 0.2}
    base = dt.edit(dt.default_history(raw), updates={"colorbalancergb": edit})
    histories = [with_drawn(base, c) for c in CASES]
    x, y, outputs = colorbalance_blend_taps(dt, raw, base, histories)  # rendered at 96 px
    wh = raw_size(raw)
    scale = 96 / size  # 1: the mask's grid every 4 px; 0.5: every 2 px
    assert wh is not None and abs(x.shape[-1] - wh[0] * scale) <= 1 and abs(x.shape[-2] - wh[1] * scale) <= 1
    full, version = (float(wh[0]), float(wh[1])), dt.install.version_tuple
    d = (y - x)[0].numpy()
    c = np.abs(d).argmax(0)
    dc = np.take_along_axis(d, c[None], 0)[0]
    reliable = np.abs(dc) > 0.03
    for h, case, want in zip(histories, CASES, outputs, strict=True):
        forms = active_forms(read_forms(h.compressed().description), 10**6)
        blend = uniform_blend(h.find("colorbalancergb"), forms)
        assert blend is not None and blend.drawn is not None, case.name
        got = blend_scene(x, y, blend, scale, full, version)[0].numpy()
        expect(f"{case.name}: psnr", display_psnr(got, want), ">", 60)
        m_dt = np.take_along_axis(want - x[0].numpy(), c[None], 0)[0] / np.where(reliable, dc, 1.0)
        ones = torch.ones_like(x[:, :1])
        m_rep = (blend_scene(x, x + ones, blend, scale, full, version) - x)[
            0, 0
        ].numpy()  # the mask itself: out - in = 1
        expect(f"{case.name}: edge shift px", edge_shift(m_dt, m_rep, reliable), "<", 0.5)
        assert 0.03 < float(m_rep.mean()) < 0.97, (case.name, float(m_rep.mean()))  # part of the image
    # the replica's plan runs the stage exactly with the drawn mask (the sidecar's forms), the chain the same
    plan = plan_replica(dt, histories[5], raw)
    st = {s.module: s for s in plan.stages}["colorbalancergb"]
    assert st.kind == "exact" and "a drawn mask (circle, ellipse)" in st.note, st.note
    plan.context = dataclasses.replace(plan.context, full_size=full, scale=scale)
    with torch.no_grad():
        alone = ReplicaChain(plan, {}).stage_alone("colorbalancergb", x)
    assert display_psnr(alone[0].numpy(), outputs[5]) > 45


def test_drawn_refusals_in_one_line(dt, make_raw) -> None:
    """A brush of one corner (not ported), a group whose first shape combines, a drawn mask in Lab, a drawn mask
    behind crop (its coordinates move) or with a rawprepare crop (not verified): refused in one line naming it."""
    from darkproxy.replica.plan import ReplicaError, plan_replica

    raw: Path = make_raw(source="coffee", size=96)
    base = dt.default_history(raw)
    brush = Form(GROUP_ID + 1, BRUSH, "brush #1", b"\0" * 44, 1)  # a stroke of one corner
    group = Form.of(GROUP_ID, "group #1", GroupMember(GROUP_ID + 1, GROUP_ID, USE, 1.0))
    assert forms_problem({f.formid: f for f in (brush, group)}, GROUP_ID) == (
        "drawn brush 'brush #1' of 1 corner (darkproxy reproduces 2 or more)"
    )
    bad = Form.of(GROUP_ID, "group #1", GroupMember(GROUP_ID + 1, GROUP_ID, USE | STATE_UNION, 1.0))
    circle = Form.of(GROUP_ID + 1, "circle #1", CIRCLE)
    why = forms_problem({f.formid: f for f in (circle, bad)}, GROUP_ID)
    assert why is not None and "uninitialised" in why
    cb = {"colorbalancergb": {"saturation_global": 0.2}}
    left = "x" if any(f.name == "x" for f in dt.schemas.get("rawprepare").fields) else "left"  # 5.0: left
    for module, forms, words, edit in (
        ("colorbalancergb", [brush, group], "'brush #1' of 1 corner", cb),
        ("colorbalancergb", [circle, group], "drawn mask in Lab", cb),  # (before colorin: test_blend_camera.py)
        ("colorbalancergb", [circle, group], "(a drawn mask behind crop)", cb | {"crop": {"cx": 0.1, "cy": 0.05}}),
        ("colorbalancergb", [circle, group], "rawprepare's crop (2, 0, 0, 0)", cb | {"rawprepare": {left: 2}}),
    ):
        h = dt.edit(base.copy(), updates=edit)
        it = h.find(module)
        bp = item_blend(it).uniform(100)  # type: ignore[union-attr]
        it.blendop_params = dataclasses.replace(  # type: ignore[union-attr]
            bp, mask_mode=MASK_ENABLED | MASK_DRAWN, blend_cst=2 if "Lab" in words else CS_RGB_SCENE,
            mask_id=GROUP_ID,
        ).encode()  # fmt: skip
        write_forms(h.description, forms)
        with pytest.raises(ReplicaError) as e:
            plan_replica(dt, h, raw)
        assert f"{module} instance 0 blends (" in str(e.value) and words in str(e.value), str(e.value)
        assert "\n" not in str(e.value)


def test_forms_roundtrip_and_group_kind() -> None:
    """Forms written to a sidecar's description read back the same; the group's kind and layout."""
    import xml.etree.ElementTree as ET

    forms = case_forms(CASES[8])
    desc = ET.Element("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    write_forms(desc, forms)
    back = read_forms(desc)
    assert back == forms and back[-1].kind == GROUP and len(back[-1].blob) == 2 * 16
    f32 = lambda v: float(np.float32(v))  # noqa: E731  (darktable's float fields)
    assert back[0].points() == (Circle((f32(0.4), 0.5), f32(0.2), f32(0.1)),) and len(back[1].blob) == 28


def test_drawn_mask_gradcheck() -> None:
    """float64 gradcheck of each shape's mask in its position, size, feather (rotation, compression,
    curvature) and of a group's in its members' opacities, on a small frame at scale 0.5 (grid 2)."""
    frame = Frame(iwidth=40, iheight=28, height=14, width=20, scale=0.5)
    assert frame.grid == 2
    forms = {f.formid: f for f in case_forms(CASES[8])}  # circle, then exclusion with a proportional ellipse
    forms |= {
        f.formid: f for f in [Form.of(7, "g", GRADIENT), Form.of(8, "gl", GRADIENT_LIN), Form.of(9, "e", ELLIPSE)]
    }

    def run(fid: int, **named: torch.Tensor) -> Any:
        keys = list(named)

        def fn(*vals: torch.Tensor) -> torch.Tensor:
            return form_mask(forms, fid, frame, torch.float64, {(fid, k): v for k, v in zip(keys, vals, strict=True)})

        vals = tuple(v.double().requires_grad_(True) for v in named.values())
        m = fn(*vals).detach()
        assert 0.05 < float(m.mean()) < 0.95 and float(m.std()) > 0.05, (fid, float(m.mean()))
        assert torch.autograd.gradcheck(fn, vals)

    t = torch.tensor
    run(GROUP_ID + 1, center=t([0.41, 0.52]), radius=t(0.21), border=t(0.13))
    run(9, center=t([0.6, 0.45]), radius=t([0.31, 0.15]), rotation=t(31.0), border=t(0.09))
    run(7, anchor=t([0.5, 0.45]), rotation=t(21.0), compression=t(0.15), curvature=t(0.31))
    run(8, anchor=t([0.4, 0.6]), rotation=t(-59.0), compression=t(0.3), curvature=t(0.05))
    run(GROUP_ID, opacity=t([0.9, 0.8]))


def _masked_edit(dt: Any, raw: Path, ev: float, ev_opacity: float, cb_opacity: float) -> Any:
    """darktable's default history + exposure ``ev`` through a drawn sigmoid gradient (before colorin) at
    ``ev_opacity`` % + color balance rgb (saturation 0.5, global_Y 0.3) through a circle and a parametric
    luminance mask (g in, 0.05-0.2 up, open above) at ``cb_opacity`` %: two drawn groups in the masks history."""
    from darkproxy.replica.references import replica_history

    cb = {"saturation_global": 0.5, "global_Y": 0.3}
    h = replica_history(dt, raw, None, {"exposure": {"exposure": ev}, "colorbalancergb": cb})
    forms = []
    for module, gid, shape, opacity, lum in (
        ("exposure", 2000, GRADIENT, ev_opacity, False),
        ("colorbalancergb", 3000, CIRCLE, cb_opacity, True),
    ):
        it = h.find(module)
        bp = item_blend(it).uniform(opacity)  # type: ignore[union-attr]
        params = list(bp.blendif_parameters)
        params[0:4] = [0.05, 0.2, 1.0, 1.0]  # g in (the working profile's luminance)
        it.blendop_params = dataclasses.replace(  # type: ignore[union-attr]
            bp, mask_mode=MASK_ENABLED | MASK_DRAWN | (MASK_PARAMETRIC if lum else 0), blend_cst=CS_RGB_SCENE,
            mask_id=gid, blendif=1 if lum else 0, blendif_parameters=tuple(params),
            blendif_boost_factors=DEFAULT_BOOST,
        ).encode()  # fmt: skip
        forms += [
            Form.of(gid + 1, f"{module} shape", shape),
            Form.of(gid, f"{module} group", GroupMember(gid + 1, gid, USE, 1.0)),
        ]
    write_forms(h.description, forms)
    return h


def test_masked_edit_through_the_chain_and_regressed(dt, tiny_raw: Path, tmp_path: Path, expect) -> None:
    """exposure +1 EV through a drawn gradient (before colorin: a drawn mask alone depends on no colour, so the
    uniform blend's exactness carries over) at 80 % and color balance rgb through a circle and a parametric
    luminance mask at 70 %: the replica's whole chain (exact stages) against darktable's 8-bit export at 128 px
    (58.9 dB in each of 4 runs: the 8-bit exports identical; bound 45, issue 28's); then issue 28's goal, the
    masked edit regressed from darktable's render of it: starting from 0 EV and 30 % (the start 22.4 dB),
    `replica regress --free exposure.exposure,colorbalancergb.blend.opacity` (60 iterations, one restart)
    recovers 1.0001 EV and 69.8 % and darktable's render of result.xmp (the forms carried into it) scores 69.2 dB
    against the target in each of 4 runs (bound 40, the goal's: 29.2 dB under; the sliders within 0.02, 0.0018
    the worst off)."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.replica.fit import render_export, replica_regress
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references
    from darkproxy.replica.run import build_chain

    truth = _masked_edit(dt, tiny_raw, 1.0, 80, 70)
    plan = plan_replica(dt, truth, tiny_raw)
    st = {s.module: s for s in plan.stages}
    assert "a drawn mask (gradient)" in st["exposure"].note and "and a parametric mask" in st["colorbalancergb"].note
    renders = render_references(dt, tiny_raw, plan, 128, taps=False)
    chain = build_chain(plan, renders)
    with torch.no_grad():
        out = chain(torch.from_numpy(renders.input)[None], chain.history_u())
    expect("masked edit: replica chain psnr", display_image_psnr(out[0].numpy(), renders.export), ">", 45)

    _masked_edit(dt, tiny_raw, 0.0, 80, 30).write(tmp_path / "start.xmp")
    target = render_export(dt, tiny_raw, truth, 128)
    rec = replica_regress(
        dt, tiny_raw, target, tmp_path / "out", free=["exposure.exposure", "colorbalancergb.blend.opacity"],
        xmp=tmp_path / "start.xmp", config=RegressConfig(iters=60, restarts=1),
    )  # fmt: skip
    expect("masked edit regressed: darktable_psnr", rec["darktable_psnr"], ">", 40)
    expect("recovered exposure - 1 EV", abs(rec["params"]["exposure.exposure"] - 1.0), "<", 0.02)
    expect("recovered opacity - 0.70", abs(rec["params"]["colorbalancergb.blend.opacity"] - 0.70), "<", 0.02)
    assert [f.formid for f in read_forms(read_xmp(tmp_path / "out" / "result.xmp").description)] == [
        2001,
        2000,
        3001,
        3000,
    ]
