"""The exact rgb levels (v1) stage against darktable-cli's tap-outs, its known maths and gradients.

One darktable-cli process renders rgblevels' input and its output at four settings (linked channels preserving
colours by luminance, darktable's default; by the max norm, with a white point below the image's brightest; linked
without preservation; independent channels) on synthetic raws, coffee and chelsea at render scale 0.5 (a pointwise
module: the scale does not enter it; at scale 1 darktable's full-resolution demosaic leaves run-to-run noise near
the right edge, docs/darktable-notes.md, which a strong level amplifies: a CI run of rgb levels read 64.8 dB there
against 79.5-100 in 5 runs). Figures: display PSNR of the linear tap-outs, repeated to the digit in every run
(2026-12-05: chelsea 94.5-100 dB over 7 runs, coffee 92.9-98.9 over 2): bound 85, 7.9 dB under the worst."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

SETTINGS: list[dict[str, Any]] = [
    {"levels[0][0]": 0.02, "levels[0][1]": 0.4, "levels[0][2]": 0.9},
    {"preserve_colors": 2, "levels[0][0]": 0.05, "levels[0][1]": 0.3, "levels[0][2]": 0.5},
    {"preserve_colors": 0, "levels[0][0]": 0.0, "levels[0][1]": 0.6, "levels[0][2]": 0.8},
    {"autoscale": 1, "levels[0][0]": 0.03, "levels[0][1]": 0.45, "levels[0][2]": 0.9,
     "levels[1][0]": 0.0, "levels[1][1]": 0.55, "levels[1][2]": 1.0,
     "levels[2][0]": 0.05, "levels[2][1]": 0.3, "levels[2][2]": 0.7},
]  # fmt: skip
RAWS = {"coffee@0.5": ("coffee", 192), "chelsea@0.5": ("chelsea", 192)}
BOUNDS = {"coffee@0.5": 85.0, "chelsea@0.5": 85.0}


@pytest.fixture(scope="module")
def tapouts(dt, make_raw) -> dict[str, list[tuple[np.ndarray, Any, np.ndarray, float]]]:
    from tests.replica.taps import scaled_tapouts

    cases = {c: (make_raw(source=s, size=n), "rgblevels", SETTINGS) for c, (s, n) in RAWS.items()}
    return scaled_tapouts(dt, cases, 96)


@pytest.mark.parametrize("case", sorted(RAWS))
def test_rgblevels_matches_darktable_tapouts(case: str, tapouts, dt, expect) -> None:
    from tests.replica.taps import check_port

    check_port(dt, expect, "rgblevels", f"rgblevels {case}", tapouts[case], bound=BOUNDS[case], changed_below=45)


def test_known_maths_and_gradients() -> None:
    """Levels 0 / 0.5 / 1 are the identity up to the table's step in every mode; autograd against central
    differences in a level and the image within 2 % (the table's index straight through)."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["rgblevels"]
    g = torch.Generator().manual_seed(11)
    img = 0.05 + 0.6 * torch.rand(1, 3, 5, 4, dtype=torch.float64, generator=g)
    flat = [[0.0, 0.5, 1.0]] * 3
    for mode in ({"autoscale": 0, "preserve_colors": 1}, {"autoscale": 0, "preserve_colors": 0}, {"autoscale": 1}):
        same = op.fn(img, {**mode, "levels": flat}, StageContext())
        torch.testing.assert_close(same, img, atol=0, rtol=5e-4)  # one 1/65536 step of p (over p >= 0.05)
    grey = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    x = img.clone().requires_grad_(True)

    def f(im: torch.Tensor, gr: torch.Tensor) -> torch.Tensor:
        v = {"autoscale": 0, "preserve_colors": 1, "levels": flat, "levels[0][0]": 0.02, "levels[0][1]": gr}
        return op.fn(im, v, StageContext()).sum()

    gx, gg = torch.autograd.grad(f(x, grey), (x, grey))
    with torch.no_grad():
        numeric = float((f(x, grey + 1e-3) - f(x, grey - 1e-3)) / 2e-3)
        assert float(gg[0]) == pytest.approx(numeric, rel=0.02)
        for idx in ((0, 0, 0, 0), (0, 2, 3, 1)):
            up, down = x.detach().clone(), x.detach().clone()
            up[idx] += 1e-3
            down[idx] -= 1e-3
            assert float(gx[idx]) == pytest.approx(float((f(up, grey) - f(down, grey)) / 2e-3), rel=0.02), idx
