"""Images, plots and self-contained HTML reports."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib import colormaps

from darkproxy.viz.browser import validate_references
from darkproxy.viz.images import annotate, error_map, save_png, side_by_side, to_display
from darkproxy.viz.plots import new_figure, plot_curve, plot_scatter
from darkproxy.viz.report import HtmlReport


def _lin(seed: int = 0, shape: tuple[int, ...] = (3, 24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def test_annotate_adds_a_fixed_band_and_keeps_the_image() -> None:
    img = to_display(_lin())
    a, b = annotate(img, "exposure = 1.25 EV"), annotate(img, "gy")
    assert a.shape == b.shape and a.shape[1:] == img.shape[1:] and a.shape[0] > img.shape[0]
    np.testing.assert_array_equal(a[-img.shape[0] :], img)  # nothing of the image is covered
    band = a[: a.shape[0] - img.shape[0]]
    assert band.max() > 200 and band.min() == 0  # white (anti-aliased) text on black
    with pytest.raises(TypeError):
        annotate(_lin(), "float")


def test_side_by_side_and_error_map() -> None:
    a = _lin()
    ims = [to_display(a), to_display(a * 0.5), error_map(a, a * 0.5)]
    panel = side_by_side(ims, ["input", "darktable", "error x10"])
    assert panel.shape[1] == 3 * 32 + 2 * 4 and panel.shape[0] > 24
    np.testing.assert_array_equal(panel[-24:, :32], ims[0])
    assert (panel[:, 32:36] == 255).all()  # white gap
    zero = error_map(a, a)
    expected = (np.array(colormaps["inferno"](0.0)[:3]) * 255 + 0.5).astype(np.uint8)
    assert (zero == expected).all()
    assert error_map(a, a * 0.5).mean() > zero.mean()


def test_plots(tmp_path: Path) -> None:
    p = plot_curve(
        [0, 1, 2, 3], {"psnr": [30, 35, None, 40], "ssim": [0.9, 0.95]}, "value", "dB", tmp_path / "c.png", title="t"
    )
    s = plot_scatter(
        {"proxy": ([0.1, 0.2], [30, 35]), "cma": ([1, 2], [31, 36])},
        "seconds",
        "dB",
        tmp_path / "s.png",
        logx=True,
        annotations={"proxy": ["a", "b"]},
    )
    for f in (p, s):
        im = iio.imread(f)
        assert im.shape[0] > 200 and im.shape[1] > 400 and im.std() > 10  # a real drawing, not blank
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_report_with_images_plot_table_and_video(tmp_path: Path) -> None:
    from darkproxy.viz.video import write_video

    a = _lin()
    plot = plot_curve([0, 1, 2], {"psnr": [30, 35, 40]}, "value", "dB", tmp_path / "p.png")
    d1, d2 = tmp_path / "one", tmp_path / "two"
    same1 = save_png(d1 / "0000.png", to_display(a))
    same2 = save_png(d2 / "0000.png", to_display(a * 0.3))
    vid = write_video([to_display(a * k / 4) for k in range(4)], tmp_path / "v.mp4", fps=4)
    fig, ax = new_figure()
    ax.plot([1, 2], [3, 4])

    rep = HtmlReport("test <report>")
    for h in ("numbers", "images", "more"):
        rep.add_heading(h)
    rep.add_text("plain <b>text</b> & more", "note")
    rep.add_table(
        [
            {"metric": "psnr", "proxy": np.float32(41.23456), "identity": 20.0, "n": np.int64(3)},
            {"metric": "ssim", "extra": {"a": 1}},
        ]
    )
    rep.add_image(side_by_side([to_display(a), error_map(a, a * 0.5)], ["x", "err"]), "side by side")
    rep.add_image(a, "linear float image")  # display-encoded on the way
    rep.add_image(plot, "a plot")
    rep.add_image(same1, "same name 1")
    rep.add_image(same2, "same name 2")
    rep.add_image(to_display(a), "odd name", name="a b/c?.png")
    rep.add_figure(fig, "a figure")
    rep.add_video(vid, "a video")
    rep.add_json_block({"psnr": 41.2, "path": tmp_path}, "raw numbers")
    out = rep.write(tmp_path / "rep" / "index.html")
    text = out.read_text()

    assert "<title>test &lt;report&gt;</title>" in text and "&lt;b&gt;text&lt;/b&gt; &amp; more" in text
    assert "<td>41.23</td>" in text and "<td>3</td>" in text and "{&quot;a&quot;: 1}" in text
    assert text.count("<img") == 7 and text.count("<video") == 1
    assert not re.search(r"(src|href)=\"(https?:|//)", text)  # nothing external
    assert '<nav><a href="#numbers">' in text
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(set(srcs)) == 7 and "img/0000.png" in srcs and "img/0000-2.png" in srcs and "img/a_b_c_.png" in srcs
    # the two same-named files stayed distinct
    assert not np.array_equal(iio.imread(out.parent / "img/0000.png"), iio.imread(out.parent / "img/0000-2.png"))
    assert validate_references(out) == []
    (out.parent / "img" / "p.png").unlink()
    assert validate_references(out) == ["img/p.png"]
    assert not list(out.parent.glob(".*"))  # no temporary files left


def test_embedded_report_is_one_file(tmp_path: Path) -> None:
    from darkproxy.viz.video import write_video

    vid = write_video([np.zeros((8, 8, 3), np.uint8)] * 2, tmp_path / "v.mp4")
    rep = HtmlReport("embedded", embed=True)
    rep.add_image(np.zeros((8, 8, 3), np.uint8), "black")
    rep.add_video(vid)
    out = rep.write(tmp_path / "out" / "e.html")
    text = out.read_text()
    assert "data:image/png;base64," in text and "data:video/mp4;base64," in text
    assert [p.name for p in out.parent.iterdir()] == ["e.html"]
    assert validate_references(out) == []


def test_validate_references_kinds(tmp_path: Path) -> None:
    (tmp_path / "a b.png").write_bytes(b"x")
    page = tmp_path / "p.html"
    page.write_text(
        '<a href="#top">t</a><a href="https://example.org/x.png">x</a><img src="data:image/png;base64,AA">'
        '<img src="a%20b.png?v=1"><img src="missing.png"><a href="mailto:a@b.c">m</a>'
        f'<img src="{(tmp_path / "a b.png").as_uri()}"><video src="/nonexistent/v.mp4"></video>'
    )
    assert validate_references(page) == ["missing.png", "/nonexistent/v.mp4"]
    with pytest.raises(FileNotFoundError):
        HtmlReport("x").add_image(tmp_path / "nope.png")
