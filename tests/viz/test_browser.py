"""Reports open in headless Chromium with every image (and video) rendered."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from darkproxy.viz.browser import check_images_render, screenshot_html
from darkproxy.viz.report import HtmlReport
from darkproxy.viz.video import write_video
from tests.conftest import have_chromium


def require_chromium() -> None:
    """Skip without Chromium, except under ``CI=true``: there a missing Chromium
    fails the test (tests/conftest.py ``have_chromium``)."""
    if not have_chromium():
        pytest.skip("chromium is not installed (apt-get install chromium)")


def test_images_and_video_load_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    vid = write_video([np.full((32, 48, 3), 40 * k, np.uint8) for k in range(4)], tmp_path / "v.mp4", fps=4)
    rep = HtmlReport("browser check")
    rep.add_image(np.full((20, 30, 3), 200, np.uint8), "grey")
    rep.add_image(np.zeros((10, 10, 3), np.uint8), "black", name="with space.png")
    rep.add_video(vid, "video")
    page = rep.write(tmp_path / "rep" / "index.html")
    before = sorted(p.name for p in page.parent.iterdir())
    res = check_images_render(page)
    assert res == {"images": 2, "broken": [], "videos": 1, "broken_videos": []}
    assert sorted(p.name for p in page.parent.iterdir()) == before  # the report folder is left as it was
    (page.parent / "img" / "image001.png").write_bytes(b"not a png")  # exists but does not decode
    (page.parent / "img" / "v.mp4").unlink()
    res = check_images_render(page)
    assert res["broken"] == ["img/image001.png"] and res["broken_videos"] == ["img/v.mp4"]


def test_embedded_report_and_screenshot(tmp_path: Path) -> None:
    require_chromium()
    rep = HtmlReport("screenshot", embed=True)
    rep.add_text("a red square below")
    rep.add_image(np.tile(np.array([255, 0, 0], np.uint8), (200, 200, 1)), "red")
    page = rep.write(tmp_path / "e.html")
    assert check_images_render(page)["images"] == 1 and check_images_render(page)["broken"] == []
    shot = screenshot_html(page, tmp_path / "shot.png", width=800, height=600)
    im = iio.imread(shot)
    assert im.shape[:2] == (600, 800) and shot.stat().st_size > 1000
    red = (im[..., 0] > 200) & (im[..., 1] < 60) & (im[..., 2] < 60)
    assert red.sum() > 150 * 150  # the embedded image really is on the page
