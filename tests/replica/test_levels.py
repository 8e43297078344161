"""The exact levels (v2, manual mode) stage against darktable-cli's tap-outs, its known maths and gradients.

One darktable-cli process renders levels' input and its output at three settings (a black and white point with a
brighter grey; a darker grey; a white point below the image's brightest, where darktable computes the curve past its
table) on synthetic raws, coffee and chelsea at render scale 0.5 (a pointwise module: the scale does not enter it;
at scale 1 darktable's full-resolution demosaic leaves run-to-run noise near the right edge,
docs/darktable-notes.md, which a strong level amplifies: a CI run of rgb levels read 64.8 dB there against 79.5-100
in 5 runs). Figures: display PSNR of the linear tap-outs, repeated to the digit in every run (2026-12-05: chelsea
100 dB over 7 runs, coffee 100 over 2): bound 85."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

SETTINGS: list[dict[str, Any]] = [
    {"levels[0]": 0.05, "levels[1]": 0.4, "levels[2]": 0.95},
    {"levels[0]": 0.0, "levels[1]": 0.6, "levels[2]": 1.0},
    {"levels[0]": 0.1, "levels[1]": 0.35, "levels[2]": 0.6},
]
RAWS = {"coffee@0.5": ("coffee", 192), "chelsea@0.5": ("chelsea", 192)}
BOUNDS = {"coffee@0.5": 85.0, "chelsea@0.5": 85.0}


@pytest.fixture(scope="module")
def tapouts(dt, make_raw) -> dict[str, list[tuple[np.ndarray, Any, np.ndarray, float]]]:
    from tests.replica.taps import scaled_tapouts

    cases = {c: (make_raw(source=s, size=n), "levels", SETTINGS) for c, (s, n) in RAWS.items()}
    return scaled_tapouts(dt, cases, 96)


@pytest.mark.parametrize("case", sorted(RAWS))
def test_levels_matches_darktable_tapouts(case: str, tapouts, dt, expect) -> None:
    from tests.replica.taps import check_port

    check_port(dt, expect, "levels", f"levels {case}", tapouts[case], bound=BOUNDS[case], changed_below=45)


def test_known_maths_gradients_and_refusal() -> None:
    """Levels 0 / 0.5 / 1 are the identity up to the table's step; autograd against central differences in the
    three levels within 1 % and in the image within 2 % (the table's index straight through); the automatic mode
    refused in one line."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["levels"]
    g = torch.Generator().manual_seed(3)
    img = 0.05 + 0.6 * torch.rand(1, 3, 5, 4, dtype=torch.float64, generator=g)
    same = op.fn(img, {"levels": [0.0, 0.5, 1.0]}, StageContext())
    torch.testing.assert_close(same, img, atol=2e-4, rtol=0)  # one 1/65536 step of L / 100
    lv = torch.tensor([0.08, 0.42, 0.9], dtype=torch.float64, requires_grad=True)
    x = img.clone().requires_grad_(True)

    def f(im: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return op.fn(im, {"levels[0]": t[0:1], "levels[1]": t[1:2], "levels[2]": t[2:3]}, StageContext()).sum()

    gx, gl = torch.autograd.grad(f(x, lv), (x, lv))
    with torch.no_grad():
        for k in range(3):
            d = torch.zeros_like(lv)
            d[k] = 1e-3
            assert float(gl[k]) == pytest.approx(float((f(x, lv + d) - f(x, lv - d)) / 2e-3), rel=0.01), k
        for idx in ((0, 0, 0, 0), (0, 1, 3, 2)):
            up, down = x.detach().clone(), x.detach().clone()
            up[idx] += 1e-3
            down[idx] -= 1e-3
            assert float(gx[idx]) == pytest.approx(float((f(up, lv) - f(down, lv)) / 2e-3), rel=0.02), idx
    why = op.supports({"mode": 1, "levels": [0.0, 0.5, 1.0]}, StageContext())
    assert why and "automatic" in why and "\n" not in why
