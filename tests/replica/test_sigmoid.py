"""The exact sigmoid stage (darktable 4.2.1's sigmoid.c, params v1) against darktable itself.

A 256 px synthetic raw rendered at 128 px, filmic rgb off and sigmoid on. Floors are measured
values minus a margin: over 14 random edits (contrast, skew, hue preservation, both colour
processings, targets, exposure -2.3..3.7 EV) the stage alone reached 52-100 dB against darktable's
tap-out (its float32 finite-difference contrast power is not always reproduced; this edit: 52.9 dB)
and the replica 51.4-59.8 dB against darktable's 8-bit sRGB export. This edit over 12 fresh runs
(bench/results/test_noise.md): 52.95 dB alone, 52.29 dB and ΔE 0.244 for the replica in every run (no
spread): margins of 4.9 dB, 6.3 dB and 0.36.
"""

from __future__ import annotations

from pathlib import Path

import torch

EDIT = {
    "exposure": {"exposure": 1.8},
    "sigmoid": {"middle_grey_contrast": 1.9, "contrast_skewness": 0.2, "hue_preservation": 60.0},
}


def test_sigmoid_matches_darktable(dt, make_raw, expect) -> None:
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references
    from darkproxy.replica.run import build_chain, score_replica

    raw: Path = make_raw(source="coffee", size=256)
    hist = dt.edit(dt.edit(dt.default_history(raw), disable=["filmicrgb"]), updates=EDIT)
    plan = plan_replica(dt, hist, raw)
    assert {s.module: s.kind for s in plan.stages}["sigmoid"] == "exact"
    renders = render_references(dt, raw, plan, 128)
    _, fig = score_replica(build_chain(plan, renders), renders)
    st = {s["module"]: s for s in fig["stages"]}
    expect("sigmoid.psnr_alone", st["sigmoid"]["psnr_alone"], ">", 48)
    expect("replica.psnr", fig["psnr"], ">", 46)
    expect("replica.deltae_mean", fig["deltae_mean"], "<", 0.6)


def test_sigmoid_gradients() -> None:
    """gradcheck (float64) in the image and hue preservation (both colour processings), and
    in contrast and skew of the curve's float64 formula: the gradient the stage uses (its
    values are darktable's float32 finite-difference slopes, a step function of the sliders)."""
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.ports.sigmoid import _commit

    op = EXACT["sigmoid"]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=gen) * 2.0 + 0.01
    for processing in (0, 1):

        def f(hue: torch.Tensor, img: torch.Tensor, cp: int = processing) -> torch.Tensor:
            v = {"middle_grey_contrast": 1.6, "contrast_skewness": 0.1, "hue_preservation": hue}
            return op.fn(img, {**v, "color_processing": cp}, StageContext())

        hue = torch.tensor([70.0], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(f, (hue, x.clone().requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-3)

    def curve(c: torch.Tensor, skew: torch.Tensor) -> tuple[torch.Tensor, ...]:
        const = lambda k: torch.tensor(k, dtype=torch.float64)  # noqa: E731
        return _commit(c, skew, const(100.0), const(0.0152), xp=torch, f=const)

    args = tuple(torch.tensor([a], dtype=torch.float64, requires_grad=True) for a in (1.6, 0.1))
    assert torch.autograd.gradcheck(curve, args, eps=1e-6, atol=1e-5, rtol=1e-3)
