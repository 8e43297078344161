"""``darkproxy eval``: a proxy against fresh darktable renders of raws, beside the identity
baseline; ``metrics.json``, ``metrics.csv`` and ``index.html``."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.metrics import ImageMetrics, aggregate, compare
from darkproxy.darktable.session import Darktable
from darkproxy.data.raws import find_raws, readable_raws
from darkproxy.data.sampling import sample_params
from darkproxy.data.scale import FULL_SIZE_RADIUS
from darkproxy.engines.evaluate.pairs import (
    BASELINE_KIND,
    Pair,
    bilinear_baseline,
    default_size,
    eval_region,
    panel,
    render_pairs,
    run_proxy,
)
from darkproxy.errors import DarkproxyError
from darkproxy.fsutil import atomic_path, write_json
from darkproxy.proxy.compat import check_zoo_proxy

CONTRACT_KEYS = ("psnr", "psnr_min", "psnr_p05", "pu21_psnr", "hdrflip_mean", "ssim", "deltae_mean")


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    out_dir: Path


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


@dataclass
class _Scores:
    """Per sample: the rows of metrics.json, the proxy's / identity's / pre-demosaic baseline's
    metrics by sample index, and the panels of the report."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    proxy: dict[int, ImageMetrics] = field(default_factory=dict)
    identity: dict[int, ImageMetrics] = field(default_factory=dict)
    baseline: dict[int, ImageMetrics] = field(default_factory=dict)
    panels: list[tuple[int, Pair, np.ndarray, ImageMetrics]] = field(default_factory=list)


def _checked_settings(
    proxy: Any,
    fixed: Mapping[str, Any] | None,
    ranges: Mapping[str, tuple[float, float]] | None,
    n: int,
    scales: Sequence[float] | None,
) -> tuple[dict[str, Any], dict[str, tuple[float, float]], list[float | None]]:
    """``fixed``, ``ranges`` and the scales to render at, checked before anything renders."""
    space = proxy.param_space
    fixed = dict(fixed or {})
    rng = {k: (float(lo), float(hi)) for k, (lo, hi) in (ranges or {}).items()}
    for k, v in fixed.items():
        space.spec(k).check(v)
    for k, (lo, hi) in rng.items():
        sp = space.spec(k)
        if sp.kind not in ("float", "int") or not lo < hi:
            raise DarkproxyError(f"--range {k}={lo}:{hi}: needs a numeric param and LO < HI")
    if n < 1:
        raise DarkproxyError("-n must be >= 1")
    scale_list: list[float | None] = [float(v) for v in scales] if scales else [None]
    for sc in scale_list:
        if sc is not None:
            if proxy.pre_demosaic:
                raise DarkproxyError(f"--scales: {proxy.module} runs on the full-resolution mosaic: it has no scale")
            if not 0 < sc <= 1:
                raise DarkproxyError(f"--scales: {sc} is not a render scale in (0, 1]")
            if proxy.module not in FULL_SIZE_RADIUS:  # soften's is checked per raw (its diagonal: eval_region)
                proxy.check_scale(sc)
    return fixed, rng, scale_list


def _score_pair(
    proxy: Any, i: int, sc: float | None, pair: Pair, space: Any, scores: _Scores, region: Any = None
) -> ImageMetrics:
    """Sample ``i``: the proxy (and identity, or before demosaic the crude baseline) against darktable."""
    pred = run_proxy(proxy, pair.input, pair.params, pair.scale, pair.raw)
    assert pair.output is not None  # rendered with outputs
    m = compare(pred, pair.output)
    ident = compare(pair.input, pair.output) if pair.input.shape == pair.output.shape else None
    scores.proxy[i] = m
    if ident:
        scores.identity[i] = ident
    else:  # before demosaic "doing nothing" is no image: the crude demosaic with an oracle colour fit
        scores.baseline[i] = compare(bilinear_baseline(pair.input, pair.output), pair.output)
    scores.rows.append(
        {
            "sample": i,
            "raw": pair.raw.name,
            "params": pair.params,
            "render_scale": pair.scale,
            "scale": sc,
            "region": region.to_json() if region is not None else None,
            "shape": list(pair.output.shape),
            "in_training_range": _in_range(space, pair.params),
            "proxy": m.to_json(),
            "identity": ident.to_json() if ident else None,
        }
    )
    scores.panels.append((i, pair, pred, m))
    return m


