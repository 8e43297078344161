"""HTML reports, images and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from darkproxy.viz.browser import validate_references
from darkproxy.viz.images import error_map, side_by_side, to_display
from darkproxy.viz.plots import plot_curve
from darkproxy.viz.report import HtmlReport


def test_to_display_known_values() -> None:
    white = np.ones((3, 2, 2), np.float32)
    assert (to_display(white) == 255).all()
    mid = np.full((3, 2, 2), 0.214, np.float32)  # sRGB(0.214) ~= 0.5
    assert abs(int(to_display(mid)[0, 0, 0]) - 128) <= 1
    assert to_display(np.full((2, 2, 3), -1.0, np.float32)).max() == 0


def test_report_with_images_plot_and_table(tmp_path: Path) -> None:
    a = np.random.default_rng(0).uniform(0, 1, (3, 24, 32)).astype(np.float32)
    panel = side_by_side([to_display(a), to_display(a * 0.5), error_map(a, a * 0.5)], ["input", "darktable", "error x10"])
    assert panel.shape[0] == 24 and panel.shape[1] == 3 * 32 + 2 * 4
    plot = plot_curve([0, 1, 2], {"psnr": [30, 35, 40]}, "value", "dB", tmp_path / "p.png")
    rep = HtmlReport("test report")
    rep.add_heading("numbers")
    rep.add_table([{"metric": "psnr", "proxy": 41.23456, "identity": 20.0}])
    rep.add_image(panel, "side by side")
    rep.add_image(plot, "a plot")
    out = rep.write(tmp_path / "rep" / "index.html")
    text = out.read_text()
    assert "41.23" in text and text.count("<img") == 2 and "http" not in text
    assert validate_references(out) == []
    (tmp_path / "rep" / "img" / "p.png").unlink()
    assert validate_references(out) == ["img/p.png"]


def test_embedded_report_needs_no_files(tmp_path: Path) -> None:
    rep = HtmlReport("embedded", embed=True)
    rep.add_image(np.zeros((8, 8, 3), np.uint8), "black")
    out = rep.write(tmp_path / "e.html")
    assert "data:image/png;base64," in out.read_text()
