"""matplotlib plots written straight to PNG files.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas,
not pyplot: nothing is registered globally, no display is needed, the process's
backend is left alone and figures are freed when they go out of scope."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.fsutil import atomic_path


def new_figure(width: float = 6.0, height: float = 3.6, dpi: int = 110) -> tuple[Any, Any]:
    """A ``(Figure, Axes)`` pair on an Agg canvas (for custom plots; save with
    :func:`save_figure` or :meth:`HtmlReport.add_figure`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _floats(v: Sequence[Any]) -> np.ndarray:
    """None (a missing value) -> NaN, which matplotlib leaves as a gap."""
    return np.array([np.nan if x is None else float(x) for x in v], np.float64)


def plot_curve(
    xs: Sequence[float],
    ys: Mapping[str, Sequence[float | None]],
    xlabel: str,
    ylabel: str,
    path: str | os.PathLike[str],
    title: str = "",
    logy: bool = False,
) -> Path:
    """Line plot of each ``ys[label]`` against ``xs`` (e.g. PSNR against a
    parameter value, loss per iteration, each parameter per iteration). A curve
    shorter than ``xs`` uses its first ``xs``; ``None`` values are gaps. Saved as
    PNG at ``path``; returns it."""
    fig, ax = new_figure()
    x = _floats(xs)
    for label, y in ys.items():
        yy = _floats(y)
        ax.plot(x[: len(yy)], yy, label=label, marker="." if len(yy) < 60 else None)
    if logy:
        ax.set_yscale("log")
    return _finish(fig, ax, xlabel, ylabel, title, len(ys) > 1, path)


def plot_scatter(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    path: str | os.PathLike[str],
    title: str = "",
    logx: bool = False,
    annotations: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Scatter plot of groups ``points[label] = (xs, ys)`` (e.g. quality against
    seconds or number of darktable renders, one group per method);
    ``annotations[label]`` optionally writes a short text next to each point.
    Saved as PNG at ``path``; returns it."""
    fig, ax = new_figure()
    for label, (x, y) in points.items():
        xx, yy = _floats(x), _floats(y)
        ax.scatter(xx, yy, label=label, s=22)
        for xi, yi, t in zip(xx, yy, (annotations or {}).get(label, ()), strict=False):
            ax.annotate(t, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    if logx:
        ax.set_xscale("log")
    return _finish(fig, ax, xlabel, ylabel, title, len(points) > 1, path)


def _finish(
    fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, legend: bool, path: str | os.PathLike[str]
) -> Path:
    """The project's common axis dressing (labels, title, light grid, legend
    for several series), then :func:`save_figure`."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file + rename),
    creating the parent folder; closes it if pyplot manages it. Returns the path."""
    p = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(p, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        close_figure(fig)
    return p


def close_figure(fig: Any) -> None:
    """Release a pyplot-managed figure (a no-op for plain ``Figure`` objects);
    never imports pyplot itself."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
