"""The exact unbreak input profile stage (``profile_gamma`` v2) against darktable-cli's tap-outs, and its gradients.

One darktable-cli process renders on a synthetic raw (coffee, 96 px) the module's input and its output at
each of :data:`SETTINGS` (the log mode: darktable's 16 EV preset and a random setting whose noise floor
clips the shadows; the gamma mode: darktable's defaults, the pure power ``linear == 0``, a random toe,
``gamma == 1``), all in camera RGB (colorin passing it through, as the module sees its pixels in darktable's
v3.0 order: before colorin), plus the linear Rec2020 input and the outputs of :data:`REC2020` settings (the
pipe's own colorin after the module). The curve on darktable's camera RGB input must reproduce each camera
RGB output; the stage on the Rec2020 input, through colorin's matrix measured from darktable's two inputs
(:func:`~darkproxy.replica.references.fit_camera_matrix`, as the chain measures it), each Rec2020 output.
Figures: display PSNR of the linear tap-outs (the project's encoding for linear images).

Over 6 fresh runs (2026-12-03), the worst setting per run, camera RGB: 82.1, 82.1, 82.1, 81.2, 82.1, 81.9 dB
(per setting, min-max over the runs: 100, 86.2-93.1, 81.7-88.7, 81.2-82.1, 82.1-89.3, 82.9-96.0; 100 dB: the
cap, MSE <= 1e-10); Rec2020 through colorin's measured matrix (its fit: 94.3 dB): 79.9, 85.9, 86.0, 85.6,
86.0, 86.0 (per setting 85.6-86.0, 79.9-89.8). The largest errors (up to 5.7e-3) sit at a few pixels (columns
87-89 of the 96 px render) that move between two renders of one history in one darktable process (setting 3:
87.7 dB between its two renders, 4.4e-3 apart); elsewhere the error is ~1e-4 relative (99th percentile
1.0e-4 to 8.5e-4 per setting, but the log setting whose shadows sit on the 1.5e-5 noise floor), the size of
darktable's approximate Lab round trip the other ports' tests measured (colorin outputs Lab). The bound,
60 dB, is stated as 19.9 dB under the worst Rec2020 run and 21.2 dB under the worst camera RGB run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

LOG, GAMMA = 0, 1


def _settings(seed: int) -> list[dict[str, Any]]:
    """The settings tested: the log mode (the 16 EV preset; grey 5-40 %, shadows -6..-3 EV, 4-12 EV: the
    darkest pixels on the output's noise floor) and the gamma mode (defaults, pure power, random toe, gamma 1)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    return [
        {"mode": LOG, "grey_point": 18.0, "shadows_range": -12.0, "dynamic_range": 16.0},
        {"mode": LOG, "grey_point": u(5.0, 40.0), "shadows_range": u(-6.0, -3.0), "dynamic_range": u(4.0, 12.0)},
        {"mode": GAMMA, "linear": 0.1, "gamma": 0.45},
        {"mode": GAMMA, "linear": 0.0, "gamma": u(0.3, 0.9)},
        {"mode": GAMMA, "linear": u(0.02, 0.5), "gamma": u(0.3, 0.9)},
        {"mode": GAMMA, "linear": u(0.02, 0.5), "gamma": 1.0},
    ]


SETTINGS = _settings(seed=11)
REC2020 = (0, 4)  # the settings also checked in linear Rec2020, through colorin's measured matrix
# the pipe as darktable's v3.0 order runs the module for a raw: before colorin
PIPE = ("rawprepare", "temperature", "highlights", "demosaic", "exposure", "profile_gamma", "colorin", "colorout")


