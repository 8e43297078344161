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
  proxy (:func:`darkproxy.engines.regress.regress`), render the recovered params with
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
(:data:`darkproxy.colour.metrics.PSNR_CAP`: nothing better can be reported) or, for
the 1-D bracket, when the bracket has converged; its result then holds for the
later budgets. The best render at every budget is kept, so every method gets
the same metrics (:func:`darkproxy.colour.metrics.compare`: display PSNR, PU21
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

Files: :mod:`.config` (settings, budgets), :mod:`.blackbox` (darktable as an
objective, the black boxes, :class:`Anytime`), :mod:`.breakeven`, :mod:`.run`
(the samples and the results), :mod:`.report` (plot, Markdown).
"""

from darkproxy.engines.regress.benchmark.blackbox import Anytime, DarktableObjective, first_reach, run_baseline
from darkproxy.engines.regress.benchmark.breakeven import break_even, break_even_text
from darkproxy.engines.regress.benchmark.config import (
    BASELINES,
    DEFAULT_BUDGETS,
    MIN_RAWS,
    BaselineSpec,
    EvalConfig,
    multiple_label,
    parse_baselines,
    parse_budgets,
)
from darkproxy.engines.regress.benchmark.report import plot_quality_vs_time, results_markdown
from darkproxy.engines.regress.benchmark.run import aggregate_method, assign_raws, regress_eval

__all__ = [
    "BASELINES",
    "DEFAULT_BUDGETS",
    "MIN_RAWS",
    "Anytime",
    "BaselineSpec",
    "DarktableObjective",
    "EvalConfig",
    "aggregate_method",
    "assign_raws",
    "break_even",
    "break_even_text",
    "first_reach",
    "multiple_label",
    "parse_baselines",
    "parse_budgets",
    "plot_quality_vs_time",
    "regress_eval",
    "results_markdown",
    "run_baseline",
]
