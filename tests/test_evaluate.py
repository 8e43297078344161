"""darkproxy eval and sweep, end to end on tiny data (real darktable, real proxies)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from darkproxy.viz.browser import check_images_render, find_chromium, validate_references
from darkproxy.viz.video import count_video_frames
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def heldout_dir(heldout_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("heldout")
    shutil.copyfile(heldout_raw, d / heldout_raw.name)
    return d


def test_eval_writes_metrics_csv_and_report(exposure_run: Path, heldout_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = run_cli("eval", str(exposure_run), "--images", str(heldout_dir), "-n", "3", "-o", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    for who in ("proxy", "identity"):
        assert {"psnr", "ssim", "deltae_mean", "deltae_p95"} <= set(m[who])
    assert len(m["samples"]) == 3 and m["n"] == 3
    # an exposure proxy must beat "output = input" by far on fresh renders
    assert m["proxy"]["psnr"] > m["identity"]["psnr"] + 10
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 3 and float(rows[0]["proxy_psnr"]) > 0
    assert validate_references(out / "index.html") == []
    if find_chromium():
        res = check_images_render(out / "index.html")
        assert res["images"] == 3 and res["broken"] == []


def test_eval_fixed_value_and_errors(exposure_run: Path, heldout_dir: Path, tmp_path: Path) -> None:
    r = run_cli("eval", str(exposure_run), "--images", str(heldout_dir), "-n", "1", "--set", "exposure=1.5",
                "-o", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["samples"][0]["params"]["exposure"] == 1.5
    r = run_cli("eval", str(exposure_run), "--images", str(heldout_dir), "--set", "exposure=40", "-o", str(tmp_path / "b"))
    assert r.returncode == 2 and "outside" in r.stderr
    r = run_cli("eval", str(exposure_run), "--images", str(tmp_path), "-o", str(tmp_path / "c"))
    assert r.returncode == 2 and "no raw files" in r.stderr


def test_sweep_frames_plot_and_video(exposure_run: Path, heldout_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    r = run_cli("sweep", str(exposure_run), "exposure", str(heldout_raw), "--steps", "6", "-o", str(out),
                "--video", "sweep.mp4")
    assert r.returncode == 0, r.stderr
    assert len(list((out / "frames").glob("*.png"))) == 6
    assert (out / "psnr.png").is_file()
    assert count_video_frames(out / "sweep.mp4") == 6
    assert "libx264" in r.stdout  # the equivalent ffmpeg command is printed
    s = json.loads((out / "sweep.json").read_text())
    assert s["values"][0] == -2.0 and s["values"][-1] == 4.0 and all(p > 20 for p in s["psnr"])


def test_sweep_without_darktable(exposure_run: Path, heldout_raw: Path, tmp_path: Path) -> None:
    r = run_cli("sweep", str(exposure_run), "black", str(heldout_raw), "--steps", "3", "--no-darktable", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "sweep.json").read_text())["psnr"] == [None, None, None]
    r = run_cli("sweep", str(exposure_run), "nope", str(heldout_raw), "-o", str(tmp_path))
    assert r.returncode == 2 and "not a free parameter" in r.stderr
