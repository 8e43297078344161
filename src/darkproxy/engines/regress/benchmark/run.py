"""regress-eval's run: the samples, the proxy method and the black boxes on each, the results."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.darktable.tapout import input_scale, render_module_input
from darkproxy.data.raws import readable_raws
from darkproxy.engines.regress import RegressConfig, RegressError, regress, resolve_free
from darkproxy.engines.regress.benchmark.blackbox import (
    Anytime,
    DarktableObjective,
    first_reach,
    psnr_or_zero,
    run_baseline,
)
from darkproxy.engines.regress.benchmark.breakeven import break_even
from darkproxy.engines.regress.benchmark.config import MIN_RAWS, EvalConfig, multiple_label
from darkproxy.engines.regress.benchmark.report import plot_quality_vs_time, results_markdown
from darkproxy.engines.regress.recover import verify_with_darktable
from darkproxy.fsutil import write_json
from darkproxy.machine import machine_info

Say = Callable[[str], None]


def assign_raws(raws: Sequence[Path], n: int, seed: int) -> list[Path]:
    """``n`` raws for the samples, round-robin over ``raws`` in a seeded order:
    each raw gets ``floor(n / R)`` or ``ceil(n / R)`` samples."""
    if not raws:
        raise RegressError("no readable raws to evaluate on")
    order = [raws[int(i)] for i in np.random.default_rng([seed, 7]).permutation(len(raws))]
    return [order[i % len(order)] for i in range(n)]


def _at_scale(proxy: Any, inp: np.ndarray, pre: bool, raw: Path) -> Any:
    """``proxy`` at the render scale of ``inp`` (refused outside its trained range)."""
    return proxy.at_scale(input_scale(inp, pre, None, raw)) if hasattr(proxy, "at_scale") else proxy


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _named(names: list[str], v: np.ndarray) -> dict[str, float]:
    return {n: float(x) for n, x in zip(names, v, strict=False)}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (
            bool(v)
            if isinstance(v, (bool, np.bool_))
            else float(v)
            if isinstance(v, (float, np.floating))
            else int(v)
            if isinstance(v, (int, np.integer))
            else v
        )
        for k, v in d.items()
    }


def aggregate_method(recs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Summary of one method (at one budget) over samples: param error median
    (over samples x params), per param and max; darktable display PSNR pooled
    (PSNR of the mean MSE) with min / p05 / median over samples; PU21 PSNR
    pooled and min; HDR-FLIP mean and max; SSIM, CIEDE2000; median seconds and
    renders."""
    from darkproxy.colour.metrics import ImageMetrics, aggregate

    errs = np.array([[r["param_error"][n] for n in names] for r in recs])
    m = aggregate([ImageMetrics(**r["metrics"]) for r in recs])
    psnr = np.array([r["darktable_psnr"] for r in recs])
    return {
        "n": len(recs),
        "median_param_error": float(np.median(errs)),
        "median_param_error_per_param": {n: float(np.median(errs[:, j])) for j, n in enumerate(names)},
        "max_param_error": float(errs.max()),
        "darktable_psnr": m["psnr"],
        "darktable_psnr_min": m["psnr_min"],
        "darktable_psnr_p05": m["psnr_p05"],
        "darktable_psnr_median": m["psnr_median"],
        "fraction_psnr_ge_40": float(np.mean(psnr >= 40.0)),
        "pu21_psnr": m["pu21_psnr"],
        "pu21_psnr_min": m["pu21_psnr_min"],
        "pu21_psnr_p05": m["pu21_psnr_p05"],
        "hdrflip_mean": m["hdrflip_mean"],
        "hdrflip_max": m["hdrflip_max"],
        "ssim": m["ssim"],
        "ssim_min": m["ssim_min"],
        "deltae_mean": m["deltae_mean"],
        "deltae_p95": m["deltae_p95"],
        "median_seconds": float(np.median([r["seconds"] for r in recs])),
        "max_seconds": float(np.max([r["seconds"] for r in recs])),
        "median_renders": float(np.median([r["renders"] for r in recs])),
        "total_renders": int(sum(r["renders"] for r in recs)),
        "overruns": int(sum(bool(r.get("overrun")) for r in recs)),
    }


