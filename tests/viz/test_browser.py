"""The report opens in headless Chromium with every image rendered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.viz.browser import check_images_render, find_chromium, screenshot_html
from darkproxy.viz.report import HtmlReport

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (./run.sh test installs it)")


def test_images_load_in_chromium(tmp_path: Path) -> None:
    rep = HtmlReport("browser check")
    rep.add_image(np.full((20, 30, 3), 200, np.uint8), "grey")
    rep.add_image(np.zeros((10, 10, 3), np.uint8), "black")
    page = rep.write(tmp_path / "index.html")
    res = check_images_render(page)
    assert res == {"images": 2, "broken": []}
    (tmp_path / "img" / "image002.png").unlink()
    assert len(check_images_render(page)["broken"]) == 1
    shot = screenshot_html(page, tmp_path / "shot.png", height=400)
    assert shot.stat().st_size > 1000
