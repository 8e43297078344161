"""matplotlib plots (Agg backend, files only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curve(xs: Sequence[float], ys: Mapping[str, Sequence[float]], xlabel: str, ylabel: str,
               path: str | os.PathLike[str], title: str = "", logy: bool = False) -> Path:
    """Lines ``ys[label]`` against ``xs``; saved as PNG at ``path``."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for label, y in ys.items():
        ax.plot(list(xs)[: len(y)], y, label=label, marker="." if len(y) < 60 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(ys) > 1:
        ax.legend()
    return _save(fig, path)


def plot_scatter(points: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
                 path: str | os.PathLike[str], title: str = "", logx: bool = False) -> Path:
    """Scatter groups ``points[label] = (xs, ys)``."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for label, (x, y) in points.items():
        ax.scatter(x, y, label=label, s=18)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = p.with_name(f".{p.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, p)
    return p
