"""Frames to mp4 with imageio-ffmpeg (H.264, yuv420p), and counting frames back."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Iterable

import numpy as np


def ffmpeg_available() -> tuple[bool, str]:
    """(True, path of the ffmpeg binary) or (False, why not)."""
    try:
        import imageio_ffmpeg

        return True, imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # RuntimeError when no binary
        return False, str(e)


def ffmpeg_command(frames_pattern: str, out: str | os.PathLike[str], fps: int = 10) -> str:
    """The equivalent ffmpeg command for numbered PNG frames (e.g. frames/%04d.png)."""
    ok, exe = ffmpeg_available()
    return " ".join(shlex.quote(x) for x in [exe if ok else "ffmpeg", "-y", "-framerate", str(fps), "-i", frames_pattern,
                                             "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264",
                                             "-pix_fmt", "yuv420p", str(out)])


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(frames: Iterable[np.ndarray | str | os.PathLike[str]], path: str | os.PathLike[str], fps: int = 10) -> Path:
    """Encode uint8 (H, W, 3) frames (arrays or PNG paths) to an H.264 mp4 (atomically)."""
    import imageio.v3 as iio
    import imageio_ffmpeg

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp.mp4")
    writer = None
    n = 0
    try:
        for f in frames:
            img = iio.imread(f) if isinstance(f, (str, os.PathLike)) else np.asarray(f)
            img = _even(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
            if writer is None:
                size = (img.shape[1], img.shape[0])
                writer = imageio_ffmpeg.write_frames(str(tmp), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                                     macro_block_size=1, quality=7)
                writer.send(None)
            writer.send(img)
            n += 1
        if writer is None:
            raise ValueError("no frames to encode")
        writer.close()
        os.replace(tmp, p)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        tmp.unlink(missing_ok=True)
        raise
    return p


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Decode the whole video and count its frames."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    next(gen)  # metadata
    return sum(1 for _ in gen)
