"""The exact contrast brightness saturation (colisa v1) stage against darktable-cli's tap-outs, its known maths
and gradients.

One darktable-cli process renders colisa's input and its output at four settings (more contrast: the sigmoid table;
less contrast and more brightness; darker and desaturated; all three raised) on synthetic raws, coffee and chelsea
at render scale 0.5 (a pointwise module: the scale does not enter it; at scale 1 darktable's full-resolution
demosaic leaves run-to-run noise near the right edge, docs/darktable-notes.md, which a strong level amplifies: a CI
run of rgb levels read 64.8 dB there against 79.5-100 in 5 runs). Figures: display PSNR of the linear tap-outs,
repeated to the digit in every run (2026-12-05: chelsea 94.9-100 dB over 7 runs, coffee 92.7-100 over 2): bound 85,
7.7 dB under the worst."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

SETTINGS: list[dict[str, Any]] = [
    {"contrast": 0.6},
    {"contrast": -0.4, "brightness": 0.3},
    {"brightness": -0.4, "saturation": -0.6},
    {"contrast": 0.3, "brightness": 0.2, "saturation": 0.5},
]
RAWS = {"coffee@0.5": ("coffee", 192), "chelsea@0.5": ("chelsea", 192)}
BOUNDS = {"coffee@0.5": 85.0, "chelsea@0.5": 85.0}


@pytest.fixture(scope="module")
def tapouts(dt, make_raw) -> dict[str, list[tuple[np.ndarray, Any, np.ndarray, float]]]:
    from tests.replica.taps import scaled_tapouts

    cases = {c: (make_raw(source=s, size=n), "colisa", SETTINGS) for c, (s, n) in RAWS.items()}
    return scaled_tapouts(dt, cases, 96)


@pytest.mark.parametrize("case", sorted(RAWS))
def test_colisa_matches_darktable_tapouts(case: str, tapouts, dt, expect) -> None:
    from tests.replica.taps import check_port

    check_port(dt, expect, "colisa", f"colisa {case}", tapouts[case], bound=BOUNDS[case], changed_below=45)


def test_known_maths_and_gradients() -> None:
    """No change at 0 / 0 / 0 (both tables the identity, extrapolated by u^1 above 100); gradcheck in the image
    and the three sliders."""
    from darkproxy.replica import EXACT, StageContext

    op = EXACT["colisa"]
    img = 0.05 + 0.9 * torch.rand(1, 3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.fn(img, {}, StageContext()), img, atol=1e-9, rtol=1e-9)
    x = img.clone().requires_grad_(True)
    sl = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (0.4, 0.2, -0.3)]

    def f(im: torch.Tensor, c: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return op.fn(im, {"contrast": c, "brightness": b, "saturation": s}, StageContext())

    assert torch.autograd.gradcheck(f, (x, *sl), eps=1e-6, atol=1e-5, rtol=1e-3)
