"""A darktable history as a differentiable chain: which stage runs each module, and the chain itself.

:func:`plan_replica` reads a history (darktable's defaults for the raw, or an XMP,
plus ``--set`` edits) and decides, per enabled module in pipe order, its stage kind
(:mod:`darkproxy.replica.stages`): mosaic stages are darktable's own render (the
replica's input); after demosaic an exact stage when one is registered and supports
the history's setting, else the zoo's proxy (or a run given for the module), else a
one-line :class:`ReplicaError` (``allow_missing``: darktable's tap-out, ``passthrough``).

:class:`ReplicaChain` runs the stages: ``forward(x (B, 3, H, W) linear Rec2020,
u (B, P) normalised flat params) -> (B, 3, H, W)`` sRGB display values in ``[0, 1]``,
differentiable in ``x`` and ``u``. Its ``param_space`` is flat (``"module.param"``):
the sliders of every exact stage (ranges from :data:`darkproxy.data.ranges.DEFAULT_RANGES`)
and every proxy's space, with the history's values as defaults, so that the one
regression engine (:func:`darkproxy.regress.regress`) optimises it like any proxy.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.errors import DarkproxyError
from darkproxy.replica.stages import EXACT, MOSAIC_NOTE, StageContext

KINDS = ("exact", "proxy", "passthrough")


class ReplicaError(DarkproxyError):
    """A history the replica cannot run (a module with neither an exact stage nor a proxy...)."""


@dataclass
class StagePlan:
    """One enabled module of the history and how the replica runs it.

    ``values``: the history's params (dotted names); ``run``: the proxy's run folder
    (``zoo:MODULE`` or a path) for ``kind == "proxy"``; ``mosaic``: a stage before
    the replica's input (darktable's render by design); ``note``: why / how exact."""

    module: str
    kind: str
    values: dict[str, Any] = field(default_factory=dict)
    run: str | None = None
    mosaic: bool = False
    note: str = ""
    can_disable: bool = True  # False for modules darktable keeps on whatever the XMP says


@dataclass
class ReplicaPlan:
    """The stages of a history: ``prefix`` (mosaic stages, darktable's render) and
    ``stages`` (the chain, after demosaic, in pipe order); ``history``: the sidecar."""

    history: Any
    prefix: list[StagePlan]
    stages: list[StagePlan]
    context: StageContext

    @property
    def modules(self) -> list[str]:
        return [s.module for s in self.stages]

    def chain_disable(self) -> list[str]:
        """The chain's modules darktable can switch off (the replica's input render disables them)."""
        return [s.module for s in self.stages if s.can_disable]


def _zoo_run(module: str) -> str | None:
    from darkproxy.zoo import zoo_root

    return f"zoo:{module}" if (zoo_root() / module / "run.json").is_file() else None


def plan_replica(
    dt: Any,
    history: Any,
    raw: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
) -> ReplicaPlan:
    """Stage kinds for every module ``history`` (a compressed
    :class:`~darkproxy.darktable.xmp.Sidecar`) enables. ``prefer_proxy``: modules
    to run through their proxy even where an exact stage exists; ``runs``:
    ``{module: run folder}`` overriding the zoo. Raises :class:`ReplicaError`
    (one line) for a module with neither, unless ``allow_missing``."""
    from darkproxy.darktable.params import decode_params, flatten
    from darkproxy.darktable.tapout import PASS_THROUGH, runs_on_mosaic

    history = history.compressed()
    order = dt.schemas.pipe_order(history.iop_order_version)
    items = [it for it in history.effective() if it.operation in order]
    for it in items:
        if it.multi_priority != 0 and (it.enabled or it.operation in PASS_THROUGH):
            raise ReplicaError(f"{it.operation}: a second instance of a module is not supported by the replica")
    on = sorted(
        (it for it in items if it.multi_priority == 0 and (it.enabled or it.operation in PASS_THROUGH)),
        key=lambda it: order.index(it.operation),
    )
    modules = tuple(it.operation for it in on)
    if "colorout" not in modules:  # darktable always converts to the output profile
        modules = (*modules, "colorout")
    ctx = StageContext(scale=1.0, modules=modules, orientation=_orientation(raw))
    runs = dict(runs or {})
    prefix: list[StagePlan] = []
    stages: list[StagePlan] = []
    for m in modules:
        it = history.find(m)
        values: dict[str, Any] = {}
        if it is not None and m in dt.schemas:
            sch = dt.schemas.get(m)
            if it.modversion == sch.version:
                values = flatten(decode_params(sch, it.params))
        can_disable = m not in PASS_THROUGH
        if runs_on_mosaic(order, m):
            prefix.append(StagePlan(m, "passthrough", values, mosaic=True, note=MOSAIC_NOTE, can_disable=can_disable))
            continue
        op = EXACT.get(m)
        reason = op.supports(values, ctx) if op is not None else None
        if op is not None and reason is None and op.versions and (it is None or it.modversion not in op.versions):
            got = "unknown" if it is None else it.modversion
            reason = f"{m} version {got}: the exact stage implements version(s) {', '.join(map(str, op.versions))}"
        if op is not None and reason is None and m not in prefer_proxy:
            stages.append(StagePlan(m, "exact", values, note=op.note, can_disable=can_disable))
            continue
        run = runs.get(m) or _zoo_run(m)
        if run is not None:
            note = f"proxy {run}" + (f" ({reason})" if reason else "")
            stages.append(StagePlan(m, "proxy", values, run=run, note=note, can_disable=can_disable))
            continue
        why = reason or "no exact stage and no proxy in the zoo"
        if not allow_missing or not can_disable:
            raise ReplicaError(
                f"{m} is enabled in the history but the replica cannot run it ({why}): "
                "disable it, train a proxy (darkproxy zoo train), or pass --allow-missing to use darktable's "
                "tap-out there"
            )
        stages.append(StagePlan(m, "passthrough", values, note=f"darktable's tap-out ({why}; --allow-missing)"))
    ctx = dataclasses.replace(ctx, exact=tuple(s.module for s in stages if s.kind == "exact"))
    return ReplicaPlan(history, prefix, stages, ctx)


def _orientation(raw: str | os.PathLike[str] | None) -> int:
    """The raw's EXIF orientation in darktable's flip encoding (LibRaw's ``flip``
    uses the same numbers: 0 none, 3 180°, 5 90° CCW, 6 90° CW); 0 when unknown."""
    if raw is None:
        return 0
    try:
        import rawpy

        with rawpy.imread(str(raw)) as r:
            return int(r.sizes.flip)
    except Exception:  # unreadable by rawpy: darktable says so when it renders
        return 0


@dataclass
class _Slot:
    """Where a stage's regressable params sit in the flat vector."""

    start: int
    names: list[str]  # param names of the stage
    specs: list[ParamSpec]


