"""The exact filmic rgb stage (darktable 4.2.1's filmicrgb.c, params v6; the v7 colour science of 4.4 on)
against darktable.

A 256 px synthetic raw rendered at 128 px. Floors are measured values minus a margin: over 40
random edits of filmic's sliders, enums and exposure (-2.3..3.7 EV) on coffee and motorcycle,
the stage alone reached >= 81 dB against darktable's tap-out and the replica >= 58.4 dB against
darktable's 8-bit sRGB export (its quantisation caps that near 59 dB).
"""

from __future__ import annotations

from pathlib import Path

import torch

EDIT = {
    "exposure": {"exposure": 2.2},
    "filmicrgb": {"contrast": 1.45, "latitude": 20.0, "saturation": 15.0, "balance": 10.0, "white_point_source": 3.5},
}


def test_filmicrgb_matches_darktable(dt, make_raw) -> None:
    """Stage alone (Rec2020 output profile, as the tap-outs) and end to end (sRGB export)."""
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references, replica_history
    from darkproxy.replica.run import build_chain, score_replica

    raw: Path = make_raw(source="coffee", size=256)
    hist = replica_history(dt, raw, None, EDIT)
    plan = plan_replica(dt, hist, raw)
    assert {s.module: s.kind for s in plan.stages}["filmicrgb"] == "exact"
    renders = render_references(dt, raw, plan, 128)
    _, fig = score_replica(build_chain(plan, renders), renders)
    st = {s["module"]: s for s in fig["stages"]}
    assert st["filmicrgb"]["psnr_alone"] > 70 and st["filmicrgb"]["psnr_vs_tapout"] > 70, st["filmicrgb"]
    assert fig["psnr"] > 50 and fig["deltae_mean"] < 0.5, (fig["psnr"], fig["deltae_mean"])


def test_filmicrgb_gradients_and_refusal() -> None:
    """gradcheck (float64) in three sliders and the image, for the default norm and the
    v6 gamut mapping to sRGB; the highlight reconstruction is refused."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["filmicrgb"]
    ctx = StageContext(output_profile="srgb")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=gen) * 2.0 + 0.01
    x[0, :, 0, 0] = torch.tensor([1.5, 0.02, 0.1], dtype=torch.float64)  # out of the sRGB gamut
    base = {"black_point_source": -7.65, "output_power": 3.61, "preserve_color": 3, "version": 3}

    def f(contrast: torch.Tensor, saturation: torch.Tensor, white: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        v = dict(base, contrast=contrast, saturation=saturation, white_point_source=white)
        return op.fn(img, v, ctx)

    args = tuple(torch.tensor([a], dtype=torch.float64, requires_grad=True) for a in (1.3, -20.0, 4.56)) + (
        x.requires_grad_(True),
    )
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-3)
    assert op.supports({"enable_highlight_reconstruction": 1}, ctx) is not None
    assert op.supports(base, ctx) is None and 6 in op.versions


def test_filmicrgb_gradient_bounded_near_display_white() -> None:
    """A bright, slightly coloured pixel that filmic maps to display white: the v6 gamut
    mapping fades the chroma to 0 there (darktable: ``delta_y / eps * FLT_MAX``); the
    stage once gave it a 1e24 gradient (the 'no limit' stand-in scaled by the fade),
    which froze the optimiser of every regression through the replica."""
    import torch

    from darkproxy.replica.registry import EXACT, StageContext

    # darktable 4.2.1's default history for filmic rgb (v6 colour science, power norm), contrast moved
    vals = {
        "grey_point_source": 18.45,
        "black_point_source": -7.65,
        "white_point_source": 4.56,
        "grey_point_target": 18.45,
        "black_point_target": 0.01517634,
        "white_point_target": 100.0,
        "output_power": 3.6148162,
        "latitude": 0.01,
        "contrast": 1.0988295,
        "saturation": 0.0,
        "balance": 0.0,
        "preserve_color": 3,
        "version": 3,
        "auto_hardness": True,
        "custom_grey": False,
        "spline_version": 2,
        "enable_highlight_reconstruction": False,
    }
    x = torch.tensor([2.6185389, 2.8252048, 1.9683620]).reshape(1, 3, 1, 1).requires_grad_(True)
    y = EXACT["filmicrgb"].fn(x, vals, StageContext(output_profile="srgb"))
    assert torch.allclose(y, torch.ones_like(y), atol=1e-6)  # display white
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all() and float(g.abs().max()) < 1.0, g


def test_filmicrgb_v7_science() -> None:
    """darktable 4.4's v7 colour science (``version`` 4, darktable 5's default; compared with darktable
    5.0.1 in bench/results/replica_darktable_5.0.1.md, as 4.2.1 has not got it): at saturation -50 % it is the
    per-channel curve alone, the v6 science without a norm at saturation 0 (v7 gamut-maps at 0); above it the
    max RGB norm's curve mixed in, whatever preserve_color says; gradcheck in its sliders."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["filmicrgb"]
    ctx = StageContext(output_profile="srgb")
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=gen) * 3.0 + 0.005
    x[0, :, 0, 0] = torch.tensor([2.5, 0.02, 0.1], dtype=torch.float64)  # out of the sRGB gamut
    base = {"black_point_source": -7.65, "white_point_source": 4.2, "output_power": 3.61, "contrast": 1.2}

    def run(**v: object) -> torch.Tensor:
        return op.fn(x, dict(base, **v), ctx)

    naive = run(version=4, saturation=-50.0, preserve_color=3)
    assert torch.allclose(naive, run(version=3, saturation=0.0, preserve_color=0), atol=1e-12)
    assert torch.allclose(run(version=4, saturation=10.0, preserve_color=0), run(version=4, saturation=10.0))
    assert not torch.allclose(naive, run(version=4, saturation=50.0), atol=1e-3)  # the norm's curve differs
    assert op.supports(dict(base, version=4), ctx) is None and op.supports(dict(base, version=5), ctx) is not None

    def f(contrast: torch.Tensor, saturation: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return op.fn(img, dict(base, version=4, contrast=contrast, saturation=saturation), ctx)

    args = tuple(torch.tensor([a], dtype=torch.float64, requires_grad=True) for a in (1.3, 20.0))
    assert torch.autograd.gradcheck(f, (*args, x.clone().requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-3)
