"""The space of slider values a proxy is trained over, and its normalisation.

A :class:`ParamSpace` is an ordered list of :class:`ParamSpec` (one per free
module parameter). Proxies, samplers and regressors all exchange params as a
*normalised* vector in ``[0, 1]^P`` (float: ``(v - lo) / (hi - lo)``; int:
the same, rounded back on denormalisation; bool: 0/1; enum: index / (n - 1)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from darkproxy.errors import ParamValueError, UnknownParam


@dataclass(frozen=True)
class ParamSpec:
    """One free parameter: ``kind`` is ``float``, ``int``, ``bool`` or ``enum``.

    ``lo``/``hi`` is the *training range* (inside darktable's $MIN/$MAX);
    ``values`` lists an enum's allowed values (ints) and ``names`` their names; ``period`` is the turn of a
    slider that is an angle, in its own units (360 for degrees; 0: not an angle), set from the module's table
    (:func:`darkproxy.data.ranges.with_periods`) and never written to JSON.
    """

    name: str
    kind: str
    lo: float
    hi: float
    default: float
    values: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    period: float = 0.0

    @property
    def full_turn(self) -> bool:
        """Whether the slider is an angle whose range is one whole turn: its ends are the same edit, so a
        regression may wrap it across them (the range's ends are equal modulo the period)."""
        return self.kind == "float" and self.period > 0 and abs(self.hi - self.lo - self.period) <= 1e-9 * self.period

    def normalize(self, v: float) -> float:
        if self.kind == "enum":
            idx = self.values.index(int(v)) if int(v) in self.values else 0
            return idx / max(len(self.values) - 1, 1)
        if self.kind == "bool":
            return 1.0 if v else 0.0
        if self.hi == self.lo:
            return 0.0
        return (float(v) - self.lo) / (self.hi - self.lo)

    def denormalize(self, u: float) -> float | int | bool:
        u = float(np.clip(u, 0.0, 1.0))
        if self.kind == "enum":
            return int(self.values[int(round(u * (len(self.values) - 1)))])
        if self.kind == "bool":
            return bool(u >= 0.5)
        v = self.lo + u * (self.hi - self.lo)
        return int(round(v)) if self.kind == "int" else float(v)

    def error(self, recovered: Any, truth: Any) -> tuple[float, float]:
        """``|recovered - truth|``, absolute and as a fraction of the training range (0 for an empty range):
        a slider regression's error. An angle's is the shorter way round (359 and 1 degrees are 2 apart)."""
        e = abs(float(recovered) - float(truth))
        if self.period > 0:
            e = min(e % self.period, self.period - e % self.period)
        return e, e / (self.hi - self.lo) if self.hi > self.lo else 0.0

    def check(self, v: Any) -> None:
        """Raise :class:`ParamValueError` if ``v`` is outside the range/values."""
        if self.kind == "enum":
            if int(v) not in self.values:
                raise ParamValueError(f"{self.name}={v} is not one of {list(self.values)}")
        elif self.kind in ("float", "int") and not (self.lo <= float(v) <= self.hi):
            raise ParamValueError(f"{self.name}={v} is outside [{self.lo}, {self.hi}]")


@dataclass(frozen=True)
class ParamSpace:
    """Ordered free parameters of one module."""

    module: str
    specs: tuple[ParamSpec, ...]
    fixed: dict[str, Any] = field(default_factory=dict)  # params pinned to a value (not sampled)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def __len__(self) -> int:
        return len(self.specs)

    def spec(self, name: str) -> ParamSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise UnknownParam(
            f"{name!r} is not a free parameter of this {self.module} proxy; free: {', '.join(self.names)}"
        )

    def normalize(self, values: Mapping[str, Any]) -> np.ndarray:
        """Named values -> float32 vector in [0, 1]^P (missing names take the default)."""
        return np.array([s.normalize(values.get(s.name, s.default)) for s in self.specs], dtype=np.float32)

    def denormalize(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Vector in [0, 1]^P -> named values (ints rounded, enums snapped)."""
        return {s.name: s.denormalize(float(x)) for s, x in zip(self.specs, u, strict=False)}

    def unit_errors(self, u: np.ndarray, u_true: np.ndarray) -> np.ndarray:
        """``|u - u_true|`` per param of two normalised vectors ``(P,)`` (fractions of the training ranges); a
        whole-turn angle's the shorter way round, as :meth:`ParamSpec.error`."""
        d = np.abs(np.asarray(u, np.float64) - np.asarray(u_true, np.float64))
        turn = np.array([s.full_turn for s in self.specs], dtype=bool)
        return np.where(turn, np.minimum(d, 1.0 - d), d)

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.specs}

    def for_darktable(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything to set on the module in darktable: the free params'
        defaults, the values pinned at generation (``fixed``, e.g. ``--fix``),
        then ``values``. What every render of a proxy's setting must use, so
        darktable renders the setting the proxy was trained on."""
        out: dict[str, Any] = {**self.defaults(), **self.fixed}
        out.update(values or {})
        return {
            k: (bool(v) if isinstance(v, (bool, np.bool_)) else v.item() if isinstance(v, np.generic) else v)
            for k, v in out.items()
        }

    def to_json(self) -> dict[str, Any]:
        # ``period`` stays out: it comes from the module's table on load, and run and dataset files keep their form
        specs = [{k: v for k, v in asdict(s).items() if k != "period"} for s in self.specs]
        return {"module": self.module, "specs": specs, "fixed": dict(self.fixed)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ParamSpace:
        """The space ``to_json`` wrote; angles without their ``period`` (:func:`darkproxy.data.ranges.with_periods`
        adds it: the dataset and proxy loaders do)."""
        specs = tuple(
            ParamSpec(**{**s, "values": tuple(s.get("values", ())), "names": tuple(s.get("names", ()))})
            for s in d["specs"]
        )
        return cls(module=d["module"], specs=specs, fixed=dict(d.get("fixed", {})))

    @classmethod
    def of(cls, module: str, specs: Iterable[ParamSpec], fixed: Mapping[str, Any] | None = None) -> ParamSpace:
        return cls(module=module, specs=tuple(specs), fixed=dict(fixed or {}))


def split_module_params(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"exposure.exposure": 1}`` -> ``{"exposure": {"exposure": 1}}`` (a chain's flat
    ``module.param`` names, per module)."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in flat.items():
        m, p = k.split(".", 1)
        out.setdefault(m, {})[p] = v
    return out