def test_profile_gamma_matches_darktable_tapouts(dt, make_raw, expect) -> None:
    """Every setting of :data:`SETTINGS` in camera RGB, :data:`REC2020` also in linear Rec2020, all in one
    darktable-cli process."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import IDENTITY_SETTINGS, plan_tapout
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.references import fit_camera_matrix

    op = EXACT["profile_gamma"]
    raw: Path = make_raw(source="coffee", size=96)
    base = dt.default_history(raw)
    order = dt.schemas.pipe_order(base.compressed().iop_order_version)
    assert order.index("profile_gamma") < order.index("colorin")  # the v3.0 order: camera RGB
    assert dt.schemas.get("profile_gamma").version in op.versions
    plans = [plan_tapout(dt, base, "profile_gamma", e) for e in SETTINGS]

    def camera(side: Any) -> Any:  # colorin passing camera RGB through
        return dt.edit(side, updates=dict(IDENTITY_SETTINGS))

    sides = [camera(plans[0].input_sidecar), plans[0].input_sidecar]
    sides += [camera(p.output_sidecar) for p in plans] + [plans[i].output_sidecar for i in REC2020]
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(raw, s, Path(td) / f"{i:02d}.tif") for i, s in enumerate(sides)]
        imgs = [read_tiff(p) for p in dt.renderer(max_size=96).render_batch(jobs)]
    cam_in, rec_in = imgs[0], imgs[1]
    cam_out, rec_out = imgs[2 : 2 + len(SETTINGS)], imgs[2 + len(SETTINGS) :]
    assert cam_in.max() > 1.0, "no value above 1: the gamma mode's extrapolation goes untested"
    m, fit = fit_camera_matrix(rec_in, cam_in)
    ctx = StageContext(modules=PIPE, camera_matrix=tuple(tuple(float(v) for v in row) for row in m))
    psnrs, rec_psnrs = [], []
    with torch.no_grad():
        for p, ref in zip(plans, cam_out, strict=True):
            assert op.supports(p.params, ctx) is None, p.params
            if p.params.get("gamma") != 1.0 or p.params["mode"] == LOG:  # gamma 1: darktable's identity LUT
                assert display_psnr(cam_in, ref) < 40, "a setting darktable renders as its input tests nothing"
            psnrs.append(display_psnr(op.fn(torch.from_numpy(cam_in)[None], p.params, StageContext())[0].numpy(), ref))
        for i, ref in zip(REC2020, rec_out, strict=True):
            rec_psnrs.append(display_psnr(op.fn(torch.from_numpy(rec_in)[None], plans[i].params, ctx)[0].numpy(), ref))
    floor = float((cam_out[1] <= 1.001 * 2.0**-16).mean())  # the log mode's noise floor, on the output
    print(
        f"\nprofile_gamma camera RGB: {[round(v, 1) for v in psnrs]} dB; Rec2020 {[round(v, 1) for v in rec_psnrs]} dB"
    )
    print(f"colorin matrix fit {fit:.1f} dB; setting 1 at the noise floor: {floor:.1%} of the values")
    assert floor > 0.001, "the log mode's noise floor goes untested"
    expect("profile_gamma: worst setting psnr, camera RGB", min(psnrs), ">", 60)
    expect("profile_gamma: worst setting psnr, Rec2020 through colorin's matrix", min(rec_psnrs), ">", 60)


def test_profile_gamma_refuses_and_places() -> None:
    """An unknown mode is refused in one line; before colorin the stage needs colorin's matrix (and the chain
    then asks for it); after colorin (or placed nowhere) it runs on its input as is."""
    from darkproxy.errors import DarkproxyError
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.mosaicplan import needs_camera_matrix
    from darkproxy.replica.ports.profile_gamma import profile_gamma_curve

    op = EXACT["profile_gamma"]
    why = op.supports({"mode": 2}, StageContext())
    assert why is not None and "\n" not in why
    x = torch.rand(1, 3, 4, 4) + 0.01
    with pytest.raises(DarkproxyError, match="camera matrix"):
        op.fn(x, SETTINGS[0], StageContext(modules=PIPE))
    after = ("demosaic", "colorin", "profile_gamma", "colorout")  # the JPEG order: working RGB
    assert torch.equal(op.fn(x, SETTINGS[0], StageContext(modules=after)), profile_gamma_curve(x, SETTINGS[0]))

    class St:
        def __init__(self, module: str, kind: str) -> None:
            self.module, self.kind = module, kind

    assert needs_camera_matrix([St("exposure", "exact"), St("profile_gamma", "exact")], PIPE)
    assert not needs_camera_matrix([St("profile_gamma", "proxy")], PIPE)
    assert not needs_camera_matrix([St("profile_gamma", "exact")], after)


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_profile_gamma_gradcheck(setting: int) -> None:
    """float64 gradients in the image and the mode's sliders of the smooth surrogate (log2; the unrounded
    curve's LUT read by linear interpolation, its power law above 1), and the exact stage's gradients are the
    surrogate's."""
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.ports.profile_gamma import profile_gamma_curve

    op = EXACT["profile_gamma"]
    gen = torch.Generator().manual_seed(setting)
    x = (torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=gen) * 1.4 + 0.01).requires_grad_(True)
    edit = SETTINGS[setting]
    names = [n for n in op.params if n in edit]
    vals = [torch.tensor([edit[n]], dtype=torch.float64, requires_grad=True) for n in names]

    def f(img: torch.Tensor, *sliders: torch.Tensor) -> torch.Tensor:
        return profile_gamma_curve(img, {**edit, **dict(zip(names, sliders, strict=True))}, smooth=True)

    assert torch.autograd.gradcheck(f, (x, *vals), eps=1e-6, atol=1e-5, rtol=1e-3)
    w = torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=gen)
    g_smooth = torch.autograd.grad((f(x, *vals) * w).sum(), (x, *vals))
    exact = op.fn(x, {**edit, **dict(zip(names, vals, strict=True))}, StageContext())
    g_exact = torch.autograd.grad((exact * w).sum(), (x, *vals))
    # the same graph; the gamma mode's power law takes darktable's float32 coefficients (~1e-7 apart)
    for a, b in zip(g_smooth, g_exact, strict=True):
        assert torch.isfinite(b).all() and torch.allclose(a, b, rtol=1e-3, atol=1e-5)
