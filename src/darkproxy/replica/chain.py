"""The replica's chain: the stages of a plan (:mod:`darkproxy.replica.plan`) run as one differentiable module.

:class:`ReplicaChain` runs the stages: ``forward(x (B, 3, H, W) linear Rec2020 (``from_mosaic``: the
raw's uncropped CFA ``(B, 1, H, W)``),
u (B, P) normalised flat params) -> (B, 3, H, W)`` sRGB display values in ``[0, 1]``,
differentiable in ``x`` and ``u``. Its ``param_space`` is flat (``"module.param"``, ``"module#N.param"``
for a second instance): the sliders of every exact stage (ranges from
:data:`darkproxy.data.ranges.DEFAULT_RANGES`) and every proxy's space, with the history's values as
defaults, so that the one regression engine (:func:`darkproxy.engines.regress.regress`) optimises it
like any proxy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from darkproxy.darktable.params import param_value
from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.replica.blend import BLEND_OPACITY, blend_uniform
from darkproxy.replica.blend_camera import blend_stage, stage_mask
from darkproxy.replica.mosaicplan import run_mosaic
from darkproxy.replica.plan import ReplicaError, ReplicaPlan, StagePlan
from darkproxy.replica.raster import raster_opacity
from darkproxy.replica.registry import EXACT, StageContext


@dataclass
class _Slot:
    """Where a stage's regressable params sit in the flat vector."""

    start: int
    names: list[str]  # param names of the stage (the blend's opacity last, when it blends)
    specs: list[ParamSpec]
    blends: bool = False  # the last column is the blend's opacity (BLEND_OPACITY)


