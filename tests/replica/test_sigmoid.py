"""The exact sigmoid stage (darktable 4.2.1's sigmoid.c, params v1) against darktable itself.

A 256 px synthetic raw rendered at 128 px, filmic rgb off and sigmoid on. Floors are measured
values minus a margin: over 14 random edits (bench/results/sigmoid_port.md: contrast, skew, hue
preservation, both colour processings, targets, exposure -2.3..3.7 EV) the stage alone reached
93.0-100 dB against darktable's tap-out (median 100) and the replica 58.9-69.3 dB against darktable's
8-bit sRGB export. The two edits here are that bench's first (per channel with hue preservation) and
its worst (RGB ratio, white 228 %): alone 100.0 and 92.97 dB, replica 60.74 and 62.12 dB, ΔE 0.134 and
0.090, the same in 10 fresh runs (bench/results/test_noise.md, group replica-sigmoid: no spread;
before the port's commit_params emulation, 12 runs of the first gave 52.95 dB alone in every one).
Margins: 8 dB alone, 4 dB for the replica, 0.1 ΔE.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

EDITS = {
    "per-channel": (
        {
            "exposure": {"exposure": 1.8},
            "sigmoid": {"middle_grey_contrast": 1.9, "contrast_skewness": 0.2, "hue_preservation": 60.0},
        },
        (92.0, 56.7, 0.23),
    ),
    "rgb-ratio": (
        {
            "exposure": {"exposure": 3.07},
            "sigmoid": {
                "middle_grey_contrast": 1.557,
                "contrast_skewness": 0.161,
                "hue_preservation": 2.4,
                "color_processing": 1.0,
                "display_white_target": 228.16,
                "display_black_target": 0.4595,
            },
        },
        (85.0, 58.1, 0.19),
    ),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_sigmoid_matches_darktable(name: str, dt, make_raw, expect) -> None:
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references
    from darkproxy.replica.run import build_chain, score_replica

    edit, (alone, psnr, deltae) = EDITS[name]
    raw: Path = make_raw(source="coffee", size=256)
    hist = dt.edit(dt.edit(dt.default_history(raw), disable=["filmicrgb"]), updates=edit)
    plan = plan_replica(dt, hist, raw)
    assert {s.module: s.kind for s in plan.stages}["sigmoid"] == "exact"
    renders = render_references(dt, raw, plan, 128)
    _, fig = score_replica(build_chain(plan, renders), renders)
    st = {s["module"]: s for s in fig["stages"]}
    expect("sigmoid.psnr_alone", st["sigmoid"]["psnr_alone"], ">", alone)
    expect("replica.psnr", fig["psnr"], ">", psnr)
    expect("replica.deltae_mean", fig["deltae_mean"], "<", deltae)


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
        return _commit(c, skew, const(100.0), const(0.0152), f=const)

    args = tuple(torch.tensor([a], dtype=torch.float64, requires_grad=True) for a in (1.6, 0.1))
    assert torch.autograd.gradcheck(curve, args, eps=1e-6, atol=1e-5, rtol=1e-3)
