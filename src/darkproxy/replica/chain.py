"""A darktable history as a differentiable chain: which stage runs each module, and the chain itself.

:func:`plan_replica` reads a history (darktable's defaults for the raw, or an XMP,
plus ``--set`` edits) and decides, per enabled module in pipe order, its stage kind
(:mod:`darkproxy.replica.registry`): mosaic stages are darktable's own render (the
replica's input; ``from_mosaic``: their exact ports from the raw's CFA, :mod:`.mosaicplan`); after
demosaic an exact stage when one is registered and supports
the history's setting, else the zoo's proxy (or a run given for the module), else a
one-line :class:`ReplicaError` (``allow_missing``: darktable's tap-out, ``passthrough``).
No stage runs on values it could not decode: an item of an older params version is
read upgraded as darktable upgrades it (:mod:`darkproxy.darktable.legacy`), one with
no port (or a newer version) is refused naming both versions, as is a proxy trained on
another version; so is an EXIF value the history depends on (exposure bias,
orientation) that cannot be read, and blending the replica cannot reproduce exactly
(:mod:`darkproxy.replica.blend`: a uniform normal blend in scene RGB runs around the stage).
:func:`replica_coverage` lists every history item
with what would run it (``darkproxy replica --dry-run``).

:class:`ReplicaChain` runs the stages: ``forward(x (B, 3, H, W) linear Rec2020 (``from_mosaic``: the
raw's uncropped CFA ``(B, 1, H, W)``),
u (B, P) normalised flat params) -> (B, 3, H, W)`` sRGB display values in ``[0, 1]``,
differentiable in ``x`` and ``u``. Its ``param_space`` is flat (``"module.param"``):
the sliders of every exact stage (ranges from :data:`darkproxy.data.ranges.DEFAULT_RANGES`)
and every proxy's space, with the history's values as defaults, so that the one
regression engine (:func:`darkproxy.engines.regress.regress`) optimises it like any proxy.
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
from darkproxy.replica.blend import BLEND_OPACITY, blend_scene, blend_uniform, stage_blend
from darkproxy.replica.mosaicplan import before_colorin, cfa_after_crop, mosaic_refusal, run_mosaic
from darkproxy.replica.proxyfit import proxy_problem, trained_values
from darkproxy.replica.registry import EXACT, GEOMETRY_FIRST, GEOMETRY_NOTE, MOSAIC_NOTE, StageContext

KINDS = ("exact", "proxy", "passthrough")


class ReplicaError(DarkproxyError):
    """A history the replica cannot run (a module with neither an exact stage nor a proxy...)."""


@dataclass
class StagePlan:
    """One enabled module of the history and how the replica runs it.

    ``values``: the history's params (dotted names), decoded at ``version`` (empty
    only for a stage that does not read them); ``run``: the proxy's run folder
    (``zoo:MODULE`` or a path) for ``kind == "proxy"``; ``mosaic``: a stage before
    the replica's input (darktable's render by design); ``note``: why / how exact."""

    module: str
    kind: str
    values: dict[str, Any] = field(default_factory=dict)
    run: str | None = None
    mosaic: bool = False
    note: str = ""
    can_disable: bool = True  # False for modules darktable keeps on whatever the XMP says
    version: int | None = None  # the params version of ``values`` (darktable's, after an upgrade)
    upgraded_from: int | None = None  # the history item's older version, upgraded as darktable does
    opacity: float | None = None  # darktable blends the output uniformly with the input (replica/blend.py)
    blend: Any = None  # that blend (a darktable.blendop.UniformBlend) when its mode is not normal or it is masked


@dataclass
class ReplicaPlan:
    """The stages of a history: ``prefix`` (mosaic stages, darktable's render) and
    ``stages`` (the chain, after demosaic, in pipe order); ``history``: the sidecar."""

    history: Any
    prefix: list[StagePlan]
    stages: list[StagePlan]
    context: StageContext
    from_mosaic: bool = False  # the prefix runs as exact ports from the raw's CFA

    @property
    def modules(self) -> list[str]:
        return [s.module for s in self.stages]

    def chain_disable(self) -> list[str]:
        """The chain's modules darktable can switch off (the replica's input render disables them)."""
        return [s.module for s in self.stages if s.can_disable]


def _zoo_run(module: str) -> str | None:
    from darkproxy.proxy.locate import zoo_root

    return f"zoo:{module}" if (zoo_root() / module / "run.json").is_file() else None


def plan_replica(
    dt: Any,
    history: Any,
    raw: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    from_mosaic: bool = False,
) -> ReplicaPlan:
    """Stage kinds for every module ``history`` (a compressed
    :class:`~darkproxy.darktable.xmp.Sidecar`) enables. ``prefer_proxy``: modules
    to run through their proxy even where an exact stage exists; ``runs``:
    ``{module: run folder}`` overriding the zoo. Raises :class:`ReplicaError`
    (one line) for the first module the replica cannot run faithfully (neither
    stage, a params version it cannot decode, an EXIF value it cannot read),
    unless ``allow_missing`` (darktable's tap-out there). ``from_mosaic``: from the raw's CFA (:mod:`.mosaicplan`)."""
    plan, items = _plan(dt, history, raw, allow_missing, prefer_proxy, runs, from_mosaic)
    refused = next((c for c in items if c.runs == "refused"), None)
    if refused is not None:
        raise ReplicaError(refused.detail)
    return plan


@dataclass
class ItemCoverage:
    """How the replica would run one history item (``darkproxy replica --dry-run``):
    ``runs``: ``exact``, ``proxy``, ``passthrough`` (darktable's render), ``off``
    (disabled: darktable skips it too), ``ignored`` (not a module of darktable's
    pipe) or ``refused``; ``detail``: the stage's note, the proxy run, or the one-line
    reason; ``version``: the item's params version, ``darktable_version``: the
    installed module's; ``upgraded_from``: the item's version when the replica reads
    it upgraded as darktable does; ``implements``: the exact stage's versions."""

    module: str
    instance: int
    name: str
    enabled: bool
    version: int | None
    darktable_version: int | None
    runs: str
    detail: str
    upgraded_from: int | None = None
    implements: tuple[int, ...] = ()
    run: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["implements"] = list(self.implements)
        return d


def replica_coverage(
    dt: Any,
    history: Any,
    raw: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    from_mosaic: bool = False,
) -> list[ItemCoverage]:
    """Every item of ``history`` (compressed: one per module instance, in history
    order, plus colorout when darktable adds it) with what would run it, without
    raising for what the replica refuses (see :func:`plan_replica`)."""
    return _plan(dt, history, raw, allow_missing, prefer_proxy, runs, from_mosaic)[1]


@dataclass
class _Decoded:
    """A history item's params as a stage reads them: ``values`` at ``version``
    (``upgraded_from``: the item's own, older version), or ``why`` they cannot be read."""

    values: dict[str, Any]
    version: int | None
    upgraded_from: int | None = None
    why: str | None = None


def _decode(dt: Any, module: str, it: Any) -> _Decoded:
    from darkproxy.darktable.legacy import upgrade_item
    from darkproxy.darktable.params import decode_params, flatten
    from darkproxy.errors import XmpError

    if it is None:
        return _Decoded({}, None, why=f"{module} is not in the history")
    sch = dt.schemas.modules.get(module)
    if sch is None:
        return _Decoded({}, it.modversion, why=f"{module} has no params introspection in darktable {dt.version}")
    try:
        up = upgrade_item(it, dt.schemas)
        values = flatten(decode_params(sch, up.params))
    except XmpError as e:  # a version without a port, a newer one, or a blob of the wrong size
        return _Decoded({}, it.modversion, why=str(e))
    return _Decoded(values, sch.version, it.modversion if up is not it else None)


def _exposure_bias(dt: Any, history: Any, raw: str | os.PathLike[str] | None) -> tuple[float | None, str | None]:
    """The raw's EXIF exposure bias when exposure compensates it (``compensate_exposure_bias``,
    darktable's scene-referred default), else ``(None, None)``; ``(None, why)`` when it
    cannot be read."""
    it = history.find("exposure")
    if it is None or not it.enabled:
        return None, None
    d = _decode(dt, "exposure", it)
    if d.why is not None or not d.values.get("compensate_exposure_bias"):
        return None, None
    if raw is None:
        return None, "exposure compensates the raw's EXIF exposure bias, but no raw was given to read it from"
    from darkproxy.errors import RawError
    from darkproxy.raw.exif import read_exposure_bias

    try:
        return read_exposure_bias(raw), None
    except RawError as e:
        return None, f"exposure compensates the raw's EXIF exposure bias (compensate_exposure_bias): {e}"


def _plan(
    dt: Any,
    history: Any,
    raw: str | os.PathLike[str] | None,
    allow_missing: bool,
    prefer_proxy: Sequence[str],
    runs: Mapping[str, str] | None,
    from_mosaic: bool = False,
) -> tuple[ReplicaPlan, list[ItemCoverage]]:
    from darkproxy.darktable.tapout import PASS_THROUGH, runs_on_mosaic

    history = history.compressed()
    order = dt.schemas.pipe_order(history.iop_order_version)
    cov = _skeleton(dt, history, order, PASS_THROUGH)
    on = sorted(
        (
            it
            for it in history.effective()
            if it.operation in order and it.multi_priority == 0 and (it.enabled or it.operation in PASS_THROUGH)
        ),
        key=lambda it: order.index(it.operation),
    )
    modules = tuple(it.operation for it in on)
    if "colorout" not in modules:  # darktable always converts to the output profile
        modules = (*modules, "colorout")
        sch = dt.schemas.modules.get("colorout")
        cov[("colorout", 0)] = ItemCoverage(
            "colorout", 0, "", True, None, sch.version if sch is not None else None, "off", "added by darktable"
        )
    bias, bias_why = _exposure_bias(dt, history, raw)
    ctx = StageContext(scale=1.0, modules=modules, orientation=_orientation(raw), exposure_bias=bias)
    runs = dict(runs or {})
    prefix: list[StagePlan] = []
    stages: list[StagePlan] = []
    for m in modules:
        it = history.find(m)
        c = cov[(m, 0)]
        dec = _decode(dt, m, it)
        c.upgraded_from = dec.upgraded_from
        up = f" (history item v{dec.upgraded_from}, upgraded to v{dec.version} as darktable does)"
        upgraded = up if dec.upgraded_from is not None else ""
        can_disable = m not in PASS_THROUGH
        mosaic = runs_on_mosaic(order, m)
        if from_mosaic and (mosaic or before_colorin(order, m)) and _mosaic_item(m, it, dec, c, ctx, order, prefix):
            continue
        if mosaic or (not from_mosaic and m in GEOMETRY_FIRST and it is not None and _commutes(stages, ctx)):
            note = MOSAIC_NOTE if mosaic else GEOMETRY_NOTE
            prefix.append(StagePlan(m, "passthrough", dec.values, mosaic=True, note=note, can_disable=can_disable))
            c.runs, c.detail = "passthrough", note
            continue
        op = EXACT.get(m)
        c.implements = op.versions if op is not None else ()
        hard = bias_why if m == "exposure" else None  # no stage can run it: not even a proxy
        blend, blend_why = stage_blend(it, m, order)
        hard = hard or blend_why
        opacity = blend.opacity if blend is not None else None
        mode = "" if blend is None or blend.mode_name == "normal" else f" ({blend.mode_name})"
        blended = f"; blended {blend.how}{mode} at {blend.opacity * 100:g} %" if blend is not None else ""
        scene = blend is not None and (bool(mode) or blend.mask is not None)  # blend_scene: a mode, a mask
        common: dict[str, Any] = {"can_disable": can_disable, "opacity": opacity, "blend": blend if scene else None}
        common |= _v(dec)
        soft = None  # the exact stage cannot: a proxy may
        if hard is None and dec.why is not None and (op is None or op.reads_params):
            hard = dec.why
        if hard is None and op is not None:
            if op.reads_params and dec.version not in op.versions:
                soft = (
                    f"{m} params version {dec.version}: the exact stage implements version(s) "
                    f"{', '.join(map(str, op.versions))}"
                )
            soft = soft or op.supports(dec.values, ctx)
            if soft is None and m not in prefer_proxy:
                note = op.note + upgraded + blended
                stages.append(StagePlan(m, "exact", dec.values, note=note, **common))
                c.runs, c.detail = "exact", note
                continue
        if (run := None if hard is not None else (runs.get(m) or _zoo_run(m))) is not None:
            asked = m in prefer_proxy or m in (runs or {})  # named by the user: its figures are theirs to judge
            hard = proxy_problem(m, run, dec.values, dec.version, trained_values(dt, m, raw), bias, asked)
            if hard is None:
                note = f"proxy {run}" + (f" ({soft})" if soft else "") + upgraded + blended
                stages.append(StagePlan(m, "proxy", dec.values, run=run, note=note, **common))
                c.runs, c.detail, c.run = "proxy", note, run
                continue
        why = hard or soft or "no exact stage and no proxy in the zoo"
        if not allow_missing or not can_disable:
            c.runs = "refused"
            c.detail = (
                f"{m} is enabled in the history but the replica cannot run it ({why}): disable it, "
                + ("train a proxy (darkproxy zoo train), " if hard is None else "")
                + "or pass --allow-missing to use darktable's tap-out there"
            )
            continue
        note = f"darktable's tap-out ({why}; --allow-missing)"
        stages.append(StagePlan(m, "passthrough", dec.values, note=note, **_v(dec)))
        c.runs, c.detail = "passthrough", note
    ctx = dataclasses.replace(ctx, exact=tuple(s.module for s in stages if s.kind == "exact"))
    ctx = dataclasses.replace(ctx, cfa=cfa_after_crop(raw, prefix)) if from_mosaic else ctx
    # history order first (what --dry-run lists), colorout last when darktable adds it
    return ReplicaPlan(history, prefix, stages, ctx, from_mosaic), list(cov.values())


def _mosaic_item(
    m: str, it: Any, dec: _Decoded, c: ItemCoverage, ctx: StageContext, order: Sequence[str], prefix: list[StagePlan]
) -> bool:
    """``--from-mosaic``: whether ``m`` (a mosaic stage or one between demosaic and colorin) is decided
    here: refused (``c``), or its exact port appended to ``prefix``; ``False``: plan it as usual."""
    from darkproxy.darktable.tapout import PASS_THROUGH, runs_on_mosaic

    mosaic = runs_on_mosaic(order, m)
    why = mosaic_refusal(m, it, dec.values, dec.version, dec.why, ctx, order, mosaic)
    if why is not None:
        c.runs, c.detail = "refused", why
        return True
    if not mosaic:
        return False
    op = EXACT[m]
    c.runs, c.detail, c.implements = "exact", op.note, op.versions
    cd = m not in PASS_THROUGH
    prefix.append(StagePlan(m, "exact", dec.values, mosaic=True, note=op.note, can_disable=cd, **_v(dec)))
    return True


def _skeleton(dt: Any, history: Any, order: Sequence[str], pass_through: Sequence[str]) -> dict[Any, ItemCoverage]:
    """Every effective history item's coverage before the stages are decided: ``off``,
    ``ignored`` (not in darktable's pipe) or a refused second instance."""
    cov: dict[tuple[str, int], ItemCoverage] = {}
    for it in history.effective():
        sch = dt.schemas.modules.get(it.operation)
        c = ItemCoverage(
            it.operation,
            it.multi_priority,
            it.multi_name,
            it.enabled,
            it.modversion,
            sch.version if sch is not None else dt.schemas.module_versions.get(it.operation),
            "off",
            "disabled: darktable skips it too",
        )
        if it.operation not in order:
            c.runs, c.detail = "ignored", f"not a module of darktable {dt.version}'s pipe: darktable ignores it too"
        elif it.multi_priority != 0 and (it.enabled or it.operation in pass_through):
            c.runs = "refused"
            c.detail = f"{it.operation}: a second instance of a module is not supported by the replica"
        cov[it.key] = c
    return cov


def _v(dec: _Decoded) -> dict[str, Any]:
    return {"version": dec.version, "upgraded_from": dec.upgraded_from}


def _orientation(raw: str | os.PathLike[str] | None) -> int | None:
    """The raw's EXIF orientation in darktable's flip encoding (LibRaw's ``flip``
    uses the same numbers: 0 none, 3 180°, 5 90° CCW, 6 90° CW); ``None`` when
    no raw is given or rawpy cannot read it (flip, if it needs it, is refused)."""
    if raw is None:
        return None
    try:
        import rawpy

        with rawpy.imread(str(raw)) as r:
            return int(r.sizes.flip)
    except Exception:  # unreadable by rawpy: unknown, never 0
        return None


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
        for st in [s for s in plan.prefix if s.kind == "exact"] + plan.stages:
            own: list[ParamSpec] = []
            if st.kind == "proxy":
                space: ParamSpace = getattr(self.proxies[st.module], "param_space")  # noqa: B009
                for s in space.specs:
                    if s.name not in st.values:  # never the proxy's default in place of the history's value
                        raise ReplicaError(f"{st.module}: the proxy's param {s.name!r} is not in the history's params")
                    d = _num(st.values[s.name], f"{st.module}.{s.name}")
                    own.append(ParamSpec(s.name, s.kind, s.lo, s.hi, d, s.values, s.names))
            elif st.kind == "exact":
                rng = DEFAULT_RANGES.get(st.module, {})
                for name in EXACT[st.module].params:
                    if name in rng and name in st.values:
                        lo, hi = rng[name]
                        own.append(ParamSpec(name, "float", lo, hi, float(st.values[name])))
            if st.opacity is not None:  # darktable's blend opacity, a slider like the module's own
                own.append(ParamSpec(BLEND_OPACITY, "float", 0.0, 1.0, float(st.opacity)))
            self.slots[st.module] = _Slot(len(specs), [s.name for s in own], own, st.opacity is not None)
            specs += [ParamSpec(f"{st.module}.{s.name}", s.kind, s.lo, s.hi, s.default, s.values, s.names) for s in own]
        self.param_space = ParamSpace.of("replica", specs)
        for st in plan.stages:
            why = _scale_problem(st, self.ctx)
            if why:
                raise ReplicaError(why)
        pointwise = all(
            (st.kind == "proxy" and bool(getattr(self.proxies[st.module], "pointwise", False)))
            or (st.kind == "exact" and EXACT[st.module].pointwise(st.values, self.ctx))
            for st in plan.stages
        )
        self.full_image_only = not pointwise or plan.from_mosaic

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
        if self.plan.from_mosaic:
            x = self.run_mosaic(x, u, ctx)[0]
        cur, outs = x, []
        for st in self.plan.stages:
            uu = u[:, self.slots[st.module].start :]
            if st.kind == "passthrough":
                tap = self.taps[st.module]  # its own shape: a stage before it may have rotated the image
                cur = tap.to(x.device, x.dtype).reshape(1, 3, *tap.shape[-2:]).expand(B, -1, -1, -1)
            else:
                cur = self._stage(st, cur, uu, ctx)
            outs.append(cur)
        return cur, outs

    def run_mosaic(
        self, x: torch.Tensor, u: torch.Tensor, ctx: StageContext | None = None, upto: str | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``--from-mosaic``: ``x (B, 1, H, W)`` the raw's uncropped CFA (raw sensor values), ``u (B, P)``
        -> (linear Rec2020 ``(B, 3, h, w)``, every mosaic stage's output): see :func:`.mosaicplan.run_mosaic`."""
        u = u[None] if u.ndim == 1 else u

        def own(st: StagePlan) -> torch.Tensor:
            return u[:, self.slots[st.module].start :]

        run, values = (lambda st, y, c: self._stage(st, y, own(st), c)), (lambda st: self._values(st, own(st)))
        return run_mosaic(self.plan.prefix, x, ctx or self.ctx, run, values, upto)

    def _values(self, st: StagePlan, u: torch.Tensor) -> dict[str, Any]:
        """The stage's params: the history's, its sliders from the first columns of ``u``."""
        slot = self.slots[st.module]
        n = len(slot.names) - int(slot.blends)
        vals: dict[str, Any] = dict(st.values)
        for j, s in enumerate(slot.specs[:n]):
            vals[s.name] = s.lo + u[:, j] * (s.hi - s.lo)
        return vals

    def stage_alone(self, module: str, x: torch.Tensor, ctx: StageContext | None = None) -> torch.Tensor:
        """One stage at the history's settings applied to ``x`` (``(3, H, W)`` or
        batched): the stage's own fidelity on darktable's input to it (``ctx``: as
        in :meth:`run_stages`)."""
        u = self.history_u(1, x.device)
        st = next(s for s in self.plan.stages if s.module == module)
        return self._stage(st, x[None] if x.ndim == 3 else x, u[:, self.slots[module].start :], ctx)

    def _stage(self, st: StagePlan, x: torch.Tensor, u: torch.Tensor, ctx: StageContext | None) -> torch.Tensor:
        """An exact or proxy stage on ``x`` with its sliders the first columns of ``u``, blended."""
        slot = self.slots[st.module]
        n = len(slot.names) - int(slot.blends)
        uu = u[:, :n]
        if st.kind == "proxy":
            y = self.proxies[st.module](x, uu.to(x.dtype))
        else:
            y = EXACT[st.module].fn(x, self._values(st, u), ctx or self.ctx)
        if st.opacity is None:
            return y
        opacity = u[:, n].to(x.dtype).reshape(-1, 1, 1, 1)  # the blend's slider: the history's unless regressed
        if st.blend is not None:  # a mode other than normal, or a parametric mask
            return blend_scene(x, y, dataclasses.replace(st.blend, opacity=opacity))
        return blend_uniform(x, y, opacity)


def _commutes(stages: Sequence[StagePlan], ctx: StageContext) -> bool:
    """Whether every stage so far is an exact per-pixel one (unblended, or blended uniformly: per pixel too),
    so that a geometry stage after them can run first, in darktable's render of the input."""
    return all(st.kind == "exact" and EXACT[st.module].pointwise(st.values, ctx) for st in stages)


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