def _oneoff(proxy: Any, cfg: EvalConfig) -> dict[str, Any]:
    """The proxy's one-off cost: dataset generation + training seconds."""
    import json

    train_s, src = cfg.train_s, "given"
    if train_s is None:
        src = "the run's metrics.json (training loop)"
        try:
            train_s = float(json.loads((Path(proxy.run_dir) / "metrics.json").read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            train_s, src = 0.0, "unknown"
    gen = cfg.generate_s
    note = "" if gen is not None else "dataset generation time not given (--generate-s): counted as 0"
    return {
        "generate_s": gen,
        "train_s": train_s,
        "train_source": src,
        "total_s": float((gen or 0.0) + train_s),
        "note": note,
    }


@dataclass
class _Setup:
    """What every sample of one run shares."""

    dt: Any
    proxy: Any
    cfg: EvalConfig
    good: list[Path]
    bad: list[dict[str, str]]
    warnings: list[str]
    oneoff: dict[str, Any]
    free: list[int]
    free_names: list[str]
    base_u: np.ndarray
    labels: dict[str, str]
    machine: dict[str, Any]
    t_start: float


def regress_eval(
    dt: Any,
    proxy: Any,
    raws: list[Path],
    out_dir: str | os.PathLike[str],
    config: EvalConfig | None = None,
    log: Say | None = None,
) -> dict[str, Any]:
    """Run the evaluation; write ``results.json``, ``results.md`` and
    ``quality_vs_time.png`` into ``out_dir``; return the results dict."""
    cfg = config or EvalConfig()
    cfg.check()
    say = log or (lambda s: None)
    resolve_free(proxy.param_space, cfg.regress.params)  # unknown names fail before any render
    warnings: list[str] = []
    good, bad = readable_raws(dt, raws, say)
    if len(good) < MIN_RAWS:
        w = f"only {len(good)} readable raw(s): fewer than {MIN_RAWS}, the results lean on few images"
        say("warning: " + w)
        warnings.append(w)
    sample_raws = assign_raws(good, cfg.n, cfg.seed)
    oneoff = _oneoff(proxy, cfg)
    import torch

    prev_threads = torch.get_num_threads()
    on_cpu = all(p.device.type == "cpu" for p in proxy.parameters())
    threads = cfg.threads or (1 if on_cpu else prev_threads)
    torch.set_num_threads(int(threads))
    try:
        return _run(dt, proxy, cfg, good, bad, sample_raws, warnings, oneoff, Path(out_dir), say)
    finally:
        torch.set_num_threads(prev_threads)


def _run(
    dt: Any,
    proxy: Any,
    cfg: EvalConfig,
    good: list[Path],
    bad: list[dict[str, str]],
    sample_raws: list[Path],
    warnings: list[str],
    oneoff: dict[str, Any],
    out: Path,
    say: Say,
) -> dict[str, Any]:
    space = proxy.param_space
    free = resolve_free(space, cfg.regress.params)
    base_vals = {**space.defaults(), **dict(space.fixed or {})}
    setup = _Setup(
        dt,
        proxy,
        cfg,
        good,
        bad,
        warnings,
        oneoff,
        free,
        [space.names[i] for i in free],
        space.normalize(base_vals).astype(np.float64),
        {b.kind: b.label(len(free)) for b in cfg.baselines},
        machine_info(),
        time.perf_counter(),
    )
    rng = np.random.default_rng(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    # untimed warm-up (torch's first calls): a one-time cost of the process, not of sample 0
    inp0, pre0 = render_module_input(dt, sample_raws[0], proxy.module, cfg.size)
    if inp0.shape[0] == 3:
        warm = RegressConfig(**{**cfg.regress.__dict__, "iters": 10, "record": False})
        regress(_at_scale(proxy, inp0, pre0, sample_raws[0]), inp0, inp0, warm)
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="darkproxy-regress-eval-") as td:
        for i, raw in enumerate(sample_raws):
            samples.append(_sample(setup, i, raw, rng, Path(td), say))
            if i + 1 < cfg.n:  # partial results after every sample: an interrupted run leaves what it measured
                _write(_results(setup, samples), out)
    return _write(_results(setup, samples), out)


def _sample(setup: _Setup, i: int, raw: Path, rng: np.random.Generator, tmp: Path, say: Say) -> dict[str, Any]:
    """Sample ``i``: true params drawn, darktable's target, the proxy method, then each black box."""
    from darkproxy.darktable.tapout import plan_tapout

    dt, cfg, space = setup.dt, setup.cfg, setup.proxy.param_space
    u = setup.base_u.copy()
    u[setup.free] = rng.uniform(0.0, 1.0, len(setup.free))
    true_params = space.denormalize(u)
    u_true = space.normalize(true_params).astype(np.float64)
    plan = plan_tapout(dt, dt.default_history(raw), setup.proxy.module, space.for_darktable(true_params))
    target = dt.renderer(max_size=cfg.size).render_array(raw, plan.output_sidecar)
    say(f"[{i + 1}/{cfg.n}] {raw.name}: " + ", ".join(f"{k}={_fmt(true_params[k])}" for k in setup.free_names))
    proxy_rec = _proxy_method(setup, i, raw, target, u_true)
    unit = cfg.budget_s if cfg.budget_s is not None else proxy_rec["seconds"]
    say(
        f"    proxy: err {proxy_rec['mean_param_error']:.4f}, darktable {proxy_rec['darktable_psnr']:.1f} dB, "
        f"{proxy_rec['seconds']:.1f} s"
    )
    brecs = _black_boxes(setup, i, raw, target, u_true, unit, proxy_rec, tmp, say)
    return {
        "index": i,
        "raw": str(raw),
        "true_params": _plain(true_params),
        "unit_s": unit,
        "proxy": proxy_rec,
        "baselines": brecs,
    }


def _proxy_method(setup: _Setup, i: int, raw: Path, target: np.ndarray, u_true: np.ndarray) -> dict[str, Any]:
    """The proxy method, timed: module input render + regression + darktable's verification render."""
    from darkproxy.colour.metrics import compare

    cfg, proxy = setup.cfg, setup.proxy
    space = proxy.param_space
    t0 = time.perf_counter()
    inp, pre = render_module_input(setup.dt, raw, proxy.module, cfg.size)
    rc = RegressConfig(**{**cfg.regress.__dict__, "seed": cfg.regress.seed + i, "record": False})
    res = regress(_at_scale(proxy, inp, pre, raw), inp, target, rc)
    named = space.for_darktable(res.params)
    ver = verify_with_darktable(setup.dt, raw, proxy.module, named, target, pre)
    p_sec = time.perf_counter() - t0
    p_err = space.unit_errors(res.normalized, u_true)[setup.free]
    return {
        "params": _plain(res.params),
        "param_error": _named(setup.free_names, p_err),
        "mean_param_error": float(p_err.mean()),
        "darktable_psnr": ver.psnr,
        "metrics": compare(ver.output, target).to_json(),
        "proxy_psnr": res.proxy_psnr,
        "seconds": p_sec,
        "regress_seconds": res.seconds,
        "renders": 2,
        "darktable_processes": 2,
    }


def _black_boxes(
    setup: _Setup,
    i: int,
    raw: Path,
    target: np.ndarray,
    u_true: np.ndarray,
    unit: float,
    proxy_rec: dict[str, Any],
    tmp: Path,
    say: Say,
) -> dict[str, Any]:
    """Each black box on darktable: one anytime run up to its largest budget."""
    cfg, space = setup.cfg, setup.proxy.param_space
    brecs: dict[str, Any] = {}
    for bi, spec in enumerate(cfg.baselines):
        label = setup.labels[spec.kind]
        mults = cfg.multiples(spec)
        budgets_s = [m * unit for m in mults]
        obj = DarktableObjective(setup.dt, raw, space, setup.free, setup.base_u, target, u_true, cfg.size, tmp)
        rec = run_baseline(
            obj,
            spec.kind,
            setup.base_u[setup.free],
            budgets_s[-1],
            budgets_s,
            cfg.sigma0,
            cfg.popsize,
            seed=cfg.seed + 1000 * i + 100 * bi,
        )
        br = brecs[label] = _baseline_record(rec, obj, space, setup.free_names, mults, unit, target, proxy_rec, label)
        t_eq = br["to_proxy_quality"]["psnr_seconds"]
        say(
            f"    {label}: "
            + ", ".join(
                f"{multiple_label(x['multiple'])}x {x['mean_param_error']:.4f} / {x['darktable_psnr']:.1f} dB"
                for x in br["budgets"]
            )
            + f"; ran {br['run_s']:.1f} s, {br['renders']} renders ({br['stop']}); "
            + (f"proxy's PSNR after {t_eq:.1f} s" if t_eq is not None else "never reached the proxy's PSNR")
        )
    return brecs


def _aggregates(setup: _Setup, samples: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per method (and budget) aggregates, and the break-even against each black box."""
    cfg, names = setup.cfg, setup.free_names
    aggregate: dict[str, Any] = {"proxy": aggregate_method([s["proxy"] for s in samples], names)}
    be: dict[str, Any] = {}
    proxy_s = [s["proxy"]["seconds"] for s in samples]
    for spec in cfg.baselines:
        lab = setup.labels[spec.kind]
        aggregate[lab] = {
            multiple_label(m): aggregate_method([s["baselines"][lab]["budgets"][j] for s in samples], names)
            for j, m in enumerate(cfg.multiples(spec))
        }
        run_s = [s["baselines"][lab]["run_s"] for s in samples]
        total = setup.oneoff["total_s"]
        reach = [s["baselines"][lab]["to_proxy_quality"] for s in samples]
        be[lab] = {
            "darktable_psnr": break_even(proxy_s, [r["psnr_seconds"] for r in reach], run_s, total),
            "param_error": break_even(proxy_s, [r["param_error_seconds"] for r in reach], run_s, total),
        }
    return aggregate, be


def _results(setup: _Setup, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The results dict of the samples done so far (``complete`` once all are)."""
    cfg, proxy = setup.cfg, setup.proxy
    aggregate, be = _aggregates(setup, samples)
    done = [Path(s["raw"]) for s in samples]
    return {
        "module": proxy.module,
        "free_params": setup.free_names,
        "run": str(getattr(proxy, "run_dir", "") or ""),
        "n": len(samples),
        "n_planned": cfg.n,
        "complete": len(samples) == cfg.n,
        "seed": cfg.seed,
        "size": cfg.size,
        "raws": [str(r) for r in setup.good],
        "raw_counts": {r.name: sum(1 for x in done if x == r) for r in setup.good},
        "unreadable_raws": setup.bad,
        "warnings": setup.warnings,
        "regress": {k: v for k, v in cfg.regress.__dict__.items() if k != "record"},
        "budgets": {
            "multiples": list(cfg.budgets),
            "unit": (
                f"{cfg.budget_s:g} s" if cfg.budget_s is not None else "the proxy method's wall time on the same sample"
            ),
            "median_unit_s": float(np.median([s["unit_s"] for s in samples])),
        },
        "baselines": [
            {
                "method": setup.labels[b.kind],
                "kind": b.kind,
                "multiples": list(cfg.multiples(b)),
                "sigma0": cfg.sigma0,
                "popsize": cfg.popsize,
            }
            for b in cfg.baselines
        ],
        "methods": [setup.labels[b.kind] for b in cfg.baselines],
        "oneoff": setup.oneoff,
        "break_even": be,
        "darktable_version": getattr(setup.dt, "version", None),
        "machine": setup.machine,
        "machine_end": {k: v for k, v in machine_info().items() if k in ("date", "loadavg")},
        "seconds": time.perf_counter() - setup.t_start,
        "aggregate": aggregate,
        "samples": samples,
    }


def _write(results: dict[str, Any], out: Path) -> dict[str, Any]:
    write_json(out / "results.json", results)
    plot_quality_vs_time(results, out / "quality_vs_time.png")
    (out / "results.md").write_text(results_markdown(results))
    return results


def _baseline_record(
    rec: Anytime,
    obj: DarktableObjective,
    space: Any,
    names: list[str],
    mults: Sequence[float],
    unit: float,
    target: np.ndarray,
    proxy_rec: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    from darkproxy.colour.metrics import compare

    per_budget = []
    cache: dict[int, dict[str, float]] = {}  # the same best render at several budgets: one compare
    for m in mults:
        s = rec.snapshots[float(m * unit)]
        err = obj.error(s["u"])
        key = id(s["out"])
        if key not in cache:
            cache[key] = compare(s["out"], target).to_json()
        per_budget.append(
            {
                "multiple": float(m),
                "budget_s": float(m * unit),
                "seconds": float(s["seconds"]),
                "overrun": bool(s["overrun"]),
                "renders": s["renders"],
                "darktable_processes": s["processes"],
                "params": _plain(space.denormalize(s["u"])),
                "param_error": _named(names, err),
                "mean_param_error": float(err.mean()),
                "darktable_psnr": psnr_or_zero(s["loss"]),
                "metrics": cache[key],
            }
        )
    ps, pr = first_reach(rec.trace, "darktable_psnr", proxy_rec["darktable_psnr"])
    es, er = first_reach(rec.trace, "mean_param_error", proxy_rec["mean_param_error"], higher=False)
    return {
        "method": label,
        "run_s": rec.run_s,
        "stop": rec.stop,
        "restarts": rec.restarts,
        "renders": int(obj.images),
        "darktable_processes": int(obj.processes),
        "budgets": per_budget,
        "to_proxy_quality": {
            "psnr_seconds": ps,
            "psnr_renders": pr,
            "param_error_seconds": es,
            "param_error_renders": er,
        },
        "trace": rec.trace,
    }
