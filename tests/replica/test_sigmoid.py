"""The exact sigmoid stage (darktable 4.2.1's sigmoid.c, params v1; 5.0's and 5.4's v3) against darktable itself.

A 256 px synthetic raw rendered at 128 px, filmic rgb off and sigmoid on. Floors are measured
values minus a margin: over 14 random edits (bench/results/sigmoid_port.md: contrast, skew, hue
preservation, both colour processings, targets, exposure -2.3..3.7 EV) the stage alone reached
93.0-100 dB against darktable's tap-out (median 100) and the replica 58.9-69.3 dB against darktable's
8-bit sRGB export. The two edits here are that bench's first (per channel with hue preservation) and
its worst (RGB ratio, white 228 %): alone 100.0 and 92.97 dB, replica 60.74 and 62.12 dB, ΔE 0.134 and
0.090, the same in 10 fresh runs (bench/results/test_noise.md, group replica-sigmoid: no spread;
before the port's commit_params emulation, 12 runs of the first gave 52.95 dB alone in every one).
Margins: 8 dB alone, 4 dB for the replica, 0.1 ΔE. On darktable 5.0.1 and 5.4.1 (params v3) the same edits, and
one through inset, rotated primaries with purity (v3 only), measured 93.0-100 dB alone on both (the per-channel
path's primaries as darktable clamps them, sigmoid.py): the same floors.
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


PRIMARIES = {  # v3's rendering primaries (darktable 5.0 on): per channel through inset, rotated Rec2020 primaries
    "exposure": {"exposure": 1.2},
    "sigmoid": {
        "middle_grey_contrast": 1.7,
        "hue_preservation": 30.0,
        "red_inset": 0.2,
        "green_inset": 0.1,
        "blue_inset": 0.15,
        "red_rotation": 0.1,
        "blue_rotation": -0.05,
        "purity": 0.5,
    },
}


@pytest.mark.parametrize("name", [*sorted(EDITS), "primaries"])
def test_sigmoid_matches_darktable(name: str, dt, make_raw, expect) -> None:
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references
    from darkproxy.replica.run import build_chain, score_replica

    if name == "primaries" and dt.schemas.get("sigmoid").version < 3:
        pytest.skip(f"darktable {dt.version}'s sigmoid has no primaries (params v{dt.schemas.get('sigmoid').version})")
    edit, (alone, psnr, deltae) = EDITS[name] if name in EDITS else (PRIMARIES, EDITS["per-channel"][1])
    raw: Path = make_raw(source="coffee", size=256)
    default = dt.default_history(raw)  # filmic rgb off (darktable 5.4's default history has sigmoid, no filmic)
    hist = dt.edit(dt.edit(default, disable=["filmicrgb"]) if default.find("filmicrgb") else default, updates=edit)
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


def test_sigmoid_v3_primaries() -> None:
    """v3's per-channel path: the identity at darktable's defaults but for Rec2020's red, which darktable reads
    clamped onto the spectral locus (its D50 colorant has Z < 0: x + y = 1 after the clamp), so the rendering
    primaries mix a little blue into red; with sRGB as base primaries (inside the locus) the identity; gradcheck
    in the image and hue preservation through inset, rotated primaries."""
    from darkproxy.colour.matrices import PROFILE_PRIMARIES, rgb_to_xyz_d50
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.ports.sigmoid import _xy, primaries_matrices

    red = _xy(rgb_to_xyz_d50(PROFILE_PRIMARIES["lin_rec2020"])[:, 0])
    assert red.sum() == pytest.approx(1.0, abs=1e-12)
    p2b, b2r, r2p = primaries_matrices({"base_primaries": 0})
    assert (p2b == torch.eye(3).numpy()).all() and b2r[2, 0] > 1e-3 and abs(b2r[0, 1]) < 1e-6
    assert r2p @ b2r == pytest.approx(torch.eye(3, dtype=torch.float64).numpy(), abs=1e-12)
    _, b2r, _ = primaries_matrices({"base_primaries": 4})
    assert b2r == pytest.approx(torch.eye(3, dtype=torch.float64).numpy(), abs=1e-12)
    op = EXACT["sigmoid"]
    x = torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2.0 + 0.01
    v3 = {**{k: v for k, v in PRIMARIES["sigmoid"].items() if k != "hue_preservation"}, "base_primaries": 0}

    def f(hue: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return op.fn(img, {**v3, "hue_preservation": hue}, StageContext())

    hue = torch.tensor([70.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (hue, x.clone().requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-3)
