"""Videos decode to the frames that were written."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from darkproxy.viz.images import annotate, save_png
from darkproxy.viz.video import count_video_frames, ffmpeg_available, ffmpeg_command, video_codec, write_video


def test_video_frame_count_and_content(tmp_path: Path) -> None:
    ok, exe = ffmpeg_available()
    assert ok and Path(exe).is_file(), exe
    # odd sizes get padded to even; labels of different lengths keep one frame size
    frames = [annotate(np.full((45, 61, 3), i * 30, np.uint8), f"v = {i * 0.25:.2f} EV" + "!" * i) for i in range(7)]
    out = write_video(frames, tmp_path / "v.mp4", fps=5)
    assert count_video_frames(out) == 7
    gen = imageio_ffmpeg.read_frames(str(out))
    meta = next(gen)
    assert meta["size"] == (62, frames[0].shape[0] + frames[0].shape[0] % 2) and meta["fps"] == 5
    last = np.frombuffer(next(iter(list(gen)[-1:])), np.uint8).reshape(meta["size"][1], meta["size"][0], 3)
    assert abs(float(last[-20:-2, 5:50].mean()) - 180) < 3  # the grey level survives H.264 encoding
    assert not list(tmp_path.glob(".*"))


def test_video_from_png_paths_and_command(tmp_path: Path) -> None:
    paths = [save_png(tmp_path / "frames" / f"{i:04d}.png", np.full((16, 16, 3), 20 * i, np.uint8)) for i in range(5)]
    out = write_video(paths, tmp_path / "out" / "p.mp4", fps=10)
    assert count_video_frames(out) == 5
    cmd = ffmpeg_command("frames/%04d.png", out)
    assert "-framerate 10" in cmd and "-i frames/%04d.png" in cmd and "-pix_fmt yuv420p" in cmd
    assert f"-c:v {video_codec()}" in cmd and video_codec() == "libx264"  # imageio-ffmpeg's binary has x264


def test_video_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "e.mp4")
    with pytest.raises(ValueError, match="frame 1"):
        write_video([np.zeros((8, 8, 3), np.uint8), np.zeros((10, 8, 3), np.uint8)], tmp_path / "e.mp4")
    with pytest.raises(TypeError):
        write_video([np.zeros((8, 8, 3), np.float32)], tmp_path / "e.mp4")
    assert not (tmp_path / "e.mp4").exists() and not list(tmp_path.glob(".*"))
