"""Evaluate a trained proxy against *fresh* darktable renders, and sweep one
parameter across its range (proxy beside darktable, as frames and a video).

Ground truth is always rendered now, by darktable, through tap-outs of the given
raws (:mod:`darkproxy.darktable.tapout`); nothing is taken from the training set.
The identity baseline (output = input) gives the numbers context: a proxy must
beat it by a wide margin to be worth anything.

Every figure is reported three ways (:mod:`darkproxy.viz.metrics`): display PSNR
(what a monitor shows, blind above linear 1.0), PU21 PSNR and HDR-FLIP on the
unclipped scene-referred images (they see highlights), each with the worst case
beside the pooled value (``psnr_min``, ``psnr_p05`` over samples or sweep steps).
Values pinned at generation (the run's ``fixed`` params) are set in every
darktable render, so darktable renders the setting the proxy was trained on.
Raws darktable cannot open are skipped with a warning and listed in the report.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import Region, packed_input, plan_tapout, raw_size, region_for_scale, render_scale
from darkproxy.data.generate import find_raws, readable_raws
from darkproxy.data.sampling import sample_params
from darkproxy.errors import DarkproxyError, DarktableRenderError
from darkproxy.viz.images import error_map, side_by_side, to_display
from darkproxy.viz.metrics import ImageMetrics, aggregate, compare

CONTRACT_KEYS = ("psnr", "psnr_min", "psnr_p05", "pu21_psnr", "hdrflip_mean", "ssim", "deltae_mean")


@dataclass
class Pair:
    """A darktable tap-out: module input, darktable's output, and the params."""

    raw: Path
    params: dict[str, Any]
    input: np.ndarray
    output: np.ndarray | None  # None when rendered without outputs (render_pairs(with_outputs=False))
    scale: float | None = None  # render scale, measured (output px per raw px)


def default_size(run_info: Mapping[str, Any], fallback: int = 256) -> int:
    """The render size the proxy was trained at (from the run's dataset.json)."""
    ds = run_info.get("dataset")
    if ds and (Path(ds) / "dataset.json").is_file():
        info = json.loads((Path(ds) / "dataset.json").read_text())
        if info.get("size"):
            return int(info["size"])
    return int(run_info.get("size") or fallback)


def render_pairs(
    dt: Darktable,
    raw: Path,
    module: str,
    params_list: Sequence[Mapping[str, Any]],
    max_size: int | None,
    base=None,
    with_outputs: bool = True,
    region: Region | None = None,
) -> list[Pair]:
    """Tap ``module`` out of ``raw`` for every params dict: the module input is
    rendered once (it does not depend on the module's params), all outputs in
    the same darktable-cli process. ``region``: that region of the raw at its
    render scale (then its ``max_size`` is used)."""
    base = base if base is not None else dt.default_history(raw)
    plans = [plan_tapout(dt, base, module, dict(p), region=region) for p in params_list]
    pre = plans[0].pre_demosaic
    r = dt.renderer(max_size=None if pre else (region.max_size if region is not None else max_size))
    with tempfile.TemporaryDirectory(prefix="darkproxy-eval-") as td:
        jobs = []
        if not pre:
            jobs.append(RenderJob(raw, plans[0].input_sidecar, Path(td) / "in.tif"))
        if with_outputs:
            jobs += [RenderJob(raw, pl.output_sidecar, Path(td) / f"out{i}.tif") for i, pl in enumerate(plans)]
        res: list[Path] = []
        for x in r.render_batch(jobs):
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
            res.append(x)
        inp = packed_input(raw, module) if pre else read_tiff(res[0])
        outs = [read_tiff(p) for p in res[(0 if pre else 1) :]] if with_outputs else [None] * len(plans)
    scale = 1.0 if pre else render_scale(raw, inp.shape, region.box if region else None)
    return [Pair(raw, dict(pl.set_params), inp, o, scale) for pl, o in zip(plans, outs, strict=True)]


