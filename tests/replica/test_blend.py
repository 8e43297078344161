"""Uniform blending in the replica (replica/blend.py) against darktable-cli's export, and its gradient."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from darkproxy.darktable.blendop import item_blend
from darkproxy.replica.blend import blend_uniform
from tests.replica.blendtaps import colorbalance_blend_taps
from tests.tonemap import tone_mapper


def test_replica_uniform_blends_match_darktable(dt, tiny_raw: Path, expect) -> None:
    """exposure +1 EV blended uniformly at 40 % and the tone mapper (filmic rgb; darktable 5.4's: sigmoid) at 30 %
    (normal, scene RGB) in darktable's default history: the replica (exact stages, each blend applied around its
    stage) against darktable's 8-bit sRGB export; the same chain without the blends is far off (the blend is what
    makes it match)."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references, replica_history
    from darkproxy.replica.run import build_chain

    hist = replica_history(dt, tiny_raw, None, {"exposure": {"exposure": 1.0}})
    tone = tone_mapper(hist)
    for module, opacity in (("exposure", 40), (tone, 30)):
        it = hist.find(module)
        it.blendop_params = item_blend(it).uniform(opacity).encode()  # type: ignore[union-attr]
    plan = plan_replica(dt, hist, tiny_raw)
    st = {s.module: s for s in plan.stages}
    assert (st["exposure"].kind, st["exposure"].opacity) == ("exact", pytest.approx(0.4))
    assert "blended uniformly at 40 %" in st["exposure"].note and st[tone].opacity == pytest.approx(0.3)
    renders = render_references(dt, tiny_raw, plan, 128, taps=False)

    def psnr() -> float:
        chain = build_chain(plan, renders)
        with torch.no_grad():
            out = chain(torch.from_numpy(renders.input)[None], chain.history_u())
        return display_image_psnr(out[0].numpy(), renders.export)

    expect("blend40.replica.psnr", psnr(), ">=", 45)
    plan.stages = [dataclasses.replace(s, opacity=None) for s in plan.stages]
    expect("blend40.unblended.psnr", psnr(), "<", 35)


