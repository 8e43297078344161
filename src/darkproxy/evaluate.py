"""Evaluate a trained proxy against *fresh* darktable renders, and sweep one
parameter across its range (proxy beside darktable, as frames and a video).

Ground truth is always rendered now, by darktable, through tap-outs of the given
raws (:mod:`darkproxy.darktable.tapout`); nothing is taken from the training set.
The identity baseline (output = input) gives the numbers context: a proxy must
beat it by a wide margin to be worth anything.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import packed_input, plan_tapout
from darkproxy.data.generate import find_raws
from darkproxy.data.sampling import sample_params
from darkproxy.errors import DarkproxyError, DarktableRenderError
from darkproxy.viz.images import error_map, side_by_side, to_display
from darkproxy.viz.metrics import ImageMetrics, aggregate, compare


@dataclass
class Pair:
    """A darktable tap-out: module input, darktable's output, and the params."""

    raw: Path
    params: dict[str, Any]
    input: np.ndarray
    output: np.ndarray


def default_size(run_info: Mapping[str, Any], fallback: int = 256) -> int:
    """The render size the proxy was trained at (from the run's dataset.json)."""
    ds = run_info.get("dataset")
    if ds and (Path(ds) / "dataset.json").is_file():
        info = json.loads((Path(ds) / "dataset.json").read_text())
        if info.get("size"):
            return int(info["size"])
    return int(run_info.get("size") or fallback)


def render_pairs(dt: Darktable, raw: Path, module: str, params_list: Sequence[Mapping[str, Any]],
                 max_size: int | None, base=None, with_outputs: bool = True) -> list[Pair]:
    """Tap ``module`` out of ``raw`` for every params dict: the module input is
    rendered once (it does not depend on the module's params), all outputs in
    the same darktable-cli process."""
    base = base if base is not None else dt.default_history(raw)
    plans = [plan_tapout(dt, base, module, p) for p in params_list]
    pre = plans[0].pre_demosaic
    r = dt.renderer(max_size=None if pre else max_size)
    with tempfile.TemporaryDirectory(prefix="darkproxy-eval-") as td:
        jobs = []
        if not pre:
            jobs.append(RenderJob(raw, plans[0].input_sidecar, Path(td) / "in.tif"))
        if with_outputs:
            jobs += [RenderJob(raw, pl.output_sidecar, Path(td) / f"out{i}.tif") for i, pl in enumerate(plans)]
        res = r.render_batch(jobs)
        for x in res:
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
        inp = packed_input(raw, module) if pre else read_tiff(res[0])
        outs = [read_tiff(p) for p in res[(0 if pre else 1):]] if with_outputs else [None] * len(plans)
    return [Pair(raw, dict(pl.set_params), inp, o) for pl, o in zip(plans, outs)]


