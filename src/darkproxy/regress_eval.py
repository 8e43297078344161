"""Evaluate slider regression against darktable, and against black-box
baselines that drive darktable directly, at several time budgets.

**Samples.** The raws are checked up front (darktable's default history: a
file darktable cannot open, e.g. truncated or not a raw, is skipped with a
one-line warning and listed in the results). ``n`` samples go round-robin over
the readable raws in a seeded order (no raw holds more than ``ceil(n / R)``;
fewer than :data:`MIN_RAWS` raws gets a warning); true params are uniform in the
run's training ranges (seeded). darktable renders each target (a tap-out output
at ``size`` px, later modules disabled). The methods recover the params from
(raw, target):

* **proxy**: render the module input (1 darktable image), regress through the
  proxy (:func:`darkproxy.regress.regress`), render the recovered params with
  darktable (1 image). Its wall time counts all three steps; it sets the
  sample's budget unit ``1x`` (or ``budget_s`` seconds).
* **black boxes**, in the normalised param space ``[0, 1]^k`` from the
  defaults, minimising the display MSE of darktable's render against the
  target: ``cma`` = CMA-ES (``cma`` package, bounded, sigma0 0.25, each
  population rendered by ONE darktable-cli process,
  :meth:`~darkproxy.darktable.render.Renderer.render_batch`; when it meets its
  own stop criteria with time left it restarts from a random point with twice
  the population, IPOP-CMA-ES). With a single free param CMA-ES does not apply
  (the package needs >= 2 dimensions): ``cma`` is then a batched **bracket
  search** (``bracket-1d``: each generation renders ``popsize`` points evenly
  over the bracket, then shrinks it around the best) and is named so.
  ``nelder-mead`` = SciPy's Nelder-Mead (one render per darktable process;
  restarts from a random point when it converges with time left).

**Budgets, anytime.** Each black box runs ONCE per sample, up to its largest
budget (``budgets`` are multiples of the unit, default 1x, 10x, 50x; a
baseline may stop at a smaller multiple, ``BaselineSpec.max_multiple``). Since
it stops only on time, its result at a budget ``B`` is its best-so-far over the
darktable batches finished within ``B`` seconds of the same run (the first
batch always counts, flagged ``overrun`` if it alone took longer than ``B``).
A run also ends early when its best render reaches the PSNR cap
(:data:`darkproxy.viz.metrics.PSNR_CAP`: nothing better can be reported) or, for
the 1-D bracket, when the bracket has converged; its result then holds for the
later budgets. The best render at every budget is kept, so every method gets
the same metrics (:func:`darkproxy.viz.metrics.compare`: display PSNR, PU21
PSNR, HDR-FLIP, SSIM, CIEDE2000), computed outside the timed loop.

**Scores.** Per-param absolute error normalised by the training range
(``|u_rec - u_true|``, a fraction of the range), darktable's render of the
recovered params vs the target, seconds and darktable images rendered.
Aggregates (:func:`aggregate_method`) never average dB values: PSNRs are
pooled (PSNR of the mean MSE over samples) with the worst case beside them.

**Break-even** (:func:`break_even`): equal quality = darktable display PSNR at
least the proxy's on the same sample. ``T`` = median over samples of the
seconds the baseline's best-so-far needs to get there; the proxy costs ``p``
(median seconds per image) plus a one-off ``C`` (dataset generation +
training). The proxy's total time is below the baseline's from
``N = ceil(C / (T - p))`` images on. A sample that never gets there within its
run is censored (its time is more than the run's length): ``T`` and ``N`` are
then given as bounds.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colorspace import srgb_display_rec709
from darkproxy.darktable.tapout import input_scale, render_module_input
from darkproxy.data.generate import readable_raws
from darkproxy.fsutil import write_json
from darkproxy.recover import verify_with_darktable
from darkproxy.regress import RegressConfig, RegressError, regress, resolve_free

BASELINES = ("cma", "nelder-mead")
DEFAULT_BUDGETS = (1.0, 10.0, 50.0)
MIN_RAWS = 4  # fewer readable raws than this: the results lean on few images (warned)


@dataclass(frozen=True)
class BaselineSpec:
    """One black box: ``kind`` (one of :data:`BASELINES`) and the largest budget
    multiple it runs to (None: the largest of the budgets)."""

    kind: str
    max_multiple: float | None = None

    def label(self, k: int) -> str:
        """Its name in the results, for ``k`` free params."""
        if self.kind == "nelder-mead":
            return "nelder-mead"
        return "cma-es" if k >= 2 else "bracket-1d"

    def __str__(self) -> str:
        return self.kind if self.max_multiple is None else f"{self.kind}:{_mult(self.max_multiple)}"


def parse_budgets(text: str) -> tuple[float, ...]:
    """``"1,10,50"`` -> ``(1.0, 10.0, 50.0)`` (sorted, unique, each > 0)."""
    try:
        vals = [float(s.rstrip("xX")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise RegressError(f"--budgets {text!r}: give multiples of the proxy's time, e.g. 1,10,50") from None
    if not vals or any(not (v > 0) or not math.isfinite(v) for v in vals):
        raise RegressError(f"--budgets {text!r}: give positive multiples, e.g. 1,10,50")
    return tuple(sorted(set(vals)))


def parse_baselines(text: str) -> tuple[BaselineSpec, ...]:
    """``"cma,nelder-mead:10"`` -> CMA-ES up to the largest budget, Nelder-Mead
    up to 10x."""
    out: list[BaselineSpec] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        kind, _, cap = item.partition(":")
        if kind not in BASELINES:
            raise RegressError(
                f"unknown baseline {kind!r}: use {', '.join(BASELINES)} (optionally NAME:MAX, e.g. nelder-mead:10)"
            )
        try:
            m = float(cap.rstrip("xX")) if cap else None
        except ValueError:
            raise RegressError(f"--baselines {item!r}: MAX must be a number (a budget multiple)") from None
        out.append(BaselineSpec(kind, m))
    if not out:
        raise RegressError("--baselines: give at least one of " + ", ".join(BASELINES))
    return tuple(out)


@dataclass
class EvalConfig:
    """Settings of :func:`regress_eval`. ``budgets``: multiples of the unit;
    ``budget_s``: seconds of the unit 1x (None: the proxy method's time on each
    sample). ``generate_s`` / ``train_s``: the proxy's one-off cost (None:
    ``train_s`` is read from the run's ``metrics.json``; generation unknown).
    ``threads``: torch CPU threads for the proxy regression (None: 1 on the
    CPU, where the small per-pixel proxies gain little from more and lose up to
    10x when another process shares the cores; measured here)."""

    n: int = 8
    seed: int = 0
    size: int = 128
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    budget_s: float | None = None
    baselines: tuple[BaselineSpec, ...] = (BaselineSpec("cma"), BaselineSpec("nelder-mead"))
    sigma0: float = 0.25
    popsize: int | None = None
    generate_s: float | None = None
    train_s: float | None = None
    threads: int | None = None
    regress: RegressConfig = field(default_factory=RegressConfig)

    def check(self) -> None:
        if self.n < 1:
            raise RegressError("-n must be >= 1")
        if self.size < 16:
            raise RegressError("--size must be >= 16 px")
        if not self.budgets or any(not (b > 0) for b in self.budgets):
            raise RegressError("--budgets: give positive multiples, e.g. 1,10,50")
        self.budgets = tuple(sorted(set(float(b) for b in self.budgets)))
        if self.budget_s is not None and not (self.budget_s > 0):
            raise RegressError("--budget-s must be > 0")
        kinds = [b.kind for b in self.baselines]
        if not kinds or len(set(kinds)) != len(kinds):
            raise RegressError("--baselines: give each of " + ", ".join(BASELINES) + " at most once")
        for b in self.baselines:
            if b.kind not in BASELINES:
                raise RegressError(f"unknown baseline {b.kind!r}: use one of {', '.join(BASELINES)}")
            if b.max_multiple is not None and b.max_multiple < self.budgets[0]:
                raise RegressError(
                    f"--baselines {b}: its largest budget is below the smallest of --budgets "
                    f"({_mult(self.budgets[0])}x)"
                )
        if not (self.sigma0 > 0):
            raise RegressError("--sigma0 must be > 0")
        if self.popsize is not None and self.popsize < 2:
            raise RegressError("--popsize must be >= 2")
        for name, v in (("--generate-s", self.generate_s), ("--train-s", self.train_s)):
            if v is not None and not (v >= 0):
                raise RegressError(f"{name} must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise RegressError("--threads must be >= 1")
        self.regress.check()

    def multiples(self, spec: BaselineSpec) -> tuple[float, ...]:
        """The budgets ``spec`` is reported at."""
        return tuple(b for b in self.budgets if spec.max_multiple is None or b <= spec.max_multiple + 1e-9)


def _at_scale(proxy: Any, inp: np.ndarray, pre: bool, raw: Path) -> Any:
    """``proxy`` at the render scale of ``inp`` (refused outside its trained range)."""
    return proxy.at_scale(input_scale(inp, pre, None, raw)) if hasattr(proxy, "at_scale") else proxy


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: cores, CPU model, versions, date (UTC), load average."""
    cpu = platform.processor() or ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": load,
    }


