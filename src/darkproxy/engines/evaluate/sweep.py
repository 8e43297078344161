"""``darkproxy sweep``: one param across its range, the proxy beside darktable: frames, a PSNR
plot against the value, ``sweep.json`` and optionally an mp4."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.metrics import ImageMetrics, aggregate, compare
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import raw_size
from darkproxy.data.scale import DIAGONAL_PX
from darkproxy.engines.evaluate.pairs import Pair, default_size, eval_region, render_pairs, run_proxy
from darkproxy.errors import DarkproxyError
from darkproxy.fsutil import write_json
from darkproxy.viz.images import side_by_side, to_display


@dataclass
class SweepResult:
    values: list[float]
    psnr: list[float | None]
    frames: list[Path]
    video: Path | None
    ffmpeg_command: str | None
    out_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any] | None] = field(default_factory=list)  # per value: ImageMetrics as JSON
    summary: dict[str, Any] = field(default_factory=dict)  # aggregate over the steps (worst case included)


def sweep(
    dt: Darktable,
    proxy: Any,
    param: str,
    raw: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    steps: int = 50,
    video: str | os.PathLike[str] | None = None,
    with_darktable: bool = True,
    size: int | None = None,
    fps: int = 10,
    value_range: tuple[float, float] | None = None,
    scale: float | None = None,
) -> SweepResult:
    """Sample ``param`` across its training range (or ``value_range``, which may
    reach past it), others at their defaults (and the run's pinned values),
    write numbered frames (proxy beside darktable, the value in the frame), a
    plot of display and PU21 PSNR against the value, ``sweep.json`` (per step
    metrics and ``summary``: pooled PSNRs with ``psnr_min`` / ``psnr_p05``
    over the steps), and optionally an mp4. ``scale``: render a region of
    the raw at that render scale (default: whole raws at ``size``, or for a
    scale-dependent proxy the middle of its trained range)."""
    from darkproxy.viz.plots import plot_curve
    from darkproxy.viz.video import ffmpeg_command, write_video

    spec = proxy.param_space.spec(param)
    if steps < 2:
        raise DarkproxyError("--steps must be >= 2")
    out = Path(out_dir)
    size = size or default_size(proxy.run_info)
    values = _sweep_values(spec, param, steps, value_range)
    space = proxy.param_space
    params_list = [space.for_darktable({param: v}) for v in values]
    sr = getattr(proxy, "scale_range", None)
    if scale is None and sr is not None and sr.dependent and not proxy.pre_demosaic:
        mid = float(np.sqrt(sr.lo * sr.hi))  # the geometric middle of the trained range (soften's: a diagonal)
        scale = sr.render_scale(mid, raw_size(Path(raw)) if sr.basis == DIAGONAL_PX else None)
    region = eval_region(proxy, Path(raw), size, scale, np.random.default_rng(0))
    pairs = render_pairs(dt, Path(raw), proxy.module, params_list, size, with_outputs=with_darktable, region=region)
    frames, psnrs, per_step, mets = _frames(proxy, param, values, pairs, out)
    summary = aggregate(mets) if mets else {}
    if with_darktable:
        plot_curve(
            values,
            {"display PSNR": psnrs, "PU21 PSNR": [m["pu21_psnr"] for m in per_step if m]},
            param,
            "PSNR (dB), proxy vs darktable",
            out / "psnr.png",
            title=f"{proxy.module}: {param} sweep",
        )
    vid, cmd = None, None
    if video:
        vid = write_video(
            frames, video if Path(video).is_absolute() or Path(video).parent != Path(".") else out / video, fps=fps
        )
        cmd = ffmpeg_command(str(out / "frames" / "%04d.png"), vid, fps)
    meta = {
        "module": proxy.module,
        "param": param,
        "raw": str(raw),
        "size": size,
        "render_scale": pairs[0].scale if pairs else None,
        "darktable": with_darktable,
        "run": str(getattr(proxy, "run_dir", None) or ""),
        "range": [values[0], values[-1]],
        "training_range": [spec.lo, spec.hi],
        "fixed": dict(space.fixed),
    }
    res = SweepResult(values, psnrs, frames, vid, cmd, out, meta, per_step, summary)
    write_json(
        out / "sweep.json",
        {
            **res.meta,
            "values": values,
            "psnr": psnrs,
            "steps": per_step,
            "summary": summary,
            "frames": [f.name for f in frames],
            "video": str(vid) if vid else None,
            "ffmpeg_command": cmd,
        },
    )
    return res


def _sweep_values(spec: Any, param: str, steps: int, value_range: tuple[float, float] | None) -> list[Any]:
    """The values a sweep takes: every enum value / both bools, else ``steps`` evenly over the
    training range or ``value_range`` (ints rounded, repeats dropped)."""
    if spec.kind in ("enum", "bool"):
        if value_range is not None:
            raise DarkproxyError(f"--range needs a numeric param; {param} is {spec.kind}")
        return list(spec.values) if spec.kind == "enum" else [0, 1]
    lo, hi = value_range if value_range is not None else (spec.lo, spec.hi)
    if not lo < hi:
        raise DarkproxyError(f"--range {lo}:{hi}: LO must be below HI")
    values: list[Any] = [float(v) for v in np.linspace(lo, hi, steps)]
    if spec.kind == "int":
        values = sorted(set(int(round(v)) for v in values))
    return values


def _frames(
    proxy: Any, param: str, values: list[Any], pairs: list[Pair], out: Path
) -> tuple[list[Path], list[float | None], list[dict[str, Any] | None], list[ImageMetrics]]:
    """One numbered frame per value (proxy beside darktable, the value and the PSNRs written in);
    per step the display PSNR and the metrics (None without darktable's output)."""
    from darkproxy.viz.images import annotate, save_png

    (out / "frames").mkdir(parents=True, exist_ok=True)
    frames: list[Path] = []
    psnrs: list[float | None] = []
    per_step: list[dict[str, Any] | None] = []
    mets: list[ImageMetrics] = []
    for k, (v, pair) in enumerate(zip(values, pairs, strict=True)):
        pred = run_proxy(proxy, pair.input, pair.params, pair.scale, pair.raw)
        label = f"{param} = {v:.3f}" if isinstance(v, float) else f"{param} = {v}"
        if pair.output is not None:
            m = compare(pred, pair.output)
            mets.append(m)
            psnrs.append(m.psnr)
            per_step.append(m.to_json())
            img = side_by_side([to_display(pred), to_display(pair.output)], ["proxy", "darktable"])
            label += f"   PSNR {m.psnr:.2f} dB, PU21 {m.pu21_psnr:.2f} dB"
        else:
            psnrs.append(None)
            per_step.append(None)
            img = to_display(pred)
        frames.append(save_png(out / "frames" / f"{k:04d}.png", annotate(img, label)))
    return frames, psnrs, per_step, mets
