"""regress-eval's settings: the black boxes, the budgets and their parsing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from darkproxy.engines.regress import RegressConfig, RegressError

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
        return self.kind if self.max_multiple is None else f"{self.kind}:{multiple_label(self.max_multiple)}"


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
                    f"({multiple_label(self.budgets[0])}x)"
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


def multiple_label(m: float) -> str:
    """A budget multiple as written in results and tables (``10.0`` -> ``"10"``)."""
    return f"{m:g}"