# --------------------------------------------------------------------- raws
def assign_raws(raws: Sequence[Path], n: int, seed: int) -> list[Path]:
    """``n`` raws for the samples, round-robin over ``raws`` in a seeded order:
    each raw gets ``floor(n / R)`` or ``ceil(n / R)`` samples."""
    if not raws:
        raise RegressError("no readable raws to evaluate on")
    order = [raws[int(i)] for i in np.random.default_rng([seed, 7]).permutation(len(raws))]
    return [order[i % len(order)] for i in range(n)]


# ------------------------------------------------------------------ baseline
class _DarktableObjective:
    """Display MSE of darktable's render of normalised free params vs the target,
    for many candidates per darktable-cli process; keeps the best render."""

    def __init__(
        self,
        dt: Any,
        raw: Path,
        space: Any,
        free: list[int],
        base_u: np.ndarray,
        target: np.ndarray,
        u_true: np.ndarray,
        size: int,
        tmp: Path,
    ) -> None:
        from darkproxy.darktable.tapout import plan_tapout

        self.dt, self.raw, self.space, self.free, self.base_u = dt, raw, space, free, base_u
        self.target_enc = _encode(target)
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
            named = self.space.for_darktable(self.space.denormalize(self.full(np.asarray(x))))
            side = self.plan(self.dt, self.base, self.space.module, named).output_sidecar
            jobs.append(RenderJob(self.raw, side, self.tmp / f"g{self.processes:05d}_{j:03d}.tif"))
        res = self.renderer.render_batch(jobs)
        self.processes += 1
        self.images += len(jobs)
        losses = []
        for x, r in zip(xs, res, strict=True):
            if isinstance(r, RenderFailure):
                losses.append(math.inf)
                continue
            out = read_tiff(r)
            r.unlink(missing_ok=True)
            if out.shape != self.target.shape:
                raise RegressError(f"darktable rendered {out.shape}, the target is {self.target.shape}")
            loss = float(np.mean((_encode(out) - self.target_enc) ** 2))
            losses.append(loss)
            if loss < self.best_loss:
                self.best_loss, self.best_u, self.best_out = loss, self.full(np.asarray(x)), out
        return losses

    def snapped(self, u: np.ndarray) -> np.ndarray:
        """``u`` as darktable receives it (ints and enums snapped), normalised."""
        return self.space.normalize(self.space.denormalize(u)).astype(np.float64)

    def error(self, u: np.ndarray) -> np.ndarray:
        """Per free param ``|u - u_true|`` (fraction of the training range)."""
        return np.abs(self.snapped(u) - self.u_true)[self.free]


