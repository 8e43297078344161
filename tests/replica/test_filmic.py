"""The exact filmic (v3, darktable's first filmic) stage against darktable-cli's tap-outs and known maths.

One darktable-cli process renders filmic's input and its output at four settings (the "09 EV (low-key)" preset,
which preserves the colours by the max of RGB; darktable's defaults, per channel; the averaged cubic and monotone
curve with a balance and both desaturations; the "18 EV (HDR++)" sources per channel on a monotone curve) on
synthetic raws of coffee and chelsea at render scale 0.5 (a pointwise module: the scale does not enter it, and
darktable's render noise at scale 1 is not the port's). Figures: display PSNR of the linear tap-outs.

Over 5 fresh runs (2026-12-05) every setting gave 100 dB on both raws, repeated to the digit. The bound, 85 dB, is
the other pointwise ports' (15 dB under the cap: a wrong rounding in the LUT index reads far lower).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

PRESET: dict[str, Any] = {
    "interpolator": 0,
    "output_power": 2.2,
    "white_point_target": 100.0,
    "black_point_target": 0.0,
    "grey_point_target": 18.0,
    "contrast": 1.618,
    "preserve_color": 1,
    "balance": -12.0,
    "saturation": 60.0,
    "global_saturation": 70.0,
    "grey_point_source": 25.4,
    "latitude_stops": 2.25,
    "white_point_source": 1.95,
    "black_point_source": -7.05,
}
HDR = {"grey_point_source": 1.125, "latitude_stops": 6.0, "white_point_source": 6.45, "black_point_source": -11.55}
SETTINGS: list[dict[str, Any]] = [
    PRESET,
    {},
    {"interpolator": 3, "global_saturation": 80.0, "saturation": 50.0, "balance": 20.0, "contrast": 1.3},
    PRESET | HDR | {"interpolator": 2, "preserve_color": 0},
]
RAWS = {"coffee@0.5": ("coffee", 192), "chelsea@0.5": ("chelsea", 192)}


@pytest.fixture(scope="module")
def tapouts(dt, make_raw) -> dict[str, tuple[tuple[float, float], list[tuple[np.ndarray, Any, np.ndarray, float]]]]:
    from tests.replica.taps import sized_tapouts

    return sized_tapouts(dt, {c: (make_raw(source=s, size=n), "filmic", SETTINGS) for c, (s, n) in RAWS.items()})


@pytest.mark.parametrize("case", sorted(RAWS))
def test_filmic_matches_darktable_tapouts(case: str, tapouts, dt, expect) -> None:
    from tests.replica.taps import check_port

    full, rows = tapouts[case]
    check_port(dt, expect, "filmic", f"filmic {case}", rows, bound=85, changed_below=30, full_size=full)


def test_known_maths_and_gradients() -> None:
    """sse.h's log2 is exact at powers of two; the approximations' largest errors, measured here on a log grid
    (log2 5.3e-5 absolute, exp2 2.7e-6 relative, fastlog2 1.5e-4 absolute, the SSE2 cube root 3.0e-5 relative),
    are bounded at about twice that (a wrong polynomial or bit trick is off by far more); the stage's gradient in
    the image is finite and positive on a grey ramp (the tone curve rises)."""
    import torch

    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.ports.filmic import lab_f, mm_exp2, mm_log2
    from darkproxy.replica.ports.profile_gamma import fastlog2

    p2 = torch.tensor([0.125, 0.5, 1.0, 2.0, 64.0])
    assert mm_log2(p2).tolist() == [-3.0, -1.0, 0.0, 1.0, 6.0]
    x = torch.logspace(-4, 2, 200)
    assert float((mm_log2(x) - torch.log2(x)).abs().max()) < 1e-4
    e = torch.linspace(-20.0, 5.0, 200)
    assert float(((mm_exp2(e) - torch.exp2(e)) / torch.exp2(e)).abs().max()) < 5e-6
    assert float((fastlog2(x) - torch.log2(x)).abs().max()) < 3e-4
    c = torch.logspace(-2, 0.5, 200)
    assert float((lab_f(c) / c ** (1.0 / 3.0) - 1.0).abs().max()) < 6e-5
    op = EXACT["filmic"]
    ramp = torch.linspace(0.01, 0.9, 24, dtype=torch.float64).reshape(1, 1, 4, 6).expand(1, 3, 4, 6).contiguous()
    ramp.requires_grad_(True)
    for setting in SETTINGS:
        (g,) = torch.autograd.grad(op.fn(ramp, setting, StageContext(scale=1.0)).sum(), ramp)
        assert bool(torch.isfinite(g).all()) and float(g.sum()) > 0.0
