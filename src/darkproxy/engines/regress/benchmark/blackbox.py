"""The black boxes of regress-eval: darktable as an objective, CMA-ES / Nelder-Mead /
a 1-D bracket search on it, and their best-so-far against the clock (:class:`Anytime`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.metrics import display_mse, mse_at_cap, psnr_from_mse
from darkproxy.engines.regress import RegressError


class DarktableObjective:
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
            loss = display_mse(out, self.target)
            losses.append(loss)
            if loss < self.best_loss:
                self.best_loss, self.best_u, self.best_out = loss, self.full(np.asarray(x)), out
        return losses

    def snapped(self, u: np.ndarray) -> np.ndarray:
        """``u`` as darktable receives it (ints and enums snapped), normalised."""
        return self.space.normalize(self.space.denormalize(u)).astype(np.float64)

    def error(self, u: np.ndarray) -> np.ndarray:
        """Per free param ``|u - u_true|`` (fraction of the training range; a whole-turn angle's the shorter way
        round, as :meth:`~darkproxy.data.paramspace.ParamSpec.error`)."""
        return self.space.unit_errors(self.snapped(u), self.u_true)[self.free]


def psnr_or_zero(mse: float) -> float:
    """PSNR of a black box's loss (a display MSE); a render that failed (infinite loss) scores 0 dB."""
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
        tr["darktable_psnr"].append(psnr_or_zero(s["loss"]))
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
        return self.obj.best_loss <= mse_at_cap()  # nothing better can be reported


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
    rng = np.random.default_rng([seed, 11])

    def go() -> bool:
        if rec.capped():
            rec.stop = "psnr cap"
            return False
        return rec.batches == 0 or rec.elapsed() < max_s

    if kind == "nelder-mead":
        _nelder_mead(obj, rec, go, np.asarray(x0, np.float64), sigma0, rng)
    elif len(x0) >= 2:
        _cma_es(obj, rec, go, np.asarray(x0, np.float64), sigma0, popsize, seed, rng)
    else:
        _bracket_1d(obj, rec, go, popsize or 6)
    rec.finish()
    return rec


def _nelder_mead(
    obj: Any, rec: Anytime, go: Callable[[], bool], start: np.ndarray, sigma0: float, rng: np.random.Generator
) -> None:
    """SciPy's Nelder-Mead, one render per call; restarts from a random point when it converges."""
    from scipy.optimize import minimize

    class _Stop(Exception):
        pass

    def f(x: np.ndarray) -> float:
        if not go():
            raise _Stop
        v = obj([np.clip(x, 0, 1)])[0]
        rec.point()
        return min(v, 1e3)

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
        start = rng.uniform(0.0, 1.0, len(start))


def _cma_es(
    obj: Any,
    rec: Anytime,
    go: Callable[[], bool],
    start: np.ndarray,
    sigma0: float,
    popsize: int | None,
    seed: int,
    rng: np.random.Generator,
) -> None:
    """Bounded CMA-ES, a population per darktable batch; IPOP restarts (twice the population)."""
    import cma

    k = len(start)
    pop = popsize or 4 + int(3 * math.log(k))
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


def _bracket_1d(obj: Any, rec: Anytime, go: Callable[[], bool], pop: int) -> None:
    """One free param (CMA-ES needs two): ``pop`` points evenly over the bracket per batch,
    then the bracket shrinks around the best."""
    lo, hi = 0.0, 1.0
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