def _encode(img: np.ndarray) -> np.ndarray:
    """The display encoding in float64 (what :func:`darkproxy.viz.metrics.display_mse` compares)."""
    return srgb_display_rec709(np.asarray(img, np.float64))


def _cap_mse() -> float:
    from darkproxy.viz.metrics import PSNR_CAP

    return 10.0 ** (-PSNR_CAP / 10.0)


def _psnr_from_mse(mse: float) -> float:
    from darkproxy.viz.metrics import psnr_from_mse

    return psnr_from_mse(mse) if math.isfinite(mse) else 0.0


class Anytime:
    """Best-so-far of one black-box run against the clock.

    :meth:`point` is called after every darktable batch. ``trace`` holds the
    points where the best improved, plus the last one (a lossless step
    function); ``snapshots[b]`` the state at budget ``b`` seconds: the best over
    the batches finished within ``b`` (the first batch counts even if late:
    ``overrun``)."""

    def __init__(self, obj: Any, budgets_s: Sequence[float], clock: Callable[[], float] = time.perf_counter) -> None:
        self.obj = obj
        self.clock = clock
        self.t0 = clock()
        self.budgets_s = sorted(float(b) for b in budgets_s)
        self.trace: dict[str, list[float]] = {
            "seconds": [],
            "renders": [],
            "darktable_psnr": [],
            "mean_param_error": [],
        }
        self.snapshots: dict[float, dict[str, Any]] = {}
        self.last: dict[str, Any] | None = None
        self.batches = 0
        self.restarts = 0
        self.stop = "budget"

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def _state(self, t: float) -> dict[str, Any]:
        o = self.obj
        return {
            "seconds": t,
            "renders": int(o.images),
            "processes": int(o.processes),
            "loss": float(o.best_loss),
            "u": o.best_u,
            "out": o.best_out,
            "overrun": False,
        }

    def point(self) -> None:
        """Record the state after a darktable batch."""
        self.batches += 1
        if self.obj.best_u is None:  # nothing rendered yet (all failed): no answer to hold
            return
        t = self.elapsed()
        cur = self._state(t)
        for b in self.budgets_s:
            if b not in self.snapshots and t > b:
                self.snapshots[b] = self.last if self.last is not None else {**cur, "overrun": True}
        if self.last is None or cur["loss"] < self.last["loss"]:
            self._append(cur)
        self.last = cur

    def _append(self, s: dict[str, Any]) -> None:
        tr = self.trace
        tr["seconds"].append(s["seconds"])
        tr["renders"].append(s["renders"])
        tr["darktable_psnr"].append(_psnr_from_mse(s["loss"]))
        tr["mean_param_error"].append(float(np.mean(self.obj.error(s["u"]))))

    def finish(self) -> None:
        """End of the run: budgets not crossed hold the final state; the trace
        ends with the last point."""
        if self.last is None:
            raise RegressError("darktable failed on every render of the black-box search")
        for b in self.budgets_s:
            self.snapshots.setdefault(b, self.last)
        if not self.trace["seconds"] or self.trace["seconds"][-1] != self.last["seconds"]:
            self._append(self.last)

    @property
    def run_s(self) -> float:
        return float(self.last["seconds"]) if self.last else 0.0

    def capped(self) -> bool:
        return self.obj.best_loss <= _cap_mse()