@torch.no_grad()
def run_proxy(proxy, image: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """proxy(image (C,H,W), params by name) -> float32 (3,H',W')."""
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(proxy.device)
    u = proxy.normalize({k: v for k, v in params.items() if k in proxy.param_space.names}, batch=1)
    return proxy(x, u)[0].float().cpu().numpy()


def panel(inp: np.ndarray | None, truth: np.ndarray, pred: np.ndarray, gain: float = 10.0, crop: int = 256) -> np.ndarray:
    """input | darktable | proxy | error xgain, centre crops of ``crop`` px."""
    def c(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[-2:]
        y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        return a[..., y:y + crop, x:x + crop]

    ims, labels = [], []
    if inp is not None and inp.shape[0] == 3 and inp.shape == truth.shape:
        ims.append(to_display(c(inp)))
        labels.append("input")
    ims += [to_display(c(truth)), to_display(c(pred)), error_map(c(pred), c(truth), gain)]
    labels += ["darktable", "proxy", f"|error| x{gain:g}"]
    return side_by_side(ims, labels)


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    out_dir: Path


def evaluate(dt: Darktable, proxy, images: str | os.PathLike[str], out_dir: str | os.PathLike[str], n: int = 8,
             fixed: Mapping[str, Any] | None = None, size: int | None = None, seed: int = 1234,
             progress: Callable[[str], None] | None = None) -> EvalResult:
    """Render ``n`` fresh (raw, params) pairs with darktable (params random in
    the run's training ranges, ``fixed`` ones pinned), run the proxy on the same
    inputs, and write ``metrics.json``, ``metrics.csv`` and ``index.html``."""
    from darkproxy.viz.report import HtmlReport

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raws = find_raws(images)
    space = proxy.param_space
    fixed = dict(fixed or {})
    for k, v in fixed.items():
        space.spec(k).check(v)
    if n < 1:
        raise DarkproxyError("-n must be >= 1")
    size = size or default_size(proxy.run_info)
    draws = sample_params(space, n, "uniform", seed)
    for d in draws:
        d.update(fixed)
    per_raw: dict[int, list[int]] = {}
    for i in range(n):
        per_raw.setdefault(i % len(raws), []).append(i)
    rows: list[dict[str, Any]] = []
    pm: list[ImageMetrics] = []
    im: list[ImageMetrics] = []
    rep = HtmlReport(f"darkproxy eval: {proxy.module} proxy vs darktable {dt.version}")
    panels = []
    for ri, idxs in per_raw.items():
        pairs = render_pairs(dt, raws[ri], proxy.module, [draws[i] for i in idxs], size)
        for i, pair in zip(idxs, pairs):
            pred = run_proxy(proxy, pair.input, pair.params)
            m = compare(pred, pair.output)
            ident = compare(pair.input, pair.output) if pair.input.shape == pair.output.shape else None
            pm.append(m)
            if ident:
                im.append(ident)
            rows.append({"sample": i, "raw": pair.raw.name, "params": pair.params,
                         "proxy": m.to_json(), "identity": ident.to_json() if ident else None})
            panels.append((i, pair, pred, m))
            if progress:
                progress(f"sample {i + 1}/{n}: {pair.raw.name} proxy {m.psnr:.2f} dB")
    rows.sort(key=lambda r: r["sample"])
    metrics = {"module": proxy.module, "darktable_version": dt.version, "run": str(proxy.run_info.get("run_dir", "")),
               "n": n, "size": size, "seed": seed, "seconds": time.time() - t0,
               "proxy": aggregate(pm), "identity": aggregate(im) if im else None, "samples": rows}
    from darkproxy.darktable.schema import write_json_atomic

    write_json_atomic(out / "metrics.json", metrics)
    with open(out / "metrics.csv", "w", newline="") as f:
        names = space.names
        w = csv.writer(f)
        w.writerow(["sample", "raw", *names, "proxy_psnr", "proxy_ssim", "proxy_deltae_mean", "proxy_deltae_p95",
                    "identity_psnr", "identity_ssim", "identity_deltae_mean"])
        for r in rows:
            idn = r["identity"] or {}
            w.writerow([r["sample"], r["raw"], *[r["params"].get(k) for k in names], *[r["proxy"][k] for k in
                        ("psnr", "ssim", "deltae_mean", "deltae_p95")], idn.get("psnr"), idn.get("ssim"), idn.get("deltae_mean")])
    rep.add_text(f"{n} fresh darktable renders of {len(per_raw)} raw(s) at {size} px; params drawn uniformly in the "
                 f"proxy's training ranges (seed {seed}). Metrics on display-encoded images (sRGB curve).", "note")
    summary = [{"": "proxy", **{k: metrics["proxy"][k] for k in ("psnr", "psnr_min", "ssim", "deltae_mean", "deltae_p95")}}]
    if metrics["identity"]:
        summary.append({"": "identity (output = input)", **{k: metrics["identity"][k] for k in ("psnr", "psnr_min", "ssim", "deltae_mean", "deltae_p95")}})
    rep.add_heading("Summary")
    rep.add_table(summary)
    rep.add_heading("Samples")
    rep.add_table([{"sample": r["sample"], "raw": r["raw"],
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in r["params"].items()},
                    "proxy dB": r["proxy"]["psnr"], "identity dB": (r["identity"] or {}).get("psnr"),
                    "ΔE mean": r["proxy"]["deltae_mean"]} for r in rows])
    rep.add_heading("Side by side: input | darktable | proxy | error")
    for i, pair, pred, m in sorted(panels, key=lambda t: t[0]):
        txt = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in pair.params.items())
        rep.add_image(panel(pair.input, pair.output, pred), f"#{i} {pair.raw.name}: {txt} — proxy {m.psnr:.2f} dB",
                      name=f"sample{i:03d}.png")
    rep.write(out / "index.html")
    return EvalResult(metrics, out)


