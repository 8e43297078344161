"""Frames to mp4 with imageio-ffmpeg (H.264 ``libx264``, ``yuv420p``, playable
in browsers), the equivalent ffmpeg command line, counting frames back, and the
video of a regression's optimisation (:func:`write_optimisation_video`).

imageio-ffmpeg ships its own static ffmpeg (with libx264); ``IMAGEIO_FFMPEG_EXE``
can point it at another binary, in which case ``libx264`` may be missing and
``mpeg4`` is used instead."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def ffmpeg_available() -> tuple[bool, str]:
    """``(True, path of the ffmpeg binary)`` or ``(False, why not)``."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # ImportError, or RuntimeError when no binary is found
        return False, f"{type(e).__name__}: {e}"
    return True, exe


@functools.lru_cache(maxsize=8)
def _has_encoder(exe: str, codec: str) -> bool:
    try:
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == [codec] for line in out.splitlines() if line.strip())


def video_codec() -> str:
    """``libx264`` when the ffmpeg binary has it, else ``mpeg4``."""
    ok, exe = ffmpeg_available()
    return "libx264" if ok and _has_encoder(exe, "libx264") else "mpeg4"


def ffmpeg_command(frames_pattern: str, out: str | os.PathLike[str], fps: int = 10) -> str:
    """The ffmpeg command line (shell-quoted) that encodes numbered frames, e.g.
    ``frames/%04d.png``, the way :func:`write_video` does: even dimensions by
    padding, H.264, yuv420p."""
    ok, exe = ffmpeg_available()
    return " ".join(
        shlex.quote(x)
        for x in [
            exe if ok else "ffmpeg",
            "-y",
            "-framerate",
            str(fps),
            "-i",
            frames_pattern,
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v",
            video_codec(),
            "-pix_fmt",
            "yuv420p",
            str(out),
        ]
    )


def _frame(f: np.ndarray | str | os.PathLike[str]) -> np.ndarray:
    import imageio.v3 as iio

    img = iio.imread(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else np.asarray(f)
    if img.dtype != np.uint8:
        raise TypeError(f"video frames must be uint8 display images, got {img.dtype} (use viz.images.to_display)")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"video frames must be (H, W, 3), got shape {img.shape}")
    h, w = img.shape[:2]
    # yuv420p needs even sizes: pad one edge row/column instead of scaling
    return np.ascontiguousarray(np.pad(img[..., :3], ((0, h % 2), (0, w % 2), (0, 0)), mode="edge"))


def write_video(
    frames: Iterable[np.ndarray | str | os.PathLike[str]],
    path: str | os.PathLike[str],
    fps: int = 10,
    quality: float = 7.0,
) -> Path:
    """Encode frames (uint8 ``(H, W, 3)`` ``srgb_display`` arrays or image file
    paths, all the same size; odd sizes are padded to even) into an mp4 at
    ``path``, atomically (temporary file + rename). ``quality`` 1..10 (imageio-ffmpeg's
    scale; 7 = crf 15). Returns the path; :func:`ffmpeg_command` gives the
    equivalent command line. Raises ``ValueError`` for no frames or frames of
    different sizes, ``RuntimeError`` when ffmpeg is unavailable."""
    import imageio_ffmpeg

    ok, why = ffmpeg_available()
    if not ok:
        raise RuntimeError(f"ffmpeg is not available: {why}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp.mp4")
    writer: Any = None  # imageio_ffmpeg's frame generator (untyped)
    size: tuple[int, int] | None = None

    try:
        for k, f in enumerate(frames):
            img = _frame(f)
            if size is None:
                size = (img.shape[1], img.shape[0])
                writer = imageio_ffmpeg.write_frames(
                    str(tmp),
                    size,
                    fps=fps,
                    codec=video_codec(),
                    pix_fmt_out="yuv420p",
                    macro_block_size=1,
                    quality=quality,
                    ffmpeg_log_level="error",
                )
                writer.send(None)  # start ffmpeg
            elif (img.shape[1], img.shape[0]) != size:
                raise ValueError(f"frame {k} is {img.shape[1]}x{img.shape[0]}, the first was {size[0]}x{size[1]}")
            writer.send(img)
        if writer is None:
            raise ValueError("no frames to encode")
        writer.close()
        writer = None
        os.replace(tmp, p)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):  # already failing; the original error matters
                writer.close()
        tmp.unlink(missing_ok=True)
    return p


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames in a video, by decoding all of them (imageio-ffmpeg)."""
    import imageio_ffmpeg

    if not Path(path).is_file():
        raise FileNotFoundError(f"no video at {path}")
    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        next(gen)  # the metadata dict
        return sum(1 for _ in gen)
    finally:
        gen.close()