def run_baseline(
    obj: Any,
    kind: str,
    x0: np.ndarray,
    max_s: float,
    budgets_s: Sequence[float],
    sigma0: float = 0.25,
    popsize: int | None = None,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> Anytime:
    """Run black box ``kind`` on ``obj`` (callable: list of points in ``[0, 1]^k``
    -> losses; with ``images``, ``processes``, ``best_loss``, ``best_u`` and
    ``error(u)``) until ``max_s`` seconds have passed (a batch is started while
    the elapsed time is below it), recording the best-so-far at each of
    ``budgets_s``. Returns the :class:`Anytime` record (finished)."""
    rec = Anytime(obj, budgets_s, clock)
    k = len(x0)
    rng = np.random.default_rng([seed, 11])

    def go() -> bool:
        if rec.capped():
            rec.stop = "psnr cap"
            return False
        return rec.batches == 0 or rec.elapsed() < max_s

    if kind == "nelder-mead":
        from scipy.optimize import minimize

        class _Stop(Exception):
            pass

        def f(x: np.ndarray) -> float:
            if not go():
                raise _Stop
            v = obj([np.clip(x, 0, 1)])[0]
            rec.point()
            return min(v, 1e3)

        start = np.asarray(x0, np.float64)
        while True:
            try:
                minimize(
                    f,
                    start,
                    method="Nelder-Mead",
                    options={
                        "maxfev": 10**7,
                        "xatol": 1e-6,
                        "fatol": 1e-14,
                        "initial_simplex": _simplex(start, sigma0),
                    },
                )
            except _Stop:
                break
            if not go():
                break
            rec.restarts += 1  # converged with time left: restart from a random point
            start = rng.uniform(0.0, 1.0, k)
    elif k >= 2:
        import cma

        pop = popsize or 4 + int(3 * math.log(k))
        start = np.asarray(x0, np.float64)
        while go():
            es = cma.CMAEvolutionStrategy(
                list(start),
                sigma0,
                {"bounds": [0.0, 1.0], "seed": seed + 1 + rec.restarts, "verbose": -9, "popsize": pop},
            )
            while go() and not es.stop():
                xs = es.ask()
                es.tell(xs, [min(v, 1e3) for v in obj([np.asarray(x) for x in xs])])
                rec.point()
            if go():  # IPOP: its own stop criteria met with time left
                rec.restarts += 1
                pop = min(2 * pop, 16 * (popsize or 4 + int(3 * math.log(k))))
                start = rng.uniform(0.0, 1.0, k)
    else:
        pop = popsize or 6
        lo, hi = 0.0, 1.0  # 1-D: batched bracket search
        while go():
            if hi - lo <= 1e-7:
                rec.stop = "converged"
                break
            xs = np.linspace(lo, hi, pop)
            losses = obj([np.array([x]) for x in xs])
            b = int(np.argmin(losses))
            step = (hi - lo) / (pop - 1)
            lo, hi = max(0.0, xs[b] - step), min(1.0, xs[b] + step)
            rec.point()
    rec.finish()
    return rec


def _simplex(x0: np.ndarray, s: float) -> np.ndarray:
    sim = [np.clip(x0, 0, 1)]
    for i in range(len(x0)):
        v = np.clip(x0, 0, 1).copy()
        v[i] = v[i] + s if v[i] + s <= 1 else v[i] - s
        sim.append(v)
    return np.array(sim)


def first_reach(
    trace: dict[str, list[float]], key: str, goal: float, higher: bool = True
) -> tuple[float | None, int | None]:
    """``(seconds, renders)`` of the first trace point whose ``key`` is at least
    (``higher``) or at most ``goal``; ``(None, None)`` if never."""
    for s, r, v in zip(trace["seconds"], trace["renders"], trace[key], strict=False):
        if (v >= goal) if higher else (v <= goal):
            return float(s), int(r)
    return None, None


# ---------------------------------------------------------------- break-even
def break_even(
    proxy_s: Sequence[float], reach_s: Sequence[float | None], run_s: Sequence[float], oneoff_s: float
) -> dict[str, Any]:
    """Images from which the proxy's total time (one-off ``oneoff_s`` + ``p``
    per image, ``p`` = median of ``proxy_s``) is at most a baseline's at equal
    quality (``T`` = median over samples of ``reach_s``: seconds to reach the
    proxy's quality; None = not within that sample's run of ``run_s`` seconds,
    i.e. more). Smallest ``N`` with ``N * p + C <= N * T``: ``ceil(C / (T - p))``.

    Censored samples bound ``T``: ``T_lo`` (each taken at its run length) <=
    ``T`` <= ``T_hi`` (each taken as infinite); so ``N_lo <= N <= N_hi``. Returns
    ``{"proxy_s", "baseline_s_lo", "baseline_s_hi", "reached", "samples",
    "oneoff_s", "n_lo", "n_hi", "kind"}``: ``kind`` "exact" (``n_lo == n_hi``),
    "range", "never" (the baseline is no slower per image than the proxy, even
    at ``T_hi``) or "undetermined"; ``n_hi`` None when unbounded."""
    p = float(np.median(proxy_s))
    lo = [float(t) if t is not None else float(r) for t, r in zip(reach_s, run_s, strict=False)]
    hi = [float(t) if t is not None else math.inf for t in reach_s]
    t_lo, t_hi = float(np.median(lo)), _median_inf(hi)
    c = max(float(oneoff_s), 0.0)

    def n_for(t: float) -> int | None:  # None: never (T <= p)
        if t <= p:
            return None
        if math.isinf(t):
            return 1
        return max(1, math.ceil(c / (t - p) - 1e-12))

    n_lo, n_hi = n_for(t_hi), n_for(t_lo)
    if n_lo is None:
        kind = "never"
    elif n_hi is None:
        kind = "undetermined"  # T_lo <= p < T_hi: the censored samples decide
    else:
        kind = "exact" if n_lo == n_hi else "range"
    return {
        "proxy_s": p,
        "baseline_s_lo": t_lo,
        "baseline_s_hi": t_hi if math.isfinite(t_hi) else None,
        "reached": int(sum(t is not None for t in reach_s)),
        "samples": len(reach_s),
        "oneoff_s": c,
        "n_lo": n_lo,
        "n_hi": n_hi,
        "kind": kind,
    }


def _median_inf(v: Sequence[float]) -> float:
    s = sorted(v)
    m = len(s)
    if m == 0:
        return math.inf
    if m % 2:
        return s[m // 2]
    a, b = s[m // 2 - 1], s[m // 2]
    return math.inf if math.isinf(a) or math.isinf(b) else (a + b) / 2


def break_even_text(be: dict[str, Any]) -> str:
    """One line for :func:`break_even`'s result."""
    t = (
        f"{be['baseline_s_lo']:.1f} s"
        if be["baseline_s_hi"] == be["baseline_s_lo"]
        else f"> {be['baseline_s_lo']:.1f} s"
        if be["baseline_s_hi"] is None
        else f"{be['baseline_s_lo']:.1f}-{be['baseline_s_hi']:.1f} s"
    )
    head = (
        f"reached on {be['reached']}/{be['samples']} samples; median time to it {t} vs the proxy's "
        f"{be['proxy_s']:.1f} s per image, one-off {be['oneoff_s']:.0f} s"
    )
    if be["kind"] == "never":
        return head + " -> the proxy never breaks even (the baseline is as fast per image)"
    if be["kind"] == "undetermined":
        return head + " -> undetermined (too many samples never got there)"
    if be["kind"] == "exact":
        return head + f" -> the proxy is ahead from N = {be['n_lo']} images"
    if be["n_lo"] == 1:
        return head + f" -> the proxy is ahead from at most N = {be['n_hi']} images (censored samples)"
    return head + f" -> the proxy is ahead from N = {be['n_lo']}-{be['n_hi']} images (censored samples)"


# --------------------------------------------------------------------- eval
def regress_eval(
    dt: Any,
    proxy: Any,
    raws: list[Path],
    out_dir: str | os.PathLike[str],
    config: EvalConfig | None = None,
    log: Callable[[str], None] | None = None,
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
    say: Callable[[str], None],
) -> dict[str, Any]:
    from darkproxy.darktable.tapout import plan_tapout
    from darkproxy.viz.metrics import compare

    space = proxy.param_space
    module = proxy.module
    free = resolve_free(space, cfg.regress.params)
    free_names = [space.names[i] for i in free]
    base_vals = {**space.defaults(), **dict(space.fixed or {})}
    base_u = space.normalize(base_vals).astype(np.float64)
    labels = {b.kind: b.label(len(free)) for b in cfg.baselines}
    rng = np.random.default_rng(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    t_start = time.perf_counter()
    # untimed warm-up (torch's first calls): a one-time cost of the process, not of sample 0
    inp0, pre0 = render_module_input(dt, sample_raws[0], module, cfg.size)
    if inp0.shape[0] == 3:
        warm = RegressConfig(**{**cfg.regress.__dict__, "iters": 10, "record": False})
        regress(_at_scale(proxy, inp0, pre0, sample_raws[0]), inp0, inp0, warm)
    samples: list[dict[str, Any]] = []

    def results_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
        """The results dict of the samples done so far (``complete`` once all are)."""
        methods = [labels[b.kind] for b in cfg.baselines]
        aggregate: dict[str, Any] = {"proxy": aggregate_method([s["proxy"] for s in samples], free_names)}
        be: dict[str, Any] = {}
        for spec in cfg.baselines:
            lab = labels[spec.kind]
            aggregate[lab] = {
                _mult(m): aggregate_method([s["baselines"][lab]["budgets"][j] for s in samples], free_names)
                for j, m in enumerate(cfg.multiples(spec))
            }
            proxy_s = [s["proxy"]["seconds"] for s in samples]
            run_s = [s["baselines"][lab]["run_s"] for s in samples]
            be[lab] = {
                "darktable_psnr": break_even(
                    proxy_s,
                    [s["baselines"][lab]["to_proxy_quality"]["psnr_seconds"] for s in samples],
                    run_s,
                    oneoff["total_s"],
                ),
                "param_error": break_even(
                    proxy_s,
                    [s["baselines"][lab]["to_proxy_quality"]["param_error_seconds"] for s in samples],
                    run_s,
                    oneoff["total_s"],
                ),
            }
        done = [Path(s["raw"]) for s in samples]
        counts = {r.name: sum(1 for x in done if x == r) for r in good}
        results = {
            "module": module,
            "free_params": free_names,
            "run": str(getattr(proxy, "run_dir", "") or ""),
            "n": len(samples),
            "n_planned": cfg.n,
            "complete": len(samples) == cfg.n,
            "seed": cfg.seed,
            "size": cfg.size,
            "raws": [str(r) for r in good],
            "raw_counts": counts,
            "unreadable_raws": bad,
            "warnings": warnings,
            "regress": {k: v for k, v in cfg.regress.__dict__.items() if k != "record"},
            "budgets": {
                "multiples": list(cfg.budgets),
                "unit": (
                    f"{cfg.budget_s:g} s"
                    if cfg.budget_s is not None
                    else "the proxy method's wall time on the same sample"
                ),
                "median_unit_s": float(np.median([s["unit_s"] for s in samples])),
            },
            "baselines": [
                {
                    "method": labels[b.kind],
                    "kind": b.kind,
                    "multiples": list(cfg.multiples(b)),
                    "sigma0": cfg.sigma0,
                    "popsize": cfg.popsize,
                }
                for b in cfg.baselines
            ],
            "methods": methods,
            "oneoff": oneoff,
            "break_even": be,
            "darktable_version": getattr(dt, "version", None),
            "machine": machine,
            "machine_end": {k: v for k, v in machine_info().items() if k in ("date", "loadavg")},
            "seconds": time.perf_counter() - t_start,
            "aggregate": aggregate,
            "samples": samples,
        }
        return results

    with tempfile.TemporaryDirectory(prefix="darkproxy-regress-eval-") as td:
        for i, raw in enumerate(sample_raws):
            u = base_u.copy()
            u[free] = rng.uniform(0.0, 1.0, len(free))
            true_params = space.denormalize(u)
            u_true = space.normalize(true_params).astype(np.float64)
            named_true = space.for_darktable(true_params)
            plan = plan_tapout(dt, dt.default_history(raw), module, named_true)
            target = dt.renderer(max_size=cfg.size).render_array(raw, plan.output_sidecar)
            say(f"[{i + 1}/{cfg.n}] {raw.name}: " + ", ".join(f"{k}={_fmt(true_params[k])}" for k in free_names))

            # --- proxy: input render + regression + darktable verification (timed)
            t0 = time.perf_counter()
            inp, pre = render_module_input(dt, raw, module, cfg.size)
            rc = RegressConfig(**{**cfg.regress.__dict__, "seed": cfg.regress.seed + i, "record": False})
            res = regress(_at_scale(proxy, inp, pre, raw), inp, target, rc)
            named = space.for_darktable(res.params)
            ver = verify_with_darktable(dt, raw, module, named, target, pre)
            p_sec = time.perf_counter() - t0
            p_err = np.abs(res.normalized.astype(np.float64) - u_true)[free]
            proxy_rec = {
                "params": _plain(res.params),
                "param_error": _named(free_names, p_err),
                "mean_param_error": float(p_err.mean()),
                "darktable_psnr": ver.psnr,
                "metrics": compare(ver.output, target).to_json(),
                "proxy_psnr": res.proxy_psnr,
                "seconds": p_sec,
                "regress_seconds": res.seconds,
                "renders": 2,
                "darktable_processes": 2,
            }
            unit = cfg.budget_s if cfg.budget_s is not None else p_sec
            say(f"    proxy: err {p_err.mean():.4f}, darktable {ver.psnr:.1f} dB, {p_sec:.1f} s")

            # --- black boxes on darktable: one anytime run each, up to the largest budget
            brecs: dict[str, Any] = {}
            for bi, spec in enumerate(cfg.baselines):
                mults = cfg.multiples(spec)
                budgets_s = [m * unit for m in mults]
                obj = _DarktableObjective(dt, raw, space, free, base_u, target, u_true, cfg.size, Path(td))
                rec = run_baseline(
                    obj,
                    spec.kind,
                    base_u[free],
                    budgets_s[-1],
                    budgets_s,
                    cfg.sigma0,
                    cfg.popsize,
                    seed=cfg.seed + 1000 * i + 100 * bi,
                )
                brecs[labels[spec.kind]] = _baseline_record(
                    rec, obj, space, free_names, mults, unit, target, proxy_rec, labels[spec.kind]
                )
                br = brecs[labels[spec.kind]]
                t_eq = br["to_proxy_quality"]["psnr_seconds"]
                say(
                    f"    {labels[spec.kind]}: "
                    + ", ".join(
                        f"{_mult(x['multiple'])}x {x['mean_param_error']:.4f} / {x['darktable_psnr']:.1f} dB"
                        for x in br["budgets"]
                    )
                    + f"; ran {br['run_s']:.1f} s, {br['renders']} renders ({br['stop']}); "
                    + (f"proxy's PSNR after {t_eq:.1f} s" if t_eq is not None else "never reached the proxy's PSNR")
                )
            samples.append(
                {
                    "index": i,
                    "raw": str(raw),
                    "true_params": _plain(true_params),
                    "unit_s": unit,
                    "proxy": proxy_rec,
                    "baselines": brecs,
                }
            )
            if i + 1 < cfg.n:  # partial results after every sample: an interrupted run leaves what it measured
                _write(results_of(samples), out)
    return _write(results_of(samples), out)


def _write(results: dict[str, Any], out: Path) -> dict[str, Any]:
    write_json(out / "results.json", results)
    plot_quality_vs_time(results, out / "quality_vs_time.png")
    (out / "results.md").write_text(results_markdown(results))
    return results


def _baseline_record(
    rec: Anytime,
    obj: _DarktableObjective,
    space: Any,
    names: list[str],
    mults: Sequence[float],
    unit: float,
    target: np.ndarray,
    proxy_rec: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    from darkproxy.viz.metrics import compare

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
                "darktable_psnr": _psnr_from_mse(s["loss"]),
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


def _mult(m: float) -> str:
    return f"{m:g}"


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
    from darkproxy.viz.metrics import ImageMetrics, aggregate

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


# --------------------------------------------------------------------- plot
def _step_median(traces: list[tuple[list[float], list[float], float]], grid: np.ndarray) -> np.ndarray:
    """Median over samples of step functions ``(x, y, x_end)`` (value = y at the
    last x <= g, defined from x[0] to x_end); NaN unless more than half of the
    samples are defined there."""
    vals = np.full((len(traces), len(grid)), np.nan)
    for i, (x, y, end) in enumerate(traces):
        xs = np.asarray(x, np.float64)
        idx = np.searchsorted(xs, grid, side="right") - 1
        ok = (idx >= 0) & (grid <= end * (1 + 1e-9))
        vals[i, ok] = np.asarray(y, np.float64)[idx[ok]]
    enough = np.sum(~np.isnan(vals), axis=0) * 2 > len(traces)
    med = np.full(len(grid), np.nan)
    if enough.any():
        med[enough] = np.nanmedian(vals[:, enough], axis=0)
    return med


def plot_quality_vs_time(results: dict[str, Any], path: Path) -> None:
    """darktable PSNR and param error against wall time and renders: per black
    box the median over samples of the best-so-far (bold) and each sample's
    trace (faint); the proxy's samples as points; dashed lines at the budgets
    (median unit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    samples = results["samples"]
    colors = {"cma-es": "C0", "bracket-1d": "C0", "nelder-mead": "C1"}
    for lab in results["methods"]:
        col = colors.get(lab, "C4")
        runs = [s["baselines"][lab] for s in samples]
        for row, key in ((0, "darktable_psnr"), (1, "mean_param_error")):
            for col_i, xkey in ((0, "seconds"), (1, "renders")):
                ax = axes[row, col_i]
                for r in runs:
                    tr = r["trace"]
                    y = np.asarray(tr[key], np.float64)
                    if key == "mean_param_error":
                        y = np.maximum(y, 1e-6)
                    ax.step(tr[xkey], y, where="post", color=col, alpha=0.18, lw=0.8)
                # a run that stopped early (PSNR cap, converged) holds its result later on; one that ran
                # out of budget has no data beyond its end
                tr_all = [
                    (r["trace"][xkey], r["trace"][key], r["trace"][xkey][-1] if r["stop"] == "budget" else math.inf)
                    for r in runs
                ]
                lo = max(min(t[0][0] for t in tr_all), 1e-3)
                hi = max(r["trace"][xkey][-1] for r in runs)
                grid = np.geomspace(lo, hi, 300) if hi > lo else np.array([lo])
                med = _step_median(tr_all, grid)
                if key == "mean_param_error":
                    med = np.maximum(med, 1e-6)
                ax.plot(grid, med, color=col, lw=2.2, label=f"{lab} (median of best-so-far)")
    px = [s["proxy"] for s in samples]
    for row, key in ((0, "darktable_psnr"), (1, "mean_param_error")):
        py = [max(p[key], 1e-6) if key == "mean_param_error" else p[key] for p in px]
        axes[row, 0].scatter([p["seconds"] for p in px], py, c="C3", zorder=3, s=18, label="proxy regression")
        axes[row, 1].scatter([p["renders"] for p in px], py, c="C3", zorder=3, s=18, label="proxy regression")

    unit = results["budgets"]["median_unit_s"]
    for m in results["budgets"]["multiples"]:
        for row in range(2):
            axes[row, 0].axvline(m * unit, ls="--", color="0.4", lw=0.8)
        axes[0, 0].text(
            m * unit, 0.02, f" {_mult(m)}x", transform=axes[0, 0].get_xaxis_transform(), fontsize=8, color="0.3"
        )
    for ax in axes.ravel():
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[0]:
        ax.axhline(40.0, ls=":", color="C2", lw=1)
        ax.set_ylabel("darktable PSNR vs target (dB)")
    for ax in axes[1]:
        ax.set_yscale("log")
        ax.set_ylabel("mean |param error| (fraction of range)")
    for ax in axes[:, 0]:
        ax.set_xlabel("wall time (s)")
    for ax in axes[:, 1]:
        ax.set_xlabel("darktable images rendered")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    m = results["machine"]
    fig.suptitle(
        f"{results['module']} ({', '.join(results['free_params'])}): proxy regression vs "
        f"{', '.join(results['methods'])} on darktable, {results['n']} samples, {results['size']} px;\n"
        f"budgets {', '.join(_mult(b) + 'x' for b in results['budgets']['multiples'])} of the proxy's "
        f"time (median {unit:.1f} s)  [{m['nproc']} x {m['cpu']}]",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------- markdown
def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"| {label} | {r['median_param_error']:.4f} | {r['max_param_error']:.4f} | {r['darktable_psnr']:.1f} | "
        f"{r['darktable_psnr_min']:.1f} | {r['darktable_psnr_p05']:.1f} | {r['pu21_psnr']:.1f} | "
        f"{r['pu21_psnr_min']:.1f} | {r['hdrflip_mean']:.4f} | {r['hdrflip_max']:.4f} | "
        f"{r['median_seconds']:.1f} | {r['median_renders']:.0f} |"
    )


def results_markdown(results: dict[str, Any]) -> str:
    """A Markdown summary: settings, machine, one table per budget, break-even,
    unreadable raws and a per-sample table."""
    m = results["machine"]
    names = results["free_params"]
    bud = results["budgets"]
    mults = bud["multiples"]
    rg = results["regress"]
    oo = results["oneoff"]
    counts = ", ".join(f"{k} {v}" for k, v in results["raw_counts"].items())
    base_desc = []
    for b in results["baselines"]:
        upto = f"up to {_mult(b['multiples'][-1])}x"
        if b["method"] == "cma-es":
            base_desc.append(
                f"CMA-ES (sigma0 {b['sigma0']}, population {b['popsize'] or 'default'} rendered by one "
                f"darktable-cli process per generation, IPOP restarts when it converges), {upto}"
            )
        elif b["method"] == "bracket-1d":
            base_desc.append(
                f"a batched 1-D bracket search (CMA-ES needs >= 2 params; one darktable-cli process "
                f"per bracket), {upto}"
            )
        else:
            base_desc.append(
                f"SciPy's Nelder-Mead (one render per darktable-cli process, restarts from a random "
                f"point when it converges), {upto}"
            )
    lines = [
        f"# Slider regression: {results['module']} ({', '.join(names)})",
        "",
    ]
    if not results.get("complete", True):
        lines += [
            f"**Partial: {results['n']} of the {results['n_planned']} planned samples** (the run was "
            "interrupted or is still going).",
            "",
        ]
    lines += [
        f"{results['n']} samples (true params uniform in the training ranges, seed {results['seed']}) over "
        f"{len(results['raws'])} raws, round-robin ({counts}); targets rendered by darktable "
        f"{results['darktable_version']} at {results['size']} px. Proxy regression: {rg['restarts']} restarts x "
        f"{rg['iters']} iterations, loss {rg['loss']}; its time includes rendering the module input and the "
        f"darktable verification render (2 renders). Black boxes driving darktable-cli from the defaults: "
        + "; ".join(base_desc)
        + ".",
        "",
        f"Budgets: {', '.join(_mult(b) + 'x' for b in mults)} of the unit = {bud['unit']} (median "
        f"{bud['median_unit_s']:.2f} s). Each black box runs ONCE per sample up to its largest budget; its result at "
        "a budget B is its best-so-far over the darktable batches finished within B seconds of that same run (the "
        "first batch counts even if it alone took longer: overruns are counted in the tables). A run also stops "
        "when its best render reaches the 100 dB PSNR cap.",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, torch {m['torch']} "
        f"(torch threads: {m['torch_threads']}), {m['date']}"
        + (
            f", load average {m['loadavg'][0]:.1f} at the start and {results['machine_end']['loadavg'][0]:.1f} at "
            f"the end ({results['machine_end']['date']}; a shared machine)"
            if m.get("loadavg")
            else ""
        )
        + ".",
        "",
        "Param error: |recovered - true| as a fraction of the training range (median over samples x params, and "
        "max). darktable PSNR: darktable's render of the recovered params vs the target, display-encoded, pooled "
        "(PSNR of the mean squared error over samples) with the minimum and 5th percentile over samples. PU21 "
        "PSNR: PSNR of PU21-encoded luminance (sees highlights above display white), pooled and minimum. HDR-FLIP: "
        "mean over pixels, mean and max over samples (0 = identical).",
        "",
    ]
    if results["unreadable_raws"]:
        lines += [
            "Unreadable raws (skipped): "
            + "; ".join(f"`{Path(u['raw']).name}` ({u['error']})" for u in results["unreadable_raws"]),
            "",
        ]
    for w in results.get("warnings", []):
        lines += [f"Warning: {w}.", ""]
    header = (
        "| method | median param err | max param err | darktable PSNR (dB) | min | p05 | PU21 PSNR (dB) | "
        "PU21 min | HDR-FLIP mean | HDR-FLIP max | median s | median renders |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|"
    a = results["aggregate"]
    for mult in mults:
        lines += [
            f"## Budget {_mult(mult)}x (median {mult * bud['median_unit_s']:.1f} s per sample)",
            "",
            header,
            sep,
            _row("proxy regression", a["proxy"]),
        ]
        for lab in results["methods"]:
            r = a[lab].get(_mult(mult))
            if r is None:
                lines.append(f"| {lab} | not run at this budget | | | | | | | | | | |")
            else:
                ov = f" ({r['overruns']} overrun)" if r["overruns"] else ""
                lines.append(_row(lab + ov, r))
        lines.append("")
    oneoff = (
        f"{oo['total_s']:.0f} s = dataset generation "
        + (f"{oo['generate_s']:.0f} s" if oo["generate_s"] is not None else "(not given: 0)")
        + f" + training {oo['train_s']:.0f} s"
    )
    lines += [
        "## Break-even",
        "",
        f"Proxy one-off cost: {oneoff}. Equal quality: the baseline's best-so-far darktable PSNR reaches the "
        "proxy's on the same sample. T = median over samples of the seconds it needs (a sample that never gets "
        "there within its run is censored: its time is only known to exceed the run, so T and N come as "
        "ranges). The proxy's total time N x p + one-off is at most N x T from N = ceil(one-off / (T - p)) "
        "images on (p: the proxy's median seconds per image).",
        "",
    ]
    for lab in results["methods"]:
        be = results["break_even"][lab]
        lines.append(f"* **{lab}**, darktable PSNR: {break_even_text(be['darktable_psnr'])}.")
        lines.append(f"* {lab}, param error (at most the proxy's): {break_even_text(be['param_error'])}.")
    hdr = ["#", "raw", "true params", "proxy err", "proxy dB", "proxy s"]
    for lab in results["methods"]:
        for b in results["baselines"]:
            if b["method"] == lab:
                hdr += [f"{lab} {_mult(x)}x err / dB" for x in b["multiples"]]
        hdr.append(f"{lab} s to proxy dB")
    lines += ["", "## Per sample", "", "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for s in results["samples"]:
        p = s["proxy"]
        tp = ", ".join(f"{k}={_fmt(s['true_params'][k])}" for k in names)
        cells = [
            str(s["index"]),
            Path(s["raw"]).name,
            tp,
            f"{p['mean_param_error']:.4f}",
            f"{p['darktable_psnr']:.1f}",
            f"{p['seconds']:.1f}",
        ]
        for lab in results["methods"]:
            b = s["baselines"][lab]
            cells += [f"{x['mean_param_error']:.4f} / {x['darktable_psnr']:.1f}" for x in b["budgets"]]
            t = b["to_proxy_quality"]["psnr_seconds"]
            cells.append(f"{t:.1f}" if t is not None else f"> {b['run_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
