"""Render scale: output pixels per raw pixel, and what a proxy was trained on.

darktable runs its local modules (sharpen, lowpass, bloom, soften, hazeremoval...)
with radii multiplied by the render scale (``roi->scale``), so the same sliders
give another image at 128 px than at the raw's full size. Every sample records
the scale darktable rendered it at (``render_scale``); a run records the range
it was trained on (``scale_range`` in ``run.json``), and a proxy of a
scale-dependent module refuses a scale outside it.

A proxy trained over a range of scales is *conditioned* on it: the model takes
one more normalised param, :meth:`ScaleRange.feature` (log scale mapped to
``[0, 1]`` over the trained range), appended after the module's sliders.
Pointwise modules do not depend on the scale and ignore it.

A module whose radius is a fraction of the whole image's size (:data:`FULL_SIZE_RADIUS`: soften) is conditioned
on the whole image's diagonal in output px instead (:data:`DIAGONAL_PX`, :func:`output_diagonal`): its radius at
any raw size and scale is a function of that alone (up to darktable's integer rounding), so one proxy serves every
size whose diagonal it was trained over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from darkproxy.errors import ScaleError

if TYPE_CHECKING:
    import torch

# modules whose radius is a fraction of the whole image's full-resolution size, not px times the render scale
# (docs/darktable-notes.md): a proxy trained on regions of raws of one size learnt the radius of that size only
# (soften's zoo proxy, 16 draws at render scale 0.5: 36.9 dB median on regions of its 1024 px raws, 25.5 on whole
# 256 px ones: bench/results/soften_geometry_*_16_draws.md)
FULL_SIZE_RADIUS = {"soften": "1 % of the full-resolution diagonal"}
SIZE_TOLERANCE = 0.02  # rawprepare's crop of a raw of the same size

RENDER = "render"  # a ScaleRange's basis: output px per raw px
DIAGONAL_PX = "diagonal_px"  # the whole image's diagonal in output px (render scale x its full-resolution diagonal)

# render scales are measured from rounded pixel sizes: 2 % either side of the
# trained range is the same scale (a 128 px render of a 6000 px raw is 1/46.9)
TOLERANCE = 0.02


@dataclass(frozen=True)
class ScaleRange:
    """The render scales a proxy was trained on: ``lo <= s <= hi``.

    ``dependent``: the module's output depends on the scale (not pointwise),
    so other scales are refused; ``conditioned``: the model takes the scale as
    an extra normalised param (trained over more than one scale)."""

    lo: float
    hi: float
    dependent: bool = True
    conditioned: bool = False
    basis: str = RENDER  # what lo, hi and the model's input measure: RENDER (a render scale) or DIAGONAL_PX

    @classmethod
    def from_scales(cls, scales: Sequence[float | None], dependent: bool, basis: str = RENDER) -> ScaleRange | None:
        """The range of a training set's ``render_scale`` values (or, with ``basis`` :data:`DIAGONAL_PX`, its
        samples' :func:`output_diagonal`; ``None`` when none is known). Conditioned when dependent and the
        values span more than the measurement tolerance."""
        s = [float(x) for x in scales if x is not None and float(x) > 0]
        if not s:
            return None
        lo, hi = min(s), max(s)
        return cls(lo, hi, dependent, dependent and hi > lo * (1 + 2 * TOLERANCE), basis)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> ScaleRange | None:
        if not d:
            return None
        return cls(
            float(d["lo"]),
            float(d["hi"]),
            bool(d.get("dependent", True)),
            bool(d.get("conditioned", False)),
            str(d.get("basis", RENDER)),
        )

    def to_json(self) -> dict[str, Any]:
        d = {"lo": self.lo, "hi": self.hi, "dependent": self.dependent, "conditioned": self.conditioned}
        return {**d, "basis": self.basis} if self.basis != RENDER else d

    def __str__(self) -> str:
        if self.basis == DIAGONAL_PX:  # output px: whole numbers read best (111-1448, not 111-1.45e+03)
            return (f"{self.lo:.0f}" if self.lo == self.hi else f"{self.lo:.0f}-{self.hi:.0f}") + " px of diagonal"
        return f"{self.lo:.3g}" if self.lo == self.hi else f"{self.lo:.3g}-{self.hi:.3g}"

    def contains(self, scale: float) -> bool:
        return self.lo * (1 - TOLERANCE) <= scale <= self.hi * (1 + TOLERANCE)

    def check(self, scale: float | None, what: str = "proxy") -> None:
        """Raise :class:`ScaleError` when a scale-dependent proxy is asked for
        a render scale it was not trained on (``None``: unknown, allowed only
        for proxies that do not depend on it)."""
        if not self.dependent:
            return
        if scale is None:
            if self.conditioned:
                raise ScaleError(f"this {what} is conditioned on the render scale ({self}): pass the image's scale")
            return
        if not self.contains(float(scale)) and self.basis == DIAGONAL_PX:
            raise ScaleError(
                f"the whole image's diagonal is {float(scale):.0f} output px, outside this {what}'s trained range "
                f"{self} (the module's radius is a fraction of it); render at another size"
            )
        if not self.contains(float(scale)):
            raise ScaleError(
                f"render scale {float(scale):.3g} is outside this {what}'s trained range {self} "
                "(darktable scales the module's radii with it); train with --scales covering it"
            )

    def render_scale(self, value: float, full_size: Sequence[float] | None) -> float:
        """The render scale at which an image whose full-resolution ``(width, height)`` is ``full_size`` takes
        ``value`` on this range's basis: ``value`` itself, or for :data:`DIAGONAL_PX` ``value`` over its diagonal
        (at most 1: darktable-cli does not upscale)."""
        if self.basis != DIAGONAL_PX:
            return float(value)
        if not full_size:
            raise ScaleError("a proxy conditioned on the whole image's diagonal needs the image's size")
        return min(1.0, float(value) / math.hypot(float(full_size[0]), float(full_size[1])))

    def feature(self, scale: float | torch.Tensor) -> torch.Tensor:
        """The model's extra param: ``(log s - log lo) / (log hi - log lo)``
        (0 at ``lo``, 1 at ``hi``; a tensor keeps its shape)."""
        import torch  # here: `darkproxy --help` and the CLI's argument parsing do not load torch

        s = torch.as_tensor(scale, dtype=torch.float32)
        if self.hi <= self.lo:
            return torch.zeros_like(s)
        return (torch.log(s) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))


def parse_scales(text: str) -> tuple[float, float] | list[float]:
    """``--scales`` text: ``LO:HI`` (log-uniform draws in between) or a
    comma-separated list (each drawn in turn). Scales are output px per raw px,
    in ``(0, 1]`` (darktable-cli does not upscale)."""
    from darkproxy.errors import ParamValueError

    try:
        if ":" in text:
            lo_s, hi_s = text.split(":", 1)
            lo, hi = float(lo_s), float(hi_s)
            vals = [lo, hi]
            out: tuple[float, float] | list[float] = (lo, hi)
            if not lo < hi:
                raise ParamValueError(f"--scales {text}: LO must be below HI")
        else:
            vals = [float(v) for v in text.split(",") if v.strip()]
            out = vals
            if not vals:
                raise ValueError
    except ValueError:
        raise ParamValueError(f"--scales {text!r}: expected LO:HI or a comma-separated list of numbers") from None
    if any(not 0 < v <= 1 for v in vals):
        raise ParamValueError(f"--scales {text}: scales are output px per raw px, in (0, 1]")
    return out


def full_size_problem(
    module: str, trained: float | None, full_size: tuple[float, float] | None, proxy: str, basis: str = RENDER
) -> str | None:
    """Why ``proxy`` (a name for messages), a proxy of ``module`` trained on raws whose long side is ``trained`` px
    (``None``: not recorded), cannot run on an image whose full-resolution ``(width, height)`` is ``full_size``
    (``None``: unknown); ``None`` when it can, or when ``module``'s radius does not follow the image's size
    (:data:`FULL_SIZE_RADIUS`). A proxy conditioned on :data:`DIAGONAL_PX` (``basis``) runs at any size whose
    diagonal it learnt (:meth:`ScaleRange.check`) and needs ``full_size`` only; one conditioned on the render
    scale (trained before 2026-12-06) learnt the radius of its raws' size only."""
    if module not in FULL_SIZE_RADIUS:
        return None
    rule = f"{module}'s radius is {FULL_SIZE_RADIUS[module]}"
    if basis == DIAGONAL_PX:
        return None if full_size is not None else f"{rule}: the image's full-resolution size is not known here"
    if not isinstance(trained, int | float) or trained <= 0:
        return f"{rule}: the proxy {proxy} does not record the size of the raws it learnt it on"
    if full_size is None:
        return f"{rule}: the image's full-resolution size is not known here"
    w, h = full_size
    if abs(max(w, h) / float(trained) - 1.0) > SIZE_TOLERANCE:
        return f"{rule} and the proxy {proxy} learnt it on {trained:g} px raws, this one is {w:g} x {h:g} px"
    return None


def output_diagonal(scale: float, full_size: tuple[float, float]) -> float:
    """The whole image's diagonal in output px: render ``scale`` x the hypotenuse of its full-resolution
    ``(width, height)`` (what darktable's soften takes 1 % of, before the scale: ``src/iop/soften.c``)."""
    return float(scale) * math.hypot(float(full_size[0]), float(full_size[1]))


def basis_for(module: str) -> str:
    """The scale basis a proxy of ``module`` is conditioned on: :data:`DIAGONAL_PX` for :data:`FULL_SIZE_RADIUS`
    modules, :data:`RENDER` otherwise."""
    return DIAGONAL_PX if module in FULL_SIZE_RADIUS else RENDER


def sample_scale(rec: Mapping[str, Any], basis: str) -> float | None:
    """A dataset record's value on ``basis``: its ``render_scale``, or with :data:`DIAGONAL_PX` that times its
    raw's ``full_size`` diagonal (``None`` where the record lacks either)."""
    s = rec.get("render_scale")
    if not s:
        return None
    if basis != DIAGONAL_PX:
        return float(s)
    wh = rec.get("full_size")
    return output_diagonal(float(s), (float(wh[0]), float(wh[1]))) if wh else None
