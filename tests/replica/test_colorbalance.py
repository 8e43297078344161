"""The exact legacy color balance stage (``colorbalance`` v3) against darktable-cli's tap-outs, and its gradients.

One darktable-cli process renders the module's input and its output at each of :data:`CHOICES` on a synthetic
raw (coffee, 96 px): every mode (lift/gamma/gain sRGB and ProPhoto, slope/offset/power), with the saturations
and the contrast set and at exactly 1 (where darktable skips the step), the elements of lift, gamma and gain
drawn in 0.7..1.3. The stage on darktable's input must reproduce each output. Figures: display PSNR of the
linear tap-outs (the project's encoding for linear images).

Over 7 fresh runs (2026-12-03) the worst setting per run: 84.5, 77.3, 81.3, 77.2, 78.9, 78.6, 76.6 dB (every
setting 76.6-100; 100 dB is the cap, MSE <= 1e-10). In a run without darktable's run-to-run noise between renders in one
process every setting is bit for bit up to 5e-6 (100 dB; darktable's approximate pow and cube root replaced by
the true functions: 90.6-100 dB); the lower figures vary between runs at the same settings: that noise. In
``tests/replica/test_ports.py`` (4 random settings, every mode) the worst per run: 100, 86.3, 97.8, 100, 96.4,
100 dB. The bound, 60 dB, is stated as 16.6 dB under the worst run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.replica.taps import module_tapouts

# mode, and which of saturation / contrast / saturation_out are drawn (the others exactly 1)
CHOICES: list[dict[str, Any]] = [
    {"mode": 2},
    {"mode": 2, "saturation": True, "contrast": True},  # the sRGB mode ignores both
    {"mode": 0, "saturation": True, "contrast": True, "saturation_out": True},
    {"mode": 0},
    {"mode": 1, "saturation": True, "contrast": True, "saturation_out": True},
    {"mode": 1, "contrast": True},
    {"mode": 1, "saturation_out": True},
]


def _settings(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for ch in CHOICES:
        e: dict[str, Any] = {"mode": ch["mode"]}
        for a in ("lift", "gamma", "gain"):
            e[a] = [float(rng.uniform(0.7, 1.3)) for _ in range(4)]
        e["saturation"] = float(rng.uniform(0.3, 1.8)) if ch.get("saturation") else 1.0
        e["contrast"] = float(rng.uniform(0.6, 1.5)) if ch.get("contrast") else 1.0
        e["grey"] = float(rng.uniform(10.0, 40.0))
        e["saturation_out"] = float(rng.uniform(0.3, 1.8)) if ch.get("saturation_out") else 1.0
        out.append(e)
    return out


def _flat(e: dict[str, Any]) -> dict[str, Any]:
    """The array params as darktable's element names (how the tap-out's edit sets them)."""
    out = {k: v for k, v in e.items() if not isinstance(v, list)}
    out |= {f"{a}[{i}]": e[a][i] for a in ("lift", "gamma", "gain") for i in range(4)}
    return out


def test_colorbalance_matches_darktable_tapouts(dt, make_raw, expect) -> None:
    """Every setting of :func:`_settings` against its darktable tap-out, all in one darktable-cli process."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["colorbalance"]
    raw: Path = make_raw(source="coffee", size=96)
    assert dt.schemas.get("colorbalance").version in op.versions
    inp, plans, outs = module_tapouts(dt, raw, {"colorbalance": [_flat(e) for e in _settings(seed=41)]})["colorbalance"]
    imgs = [inp, *outs]
    x = torch.from_numpy(imgs[0])[None]
    psnrs = []
    for p, ref in zip(plans, imgs[1:], strict=True):
        assert op.supports(p.params, StageContext()) is None, p.params
        assert display_psnr(imgs[0], ref) < 45, "a setting darktable renders as its input tests nothing"
        with torch.no_grad():
            psnrs.append(display_psnr(op.fn(x, p.params, StageContext())[0].numpy(), ref))
    print(f"\ncolorbalance: {[round(v, 1) for v in psnrs]} dB")
    expect("colorbalance: worst setting psnr", min(psnrs), ">", 60)


def test_colorbalance_refuses_an_unknown_mode() -> None:
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["colorbalance"]
    assert op.supports(_settings(seed=1)[0], StageContext()) is None
    why = op.supports({**_settings(seed=1)[0], "mode": 3}, StageContext())
    assert why is not None and "\n" not in why


@pytest.mark.parametrize("setting", range(len(CHOICES)))
def test_colorbalance_gradcheck(setting: int) -> None:
    """float64 gradients in the image and every regressable slider (the image away from 0, where the clips have
    their kinks), the saturations and the contrast included where darktable skips them at 1."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["colorbalance"]
    gen = torch.Generator().manual_seed(setting)
    x = (torch.rand(1, 3, 2, 3, dtype=torch.float64, generator=gen) * 0.5 + 0.2).requires_grad_(True)
    edit = _flat(_settings(seed=1)[setting])
    names = list(op.params)
    vals = [torch.tensor([edit[n]], dtype=torch.float64, requires_grad=True) for n in names]

    def f(img: torch.Tensor, *sliders: torch.Tensor) -> torch.Tensor:
        return op.fn(img, {**edit, **dict(zip(names, sliders, strict=True))}, StageContext())

    assert torch.autograd.gradcheck(f, (x, *vals), eps=1e-6, atol=1e-5, rtol=1e-3)