class ReplicaChain(nn.Module):
    """The history's stages after demosaic, chained (see the module docstring).

    ``proxies``: ``{module: proxy}`` loaded and fixed at the render scale;
    ``taps``: ``{module: (3, H, W) tensor}`` darktable's tap-out after each
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
        from darkproxy.data.ranges import DEFAULT_RANGES

        super().__init__()
        self.plan = plan
        self.ctx = plan.context
        self.proxies = nn.ModuleDict({m: p for m, p in proxies.items()})
        self.taps = dict(taps or {})
        self.module = "replica"
        specs: list[ParamSpec] = []
        self.slots: dict[str, _Slot] = {}
        for st in plan.stages:
            own: list[ParamSpec] = []
            if st.kind == "proxy":
                space: ParamSpace = getattr(self.proxies[st.module], "param_space")  # noqa: B009
                for s in space.specs:
                    d = st.values.get(s.name, s.default)
                    own.append(ParamSpec(s.name, s.kind, s.lo, s.hi, _num(d, s.default), s.values, s.names))
            elif st.kind == "exact":
                rng = DEFAULT_RANGES.get(st.module, {})
                for name in EXACT[st.module].params:
                    if name in rng and name in st.values:
                        lo, hi = rng[name]
                        own.append(ParamSpec(name, "float", lo, hi, float(st.values[name])))
            self.slots[st.module] = _Slot(len(specs), [s.name for s in own], own)
            specs += [ParamSpec(f"{st.module}.{s.name}", s.kind, s.lo, s.hi, s.default, s.values, s.names) for s in own]
        self.param_space = ParamSpace.of("replica", specs)
        pointwise = all(
            (st.kind == "proxy" and bool(getattr(self.proxies[st.module], "pointwise", False)))
            or (st.kind == "exact" and st.module != "sharpen")
            for st in plan.stages
        )
        self.full_image_only = not pointwise

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
        self, x: torch.Tensor, u: torch.Tensor, ctx: StageContext | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (B, 3, H, W)`` linear Rec2020 (darktable's image after demosaic),
        ``u (B, P)`` -> (display ``(B, 3, H, W)``, every stage's output: linear
        Rec2020 up to colorout, display values from it on). ``ctx``: the exact
        stages' context instead of the plan's (e.g. another output profile)."""
        if x.ndim == 3:
            x = x[None]
        B = x.shape[0]
        if u.ndim == 1:
            u = u[None]
        if u.shape[0] != B:
            u = u.expand(B, -1)
        cur, outs = x, []
        for st in self.plan.stages:
            slot = self.slots[st.module]
            uu = u[:, slot.start : slot.start + len(slot.names)]
            if st.kind == "passthrough":
                cur = self.taps[st.module].to(x.device, x.dtype).reshape(1, 3, *x.shape[-2:]).expand(B, -1, -1, -1)
            elif st.kind == "proxy":
                cur = self.proxies[st.module](cur, uu.to(cur.dtype))
            else:
                vals: dict[str, Any] = dict(st.values)
                for j, s in enumerate(slot.specs):
                    vals[s.name] = s.lo + uu[:, j] * (s.hi - s.lo)
                cur = EXACT[st.module].fn(cur, vals, ctx or self.ctx)
            outs.append(cur)
        return cur, outs

    def stage_alone(self, module: str, x: torch.Tensor, ctx: StageContext | None = None) -> torch.Tensor:
        """One stage at the history's settings applied to ``x`` (``(3, H, W)`` or
        batched): the stage's own fidelity on darktable's input to it (``ctx``: as
        in :meth:`run_stages`)."""
        u = self.history_u(1, x.device)
        st = next(s for s in self.plan.stages if s.module == module)
        slot = self.slots[module]
        uu = u[:, slot.start : slot.start + len(slot.names)]
        xb = x[None] if x.ndim == 3 else x
        if st.kind == "proxy":
            return self.proxies[module](xb, uu.to(xb.dtype))
        vals: dict[str, Any] = dict(st.values)
        for j, s in enumerate(slot.specs):
            vals[s.name] = s.lo + uu[:, j] * (s.hi - s.lo)
        return EXACT[module].fn(xb, vals, ctx or self.ctx)


def _num(v: Any, default: float) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float(default)
