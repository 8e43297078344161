"""The zoo's plan (``plan.toml``): sources, sizes, samples, training time, per-module overrides."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

from darkproxy.errors import DarkproxyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class ModulePlan:
    """How one module's proxy is made (a :class:`ZooPlan` resolved for it)."""

    samples: int
    size: int | None  # None: full resolution (pre-demosaic modules)
    sampler: str
    time_budget_s: float
    eval_n: int
    eval_sampler: str
    steps: int | None = None  # a step count instead of the time budget (tests)
    threads: int | None = None  # torch CPU threads while training (None: train's default)
    arch: str = "auto"  # the architecture (auto: darktable's probe decides)
    raw_size: int = 256  # long side of the synthetic raws it is generated from and evaluated on
    scales: tuple[float, float] | None = None  # render scales drawn log-uniformly (raw regions); None: whole raws
    eval_scales: tuple[float, ...] | None = None  # held-out evaluation at each of these scales (with scales)
    hparams: dict[str, Any] = field(default_factory=dict)  # the architecture's (width, depth...): its capacity
    train_sources: tuple[str, ...] = ()  # the photos of its training raws (the plan's unless the module names its own)


@dataclass
class ZooPlan:
    """The zoo's plan (``plan.toml``; see the shipped one for the meaning of each key)."""

    raw_size: int = 256
    train_sources: tuple[str, ...] = ("chart", "astronaut", "chelsea", "rocket", "immunohistochemistry")
    heldout_sources: tuple[str, ...] = ("coffee", "motorcycle")
    samples: int = 96
    size: int = 128
    sampler: str = "sparse"
    time_budget_s: float = 75.0
    eval_n: int = 8
    eval_sampler: str = "sparse"
    steps: int | None = None
    threads: int | None = None
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ZooPlan:
        """Read a plan file (default: the shipped ``plan.toml``); unknown keys fail."""
        p = Path(path) if path is not None else Path(str(files("darkproxy") / "zoo" / "plan.toml"))
        try:
            raw = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DarkproxyError(f"cannot read the zoo plan {p}: {e}") from None
        known = {f.name for f in fields(cls)}
        bad = sorted(set(raw) - known)
        if bad:
            raise DarkproxyError(f"{p}: unknown keys {', '.join(bad)} (known: {', '.join(sorted(known))})")
        for k in ("train_sources", "heldout_sources"):
            if k in raw:
                raw[k] = tuple(raw[k])
        return cls(**raw)

    def for_module(self, module: str, pre_demosaic: bool) -> ModulePlan:
        o = self.modules.get(module, {})
        bad = sorted(set(o) - {f.name for f in fields(ModulePlan)})
        if bad:
            raise DarkproxyError(f"zoo plan, [modules.{module}]: unknown keys {', '.join(bad)}")
        scales = o.get("scales")
        lo_hi = [float(v) for v in scales] if scales is not None else None
        if lo_hi is not None and (pre_demosaic or len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] <= 1):
            raise DarkproxyError(
                f"zoo plan, [modules.{module}]: scales must be [lo, hi] with 0 < lo <= hi <= 1"
                + (" (a module before demosaic has no render scale)" if pre_demosaic else "")
            )
        eval_scales = o.get("eval_scales")
        if eval_scales is not None and (scales is None or not all(0 < float(v) <= 1 for v in eval_scales)):
            raise DarkproxyError(f"zoo plan, [modules.{module}]: eval_scales needs scales, each in (0, 1]")
        return ModulePlan(
            samples=int(o.get("samples", self.samples)),
            size=None if pre_demosaic else int(o.get("size", self.size)),
            sampler=str(o.get("sampler", self.sampler)),
            time_budget_s=float(o.get("time_budget_s", self.time_budget_s)),
            eval_n=int(o.get("eval_n", self.eval_n)),
            eval_sampler=str(o.get("eval_sampler", self.eval_sampler)),
            steps=o.get("steps", self.steps),
            threads=o.get("threads", self.threads),
            arch=str(o.get("arch", "auto")),
            raw_size=int(o.get("raw_size", self.raw_size)),
            scales=(lo_hi[0], lo_hi[1]) if lo_hi is not None else None,
            eval_scales=tuple(float(v) for v in eval_scales) if eval_scales is not None else None,
            hparams=dict(o.get("hparams", {})),
            train_sources=tuple(o.get("train_sources", self.train_sources)),
        )
