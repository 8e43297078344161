"""Uniform blending in the replica (replica/blend.py) against darktable-cli's export, and its gradient."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from darkproxy.darktable.blendop import item_blend
from darkproxy.replica.blend import blend_uniform


def test_replica_uniform_blends_match_darktable(dt, tiny_raw: Path, expect) -> None:
    """exposure +1 EV blended uniformly at 40 % and filmic rgb at 30 % (normal, scene RGB) in darktable's
    default history: the replica (exact stages, each blend applied around its stage) against darktable's
    8-bit sRGB export; the same chain without the blends is far off (the blend is what makes it match)."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.replica.chain import plan_replica
    from darkproxy.replica.references import render_references, replica_history
    from darkproxy.replica.run import build_chain

    hist = replica_history(dt, tiny_raw, None, {"exposure": {"exposure": 1.0}})
    for module, opacity in (("exposure", 40), ("filmicrgb", 30)):
        it = hist.find(module)
        it.blendop_params = item_blend(it).uniform(opacity).encode()  # type: ignore[union-attr]
    plan = plan_replica(dt, hist, tiny_raw)
    st = {s.module: s for s in plan.stages}
    assert (st["exposure"].kind, st["exposure"].opacity) == ("exact", pytest.approx(0.4))
    assert "blended uniformly at 40 %" in st["exposure"].note and st["filmicrgb"].opacity == pytest.approx(0.3)
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