def _metrics_record(
    dt: Darktable,
    proxy: Any,
    settings: Mapping[str, Any],
    scores: _Scores,
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """metrics.json (see :func:`evaluate_proxy`)."""
    pm, im, bm, rows = scores.proxy, scores.identity, scores.baseline, scores.rows
    ranges = settings["ranges"]
    metrics: dict[str, Any] = {
        "module": proxy.module,
        "darktable_version": dt.version,
        "run": str(getattr(proxy, "run_dir", None) or ""),
        "n": settings["n"],
        "size": settings["size"],
        "scale_range": proxy.scale_range.to_json() if getattr(proxy, "scale_range", None) else None,
        "sampler": settings["sampler"],
        "seed": settings["seed"],
        "fixed": {**proxy.param_space.fixed, **settings["fixed"]},
        "ranges": {k: list(v) for k, v in ranges.items()} or None,
        "seconds": time.time() - settings["t0"],
        "proxy": aggregate([pm[i] for i in sorted(pm)]),
        "identity": aggregate([im[i] for i in sorted(im)]) if im else None,
        "baseline": aggregate([bm[i] for i in sorted(bm)]) if bm else None,
        "baseline_kind": BASELINE_KIND if bm else "identity",
        "skipped_raws": skipped,
        "samples": rows,
    }
    if settings["scales"]:
        metrics["per_scale"] = per_scale_metrics(rows, settings["scale_list"], pm, im)
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
    return metrics


def evaluate_proxy(
    dt: Darktable,
    proxy: Any,
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
    and more (:func:`darkproxy.colour.metrics.aggregate`); ``samples`` (per sample);
    ``skipped_raws``; and, when ``ranges`` is given, ``in_range`` / ``out_of_range``
    aggregates over the samples inside / outside the training ranges.

    Render scale: with ``scales``, the ``n`` draws are rendered at each scale
    (each draw its own region of the raw, :func:`eval_region`) and ``per_scale`` lists
    ``{scale, n, psnr, psnr_min, pu21_psnr, identity_psnr, ...}``; without,
    a scale-dependent proxy is evaluated at scales in its trained range and
    any other proxy on whole raws at ``size``. A scale outside a proxy's
    trained range is refused before anything renders."""
    from darkproxy.viz.report import HtmlReport

    t0 = time.time()
    out = Path(out_dir)
    space = proxy.param_space
    fixed_d, ranges_d, scale_list = _checked_settings(proxy, fixed, ranges, n, scales)
    say = progress or (lambda s: None)
    check_zoo_proxy(proxy, dt, say)
    raws, skipped = readable_raws(dt, find_raws(images), say)
    out.mkdir(parents=True, exist_ok=True)
    size = size or default_size(proxy.run_info)
    draws = _draws(space, n, seed, fixed_d, ranges_d, sampler)
    per_raw: dict[int, list[int]] = {}
    for i in range(n):
        per_raw.setdefault(i % len(raws), []).append(i)
    scores = _Scores()
    total = n * len(scale_list)
    for si, sc in enumerate(scale_list):
        for ri, idxs in per_raw.items():
            region = eval_region(proxy, raws[ri], size, sc, np.random.default_rng([seed, ri, si, 0x5CA1E]))
            # whole raws: the draws share one input render; regions: one of its own per draw (one per raw let a
            # flat patch stand for a whole scale: denoise's held-out input and output there were identical)
            groups = [(region, idxs)]
            if region is not None:
                rngs = [np.random.default_rng([seed, ri, si, i0, 0x5CA1E]) for i0 in idxs]
                groups = [(eval_region(proxy, raws[ri], size, sc, g), [i0]) for i0, g in zip(idxs, rngs, strict=True)]
            for reg, grp in groups:
                params_list = [space.for_darktable(draws[i]) for i in grp]
                pairs = render_pairs(dt, raws[ri], proxy.module, params_list, size, region=reg)
                for i0, pair in zip(grp, pairs, strict=True):
                    i = si * n + i0  # sample index: the draws repeat at each scale
                    m = _score_pair(proxy, i, sc, pair, space, scores, reg)
                    at = f" at scale {pair.scale:.3g}" if pair.scale is not None else ""
                    say(
                        f"sample {i + 1}/{total}: {pair.raw.name}{at} proxy {m.psnr:.2f} dB display, "
                        f"{m.pu21_psnr:.2f} dB PU21"
                    )
    scores.rows.sort(key=lambda r: r["sample"])
    settings = {
        "n": n,
        "size": size,
        "sampler": sampler,
        "seed": seed,
        "fixed": fixed_d,
        "ranges": ranges_d,
        "t0": t0,
        "scales": scales,
        "scale_list": scale_list,
    }
    metrics = _metrics_record(dt, proxy, settings, scores, skipped)
    write_json(out / "metrics.json", metrics)
    _write_csv(out / "metrics.csv", space.names, scores.rows)
    rep = HtmlReport(f"darkproxy eval: {proxy.module} proxy vs darktable {dt.version}")
    _write_report(rep, out, metrics, scores.rows, scores.panels, size, len(per_raw))
    return EvalResult(metrics, out)


def per_scale_metrics(
    rows: Sequence[Mapping[str, Any]],
    scales: Sequence[float | None],
    pm: Mapping[int, ImageMetrics],
    im: Mapping[int, ImageMetrics],
) -> list[dict[str, Any]]:
    """``[{scale, n, render_scale (mean measured), psnr, psnr_median, psnr_min, pu21_psnr,
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
                **{k: agg.get(k) for k in _SCALE_METRICS},
                "identity_psnr": ident.get("psnr") if ident else None,
            }
        )
    return out


_SCALE_METRICS = ("psnr", "psnr_median", "psnr_min", "pu21_psnr", "pu21_psnr_min", "deltae_mean")
_CSV_METRICS = ("psnr", "pu21_psnr", "hdrflip_mean", "ssim", "deltae_mean", "deltae_p95")


def _write_csv(path: Path, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
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