@dataclass
class SweepResult:
    values: list[float]
    psnr: list[float | None]
    frames: list[Path]
    video: Path | None
    ffmpeg_command: str | None
    out_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)


def sweep(dt: Darktable, proxy, param: str, raw: str | os.PathLike[str], out_dir: str | os.PathLike[str],
          steps: int = 50, video: str | os.PathLike[str] | None = None, with_darktable: bool = True,
          size: int | None = None, fps: int = 10) -> SweepResult:
    """Sample ``param`` across its training range (others at their defaults),
    write numbered frames (proxy beside darktable, the value in the frame), a
    plot of PSNR against the value, ``sweep.json``, and optionally an mp4."""
    from darkproxy.viz.images import annotate, save_png
    from darkproxy.viz.plots import plot_curve
    from darkproxy.viz.video import ffmpeg_command, write_video

    spec = proxy.param_space.spec(param)
    if steps < 2:
        raise DarkproxyError("--steps must be >= 2")
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    size = size or default_size(proxy.run_info)
    if spec.kind in ("enum", "bool"):
        values = list(spec.values) if spec.kind == "enum" else [0, 1]
    else:
        values = [float(v) for v in np.linspace(spec.lo, spec.hi, steps)]
        if spec.kind == "int":
            values = sorted(set(int(round(v)) for v in values))
    defaults = proxy.param_space.defaults()
    params_list = [{**defaults, param: v} for v in values]
    pairs = render_pairs(dt, Path(raw), proxy.module, params_list, size, with_outputs=with_darktable)
    frames, psnrs = [], []
    for k, (v, pair) in enumerate(zip(values, pairs)):
        pred = run_proxy(proxy, pair.input, pair.params)
        label = f"{param} = {v:.3f}" if isinstance(v, float) else f"{param} = {v}"
        if pair.output is not None:
            m = compare(pred, pair.output)
            psnrs.append(m.psnr)
            img = side_by_side([to_display(pred), to_display(pair.output)], ["proxy", "darktable"])
            label += f"   PSNR {m.psnr:.2f} dB"
        else:
            psnrs.append(None)
            img = to_display(pred)
        frames.append(save_png(out / "frames" / f"{k:04d}.png", annotate(img, label)))
    if with_darktable:
        plot_curve(values, {"proxy vs darktable": psnrs}, param, "PSNR (dB)", out / "psnr.png",
                   title=f"{proxy.module}: {param} sweep")
    vid, cmd = None, None
    if video:
        vid = write_video(frames, video if Path(video).is_absolute() or Path(video).parent != Path(".") else out / video, fps=fps)
        cmd = ffmpeg_command(str(out / "frames" / "%04d.png"), vid, fps)
    res = SweepResult(values, psnrs, frames, vid, cmd, out,
                      {"module": proxy.module, "param": param, "raw": str(raw), "size": size, "darktable": with_darktable})
    from darkproxy.darktable.schema import write_json_atomic

    write_json_atomic(out / "sweep.json", {**res.meta, "values": values, "psnr": psnrs,
                                          "frames": [f.name for f in frames], "video": str(vid) if vid else None,
                                          "ffmpeg_command": cmd})
    return res
