"""Videos decode to the frames that were written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from darkproxy.viz.images import annotate
from darkproxy.viz.video import count_video_frames, ffmpeg_available, ffmpeg_command, write_video


def test_video_frame_count(tmp_path: Path) -> None:
    ok, exe = ffmpeg_available()
    assert ok, exe
    frames = [annotate(np.full((45, 61, 3), i * 20, np.uint8), f"v = {i}") for i in range(7)]  # odd sizes get padded
    out = write_video(frames, tmp_path / "v.mp4", fps=5)
    assert count_video_frames(out) == 7
    cmd = ffmpeg_command("frames/%04d.png", out)
    assert "-framerate 10" in cmd and "libx264" in cmd and "frames/%04d.png" in cmd
