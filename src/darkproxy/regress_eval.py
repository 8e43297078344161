"""Evaluate slider regression against darktable, and against a black-box
baseline that drives darktable directly.

For ``n`` random (raw, true params) pairs, true params drawn uniformly in the
run's training ranges (seeded), darktable renders the target (a tap-out
output at ``size`` px, with later modules disabled). Then two methods recover
the params from (raw, target):

* **proxy**: render the module input (1 darktable image), regress through
  the proxy (:func:`darkproxy.regress.regress`), render the recovered params
  with darktable (1 image) and measure the display PSNR against the target.
  Its wall time counts all three steps.
* **black box**: CMA-ES (``cma`` package) in the normalised param space
  ``[0, 1]^k`` (bounded), starting at the defaults with sigma 0.25, each
  population rendered by darktable in ONE darktable-cli process
  (:meth:`~darkproxy.darktable.render.Renderer.render_batch`), minimising the
  display MSE against the target; it gets the same wall-time budget per sample
  as the proxy took (or ``budget_s``): a new generation starts while the time
  spent is below the budget (the first always runs; the last may overrun, in
  the baseline's favour: its reported seconds are what it actually used). With a single free param CMA-ES does not apply (the ``cma`` package
  needs >= 2 dimensions); the baseline then is a batched bracket search (each
  generation renders ``popsize`` points evenly spread over the current
  bracket, then shrinks the bracket around the best). ``baseline="nelder-mead"``
  runs SciPy's Nelder-Mead instead (one render per darktable process).

Both are scored the same way: per-param absolute error normalised by the
training range (``|u_rec - u_true|``, a fraction of the range), darktable PSNR
of the recovered params vs the target, seconds and darktable images rendered.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from darkproxy.regress import (RegressConfig, RegressError, darktable_params, display_encode,
                               regress, render_module_input, resolve_free, verify_with_darktable,
                               write_json)

BASELINES = ("cma", "nelder-mead")


@dataclass
class EvalConfig:
    """Settings of :func:`regress_eval`. ``budget_s``: wall time per sample for
    the baseline (None: the proxy method's time on that sample)."""

    n: int = 8
    seed: int = 0
    size: int = 128
    budget_s: float | None = None
    baseline: str = "cma"
    sigma0: float = 0.25
    popsize: int | None = None
    regress: RegressConfig = field(default_factory=RegressConfig)

    def check(self) -> None:
        if self.n < 1:
            raise RegressError("-n must be >= 1")
        if self.size < 16:
            raise RegressError("--size must be >= 16 px")
        if self.baseline not in BASELINES:
            raise RegressError(f"unknown baseline {self.baseline!r}: use one of {', '.join(BASELINES)}")
        if self.budget_s is not None and self.budget_s <= 0:
            raise RegressError("--budget-s must be > 0")
        self.regress.check()


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: cores, CPU model, versions, date (UTC)."""
    cpu = platform.processor() or ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# ------------------------------------------------------------------ baseline
@dataclass
class _Trace:
    """Best-so-far of a black-box run: one point per generation."""

    t0: float
    seconds: list[float] = field(default_factory=list)
    renders: list[int] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    err: list[float] = field(default_factory=list)


class _DarktableObjective:
    """Display MSE of darktable's render of normalised free params vs the target,
    for many candidates per darktable-cli process."""

    def __init__(self, dt: Any, raw: Path, space: Any, free: list[int], base_u: np.ndarray, target: np.ndarray,
                 u_true: np.ndarray, size: int, tmp: Path) -> None:
        from darkproxy.darktable.tapout import plan_tapout

        self.dt, self.raw, self.space, self.free, self.base_u = dt, raw, space, free, base_u
        self.target_enc = display_encode(target).astype(np.float64)
        self.target = target
        self.u_true = u_true
        self.renderer = dt.renderer(max_size=size)
        self.base = dt.default_history(raw)
        self.plan = plan_tapout
        self.tmp = tmp
        self.images = 0
        self.processes = 0
        self.best_loss = math.inf
        self.best_u: np.ndarray | None = None
        self.best_out: np.ndarray | None = None

    def full(self, x: np.ndarray) -> np.ndarray:
        u = self.base_u.copy()
        u[self.free] = np.clip(x, 0.0, 1.0)
        return u

    def __call__(self, xs: list[np.ndarray]) -> list[float]:
        from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff

        jobs = []
        for j, x in enumerate(xs):
            named = darktable_params(self.space, self.space.denormalize(self.full(np.asarray(x))))
            side = self.plan(self.dt, self.base, self.space.module, named).output_sidecar
            jobs.append(RenderJob(self.raw, side, self.tmp / f"g{self.processes:04d}_{j:03d}.tif"))
        res = self.renderer.render_batch(jobs)
        self.processes += 1
        self.images += len(jobs)
        losses = []
        for x, r in zip(xs, res):
            if isinstance(r, RenderFailure):
                losses.append(math.inf)
                continue
            out = read_tiff(r)
            r.unlink(missing_ok=True)
            if out.shape != self.target.shape:
                raise RegressError(f"darktable rendered {out.shape}, the target is {self.target.shape}")
            loss = float(np.mean((display_encode(out).astype(np.float64) - self.target_enc) ** 2))
            losses.append(loss)
            if loss < self.best_loss:
                self.best_loss, self.best_u, self.best_out = loss, self.full(np.asarray(x)), out
        return losses

    def point(self, trace: _Trace) -> None:
        trace.seconds.append(time.perf_counter() - trace.t0)
        trace.renders.append(self.images)
        trace.psnr.append(_psnr_from_mse(self.best_loss))
        assert self.best_u is not None
        trace.err.append(float(np.mean(np.abs(self._snapped(self.best_u) - self.u_true)[self.free])))

    def _snapped(self, u: np.ndarray) -> np.ndarray:
        return self.space.normalize(self.space.denormalize(u))


def _psnr_from_mse(mse: float) -> float:
    from darkproxy.regress import PSNR_CAP

    if not math.isfinite(mse):
        return 0.0
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else 10.0 * math.log10(1.0 / mse)


def run_baseline(obj: _DarktableObjective, x0: np.ndarray, budget_s: float, cfg: EvalConfig, seed: int) -> _Trace:
    """Run the black-box search on ``obj`` for ``budget_s`` seconds of wall time."""
    trace = _Trace(t0=time.perf_counter())
    k = len(x0)

    def may_continue() -> bool:  # generous to the baseline: the last generation may overrun the budget
        return not trace.seconds or time.perf_counter() - trace.t0 < budget_s

    if cfg.baseline == "nelder-mead":
        from scipy.optimize import minimize

        class _Stop(Exception):
            pass

        def f(x: np.ndarray) -> float:
            if not may_continue():
                raise _Stop
            v = obj([np.clip(x, 0, 1)])[0]
            obj.point(trace)
            return v

        try:
            minimize(f, x0, method="Nelder-Mead", options={"maxfev": 10**6, "xatol": 1e-5, "fatol": 1e-12,
                                                             "initial_simplex": _simplex(x0, cfg.sigma0)})
        except _Stop:
            pass
        return trace
    pop = cfg.popsize or (4 + int(3 * math.log(max(k, 1))) if k > 1 else 6)
    if k >= 2:
        import cma

        es = cma.CMAEvolutionStrategy(list(x0), cfg.sigma0, {"bounds": [0.0, 1.0], "seed": seed + 1,
                                                             "verbose": -9, "popsize": pop})
        while may_continue() and not es.stop():
            xs = es.ask()
            es.tell(xs, [min(v, 1e3) for v in obj([np.asarray(x) for x in xs])])
            obj.point(trace)
        return trace
    lo, hi = 0.0, 1.0  # 1-D: batched bracket search
    while may_continue() and hi - lo > 1e-7:
        xs = np.linspace(lo, hi, pop)
        losses = obj([np.array([x]) for x in xs])
        b = int(np.argmin(losses))
        step = (hi - lo) / (pop - 1)
        lo, hi = max(0.0, xs[b] - step), min(1.0, xs[b] + step)
        obj.point(trace)
    return trace


def _simplex(x0: np.ndarray, s: float) -> np.ndarray:
    sim = [np.clip(x0, 0, 1)]
    for i in range(len(x0)):
        v = np.clip(x0, 0, 1).copy()
        v[i] = v[i] + s if v[i] + s <= 1 else v[i] - s
        sim.append(v)
    return np.array(sim)


# --------------------------------------------------------------------- eval
def regress_eval(dt: Any, proxy: Any, raws: list[Path], out_dir: str | os.PathLike[str],
                 config: EvalConfig | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the evaluation; write ``results.json``, ``results.md`` and
    ``quality_vs_time.png`` into ``out_dir``; return the results dict."""
    from darkproxy.darktable.tapout import plan_tapout

    cfg = config or EvalConfig()
    cfg.check()
    say = log or (lambda s: None)
    space = proxy.param_space
    module = proxy.module
    free = resolve_free(space, cfg.regress.params)
    free_names = [space.names[i] for i in free]
    base_vals = {**space.defaults(), **dict(space.fixed or {})}
    base_u = space.normalize(base_vals).astype(np.float64)
    rng = np.random.default_rng(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, Any]] = []
    traces: list[_Trace] = []
    with tempfile.TemporaryDirectory(prefix="darkproxy-regress-eval-") as td:
        for i in range(cfg.n):
            raw = raws[int(rng.integers(len(raws)))]
            u = base_u.copy()
            u[free] = rng.uniform(0.0, 1.0, len(free))
            true_params = space.denormalize(u)
            u_true = space.normalize(true_params).astype(np.float64)
            named_true = darktable_params(space, true_params)
            plan = plan_tapout(dt, dt.default_history(raw), module, named_true)
            target = dt.renderer(max_size=cfg.size).render_array(raw, plan.output_sidecar)
            say(f"[{i + 1}/{cfg.n}] {raw.name}: " + ", ".join(f"{k}={_fmt(true_params[k])}" for k in free_names))

            # --- proxy: input render + regression + darktable verification
            t0 = time.perf_counter()
            inp, pre = render_module_input(dt, raw, module, cfg.size)
            rc = RegressConfig(**{**cfg.regress.__dict__, "seed": cfg.regress.seed + i, "record": False})
            res = regress(proxy, inp, target, rc)
            named = darktable_params(space, res.params)
            ver = verify_with_darktable(dt, raw, module, named, target, pre)
            p_sec = time.perf_counter() - t0
            p_err = np.abs(res.normalized.astype(np.float64) - u_true)[free]
            proxy_rec = {"params": _plain(res.params), "param_error": _named(free_names, p_err),
                         "mean_param_error": float(p_err.mean()), "darktable_psnr": ver.psnr,
                         "proxy_psnr": res.proxy_psnr, "seconds": p_sec, "regress_seconds": res.seconds,
                         "renders": 2, "darktable_processes": 2}

            # --- black box on darktable with the same wall-time budget
            budget = cfg.budget_s if cfg.budget_s is not None else p_sec
            obj = _DarktableObjective(dt, raw, space, free, base_u, target, u_true, cfg.size, Path(td))
            tr = run_baseline(obj, base_u[free], budget, cfg, cfg.seed + 1000 * i)
            traces.append(tr)
            assert obj.best_u is not None
            b_u = space.normalize(space.denormalize(obj.best_u)).astype(np.float64)
            b_err = np.abs(b_u - u_true)[free]
            base_rec = {"method": _baseline_name(cfg, len(free)), "params": _plain(space.denormalize(obj.best_u)),
                        "param_error": _named(free_names, b_err), "mean_param_error": float(b_err.mean()),
                        "darktable_psnr": _psnr_from_mse(obj.best_loss), "seconds": tr.seconds[-1],
                        "budget_s": budget, "renders": obj.images, "darktable_processes": obj.processes,
                        "generations": len(tr.seconds),
                        "trace": {"seconds": tr.seconds, "renders": tr.renders, "darktable_psnr": tr.psnr,
                                  "mean_param_error": tr.err}}
            samples.append({"index": i, "raw": str(raw), "true_params": _plain(true_params),
                            "proxy": proxy_rec, "baseline": base_rec})
            say(f"    proxy: err {p_err.mean():.4f}, darktable {ver.psnr:.1f} dB, {p_sec:.1f} s | "
                f"{base_rec['method']}: err {b_err.mean():.4f}, {base_rec['darktable_psnr']:.1f} dB, "
                f"{tr.seconds[-1]:.1f} s, {obj.images} renders")
    results = {
        "module": module, "free_params": free_names, "run": str(getattr(proxy, "run_dir", "") or ""),
        "n": cfg.n, "seed": cfg.seed, "size": cfg.size, "raws": [str(r) for r in raws],
        "regress": {k: v for k, v in cfg.regress.__dict__.items() if k != "record"},
        "baseline": {"method": _baseline_name(cfg, len(free)), "sigma0": cfg.sigma0, "popsize": cfg.popsize,
                     "budget_s": cfg.budget_s or "same as the proxy method, per sample"},
        "darktable_version": getattr(dt, "version", None), "machine": machine_info(),
        "aggregate": {"proxy": _aggregate([s["proxy"] for s in samples], free_names),
                      "baseline": _aggregate([s["baseline"] for s in samples], free_names)},
        "samples": samples,
    }
    write_json(out / "results.json", results)
    plot_quality_vs_time(results, out / "quality_vs_time.png")
    (out / "results.md").write_text(results_markdown(results))
    return results


