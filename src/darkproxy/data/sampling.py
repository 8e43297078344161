"""Samplers of normalised parameter vectors in ``[0, 1]^P``, via :mod:`scipy.stats.qmc`.

* ``sobol``: scrambled Sobol' sequence. Point ``i`` depends only on
  ``(seed, i)``, so a dataset can be extended (``-n`` grown) without changing
  earlier samples.
* ``lhs``: Latin hypercube of exactly ``n`` points (depends on ``n``).
* ``uniform``: i.i.d. uniform; point ``i`` depends only on ``(seed, i)``.
* ``grid``: full factorial grid with ``ceil(n^(1/P))`` levels per float axis
  (enums/bools: their values), in row-major order, first ``n`` points.
* ``sparse``: how photographers edit: a sample moves 1 to 3 sliders from their
  defaults and leaves the rest there; a quarter of the samples (``DENSE_SHARE``)
  move every slider at once, so combinations are seen too. With many sliders
  (colorbalancergb's 16), drawing all at once gives extreme targets that no
  edit produces (see ``docs/zoo.md``). Point ``i`` depends only on ``(seed, i)``.
* ``mixed``: ``sparse`` with half the samples (``MIXED_DENSE_SHARE``) moving every slider: for proxies
  judged under every slider drawn at once as well as under edits (row ``i``'s draws are ``sparse``'s,
  only more of them keep every slider).
* ``edges``: ``mixed`` with half the rows (``EDGE_SHARE``) drawing their moved sliders from the arcsine
  law (Beta(1/2, 1/2): 4.5 times uniform's density within 2 % of either end of a range, a third of the
  draws in its middle half) instead of uniformly: for a module whose output turns sharply near the end
  of a slider (colorize near lightness 0). Row ``i`` keeps ``mixed``'s choice of sliders.

Enum and bool axes are snapped to their values by
:meth:`ParamSpace.denormalize` (enum ``k`` of ``m`` values covers the
``1/m``-wide interval of ``u``, so every value is equally likely): use
:func:`discretize` so stored ``params_norm`` sit exactly on the values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from darkproxy.data.paramspace import ParamSpace
from darkproxy.errors import DarkproxyError

SAMPLERS = ("sobol", "lhs", "uniform", "grid", "sparse", "mixed", "edges")
DENSE_SHARE = 0.25  # share of ``sparse`` samples that move every slider
MIXED_DENSE_SHARE = 0.5  # ``mixed``'s
EDGE_SHARE = 0.5  # share of ``edges`` rows whose moved sliders follow the arcsine law
SPARSE_MAX_MOVED = 3  # a ``sparse`` sample moves 1..this many sliders


def _levels(space: ParamSpace) -> list[int | None]:
    """Number of distinct values per axis (None: continuous)."""
    out: list[int | None] = []
    for s in space.specs:
        if s.kind == "enum":
            out.append(len(s.values))
        elif s.kind == "bool":
            out.append(2)
        else:
            out.append(None)
    return out


def discretize(space: ParamSpace, u: np.ndarray) -> np.ndarray:
    """Map uniform ``u`` (N, P) so that enum/bool axes take their exact
    normalised values with equal probability (``floor(u * m) / (m - 1)``);
    float/int axes are returned unchanged."""
    u = np.array(u, dtype=np.float64, copy=True)
    for j, m in enumerate(_levels(space)):
        if m is not None:
            k = np.minimum(np.floor(u[:, j] * m), m - 1)
            u[:, j] = k / max(m - 1, 1)
    return u


def sample_unit(space: ParamSpace, n: int, sampler: str = "sobol", seed: int = 0, start: int = 0) -> np.ndarray:
    """Rows ``start .. start+n-1`` of the design: float64 (n, P) in [0, 1],
    enum/bool axes already discretised. Deterministic in ``(sampler, seed, P)``
    (and the total ``n`` for ``lhs``/``grid``, pass ``start=0`` for those)."""
    p = len(space)
    if n < 0:
        raise DarkproxyError("number of samples must be >= 0")
    if p == 0 or n == 0:
        return np.zeros((n, p))
    if sampler == "sobol":
        from scipy.stats import qmc  # here: the CLI's argument parsing (SAMPLERS) does not load scipy.stats

        eng = qmc.Sobol(d=p, scramble=True, seed=seed)
        if start:
            eng.fast_forward(start)
        u = eng.random(n)
    elif sampler == "uniform":
        # one stream per row so that row i depends on (seed, i) only
        u = np.stack([np.random.default_rng([seed, start + i]).random(p) for i in range(n)])
    elif sampler in ("sparse", "mixed", "edges"):
        dense = DENSE_SHARE if sampler == "sparse" else MIXED_DENSE_SHARE
        return sparse(space, n, seed, start, dense, EDGE_SHARE if sampler == "edges" else 0.0)
    elif sampler == "lhs":
        if start:
            raise DarkproxyError("lhs designs depend on n: sample them whole (start=0)")
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=p, seed=seed).random(n)
    elif sampler == "grid":
        if start:
            raise DarkproxyError("grid designs depend on n: sample them whole (start=0)")
        u = grid(space, n)
        return u
    else:
        raise DarkproxyError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return discretize(space, u)


def sparse(
    space: ParamSpace,
    n: int,
    seed: int = 0,
    start: int = 0,
    dense_share: float = DENSE_SHARE,
    edge_share: float = 0.0,
) -> np.ndarray:
    """Rows ``start .. start+n-1`` of the ``sparse`` design (see the module
    docstring; ``dense_share``: the share of rows that move every slider; ``edge_share``: the share whose
    moved sliders follow the arcsine law, from a stream of their own): float64 (n, P) in [0, 1],
    discretised; the sliders a row does not move sit at their defaults' normalised values."""
    p = len(space)
    base = np.clip(space.normalize(space.defaults()), 0.0, 1.0)  # a default outside the range: its nearest end
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, start + i, 11])
        u = rng.random(p)
        if edge_share > 0.0:
            edge = np.random.default_rng([seed, start + i, 12])
            if edge.random() < edge_share:
                u = edge.beta(0.5, 0.5, p)
        if rng.random() >= dense_share:
            k = int(rng.integers(1, min(SPARSE_MAX_MOVED, p) + 1))
            moved = rng.choice(p, size=k, replace=False)
            keep = np.ones(p, bool)
            keep[moved] = False
            u[keep] = base[keep]
        rows.append(u)
    # a default's normalised enum value k / (m - 1) falls in bin k: discretize keeps it
    return discretize(space, np.stack(rows))


def grid(space: ParamSpace, n: int) -> np.ndarray:
    """Full factorial grid, first ``n`` points (float64 (n, P)). Float axes get
    ``k = ceil(n^(1/P_float))`` evenly spaced levels including both ends
    (after the discrete axes' levels are accounted for)."""
    levels = _levels(space)
    disc = math.prod(m for m in levels if m is not None)
    nf = sum(1 for m in levels if m is None)
    k = max(2, math.ceil((n / disc) ** (1.0 / nf) - 1e-9)) if nf else 1
    if nf and k**nf * disc < n:
        k += 1
    axes = [np.linspace(0.0, 1.0, m if m is not None else k) if (m or k) > 1 else np.zeros(1) for m in levels]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([g.ravel() for g in mesh], axis=1)
    if len(pts) < n:
        # only discrete axes and fewer combinations than n: cycle through them
        pts = np.concatenate([pts] * math.ceil(n / len(pts)))
    return pts[:n]


def sample_params(space: ParamSpace, n: int, sampler: str = "sobol", seed: int = 0) -> list[dict[str, Any]]:
    """``n`` named param dicts (denormalised; ints rounded, enums snapped)."""
    return [space.denormalize(u) for u in sample_unit(space, n, sampler, seed)]
