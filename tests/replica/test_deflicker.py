"""exposure's deflicker mode (1) as an exact stage against darktable-cli's tap-outs, and its known maths.

darktable sets the exposure from the raw itself (``_compute_correction``): the raw value at a percentile of the
photosites' histogram, in EV under the white point, brought to a target level. One darktable-cli process renders
exposure's input and output at three deflicker settings (darktable's defaults, the "magic lantern" preset's; a high
percentile with a high target; a low one, with the manual exposure slider moved, which deflicker ignores) on
synthetic raws of coffee and chelsea at render scale 0.5 (a per-pixel module). Over 5 fresh runs (2026-12-05) the
settings read 92.3-100 dB, repeated to the digit; the bound, 85 dB, is the pointwise ports'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

SETTINGS: list[dict[str, Any]] = [
    {"mode": 1},
    {"mode": 1, "deflicker_percentile": 90.0, "deflicker_target_level": -1.5},
    {"mode": 1, "deflicker_percentile": 5.0, "deflicker_target_level": -9.0, "exposure": 3.0},
]
RAWS = {"coffee@0.5": ("coffee", 192), "chelsea@0.5": ("chelsea", 192)}


@pytest.mark.parametrize("case", sorted(RAWS))
def test_deflicker_matches_darktable_tapouts(case: str, dt, make_raw, expect) -> None:
    import torch

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.plan import raw_levels
    from tests.replica.taps import sized_tapouts

    source, size = RAWS[case]
    raw = make_raw(source=source, size=size)
    full, rows = sized_tapouts(dt, {case: (raw, "exposure", SETTINGS)})[case]
    op = EXACT["exposure"]
    psnrs, changed = [], []
    for (inp, p, ref, scale), setting in zip(rows, SETTINGS, strict=True):
        levels = raw_levels(dt, dt.edit(dt.default_history(raw), updates={"exposure": setting}), raw)
        assert levels is not None
        ctx = StageContext(scale=scale, full_size=full, raw_levels=levels)
        assert op.supports(p.params, ctx) is None
        with torch.no_grad():
            psnrs.append(display_psnr(op.fn(torch.from_numpy(inp)[None], p.params, ctx)[0].numpy(), ref))
        changed.append(display_psnr(inp, ref))
    print(f"\ndeflicker {case}: {[round(v, 1) for v in psnrs]} dB (input vs output: {[round(v, 1) for v in changed]})")
    assert max(changed) < 45, "settings that change nothing test nothing"
    expect(f"deflicker {case}: worst setting psnr", min(psnrs), ">", 85)


def test_deflicker_known_maths() -> None:
    """A histogram whose photosites sit at black + (white - black) / 16 is at -4 EV: the exposure is the target
    plus 4; the percentile picks the first bin whose cumulative count reaches it; without the raw's levels the
    stage refuses in one line."""
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.ports.exposure import deflicker_exposure

    black, white = 512, 512 + 16 * 1000
    hist = np.zeros(0x10000, dtype=np.int64)
    hist[black + 1000] = 70
    hist[black + 4000] = 30
    assert deflicker_exposure({"deflicker_percentile": 50.0, "deflicker_target_level": -4.0}, (hist, black, white)) == (
        pytest.approx(0.0, abs=1e-6)
    )
    assert deflicker_exposure({"deflicker_percentile": 80.0, "deflicker_target_level": -4.0}, (hist, black, white)) == (
        pytest.approx(-2.0, abs=1e-6)
    )
    assert "histogram" in (EXACT["exposure"].supports({"mode": 1}, StageContext(scale=1.0)) or "")


def test_exposure_v7_adds_back_the_highlight_bias() -> None:
    """darktable 5.4's exposure v7 (commit_params): exposure - EXIF bias + highlight preservation bias where the
    two flags ask, the highlight bias read where positive and clamped to 4 EV; unread where asked: one line."""
    import torch

    from darkproxy.errors import DarkproxyError
    from darkproxy.replica.registry import EXACT, StageContext

    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    op = EXACT["exposure"].fn
    base = {"exposure": 0.5, "black": 0.0, "compensate_exposure_bias": True}

    def run(v: dict, **ctx: float | None) -> torch.Tensor:
        return op(x, v, StageContext(**ctx))  # type: ignore[arg-type]

    plain = run({"exposure": 1.2, "black": 0.0})
    got = run({**base, "compensate_hilite_pres": True}, exposure_bias=-0.3, highlight_bias=0.4)
    assert torch.allclose(got, plain) and torch.allclose(plain, x * 2.0**1.2)
    assert torch.allclose(run({**base, "compensate_hilite_pres": True}, exposure_bias=0.5, highlight_bias=6.0), x * 16)
    assert torch.allclose(run({**base, "compensate_hilite_pres": True}, exposure_bias=0.5, highlight_bias=-1.0), x)
    assert torch.allclose(run({**base, "compensate_hilite_pres": False}, exposure_bias=0.5, highlight_bias=1.0), x)
    with pytest.raises(DarkproxyError, match="highlight bias"):
        run({**base, "compensate_hilite_pres": True}, exposure_bias=0.0)
