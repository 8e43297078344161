"""Evaluate a trained proxy against *fresh* darktable renders, and sweep one
parameter across its range (proxy beside darktable, as frames and a video).

Ground truth is always rendered now, by darktable, through tap-outs of the given
raws (:mod:`darkproxy.darktable.tapout`); nothing is taken from the training set.
The identity baseline (output = input) gives the numbers context: a proxy must
beat it by a wide margin to be worth anything.

Every figure is reported three ways (:mod:`darkproxy.colour.metrics`): display PSNR
(what a monitor shows, blind above linear 1.0), PU21 PSNR and HDR-FLIP on the
unclipped scene-referred images (they see highlights), each with the worst case
beside the pooled value (``psnr_min``, ``psnr_p05`` over samples or sweep steps).
Values pinned at generation (the run's ``fixed`` params) are set in every
darktable render, so darktable renders the setting the proxy was trained on.
Raws darktable cannot open are skipped with a warning and listed in the report.

Files: :mod:`.pairs` (tap-out pairs, the proxy on them, regions, the
pre-demosaic baseline), :mod:`.proxy_eval` (:func:`evaluate_proxy`: metrics and
report), :mod:`.sweep`.
"""

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
from darkproxy.engines.evaluate.proxy_eval import (
    CONTRACT_KEYS,
    EvalResult,
    evaluate_proxy,
    per_scale_metrics,
    summary_rows,
)
from darkproxy.engines.evaluate.sweep import SweepResult, sweep

__all__ = [
    "BASELINE_KIND",
    "CONTRACT_KEYS",
    "EvalResult",
    "Pair",
    "SweepResult",
    "bilinear_baseline",
    "default_size",
    "eval_region",
    "evaluate_proxy",
    "panel",
    "per_scale_metrics",
    "render_pairs",
    "run_proxy",
    "summary_rows",
    "sweep",
]
