"""darktable-cli's export size and scale (darkproxy.darktable.exportsize) against the installed darktable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from darkproxy.darktable.exportsize import export_scale, export_size, floors_its_size


@pytest.mark.parametrize(
    "full, box, old, new",
    [
        ((400, 266), 96, (96, 64), (96, 63)),  # 266 * 0.24 = 63.84: rounded up before 4.8, floored after
        ((96, 64), 50, (50, 34), (50, 33)),
        ((204, 135), 128, (128, 85), (128, 84)),
        ((128, 86), 96, (96, 65), (96, 64)),
        ((100, 50), 200, (100, 50), (100, 50)),  # never upscaled
    ],
)
def test_both_rules_on_known_exports(full, box, old, new) -> None:
    assert export_size(full, box, (4, 2, 1)) == old and export_size(full, box, None) == old
    assert export_size(full, box, (5, 0, 1)) == new and export_size(full, box, (4, 8)) == new
    assert not floors_its_size((4, 6, 1)) and floors_its_size((5, 6, 0))


def test_scale_is_corrected_before_48_only() -> None:
    """darktable 4.2 raises the scale where reading the export back runs past the image (128x86 into 96 px:
    ceil(65 / 0.75) = 87 > 86), 4.8 on keeps ``min(box / p)``; a size that is not an export is ``None``."""
    assert export_scale((128, 86), (65, 96), None, (4, 2, 1)) == pytest.approx(0.75 * 87 / 86, rel=1e-6)
    assert export_scale((128, 86), (64, 96), None, (5, 0, 1)) == pytest.approx(0.75, rel=1e-6)
    assert export_scale((128, 86), (64, 96), None, (4, 2, 1)) is None
    assert export_scale((128, 86), (86, 128), None, (5, 0, 1)) == 1.0


@pytest.mark.parametrize("source, size", [("coffee", 200), ("chelsea", 319), ("rocket", 300)])
def test_export_size_is_darktables(dt, make_raw: Callable[..., Path], source: str, size: int) -> None:
    """The installed darktable's export of synthetic raws into boxes whose sizes fall on either side of the
    rules' rounding: the size darkproxy predicts for its version is the one darktable writes."""
    from darkproxy.darktable.tapout import raw_size

    raw = make_raw(source=source, size=size)
    wh = raw_size(raw)
    assert wh is not None
    side = dt.default_history(raw)
    version = dt.install.version_tuple
    for box in (50, 96):
        out = dt.renderer(max_size=box).render_array(raw, side)
        assert (out.shape[2], out.shape[1]) == export_size(wh, box, version), (wh, box, out.shape)
        assert export_scale(wh, out.shape[1:], None, version) is not None
