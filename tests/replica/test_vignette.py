"""The exact vignette stage (``vignette`` v4) against darktable-cli's tap-outs, at two render scales, and
its gradients.

One darktable-cli process per render size renders vignette's input and its output at ``len(SETTINGS)``
settings on a synthetic raw (coffee, 192 px long side, 3:2): darktable's "lomo" preset, random sliders with
the centre off the middle, ``autoratio``, a width/height ratio on each side of 1, shapes from 0.5 to 3,
brightness above and below 0, ``unbound`` off. The stage, with the render scale and the raw's size as the
chain gives them (:attr:`StageContext.scale` to 4 digits, :attr:`StageContext.full_size`), must reproduce
each output. Figures: display PSNR of the linear tap-outs, the worst setting per size. Over 5 fresh runs
(2026-12-03) every run identical: 93.6 dB at 192 px (scale 1) and 93.7 at 96 px (scale 0.5), the others
bit for bit (100); the bound, 60 dB, is stated as 33.6 dB under the worst run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.replica.taps import module_tapouts

LOMO = {"scale": 40.0, "falloff_scale": 100.0, "brightness": -1.0, "saturation": 0.5}


def _settings() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    out: list[dict[str, Any]] = [dict(LOMO)]
    for k in range(5):
        out.append(
            {
                "scale": float(rng.uniform(10, 90)),
                "falloff_scale": float(rng.uniform(10, 120)),
                "brightness": float(rng.uniform(-1, 0.6)),
                "saturation": float(rng.uniform(-1, 1)),
                "center.x": float(rng.uniform(-0.6, 0.6)),
                "center.y": float(rng.uniform(-0.6, 0.6)),
                "autoratio": int(k == 1),
                "whratio": float(rng.uniform(0.4, 1.0) if k % 2 else rng.uniform(1.0, 1.7)),
                "shape": float(rng.uniform(0.5, 3.0)),
                "unbound": int(k != 3),
            }
        )
    return out


SETTINGS = _settings()


@pytest.mark.parametrize("size", [192, 96])
def test_vignette_matches_darktable(dt, make_raw, expect, size: int) -> None:
    """Every setting at render size ``size`` (scale 1 and 0.5 of the 192 px raw), one darktable process."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.tapout import raw_size, render_scale
    from darkproxy.replica import EXACT, StageContext

    raw: Path = make_raw(source="coffee", size=192)
    inp, plans, outs = module_tapouts(dt, raw, {"vignette": SETTINGS}, size)["vignette"]
    imgs = [inp, *outs]
    wh = raw_size(raw)
    assert wh is not None
    scale = render_scale(wh, imgs[0].shape)
    assert scale is not None
    ctx = StageContext(scale=scale, full_size=(float(wh[0]), float(wh[1])))
    x = torch.from_numpy(imgs[0])[None]
    op = EXACT["vignette"]
    psnrs = []
    for s, p, ref in zip(SETTINGS, plans, imgs[1:], strict=True):
        assert op.supports(p.params, ctx) is None
        psnrs.append(display_psnr(op.fn(x, p.params, ctx)[0].numpy(), ref))
        assert display_psnr(ref, imgs[0]) < 60, s  # the setting does something
    print(f"\nvignette at {size} px (scale {scale}): {[round(v, 1) for v in psnrs]} dB")
    expect(f"vignette {size} px: worst setting psnr", min(psnrs), ">", 60)


def test_vignette_refusals() -> None:
    from darkproxy.errors import DarkproxyError
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["vignette"]
    ctx = StageContext(scale=0.5, full_size=(192.0, 128.0))
    assert "dithering" in (op.supports({**LOMO, "dithering": 1}, ctx) or "")
    with pytest.raises(DarkproxyError, match="full-resolution size"):
        op.fn(torch.ones(1, 3, 4, 6), LOMO, StageContext(scale=0.5))


def test_vignette_gradcheck() -> None:
    """float64 gradients in the image and every regressable slider (pixels away from the ramp's kinks)."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["vignette"]
    ctx = StageContext(scale=1.0, full_size=(6.0, 4.0))
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, 4, 6, dtype=torch.float64, generator=gen) * 0.6 + 0.2).requires_grad_(True)
    edit = {**SETTINGS[2], "scale": 20.0, "falloff_scale": 150.0, "autoratio": 0, "unbound": 1}
    names = list(op.params)
    vals = [torch.tensor([float(edit.get(n, 0.0))], dtype=torch.float64, requires_grad=True) for n in names]

    def f(img: torch.Tensor, *sliders: torch.Tensor) -> torch.Tensor:
        return op.fn(img, {**edit, **dict(zip(names, sliders, strict=True))}, ctx)

    assert torch.autograd.gradcheck(f, (x, *vals), eps=1e-6, atol=1e-5, rtol=1e-3)