def eval_region(proxy, raw: Path, size: int, scale: float | None, rng: np.random.Generator) -> Region | None:
    """What to render of ``raw`` for ``proxy``: the region at ``scale`` when
    given; for a scale-dependent proxy without one, a region at a scale drawn
    log-uniformly in its trained range (whole raws at ``size`` would hand it
    whatever scale the raw's size makes); else ``None`` (the whole raw)."""
    sr = getattr(proxy, "scale_range", None)
    if proxy.pre_demosaic:
        if scale is not None:
            raise DarkproxyError(f"{proxy.module} runs on the full-resolution mosaic: it has no render scale")
        return None
    if scale is None:
        if sr is None or not sr.dependent:
            return None
        scale = float(np.exp(rng.uniform(np.log(sr.lo), np.log(sr.hi))))
    proxy.check_scale(scale)
    wh = raw_size(raw)
    if wh is None:
        raise DarkproxyError(f"{raw.name}: rawpy cannot read its size, which rendering at a scale needs")
    return region_for_scale(wh, size, scale, rng)


@torch.no_grad()
def run_proxy(proxy, image: np.ndarray, params: Mapping[str, Any], scale: float | None = None) -> np.ndarray:
    """proxy(image (C,H,W), params by name) at render ``scale`` -> float32 (3,H',W')."""
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(proxy.device)
    u = proxy.normalize({k: v for k, v in params.items() if k in proxy.param_space.names}, batch=1)
    return proxy(x, u, scale=scale)[0].float().cpu().numpy()


