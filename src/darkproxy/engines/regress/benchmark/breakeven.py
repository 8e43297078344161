"""The break-even number of images: from how many on the proxy's one-off cost plus its time per
image beat a black box at equal quality (censored samples give bounds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


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
