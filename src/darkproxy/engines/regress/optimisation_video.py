"""A regression's optimisation as pictures: the frames and video of the proxy's output
iteration by iteration beside the target, and the loss / params plot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.engines.regress.engine import RegressError, RegressResult, as_batch, proxy_device
from darkproxy.viz.images import to_display
from darkproxy.viz.plots import save_figure
from darkproxy.viz.video import write_video


def plot_optimisation(path: str | os.PathLike[str], res: RegressResult, space: Any) -> Path:
    """A regression's optimisation (:func:`~darkproxy.engines.regress.engine.regress`), side by side:
    the winning restart's loss per iteration (log scale) and each free param per
    iteration as its position in the training range of ``space`` (normalised, so
    that params with different ranges share one axis). Saved as PNG at ``path``
    (10 x 3.6 in at 100 dpi); returns it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    a1, a2 = fig.subplots(1, 2)
    a1.semilogy(np.arange(1, len(res.loss_history) + 1), np.maximum(res.loss_history, 1e-12))
    a1.set_xlabel("iteration")
    a1.set_ylabel("loss")
    a1.set_title(f"loss (restart {res.best_restart} of {res.restarts})")
    for nm in res.free:
        i = space.names.index(nm)
        s = space.specs[i]
        a2.plot(np.arange(1, res.trajectory.shape[0] + 1), res.trajectory[:, i], label=f"{nm} [{s.lo:g}, {s.hi:g}]")
    a2.set_ylim(-0.02, 1.02)
    a2.set_xlabel("iteration")
    a2.set_ylabel("position in training range")
    a2.set_title("params")
    a2.legend(fontsize=8)
    return save_figure(fig, path)


def _pair_frame(pred: np.ndarray, target: np.ndarray, lines: list[str], height: int = 256) -> np.ndarray:
    """One video frame: proxy output | target (``linear_rec2020``), upscaled to ``height`` px
    (nearest), with ``lines`` of text underneath. uint8 (H', W', 3), even sizes (for yuv420)."""
    from PIL import Image, ImageDraw

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
    """A regression's optimisation (:func:`~darkproxy.engines.regress.engine.regress`) as frames
    (``frames/NNNN.png``: proxy output of the winning restart at evenly spaced
    iterations | target, with the iteration, loss and param values written in),
    ``optimisation.mp4`` (:func:`~darkproxy.viz.video.write_video`) and ``optimisation.png`` (loss and
    params per iteration, :func:`plot_optimisation`).
    Returns the paths written."""
    import imageio.v2 as iio
    import torch

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
