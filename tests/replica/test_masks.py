"""Parametric masks (blend-if) in scene RGB (replica/mask.py) against darktable's tap-outs, their gradient,
and the refusal of what is not ported."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from darkproxy.darktable.blendop import (
    BLEND_VERSION,
    COMBINE_INCL,
    COMBINE_INV,
    CS_RGB_SCENE,
    MASK_ENABLED,
    MASK_PARAMETRIC,
    BlendParams,
    ParametricMask,
    blend_problem,
    item_blend,
)
from darkproxy.replica.mask import parametric_mask
from tests.replica.blendtaps import colorbalance_blend_taps

G_IN, R_IN, G_, B_IN, JZ_IN, CZ_IN, HZ_IN = 0, 1, 2, 3, 8, 9, 10  # blend.h's scene-RGB channels (+4: output)
OUT = 4


@dataclasses.dataclass(frozen=True)
class Case:
    """A parametric mask: ``spans`` channel -> (lo, hi) where seeded random breakpoints fall (darktable's slider
    units: the channel's value / 2^boost), ``inverted`` channels, ``combine`` (mask_combine), opacity in %."""

    name: str
    spans: dict[int, tuple[float, float]]
    inverted: tuple[int, ...] = ()
    combine: int = 0
    opacity: float = 100.0
    contrast: float = 0.0
    brightness: float = 0.0
    boost: tuple[tuple[int, float], ...] = ()  # channel, log2 factor: in place of darktable's default


# darktable's default boost factors in scene RGB (blend.c _blend_init_blendif_boost_parameters: -6.64385619
# = log2(1/100) for Jz and Cz, in and out; 0 elsewhere), written explicitly: an item dt.edit adds may carry none
DEFAULT_BOOST = tuple(float(np.float32(-6.64385619)) if ch in (8, 9, 12, 13) else 0.0 for ch in range(16))
# the spans lie within each channel's 10-90 % quantiles on the test image (coffee at 96 px, colorbalancergb's
# input and output, measured): g in 0.02-0.65, R 0.03-0.9, G 0.01-0.58, Jz 0.001-0.014 (slider: /0.01, the
# default boost), Cz 0.002-0.014 (idem), hz 0.096-0.18; at the output g 0.21-1.29, Jz 0.0067-0.021
CASES = [
    Case("Jz in range", {JZ_IN: (0.2, 1.3)}, opacity=80),
    Case("Jz out range", {JZ_IN + OUT: (0.7, 2.0)}),
    Case("R in range", {R_IN: (0.05, 0.9)}, opacity=70),
    Case("hz and Cz in ranges", {HZ_IN: (0.09, 0.19), CZ_IN: (0.2, 1.4)}),
    Case("G in inverted", {G_: (0.02, 0.6)}, inverted=(G_,), opacity=90),
    Case("g in and B out, include", {G_IN: (0.02, 0.6), B_IN + OUT: (0.15, 0.6)}, combine=COMBINE_INCL),
    Case("g out range, inverted mask", {G_IN + OUT: (0.2, 1.3)}, combine=COMBINE_INV, opacity=60),
    Case("Jz in, include, inverted", {JZ_IN: (0.2, 1.3)}, combine=COMBINE_INCL | COMBINE_INV, opacity=75),
    Case(
        "R out x2, contrast, brightness",
        {R_IN + OUT: (0.15, 0.9)},
        opacity=85,
        contrast=0.4,
        brightness=-0.3,
        boost=((R_IN + OUT, 1.0),),
    ),  # fmt: skip
]


def _masked(bp: BlendParams, case: Case, rng: np.random.Generator) -> BlendParams:
    """``bp`` with ``case``'s parametric mask (in scene RGB, mode normal)."""
    params = list(bp.blendif_parameters)
    blendif = 0
    for ch, (lo, hi) in case.spans.items():
        params[4 * ch : 4 * ch + 4] = sorted(float(v) for v in rng.uniform(lo, hi, 4))
        blendif |= 1 << ch
    for ch in case.inverted:
        blendif |= 1 << (ch + 16)
    if case.combine & COMBINE_INCL:  # darktable's GUI inverts the unused channels with this combine mode
        blendif ^= (0x77FF & ~blendif) << 16
    boost = list(DEFAULT_BOOST)
    for ch, b in case.boost:
        boost[ch] = b
    return dataclasses.replace(
        bp.uniform(case.opacity),
        mask_mode=MASK_ENABLED | MASK_PARAMETRIC,
        blend_cst=CS_RGB_SCENE,
        blendif=blendif,
        blendif_parameters=tuple(params),
        blendif_boost_factors=tuple(boost),
        mask_combine=case.combine,
        contrast=case.contrast,
        brightness=case.brightness,
    )


def test_parametric_masks_match_darktable(dt, make_raw, expect) -> None:
    """color balance rgb (after colorin: darktable's pipe is the working profile's RGB) blended in mode normal
    through a parametric mask at 9 seeded random settings (Jz in, Jz out, R in, hz and Cz in, G in inverted,
    g in and B out included, g out with the mask inverted, Jz in included and inverted, R out with the mask's
    contrast and brightness and its boost at +1 EV; opacities 60-100 %): darktable's tap-outs (one
    darktable-cli process) against the exact stage blended through replica/mask.py. Measured over 4 runs: every
    setting 75.0-100 dB (the worst run of each: Jz in 86.1, Jz out 87.1, R in 75.0, hz and Cz 82.3, G inverted
    89.1, include 89.9, inverted mask 95.4, include inverted 89.3, tone curve 77.6; each spread darktable's
    render noise, the settings fixed); the unmasked blend at the same opacity 12.3-22.3 dB. The bound, 55 dB, is
    20 dB under the worst run (as in test_blend's scene-mode test: exact up to darktable's float noise, so a
    stated margin rather than 3 std)."""

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.blendop import uniform_blend
    from darkproxy.replica.blend import blend_scene
    from darkproxy.replica.chain import ReplicaChain
    from darkproxy.replica.plan import ReplicaError, plan_replica

    raw: Path = make_raw(source="coffee", size=96)
    edit = {"saturation_global": 0.45, "contrast": 0.3, "vibrance": 0.2, "global_Y": 0.2}
    base = dt.edit(dt.default_history(raw), updates={"colorbalancergb": edit})
    default = item_blend(base.find("colorbalancergb"))
    assert default is not None and default.feathering_radius == default.blur_radius == default.details == 0.0
    rng = np.random.default_rng(28)
    histories = []
    for case in CASES:
        h = base.copy()
        h.find("colorbalancergb").blendop_params = _masked(default, case, rng).encode()
        histories.append(h)
    x, y, outputs = colorbalance_blend_taps(dt, raw, base, histories)
    for h, case, want in zip(histories, CASES, outputs, strict=True):
        blend = uniform_blend(h.find("colorbalancergb"))
        assert blend is not None and blend.mask is not None, case.name
        got = blend_scene(x, y, blend)[0].numpy()
        expect(f"{case.name}: psnr", display_psnr(got, want), ">", 55)
        unmasked = blend_scene(x, y, dataclasses.replace(blend, mask=None))[0].numpy()
        expect(f"{case.name}: unmasked psnr", display_psnr(unmasked, want), "<", 45)
        m = parametric_mask(x, y, blend.mask, blend.opacity)
        frac = float(m.mean()) / blend.opacity  # the mask selects part of the image, not all or nothing
        assert 0.03 < frac < 0.97, (case.name, frac)
    # the replica's plan runs the stage exactly, masked, and the chain's stage is the same blend
    plan = plan_replica(dt, histories[1], raw)
    st = {s.module: s for s in plan.stages}["colorbalancergb"]
    assert st.kind == "exact" and "blended with a parametric mask at 100 %" in st.note
    with torch.no_grad():
        alone = ReplicaChain(plan, {}).stage_alone("colorbalancergb", x)
    want_stage = blend_scene(x, y, uniform_blend(histories[1].find("colorbalancergb")))  # type: ignore[arg-type]
    assert torch.allclose(alone, want_stage, atol=1e-6)
    # what is not ported is refused in one line naming the setting: the details threshold, a raster mask, a mask
    # before colorin (the feathering and the blur are ported: test_mask_refine.py)
    for module, change, words in (
        ("colorbalancergb", {"details": 0.5}, "mask details threshold 0.5 (detail mask"),
        ("colorbalancergb", {"mask_mode": MASK_ENABLED | 8 | MASK_PARAMETRIC}, "raster mask"),  # drawn: test_drawn
        ("exposure", {"blend_cst": 2}, "parametric mask outside the working profile's RGB"),  # scene: blend_camera
    ):
        h = base.copy()
        bp = _masked(item_blend(h.find(module)), CASES[0], np.random.default_rng(0))  # type: ignore[arg-type]
        h.find(module).blendop_params = dataclasses.replace(bp, **change).encode()
        with pytest.raises(ReplicaError) as e:
            plan_replica(dt, h, raw)
        assert f"{module} instance 0 blends (" in str(e.value) and words in str(e.value), str(e.value)
        assert "\n" not in str(e.value)


def _mask(blendif: int, params: list[float], combine: int = 0, contrast: float = 0.0) -> ParametricMask:
    boost = [0.0] * 16
    boost[JZ_IN] = boost[CZ_IN] = boost[JZ_IN + OUT] = boost[CZ_IN + OUT] = float(np.log2(0.01))
    return ParametricMask(blendif, tuple(params), tuple(boost), combine, contrast, brightness=0.1 if contrast else 0.0)


def test_parametric_mask_gradcheck_in_breakpoints_and_opacity() -> None:
    """float64 gradcheck of the mask in the 16 x 4 breakpoints and the opacity: R and Jz in, g and hz out,
    exclusive and inclusive-inverted combines, with and without the mask's tone curve (pixels off the kinks)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64) * 0.8 + 0.02
    y = x.flip(1) * 1.3
    params = [0.0, 0.0, 1.0, 1.0] * 16
    params[4 * R_IN : 4 * R_IN + 4] = [0.113, 0.357, 0.561, 0.804]
    params[4 * JZ_IN : 4 * JZ_IN + 4] = [0.0, 0.0, 0.627, 1.149]  # open below: darktable's -inf
    params[4 * (G_IN + OUT) : 4 * (G_IN + OUT) + 4] = [0.071, 0.383, 1.0, 1.0]  # open above
    params[4 * (HZ_IN + OUT) : 4 * (HZ_IN + OUT) + 4] = [0.013, 0.217, 0.653, 0.947]
    blendif = (1 << R_IN) | (1 << JZ_IN) | (1 << (G_IN + OUT)) | (1 << (HZ_IN + OUT)) | (1 << (R_IN + 16))
    for combine, contrast in ((0, 0.0), (COMBINE_INCL | COMBINE_INV, 0.3)):
        mask = _mask(blendif ^ (0x77FF << 16 if combine & COMBINE_INCL else 0), params, combine, contrast)
        bp = torch.tensor(params, dtype=torch.float64, requires_grad=True)
        o = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        m = parametric_mask(x, y, mask, o, bp.reshape(16, 4))
        md = m.detach()
        assert md.shape == (2, 1, 5, 6) and 0.0 < float(md.mean()) < 0.7 and float(md.std()) > 0.05
        assert torch.autograd.gradcheck(lambda b, op, mk=mask: parametric_mask(x, y, mk, op, b.reshape(16, 4)), (bp, o))
        m.sum().backward()
        assert bp.grad is not None and bool((bp.grad[4 * R_IN : 4 * R_IN + 4] != 0).any())


def test_mask_problems_refuse_in_one_line() -> None:
    """A setting not ported (a details threshold, a raster mask) is refused in one line naming it; a parametric
    mask alone, refined by contrast, is not refused where the pipe is the working RGB."""
    bp = BlendParams(
        MASK_ENABLED | MASK_PARAMETRIC, CS_RGB_SCENE, 0x18, 0.0, 100.0, 0, 0, 1 << R_IN, 0.0, 5, 0.0, 0.2, 0.0, 0.0,
        (0, 0, 0), tuple([0.0, 0.0, 1.0, 1.0] * 16), tuple([0.0] * 16), "", 0, 0, False,
    )  # fmt: skip

    def item(b: BlendParams) -> types.SimpleNamespace:
        return types.SimpleNamespace(operation="colorbalancergb", multi_priority=0, blendop_params=b.encode(),
                                     blendop_version=BLEND_VERSION)  # fmt: skip

    assert blend_problem(item(bp), exact_uniform=True, exact_modes=True) is None
    why = blend_problem(item(dataclasses.replace(bp, details=0.5)), exact_uniform=True, exact_modes=True)
    assert why == (
        "colorbalancergb instance 0 blends (mask details threshold 0.5 (detail mask, not ported)): "
        "the replica does not reproduce that"
    )
    why = blend_problem(item(dataclasses.replace(bp, mask_mode=MASK_ENABLED | 8)), exact_uniform=True)
    assert why is not None and "(raster mask)" in why and "\n" not in why