class ReplicaChain(nn.Module):
    """The history's stages after demosaic, chained (see the module docstring).

    ``proxies``: ``{module: proxy}`` loaded and fixed at the render scale;
    ``taps``: ``{stage key: (3, H, W) tensor}`` darktable's tap-out after each
    ``passthrough`` stage. ``display_output``: the output is display-encoded
    (the regression engine compares it with the target as is);
    ``full_image_only``: not per-pixel (the engine must not subsample pixels)."""

    display_output = True

    def __init__(
        self,
        plan: ReplicaPlan,
        proxies: Mapping[str, nn.Module],
        taps: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        from darkproxy.data.ranges import DEFAULT_RANGES, PERIODIC

        super().__init__()
        self.plan = plan
        self.ctx = plan.context
        self.proxies = nn.ModuleDict({m: p for m, p in proxies.items()})
        self.taps = dict(taps or {})
        self.module = "replica"
        specs: list[ParamSpec] = []
        self.slots: dict[str, _Slot] = {}
        for st in [s for s in plan.prefix if s.kind == "exact"] + plan.stages:
            own: list[ParamSpec] = []
            if st.kind == "proxy":
                space: ParamSpace = getattr(self.proxies[st.module], "param_space")  # noqa: B009
                for s in space.specs:
                    try:  # a scalar, or an element of an array param (``red[0]``)
                        value = param_value(st.values, s.name)
                    except KeyError:  # never the proxy's default in place of the history's value
                        raise ReplicaError(
                            f"{st.key}: the proxy's param {s.name!r} is not in the history's params"
                        ) from None
                    d = _num(value, f"{st.key}.{s.name}")
                    own.append(dataclasses.replace(s, default=d))
            elif st.kind == "exact":
                rng = DEFAULT_RANGES.get(st.module, {})
                for name in EXACT[st.module].params:
                    try:  # a scalar, or an element of an array param (``red[0]``: the port reads it so)
                        value = param_value(st.values, name) if name in rng else None
                    except KeyError:
                        value = None
                    if value is not None:
                        lo, hi = rng[name]
                        period = PERIODIC.get(st.module, {}).get(name, 0.0)
                        own.append(ParamSpec(name, "float", lo, hi, _num(value, f"{st.key}.{name}"), period=period))
            if st.opacity is not None:  # darktable's blend opacity, a slider like the module's own
                own.append(ParamSpec(BLEND_OPACITY, "float", 0.0, 1.0, float(st.opacity)))
            self.slots[st.key] = _Slot(len(specs), [s.name for s in own], own, st.opacity is not None)
            specs += [dataclasses.replace(s, name=f"{st.key}.{s.name}") for s in own]
        self.param_space = ParamSpace.of("replica", specs)
        for st in plan.stages:
            why = _scale_problem(st, self.ctx)
            if why:
                raise ReplicaError(why)
        self.full_image_only = not self.pointwise() or plan.from_mosaic
        self.raster_sources = {st.raster.key for st in plan.stages if st.raster is not None}  # masks to hand on

    def stage_pointwise(self, st: StagePlan) -> bool:
        """Whether stage ``st`` reads only its own pixel (its exact op or proxy says so, no spatial mask)."""
        return (
            (st.kind == "proxy" and bool(getattr(self.proxies[st.module], "pointwise", False)))
            or (st.kind == "exact" and EXACT[st.module].pointwise(st.values, self.ctx))
        ) and not (st.blend is not None and st.blend.spatial)  # a feathered or blurred mask

    def pointwise(self, skip: Collection[str] = ()) -> bool:
        """Whether every stage but those keyed in ``skip`` is :meth:`stage_pointwise`."""
        return all(self.stage_pointwise(st) for st in self.plan.stages if st.key not in skip)

    def history_u(self, batch: int = 1, device: str | torch.device = "cpu") -> torch.Tensor:
        """The history's own settings as the normalised flat vector ``(batch, P)``
        (not clipped: a value outside a slider's range stays exact). float64, so that
        the exact stages get the history's float32 values back bit for bit (sigmoid's
        curve is a step function of them, as in darktable)."""
        d = self.param_space.defaults()
        u = torch.as_tensor([s.normalize(d[s.name]) for s in self.param_space.specs], dtype=torch.float64)
        u = u.to(device)
        return u.reshape(1, -1).expand(batch, -1).clone()

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        out, _ = self.run_stages(x, u)
        return out

    def run_stages(
        self, x: torch.Tensor, u: torch.Tensor, ctx: StageContext | None = None, skip: Collection[str] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (B, 3, H, W)`` linear Rec2020 (darktable's image after demosaic),
        ``u (B, P)`` -> (display ``(B, 3, H, W)``, every stage's output: linear
        Rec2020 up to colorout, display values from it on). ``ctx``: the exact
        stages' context instead of the plan's (e.g. another output profile). ``skip``: stage keys passed over
        (their input is their output: for stages known to be at their identity)."""
        if x.ndim == 3:
            x = x[None]
        B = x.shape[0]
        if u.ndim == 1:
            u = u[None]
        if u.shape[0] != B:
            u = u.expand(B, -1)
        if self.plan.from_mosaic:
            x = self.run_mosaic(x, u, ctx)[0]
        cur, outs = x, []
        masks: dict[str, torch.Tensor] = {}  # the raster masks' sources' final masks, by stage key
        for st in self.plan.stages:
            uu = u[:, self.slots[st.key].start :]
            if st.key in skip:
                pass
            elif st.kind == "passthrough":
                tap = self.taps[st.key]  # its own shape: a stage before it may have rotated the image
                cur = tap.to(x.device, x.dtype).reshape(1, 3, *tap.shape[-2:]).expand(B, -1, -1, -1)
            else:
                cur = self._stage(st, cur, uu, ctx, masks)
            outs.append(cur)
        return cur, outs

    def run_mosaic(
        self, x: torch.Tensor, u: torch.Tensor, ctx: StageContext | None = None, upto: str | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``--from-mosaic``: ``x (B, 1, H, W)`` the raw's uncropped CFA (raw sensor values), ``u (B, P)``
        -> (linear Rec2020 ``(B, 3, h, w)``, every mosaic stage's output): see :func:`.mosaicplan.run_mosaic`."""
        u = u[None] if u.ndim == 1 else u

        def own(st: StagePlan) -> torch.Tensor:
            return u[:, self.slots[st.key].start :]

        run, values = (lambda st, y, c: self._stage(st, y, own(st), c)), (lambda st: self._values(st, own(st)))
        return run_mosaic(self.plan.prefix, x, ctx or self.ctx, run, values, upto)

    def _values(self, st: StagePlan, u: torch.Tensor) -> dict[str, Any]:
        """The stage's params: the history's, its sliders from the first columns of ``u``."""
        slot = self.slots[st.key]
        n = len(slot.names) - int(slot.blends)
        vals: dict[str, Any] = dict(st.values)
        for j, s in enumerate(slot.specs[:n]):
            vals[s.name] = s.lo + u[:, j] * (s.hi - s.lo)
        return vals

    def stage_alone(self, module: str, x: torch.Tensor, ctx: StageContext | None = None) -> torch.Tensor:
        """One stage (``module``: its :attr:`StagePlan.key`) at the history's settings applied to ``x``
        (``(3, H, W)`` or batched): the stage's own fidelity on darktable's input to it (``ctx``: as in
        :meth:`run_stages`)."""
        u = self.history_u(1, x.device)
        st = next(s for s in self.plan.stages if s.key == module)
        return self._stage(st, x[None] if x.ndim == 3 else x, u[:, self.slots[module].start :], ctx)

    def _stage(
        self,
        st: StagePlan,
        x: torch.Tensor,
        u: torch.Tensor,
        ctx: StageContext | None,
        masks: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """An exact or proxy stage on ``x`` with its sliders the first columns of ``u``, blended; ``masks``:
        the final masks of the raster masks' sources so far (:mod:`.raster`: this stage's added if one reads it)."""
        slot = self.slots[st.key]
        n = len(slot.names) - int(slot.blends)
        uu = u[:, :n]
        if st.kind == "proxy":
            y = self.proxies[st.module](x, uu.to(x.dtype))
        else:
            y = EXACT[st.module].fn(x, self._values(st, u), ctx or self.ctx)
        if st.opacity is None:
            return y
        opacity = u[:, n].to(x.dtype).reshape(-1, 1, 1, 1)  # the blend's slider: the history's unless regressed
        if st.raster is not None or st.key in self.raster_sources:  # the final mask, handed on or read
            c = ctx or self.ctx
            if st.raster is not None:
                try:
                    m = raster_opacity(st.raster, masks, opacity, st.key)
                except ValueError as e:
                    raise ReplicaError(str(e)) from None
            else:
                try:  # on camera RGB before colorin (blend_camera.py)
                    m = stage_mask(x, y, st.blend, opacity, st.module, c)
                except ValueError as e:
                    raise ReplicaError(str(e)) from None
            if masks is not None and st.key in self.raster_sources:
                masks[st.key] = m
            if st.blend is None:
                return blend_uniform(x, y, m)
            held = dataclasses.replace(st.blend, opacity=m, mask=None, drawn=None)  # the mask computed above
            return self._blend(x, y, held, st.module, c)
        if st.blend is not None:  # a mode other than normal, or a parametric mask
            c = ctx or self.ctx
            return self._blend(x, y, dataclasses.replace(st.blend, opacity=opacity), st.module, c)
        return blend_uniform(x, y, opacity)

    @staticmethod
    def _blend(x: torch.Tensor, y: torch.Tensor, blend: Any, module: str, ctx: StageContext) -> torch.Tensor:
        """The stage's blend in scene RGB, on camera RGB before colorin (:mod:`.blend_camera`)."""
        try:
            return blend_stage(x, y, blend, module, ctx)
        except ValueError as e:
            raise ReplicaError(str(e)) from None


def _scale_problem(st: StagePlan, ctx: StageContext) -> str | None:
    """Why an exact stage cannot run at ``ctx.scale``, if it cannot: a flip that is not the
    identity, after another stage of the chain, below full resolution (darktable samples
    a rotated image on the rotated grid there: half an output pixel off at scale 0.5)."""
    if st.kind != "exact" or st.module != "flip" or abs(ctx.scale - 1.0) < 1e-3:
        return None
    from darkproxy.replica.ports.flip import resolved_orientation

    o = resolved_orientation(st.values, ctx)
    if o in (0, None):  # None: refused by the stage's supports() already
        return None
    return (
        f"flip orientation {o} after another stage of the chain at render scale {ctx.scale:.3g}: darktable "
        "resamples the rotated image itself below full resolution; render at full size (--max-size = the raw's "
        "long side)"
    )


def _num(v: Any, name: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ReplicaError(f"{name}: the history's value {v!r} is not a number") from None
