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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from darkproxy.regress import RegressResult


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


# --------------------------------------------------------- a regression's optimisation
def _pair_frame(pred: np.ndarray, target: np.ndarray, lines: list[str], height: int = 256) -> np.ndarray:
    """One video frame: proxy output | target (``linear_rec2020``), upscaled to ``height`` px
    (nearest), with ``lines`` of text underneath. uint8 (H', W', 3), even sizes (for yuv420)."""
    from PIL import Image, ImageDraw

    from darkproxy.viz.images import to_display

    a, b = to_display(pred), to_display(target)
    h, w = a.shape[:2]
    scale = max(1, height // h)
    pair = np.concatenate([a, np.full((h, max(2, w // 32), 3), 255, np.uint8), b], axis=1)
    pair = np.repeat(np.repeat(pair, scale, 0), scale, 1)
    line_h = 14
    text_h = line_h * len(lines) + 8
    W = pair.shape[1] + (pair.shape[1] % 2)
    H = pair.shape[0] + text_h
    H += H % 2
    canvas = Image.new("RGB", (W, H), (20, 20, 20))
    canvas.paste(Image.fromarray(pair), (0, 0))
    d = ImageDraw.Draw(canvas)
    for i, ln in enumerate(lines):
        d.text((6, pair.shape[0] + 4 + i * line_h), ln, fill=(235, 235, 235))
    return np.asarray(canvas)


def write_optimisation_video(
    proxy: Any,
    inp: np.ndarray,
    target: np.ndarray,
    res: RegressResult,
    out_dir: Path,
    n_frames: int = 60,
    fps: int = 12,
) -> dict[str, Any]:
    """A regression's optimisation (:func:`darkproxy.regress.regress`) as frames
    (``frames/NNNN.png``: proxy output of the winning restart at evenly spaced
    iterations | target, with the iteration, loss and param values written in),
    ``optimisation.mp4`` (:func:`write_video`) and ``optimisation.png`` (loss and
    params per iteration, :func:`darkproxy.viz.plots.plot_optimisation`).
    Returns the paths written."""
    import imageio.v2 as iio
    import torch

    from darkproxy.regress import RegressError, as_batch, proxy_device
    from darkproxy.viz.plots import plot_optimisation

    space = proxy.param_space
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    n = res.trajectory.shape[0]
    if n == 0:
        raise RegressError("no trajectory was recorded (RegressConfig.record=False)")
    its = sorted(set(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int).tolist()))
    dev = proxy_device(proxy)
    x = as_batch(inp, dev)
    free_idx = [space.names.index(nm) for nm in res.free]
    frames = []
    with torch.no_grad():
        for j, it in enumerate(its):
            u = torch.as_tensor(res.trajectory[it], dtype=torch.float32, device=dev)[None]
            pred = proxy(x, u)[0].cpu().numpy()
            vals = space.denormalize(res.trajectory[it])
            lines = [f"iter {it + 1}/{n}  loss {res.loss_history[it]:.5f}  (proxy | target)"]
            lines += [f"{space.names[i]} = {_fmt(vals[space.names[i]])}" for i in free_idx]
            fr = _pair_frame(pred, target, lines)
            iio.imwrite(frames_dir / f"{j:04d}.png", fr)
            frames.append(fr)
    mp4 = out_dir / "optimisation.mp4"
    write_video(frames, mp4, fps=fps)
    plot = out_dir / "optimisation.png"
    plot_optimisation(plot, res, space)
    return {"frames": str(frames_dir), "video": str(mp4), "plot": str(plot)}


def _fmt(v: Any) -> str:
    return f"{v:+.4f}" if isinstance(v, float) else str(v)