def test_blend_uniform_is_darktables_formula_and_differentiable() -> None:
    """out = in (1 - o) + processed o per pixel and channel; d/do = processed - in, per batch item."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    o = torch.tensor([0.4, 1.0], requires_grad=True)
    z = blend_uniform(x, y, o)
    assert torch.allclose(z[0], 0.6 * x[0] + 0.4 * y[0]) and torch.equal(z[1], y[1])
    z.sum().backward()
    assert o.grad is not None and torch.allclose(o.grad, (y - x).sum((1, 2, 3)))
    assert torch.equal(blend_uniform(x, y, 0.0), x)


# darktable's scene-RGB blend modes (code, reversed), darktable.blendop.BLEND_MODES names them
SCENE_MODES = [(0x04, False), (0x05, False), (0x06, False), (0x07, False), (0x25, False), (0x17, False)]
SCENE_MODES += [(0x26, False), (0x27, False), (0x28, False), (0x29, False), (0x10, False), (0x11, False)]
SCENE_MODES += [(0x22, False), (0x04, True), (0x07, True), (0x0B, False)]  # 0x0B softlight: normal there


def test_scene_rgb_blend_modes_match_darktable(dt, make_raw, expect) -> None:
    """color balance rgb (after colorin: the pipe is the working profile's RGB) blended uniformly at 70 % with
    blend_parameter 0.5 EV in each mode of darktable's scene-RGB blend, reversed too: darktable's tap-outs
    (one darktable-cli process) against the exact stage blended by replica/blend.py. Over 21 fresh runs
    (bench/results/test_noise.md, "replica"): 67.7-100 dB, every mode's spread darktable's render noise
    (divide 67.7-75.8 and divide reversed 68.5-97.7: 1/x amplifies it); the bound, 55 dB, is 12.7 dB under
    the worst run (two-valued spreads: exact or noise, so a stated margin rather than 3 std)."""

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.blendop import BLEND_MODES, BLEND_REVERSE, CS_RGB_SCENE, uniform_blend
    from darkproxy.replica.blend import blend_scene
    from darkproxy.replica.plan import ReplicaError, plan_replica

    raw: Path = make_raw(source="coffee", size=96)
    edit = {"saturation_global": 0.45, "contrast": 0.3, "vibrance": 0.2}
    base = dt.edit(dt.default_history(raw), updates={"colorbalancergb": edit})
    histories = []
    for code, rev in SCENE_MODES:
        h = base.copy()
        it = h.find("colorbalancergb")
        bp = item_blend(it).uniform(70, code | (BLEND_REVERSE if rev else 0))  # type: ignore[union-attr]
        bp = dataclasses.replace(bp, blend_parameter=0.5, blend_cst=CS_RGB_SCENE)
        it.blendop_params = bp.encode()
        histories.append(h)
    x, y, outputs = colorbalance_blend_taps(dt, raw, base, histories)
    for h, (code, rev), want in zip(histories, SCENE_MODES, outputs, strict=True):
        blend = uniform_blend(h.find("colorbalancergb"))
        assert blend is not None and blend.reverse == rev and blend.parameter == 0.5
        got = blend_scene(x, y, blend)[0].numpy()
        name = BLEND_MODES[code] + (" reversed" if rev else "")
        expect(f"{name}: psnr", display_psnr(got, want), ">", 55)
    # the replica runs such a stage blended; before colorin (camera RGB) too: test_blend_camera.py; after colorout not
    st = {s.module: s for s in plan_replica(dt, histories[0], raw).stages}["colorbalancergb"]
    assert st.kind == "exact" and "blended uniformly (multiply) at 70 %" in st.note
    exp = base.copy()
    it = exp.find("colorout")
    it.blendop_params = item_blend(it).uniform(70, 0x04).encode()  # type: ignore[union-attr]
    with pytest.raises(ReplicaError, match="colorout instance 0 blends .blend mode multiply"):
        plan_replica(dt, exp, raw)


def test_blend_opacity_regressed_from_a_darktable_target(dt, tiny_raw: Path, tmp_path: Path, expect) -> None:
    """exposure +1 EV blended at 40 % in the starting sidecar, darktable's export of the same edit at 70 % as
    the target: `replica regress --free exposure.blend.opacity` recovers the opacity, writes it into the item's
    blend params, and darktable's render of result.xmp matches the target (measured: 0.0016 off, 62.3 dB, the
    start 29.2 dB)."""
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.replica.fit import render_export, replica_regress
    from darkproxy.replica.references import replica_history

    def blended(opacity: float):
        hist = replica_history(dt, tiny_raw, None, {"exposure": {"exposure": 1.0}})
        it = hist.find("exposure")
        it.blendop_params = item_blend(it).uniform(opacity).encode()  # type: ignore[union-attr]
        return hist

    blended(40).write(tmp_path / "start.xmp")
    target = render_export(dt, tiny_raw, blended(70), 64)
    rec = replica_regress(
        dt,
        tiny_raw,
        target,
        tmp_path / "out",
        free=["exposure.blend.opacity"],
        xmp=tmp_path / "start.xmp",
        config=RegressConfig(iters=60, restarts=1),
    )
    from darkproxy.darktable.xmp import read_xmp

    written = item_blend(read_xmp(tmp_path / "out" / "result.xmp").find("exposure"))
    assert written is not None and written.opacity == pytest.approx(100.0 * rec["params"]["exposure.blend.opacity"])
    expect("recovered opacity - 0.70", abs(rec["params"]["exposure.blend.opacity"] - 0.70), "<", 0.02)
    expect("darktable_psnr", rec["darktable_psnr"], ">", 40)
    expect("start_psnr", rec["start_psnr"])