def panel(
    inp: np.ndarray | None, truth: np.ndarray, pred: np.ndarray, gain: float = 10.0, crop: int = 256
) -> np.ndarray:
    """input | darktable | proxy | error xgain, centre crops of ``crop`` px."""

    def c(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[-2:]
        y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        return a[..., y : y + crop, x : x + crop]

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


BASELINE_KIND = "bilinear demosaic + per-sample least-squares colour matrix (an oracle fit)"


def bilinear_baseline(packed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The baseline of a pre-demosaic module, where output = input is no image:
    ``packed (4, h, w)`` camera mosaic -> bilinear demosaic
    (:func:`~darkproxy.models.demosaic.packed_to_rgb_base`), then the 3x3
    matrix that best maps it onto ``target (3, 2h, 2w)`` linear_rec2020 in
    least squares (fitted on the target itself: an upper bound for any global
    colour transform after a crude demosaic). Returns (3, 2h, 2w) float32."""
    import torch

    from darkproxy.models.demosaic import packed_to_rgb_base

    base = packed_to_rgb_base(torch.from_numpy(np.asarray(packed, np.float32))[None])[0].numpy()
    h, w = target.shape[1:]
    base = base[:, :h, :w].reshape(3, -1).T.astype(np.float64)
    t = np.asarray(target, np.float64).reshape(3, -1).T
    ok = np.isfinite(base).all(1) & np.isfinite(t).all(1)
    mat, *_ = np.linalg.lstsq(base[ok], t[ok], rcond=None)
    return (base @ mat).T.reshape(3, h, w).astype(np.float32)


def _draws(
    space: Any,
    n: int,
    seed: int,
    fixed: Mapping[str, Any],
    ranges: Mapping[str, tuple[float, float]],
    sampler: str = "uniform",
) -> list[dict[str, Any]]:
    """``n`` param dicts drawn with ``sampler`` (``uniform``: every slider
    uniform in its training range; ``sparse``: 1-3 sliders moved from their
    defaults, as photographers edit) or in ``ranges`` (which may reach outside
    them: extrapolation), ``fixed`` pinned."""
    draws = sample_params(space, n, sampler, seed)
    rng = np.random.default_rng(seed + 1)
    for d in draws:
        for k, (lo, hi) in ranges.items():
            v = float(rng.uniform(lo, hi))
            d[k] = int(round(v)) if space.spec(k).kind == "int" else v
        d.update(fixed)
    return draws


def _in_range(space: Any, params: Mapping[str, Any]) -> bool:
    for k, v in params.items():
        if k in space.names:
            sp = space.spec(k)
            if sp.kind in ("float", "int") and not (sp.lo <= float(v) <= sp.hi):
                return False
    return True


def evaluate(
    dt: Darktable,
    proxy,
    images: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    n: int = 8,
    fixed: Mapping[str, Any] | None = None,
    size: int | None = None,
    seed: int = 1234,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    progress: Callable[[str], None] | None = None,
    sampler: str = "uniform",
    scales: Sequence[float] | None = None,
) -> EvalResult:
    """Render ``n`` fresh (raw, params) pairs with darktable (params uniform in
    the run's training ranges, or in ``ranges`` — which may extend past them to
    measure extrapolation — with ``fixed`` ones pinned), run the proxy on the
    same inputs, and write ``metrics.json``, ``metrics.csv`` and ``index.html``.

    ``metrics.json``: ``run`` (the run folder), ``n``, ``proxy`` and
    ``identity`` (output = input; None before demosaic, where input and output
    differ in kind), each with ``psnr`` (pooled display PSNR), ``psnr_min``,
    ``psnr_p05``, ``pu21_psnr``, ``hdrflip_mean``, ``ssim``, ``deltae_mean``
    and more (:func:`darkproxy.viz.metrics.aggregate`); ``samples`` (per sample);
    ``skipped_raws``; and, when ``ranges`` is given, ``in_range`` / ``out_of_range``
    aggregates over the samples inside / outside the training ranges.

    Render scale: with ``scales``, the ``n`` draws are rendered at each scale
    (a region of the raw, :func:`eval_region`) and ``per_scale`` lists
    ``{scale, n, psnr, psnr_min, pu21_psnr, identity_psnr, ...}``; without,
    a scale-dependent proxy is evaluated at scales in its trained range and
    any other proxy on whole raws at ``size``. A scale outside a proxy's
    trained range is refused before anything renders."""
    from darkproxy.viz.report import HtmlReport

    t0 = time.time()
    out = Path(out_dir)
    space = proxy.param_space
    fixed = dict(fixed or {})
    ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in (ranges or {}).items()}
    for k, v in fixed.items():
        space.spec(k).check(v)
    for k, (lo, hi) in ranges.items():
        sp = space.spec(k)
        if sp.kind not in ("float", "int") or not lo < hi:
            raise DarkproxyError(f"--range {k}={lo}:{hi}: needs a numeric param and LO < HI")
    if n < 1:
        raise DarkproxyError("-n must be >= 1")
    say = progress or (lambda s: None)
    scale_list: list[float | None] = [float(v) for v in scales] if scales else [None]
    for sc in scale_list:
        if sc is not None:
            if proxy.pre_demosaic:
                raise DarkproxyError(f"--scales: {proxy.module} runs on the full-resolution mosaic: it has no scale")
            if not 0 < sc <= 1:
                raise DarkproxyError(f"--scales: {sc} is not a render scale in (0, 1]")
            proxy.check_scale(sc)
    from darkproxy.zoo import check_zoo_proxy

    check_zoo_proxy(proxy, dt, say)
    raws, skipped = readable_raws(dt, find_raws(images), say)
    out.mkdir(parents=True, exist_ok=True)
    size = size or default_size(proxy.run_info)
    draws = _draws(space, n, seed, fixed, ranges, sampler)
    per_raw: dict[int, list[int]] = {}
    for i in range(n):
        per_raw.setdefault(i % len(raws), []).append(i)
    rows: list[dict[str, Any]] = []
    pm: dict[int, ImageMetrics] = {}
    im: dict[int, ImageMetrics] = {}
    bm: dict[int, ImageMetrics] = {}  # pre-demosaic baseline (bilinear_baseline)
    rep = HtmlReport(f"darkproxy eval: {proxy.module} proxy vs darktable {dt.version}")
    panels = []
    total = n * len(scale_list)
    for si, sc in enumerate(scale_list):
        for ri, idxs in per_raw.items():
            region = eval_region(proxy, raws[ri], size, sc, np.random.default_rng([seed, ri, si, 0x5CA1E]))
            params_list = [space.for_darktable(draws[i]) for i in idxs]
            pairs = render_pairs(dt, raws[ri], proxy.module, params_list, size, region=region)
            for i0, pair in zip(idxs, pairs, strict=True):
                i = si * n + i0  # sample index: the draws repeat at each scale
                pred = run_proxy(proxy, pair.input, pair.params, pair.scale)
                assert pair.output is not None  # rendered with outputs
                m = compare(pred, pair.output)
                ident = compare(pair.input, pair.output) if pair.input.shape == pair.output.shape else None
                pm[i] = m
                if ident:
                    im[i] = ident
                else:  # before demosaic "doing nothing" is no image: the crude demosaic with an oracle colour fit
                    bm[i] = compare(bilinear_baseline(pair.input, pair.output), pair.output)
                rows.append(
                    {
                        "sample": i,
                        "raw": pair.raw.name,
                        "params": pair.params,
                        "render_scale": pair.scale,
                        "scale": sc,
                        "shape": list(pair.output.shape),
                        "in_training_range": _in_range(space, pair.params),
                        "proxy": m.to_json(),
                        "identity": ident.to_json() if ident else None,
                    }
                )
                panels.append((i, pair, pred, m))
                at = f" at scale {pair.scale:.3g}" if pair.scale is not None else ""
                say(
                    f"sample {i + 1}/{total}: {pair.raw.name}{at} proxy {m.psnr:.2f} dB display, "
                    f"{m.pu21_psnr:.2f} dB PU21"
                )
    rows.sort(key=lambda r: r["sample"])
    metrics: dict[str, Any] = {
        "module": proxy.module,
        "darktable_version": dt.version,
        "run": str(getattr(proxy, "run_dir", None) or ""),
        "n": n,
        "size": size,
        "scale_range": proxy.scale_range.to_json() if getattr(proxy, "scale_range", None) else None,
        "sampler": sampler,
        "seed": seed,
        "fixed": {**space.fixed, **fixed},
        "ranges": {k: list(v) for k, v in ranges.items()} or None,
        "seconds": time.time() - t0,
        "proxy": aggregate([pm[i] for i in sorted(pm)]),
        "identity": aggregate([im[i] for i in sorted(im)]) if im else None,
        "baseline": aggregate([bm[i] for i in sorted(bm)]) if bm else None,
        "baseline_kind": BASELINE_KIND if bm else "identity",
        "skipped_raws": skipped,
        "samples": rows,
    }
    if scales:
        metrics["per_scale"] = per_scale_metrics(rows, scale_list, pm, im)
    if ranges:
        for key, want in (("in_range", True), ("out_of_range", False)):
            sel = [r["sample"] for r in rows if r["in_training_range"] == want]
            metrics[key] = (
                {
                    "proxy": aggregate([pm[i] for i in sel]),
                    "identity": aggregate([im[i] for i in sel if i in im]) or None,
                }
                if sel
                else None
            )
    from darkproxy.darktable.schema import write_json_atomic

    write_json_atomic(out / "metrics.json", metrics)
    _write_csv(out / "metrics.csv", space.names, rows)
    _write_report(rep, out, metrics, rows, panels, size, len(per_raw))
    return EvalResult(metrics, out)


def per_scale_metrics(
    rows: Sequence[Mapping[str, Any]],
    scales: Sequence[float | None],
    pm: Mapping[int, ImageMetrics],
    im: Mapping[int, ImageMetrics],
) -> list[dict[str, Any]]:
    """``[{scale, n, render_scale (mean measured), psnr, psnr_min, pu21_psnr,
    pu21_psnr_min, deltae_mean, identity_psnr}]``, one per requested scale."""
    out = []
    for sc in scales:
        sel = [int(r["sample"]) for r in rows if r["scale"] == sc]
        if not sel:
            continue
        agg = aggregate([pm[i] for i in sel])
        ident = aggregate([im[i] for i in sel if i in im]) if any(i in im for i in sel) else None
        measured = [r["render_scale"] for r in rows if r["scale"] == sc and r["render_scale"]]
        out.append(
            {
                "scale": sc,
                "n": len(sel),
                "render_scale": round(float(np.mean(measured)), 4) if measured else None,
                **{k: agg.get(k) for k in ("psnr", "psnr_min", "pu21_psnr", "pu21_psnr_min", "deltae_mean")},
                "identity_psnr": ident.get("psnr") if ident else None,
            }
        )
    return out


_CSV_METRICS = ("psnr", "pu21_psnr", "hdrflip_mean", "ssim", "deltae_mean", "deltae_p95")


def _write_csv(path: Path, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    from darkproxy.fsutil import atomic_path

    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "sample",
                "raw",
                *names,
                "in_training_range",
                *[f"proxy_{k}" for k in _CSV_METRICS],
                *[f"identity_{k}" for k in _CSV_METRICS],
            ]
        )
        for r in rows:
            idn = r["identity"] or {}
            w.writerow(
                [
                    r["sample"],
                    r["raw"],
                    *[r["params"].get(k) for k in names],
                    r["in_training_range"],
                    *[r["proxy"][k] for k in _CSV_METRICS],
                    *[idn.get(k) for k in _CSV_METRICS],
                ]
            )


def summary_rows(entries: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
    """Table rows (label + the metrics.json contract keys) for reports."""
    return [{"": label, **{k: agg.get(k) for k in (*CONTRACT_KEYS, "pu21_psnr_min")}} for label, agg in entries if agg]


def _write_report(
    rep: Any,
    out: Path,
    metrics: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    panels: list,
    size: int,
    n_raws: int,
) -> None:
    n = metrics["n"]
    rng = metrics.get("ranges")
    rep.add_text(
        f"{n} fresh darktable renders of {n_raws} raw(s) at {size} px; params drawn uniformly in "
        + (f"{rng} (beyond the training ranges: extrapolation)" if rng else "the proxy's training ranges")
        + f" (seed {metrics['seed']}). psnr: display PSNR (sRGB display, clipped at 1) of the squared error "
        "pooled over samples, with its worst sample (psnr_min) and 5th percentile (psnr_p05); pu21_psnr: "
        "PSNR of PU21-encoded luminance (linear 1.0 = 100 cd/m², unclipped up to 10,000 cd/m²); "
        "hdrflip_mean: HDR-FLIP on the unclipped linear images (0 = identical).",
        "note",
    )
    if metrics["skipped_raws"]:
        rep.add_text(
            "Skipped (darktable cannot open them): "
            + "; ".join(f"{b['raw']}: {b['error']}" for b in metrics["skipped_raws"]),
            "warning",
        )
    entries: list[tuple[str, Mapping[str, Any] | None]] = [
        ("proxy", metrics["proxy"]),
        ("identity (output = input)", metrics["identity"]),
    ]
    if metrics.get("baseline") and metrics.get("baseline_kind") != "identity":
        entries.append((f"baseline: {metrics['baseline_kind']}", metrics["baseline"]))
    for key in ("in_range", "out_of_range"):
        if metrics.get(key):
            entries += [
                (f"proxy, {key.replace('_', ' ')}", metrics[key]["proxy"]),
                (f"identity, {key.replace('_', ' ')}", metrics[key]["identity"]),
            ]
    rep.add_heading("Summary")
    rep.add_table(summary_rows(entries))
    if metrics.get("per_scale"):
        rep.add_heading("Per render scale (output px per raw px)")
        rep.add_table([dict(r) for r in metrics["per_scale"]])
    rep.add_heading("Samples")
    rep.add_table(
        [
            {
                "sample": r["sample"],
                "raw": r["raw"],
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in r["params"].items()},
                "proxy dB": r["proxy"]["psnr"],
                "proxy PU21 dB": r["proxy"]["pu21_psnr"],
                "proxy HDR-FLIP": r["proxy"]["hdrflip_mean"],
                "identity dB": (r["identity"] or {}).get("psnr"),
                "ΔE mean": r["proxy"]["deltae_mean"],
            }
            for r in rows
        ]
    )
    rep.add_heading("Side by side: input | darktable | proxy | error (worst sample first)")
    for i, pair, pred, m in sorted(panels, key=lambda t: t[3].pu21_psnr):
        txt = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in pair.params.items())
        assert pair.output is not None  # rendered with outputs
        rep.add_image(
            panel(pair.input, pair.output, pred),
            f"#{i} {pair.raw.name}: {txt} — proxy {m.psnr:.2f} dB display, {m.pu21_psnr:.2f} dB PU21",
            name=f"sample{i:03d}.png",
        )
    rep.write(out / "index.html")


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
    proxy,
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
    from darkproxy.viz.images import annotate, save_png
    from darkproxy.viz.plots import plot_curve
    from darkproxy.viz.video import ffmpeg_command, write_video

    spec = proxy.param_space.spec(param)
    if steps < 2:
        raise DarkproxyError("--steps must be >= 2")
    out = Path(out_dir)
    size = size or default_size(proxy.run_info)
    if spec.kind in ("enum", "bool"):
        if value_range is not None:
            raise DarkproxyError(f"--range needs a numeric param; {param} is {spec.kind}")
        values: list[Any] = list(spec.values) if spec.kind == "enum" else [0, 1]
    else:
        lo, hi = value_range if value_range is not None else (spec.lo, spec.hi)
        if not lo < hi:
            raise DarkproxyError(f"--range {lo}:{hi}: LO must be below HI")
        values = [float(v) for v in np.linspace(lo, hi, steps)]
        if spec.kind == "int":
            values = sorted(set(int(round(v)) for v in values))
    space = proxy.param_space
    params_list = [space.for_darktable({param: v}) for v in values]
    sr = getattr(proxy, "scale_range", None)
    if scale is None and sr is not None and sr.dependent and not proxy.pre_demosaic:
        scale = float(np.sqrt(sr.lo * sr.hi))  # the geometric middle of the trained range
    region = eval_region(proxy, Path(raw), size, scale, np.random.default_rng(0))
    pairs = render_pairs(dt, Path(raw), proxy.module, params_list, size, with_outputs=with_darktable, region=region)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    frames: list[Path] = []
    psnrs: list[float | None] = []
    per_step: list[dict[str, Any] | None] = []
    mets: list[ImageMetrics] = []

    for k, (v, pair) in enumerate(zip(values, pairs, strict=True)):
        pred = run_proxy(proxy, pair.input, pair.params, pair.scale)
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
    lo_hi = [values[0], values[-1]]
    res = SweepResult(
        values,
        psnrs,
        frames,
        vid,
        cmd,
        out,
        {
            "module": proxy.module,
            "param": param,
            "raw": str(raw),
            "size": size,
            "render_scale": pairs[0].scale if pairs else None,
            "darktable": with_darktable,
            "run": str(getattr(proxy, "run_dir", None) or ""),
            "range": lo_hi,
            "training_range": [spec.lo, spec.hi],
            "fixed": dict(space.fixed),
        },
        per_step,
        summary,
    )
    from darkproxy.darktable.schema import write_json_atomic

    write_json_atomic(
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