def _baseline_name(cfg: EvalConfig, k: int) -> str:
    if cfg.baseline == "nelder-mead":
        return "nelder-mead (scipy)"
    return "cma-es" if k >= 2 else "bracket search (1-D)"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _named(names: list[str], v: np.ndarray) -> dict[str, float]:
    return {n: float(x) for n, x in zip(names, v)}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v) if isinstance(v, (float, np.floating))
                else int(v) if isinstance(v, (int, np.integer)) else v) for k, v in d.items()}


def _aggregate(recs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    errs = np.array([[r["param_error"][n] for n in names] for r in recs])
    psnr = np.array([r["darktable_psnr"] for r in recs])
    return {
        "median_param_error": float(np.median(errs)),
        "median_param_error_per_param": {n: float(np.median(errs[:, j])) for j, n in enumerate(names)},
        "max_param_error": float(errs.max()),
        "median_darktable_psnr": float(np.median(psnr)),
        "min_darktable_psnr": float(psnr.min()),
        "fraction_psnr_ge_40": float(np.mean(psnr >= 40.0)),
        "median_seconds": float(np.median([r["seconds"] for r in recs])),
        "median_renders": float(np.median([r["renders"] for r in recs])),
        "total_renders": int(sum(r["renders"] for r in recs)),
    }


def plot_quality_vs_time(results: dict[str, Any], path: Path) -> None:
    """Darktable PSNR and param error against wall time and renders: baseline
    best-so-far curves (grey, one per sample) and the proxy's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    bname = results["baseline"]["method"]
    for k, s in enumerate(results["samples"]):
        tr = s["baseline"]["trace"]
        lab = bname if k == 0 else None
        axes[0].plot(tr["seconds"], tr["darktable_psnr"], "-o", color="0.55", ms=2, lw=1, label=lab)
        axes[1].plot(tr["renders"], tr["darktable_psnr"], "-o", color="0.55", ms=2, lw=1, label=lab)
        axes[2].semilogy(tr["seconds"], np.maximum(tr["mean_param_error"], 1e-6), "-o", color="0.55", ms=2, lw=1,
                         label=lab)
    px = [s["proxy"] for s in results["samples"]]
    axes[0].scatter([p["seconds"] for p in px], [p["darktable_psnr"] for p in px], c="C3", zorder=3,
                    label="proxy regression")
    axes[1].scatter([p["renders"] for p in px], [p["darktable_psnr"] for p in px], c="C3", zorder=3,
                    label="proxy regression")
    axes[2].scatter([p["seconds"] for p in px], [max(p["mean_param_error"], 1e-6) for p in px], c="C3", zorder=3,
                    label="proxy regression")
    for ax in axes[:2]:
        ax.axhline(40.0, ls=":", color="C2", lw=1)
        ax.set_ylabel("darktable PSNR vs target (dB)")
    axes[0].set_xlabel("wall time (s)")
    axes[1].set_xlabel("darktable images rendered")
    axes[1].set_xscale("log")
    axes[2].set_xlabel("wall time (s)")
    axes[2].set_ylabel("mean |param error| (fraction of range)")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    m = results["machine"]
    fig.suptitle(f"{results['module']} ({', '.join(results['free_params'])}): proxy regression vs {bname} on "
                 f"darktable, {results['n']} samples, {results['size']} px  [{m['nproc']} x {m['cpu']}]",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def results_markdown(results: dict[str, Any]) -> str:
    """A Markdown summary: settings, machine, aggregate table and per-sample table."""
    m = results["machine"]
    names = results["free_params"]
    bname = results["baseline"]["method"]
    a = results["aggregate"]
    lines = [
        f"# Slider regression: {results['module']} ({', '.join(names)})",
        "",
        f"{results['n']} samples (true params uniform in the training ranges, seed {results['seed']}), targets "
        f"rendered by darktable {results['darktable_version']} at {results['size']} px. Proxy regression: "
        f"{results['regress']['restarts']} restarts x {results['regress']['iters']} iterations, loss "
        f"{results['regress']['loss']}; its time includes rendering the module input and the darktable "
        f"verification render. Baseline: {bname} driving darktable-cli (one process per population), with the "
        f"same wall time per sample ({results['baseline']['budget_s']}).",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, torch {m['torch']} ({m['torch_threads']} threads), {m['date']}.",
        "",
        "Param error: |recovered - true| as a fraction of the training range. PSNR: darktable's render of the "
        "recovered params vs the target, display-encoded.",
        "",
        "| method | median param error | max param error | median darktable PSNR (dB) | min PSNR (dB) | "
        "PSNR >= 40 dB | median seconds | median renders |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("proxy", "proxy regression"), ("baseline", bname)):
        r = a[key]
        lines.append(f"| {label} | {r['median_param_error']:.4f} | {r['max_param_error']:.4f} | "
                     f"{r['median_darktable_psnr']:.1f} | {r['min_darktable_psnr']:.1f} | "
                     f"{100 * r['fraction_psnr_ge_40']:.0f} % | {r['median_seconds']:.1f} | {r['median_renders']:.0f} |")
    lines += ["", "Per sample:", "",
              "| # | raw | true params | proxy err | proxy PSNR | proxy s | baseline err | baseline PSNR | "
              "baseline s | baseline renders |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["samples"]:
        p, b = s["proxy"], s["baseline"]
        tp = ", ".join(f"{k}={_fmt(s['true_params'][k])}" for k in names)
        lines.append(f"| {s['index']} | {Path(s['raw']).name} | {tp} | {p['mean_param_error']:.4f} | "
                     f"{p['darktable_psnr']:.1f} | {p['seconds']:.1f} | {b['mean_param_error']:.4f} | "
                     f"{b['darktable_psnr']:.1f} | {b['seconds']:.1f} | {b['renders']} |")
    return "\n".join(lines) + "\n"
