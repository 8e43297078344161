"""A darktable history as the replica's plan: which stage runs each module instance.

:func:`plan_replica` reads a history (darktable's defaults for the raw, or an XMP,
plus ``--set`` edits) and decides, per enabled module instance in darktable's pipe order
(the sidecar's own order list when it has one: a custom order, a second instance), its stage kind
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
A second instance of a module is a stage of its own (``exposure#1``, its sliders
``exposure#1.exposure``...). :func:`replica_coverage` lists every history item
with what would run it (``darkproxy replica --dry-run``). :mod:`.chain` runs the plan.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkproxy.darktable.tapout import full_size
from darkproxy.darktable.xmp import instance_key
from darkproxy.data.scale import FULL_SIZE_RADIUS
from darkproxy.errors import DarkproxyError
from darkproxy.replica.blend import stage_blend
from darkproxy.replica.mosaicplan import before_colorin, cfa_after_crop, mosaic_refusal
from darkproxy.replica.ports.rawprepare import crop_margins
from darkproxy.replica.proxyfit import proxy_pointwise, proxy_problem, trained_values
from darkproxy.replica.raster import raster_source
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
    instance: int = 0  # darktable's multi_priority: 0 the module's first instance
    raster: Any = None  # the stage blends through a stage's final mask (a replica.raster.RasterSource)

    @property
    def key(self) -> str:
        """The stage's name in the chain: the module (``exposure``), or ``exposure#1`` for an instance of
        multi_priority 1 (its sliders are ``exposure#1.exposure``...)."""
        return instance_key(self.module, self.instance)


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

    @property
    def keys(self) -> list[str]:
        """The stages' names (:attr:`StagePlan.key`: a second instance is ``module#N``)."""
        return [s.key for s in self.stages]

    def chain_disable(self) -> list[str]:
        """The chain's module instances darktable can switch off (the replica's input render disables them)."""
        return [s.key for s in self.stages if s.can_disable]


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
    return _Decoded(values, sch.version, it.modversion if up is not it else it.upgraded_from)


_EXPOSURE_FLAGS = ("compensate_exposure_bias", "compensate_hilite_pres")  # what exposure reads from the raw


def _exposure_bias(
    dt: Any, history: Any, raw: str | os.PathLike[str] | None, flag: str = "compensate_exposure_bias"
) -> tuple[float | None, str | None]:
    """What exposure reads from the raw's EXIF when an enabled instance has ``flag`` on:
    ``compensate_exposure_bias`` (darktable's scene-referred default) the camera's exposure bias,
    ``compensate_hilite_pres`` (darktable 5.4's v7, on by default) its highlight preservation bias; else
    ``(None, None)``; ``(None, why)`` when it cannot be read."""
    decoded = [_decode(dt, "exposure", it) for it in history.effective() if it.operation == "exposure" and it.enabled]
    if not any(d.why is None and d.values.get(flag) for d in decoded):
        return None, None
    from darkproxy.errors import RawError
    from darkproxy.raw.exif import read_exposure_bias, read_highlight_preservation

    what = "EXIF exposure bias" if flag == "compensate_exposure_bias" else "highlight preservation bias"
    if raw is None:
        return None, f"exposure compensates the raw's {what}, but no raw was given to read it from"
    try:
        return (read_exposure_bias if flag == "compensate_exposure_bias" else read_highlight_preservation)(raw), None
    except RawError as e:
        return None, f"exposure compensates the raw's {what} ({flag}): {e}"


def _wb_values(dt: Any, history: Any) -> dict[str, Any] | None:
    """The enabled white balance module's params, else ``None``."""
    items = [it for it in history.effective() if it.operation == "temperature" and it.enabled]
    dec = _decode(dt, "temperature", items[-1]) if items else None
    return None if dec is None or dec.why is not None else dec.values


def _wb_coeffs(values: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """Its coefficients (darktable's ``dsc.temperature.coeffs``), else ``None``."""
    return None if values is None else (float(values["red"]), float(values["green"]), float(values["blue"]))


D65_LATE = 4  # temperature v4's preset "as shot to reference": darktable's chroma late_correction


def _late_correction(
    values: dict[str, Any] | None, raw: str | os.PathLike[str] | None
) -> tuple[float, float, float] | None:
    """darktable 5's chroma correction (``D65coeffs / as_shot`` where white balance is "as shot to reference", else
    1): for a DNG, the D65 coefficients of its own colour matrix over its as-shot neutral, which darktable and
    rawpy (LibRaw) read from the same tags; ``None`` where it is not known (no white balance read; another raw
    format, whose camera matrix darktable and LibRaw may take from different tables; an unreadable raw)."""
    if values is None:
        return None
    if int(values.get("preset", 0)) != D65_LATE:
        return (1.0, 1.0, 1.0)
    if raw is None or Path(raw).suffix.lower() != ".dng" or not Path(raw).is_file():
        return None
    st = Path(raw).stat()
    return _dng_d65_over_as_shot(str(Path(raw).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _dng_d65_over_as_shot(path: str, mtime_ns: int, size: int) -> tuple[float, float, float] | None:
    """A DNG's D65 over its as-shot coefficients, read once per file version (rawpy unpacks the raw to read them,
    and a match plans the same raw many times)."""
    from darkproxy.errors import RawError
    from darkproxy.raw.mosaic import read_raw_info

    try:
        info = read_raw_info(path)
    except RawError:
        return None
    d, a = info.daylight_wb, info.wb
    return (d[0] / a[0], d[1] / a[1], d[2] / a[2])


def _noise_profile(dt: Any, history: Any, raw: str | os.PathLike[str] | None) -> tuple[float, float] | None:
    """darktable's automatic noise profile of ``raw`` where darkproxy knows it (only looked up when an enabled
    denoiseprofile asks for it)."""
    if raw is None or not any(it.operation == "denoiseprofile" and it.enabled for it in history.effective()):
        return None
    from darkproxy.darktable.noiseprofile import auto_profile
    from darkproxy.errors import RawError
    from darkproxy.raw.exif import read_make

    data = dt.install.datadir
    try:
        return auto_profile(read_make(raw), data / "noiseprofiles.json" if data is not None else None)
    except RawError:
        return None


def raw_levels(dt: Any, history: Any, raw: str | os.PathLike[str] | None) -> tuple[Any, int, int] | None:
    """What exposure's deflicker reads (:attr:`StageContext.raw_levels`), only when an enabled exposure
    deflickers: the raw's photosite histogram inside rawprepare's crop and rawprepare's black level (darktable:
    ``(uint16_t)(sum of the four / 4.0f)``) and white point, from the history's rawprepare (``None`` without one:
    the stage then refuses)."""
    import numpy as np

    from darkproxy.errors import RawError
    from darkproxy.raw.mosaic import photosite_histogram

    deflicker = any(
        it.operation == "exposure" and it.enabled and int(_decode(dt, "exposure", it).values.get("mode", 0)) == 1
        for it in history.effective()
    )
    items = [it for it in history.effective() if it.operation == "rawprepare" and it.enabled]
    if raw is None or not deflicker or not items:
        return None
    dec = _decode(dt, "rawprepare", items[-1])
    if dec.why is not None:
        return None
    v = dec.values
    blacks = np.array(v["raw_black_level_separate"], dtype=np.float32)
    black = int(np.float32(blacks[0] + blacks[1] + blacks[2] + blacks[3]) / np.float32(4.0))
    crop = crop_margins(v)
    try:
        return photosite_histogram(raw, crop), black, int(v["raw_white_point"])
    except RawError:
        return None


def _context(
    dt: Any, history: Any, raw: str | os.PathLike[str] | None, modules: tuple[str, ...], bias: float | None
) -> StageContext:
    """What the stages may read beyond their params, as far as the plan knows it (the chain adds the render
    scale and sizes)."""
    wbv, noise = _wb_values(dt, history), _noise_profile(dt, history, raw)
    return StageContext(
        scale=1.0,
        modules=modules,
        orientation=_orientation(raw),
        exposure_bias=bias,
        wb_coeffs=_wb_coeffs(wbv),
        late_correction=_late_correction(wbv, raw),
        noise_profile=noise,
        raw_levels=raw_levels(dt, history, raw),
        darktable_version=_version_tuple(dt),
    )


def _version_tuple(dt: Any) -> tuple[int, ...] | None:
    """The running darktable's version, ``None`` where ``dt`` has no install (the plan of a history alone)."""
    install = getattr(dt, "install", None)
    return install.version_tuple if install is not None else None


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
    order, cov, keys = _instances(dt, history)
    modules = tuple(dict.fromkeys(m for m, _ in keys))
    (bias, bias_why), (highlight, highlight_why) = (_exposure_bias(dt, history, raw, f) for f in _EXPOSURE_FLAGS)
    ctx = dataclasses.replace(_context(dt, history, raw, modules, bias), highlight_bias=highlight)
    runs = dict(runs or {})
    prefix: list[StagePlan] = []
    stages: list[StagePlan] = []
    for m, inst in keys:
        it = history.find(m, inst)
        c = cov[(m, inst)]
        name = instance_key(m, inst)
        dec = _decode(dt, m, it)
        c.upgraded_from = dec.upgraded_from
        up = f" (history item v{dec.upgraded_from}, upgraded to v{dec.version} as darktable does)"
        upgraded = up if dec.upgraded_from is not None else ""
        can_disable = m not in PASS_THROUGH
        mosaic = runs_on_mosaic(order, m)
        if inst and (mosaic or m in GEOMETRY_FIRST or (from_mosaic and before_colorin(order, m))):
            c.runs, c.detail = "refused", f"{name}: a second instance before the chain is not supported"
            continue
        if from_mosaic and (mosaic or before_colorin(order, m)) and _mosaic_item(m, it, dec, c, ctx, order, prefix):
            continue
        if mosaic or (not from_mosaic and m in GEOMETRY_FIRST and it is not None and _commutes(stages, ctx)):
            note = MOSAIC_NOTE if mosaic else GEOMETRY_NOTE
            prefix.append(StagePlan(m, "passthrough", dec.values, mosaic=True, note=note, can_disable=can_disable))
            c.runs, c.detail = "passthrough", note
            continue
        op = EXACT.get(m)
        c.implements = op.versions if op is not None else ()
        hard = (bias_why or highlight_why) if m == "exposure" else None  # no stage can run it: not even a proxy
        raster, raster_why = raster_source(it, order, history, [*prefix, *stages], ctx) if it else (None, None)
        blend, blend_why = stage_blend(it, m, order, history, prefix, ctx, raster is not None)
        hard = hard or raster_why or blend_why
        opacity = blend.opacity if blend is not None else None
        mode = "" if blend is None or blend.mode_name == "normal" else f" ({blend.mode_name})"
        how = blend.how if blend is not None else ""
        if raster is not None:
            how = f"through {raster.key}'s raster mask" + (" inverted" if raster.invert else "")
        blended = f"; blended {how}{mode} at {blend.opacity * 100:g} %" if blend is not None else ""
        scene = blend is not None and not blend.plain  # blend_scene: a mode, a mask, Lab or RGB (display)
        common: dict[str, Any] = {"can_disable": can_disable, "opacity": opacity, "blend": blend if scene else None}
        common["raster"] = raster
        common["instance"] = inst
        common |= _v(dec)
        soft = None  # the exact stage cannot: a proxy may
        if hard is None and dec.why is not None and (op is None or op.reads_params):
            hard = dec.why
        if hard is None and op is not None:  # no stage reproduces it there: not its proxy either
            local = not op.pointwise(dec.values, ctx) or bool(getattr(blend, "spatial", False))
            hard = _behind_a_turn(prefix, m, local, ctx)
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
            hard = _proxy_why(dt, m, run, dec, raw, bias, asked)
            if hard is None and not proxy_pointwise(run):  # a local proxy, like a local exact stage
                hard = _behind_a_turn(prefix, m, True, ctx)
            if hard is None:
                note = f"proxy {run}" + (f" ({soft})" if soft else "") + upgraded + blended
                stages.append(StagePlan(m, "proxy", dec.values, run=run, note=note, **common))
                c.runs, c.detail, c.run = "proxy", note, run
                continue
        why = "; ".join(w for w in (soft, hard) if w) or "no exact stage and no proxy in the zoo"
        if not allow_missing or not can_disable:
            c.runs = "refused"
            c.detail = (
                f"{name} is enabled in the history but the replica cannot run it ({why}): disable it, "
                + ("train a proxy (darkproxy zoo train), " if hard is None else "")
                + "or pass --allow-missing to use darktable's tap-out there"
            )
            continue
        note = f"darktable's tap-out ({why}; --allow-missing)"
        stages.append(StagePlan(m, "passthrough", dec.values, note=note, instance=inst, **_v(dec)))
        c.runs, c.detail = "passthrough", note
    ctx = dataclasses.replace(ctx, exact=tuple(s.module for s in stages if s.kind == "exact"))
    ctx = dataclasses.replace(ctx, cfa=cfa_after_crop(raw, prefix)) if from_mosaic else ctx
    # history order first (what --dry-run lists), colorout last when darktable adds it
    return ReplicaPlan(history, prefix, stages, ctx, from_mosaic), list(cov.values())


def _proxy_why(dt: Any, m: str, run: str, dec: Any, raw: Any, bias: float | None, asked: bool) -> str | None:
    """:func:`proxy_problem` at the history's decoded values ``dec``, against what the proxy ``run`` of ``m`` was
    trained on (the values of its data, the raws' size)."""
    size = full_size((), None, Path(raw)) if m in FULL_SIZE_RADIUS and raw is not None else None  # rawpy's
    trained = trained_values(dt, m, raw)
    return proxy_problem(m, run, dec.values, dec.version, trained, bias, asked, size, dt.version)


def _instances(dt: Any, history: Any) -> tuple[list[str], dict[Any, ItemCoverage], list[tuple[str, int]]]:
    """The history's pipe order (modules), every item's coverage skeleton (:func:`_skeleton`) and the
    ``(module, instance)`` the chain may run, in darktable's pipe order (colorout added: darktable always
    converts to the output profile)."""
    from darkproxy.darktable.tapout import PASS_THROUGH

    places = history.instance_order(dt.schemas)  # (module, instance) in darktable's pipe order
    order = list(dict.fromkeys(op for op, _ in places))
    cov = _skeleton(dt, history, order, places, PASS_THROUGH)
    on = sorted(
        (
            it
            for it in history.effective()
            if it.key in places and cov[it.key].runs != "refused" and (it.enabled or it.operation in PASS_THROUGH)
        ),
        key=lambda it: places.index(it.key),
    )
    keys = [it.key for it in on]
    if ("colorout", 0) not in keys:
        keys.append(("colorout", 0))
        sch = dt.schemas.modules.get("colorout")
        cov[("colorout", 0)] = ItemCoverage(
            "colorout", 0, "", True, None, sch.version if sch is not None else None, "off", "added by darktable"
        )
    return order, cov, keys


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


def _skeleton(
    dt: Any, history: Any, order: Sequence[str], places: Sequence[tuple[str, int]], pass_through: Sequence[str]
) -> dict[Any, ItemCoverage]:
    """Every effective history item's coverage before the stages are decided: ``off``,
    ``ignored`` (not in darktable's pipe) or a refused instance whose place in the pipe the sidecar
    does not give (``places``: its ``(module, instance)`` order)."""
    cov: dict[tuple[str, int], ItemCoverage] = {}
    for it in history.effective():
        sch = dt.schemas.modules.get(it.operation)
        c = ItemCoverage(
            it.operation,
            it.multi_priority,
            it.multi_name,
            it.enabled,
            it.upgraded_from if it.upgraded_from is not None else it.modversion,  # as written
            sch.version if sch is not None else dt.schemas.module_versions.get(it.operation),
            "off",
            "disabled: darktable skips it too",
        )
        if it.operation not in order:
            c.runs, c.detail = "ignored", f"not a module of darktable {dt.version}'s pipe: darktable ignores it too"
        elif it.key not in places and (it.enabled or it.operation in pass_through):
            c.runs = "refused"
            c.detail = (
                f"{it.operation} instance {it.multi_priority} is not in the sidecar's pipe order "
                "(darktable:iop_order_list, which darktable writes with every second instance): its place in the "
                "pipe is unknown"
            )
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


def _behind_a_turn(prefix: Sequence[StagePlan], m: str, local: bool, ctx: StageContext) -> str | None:
    """Why a stage that reads other pixels or the pixel's place (``local``: an exact stage that is not
    pointwise, a blurred or feathered mask, a proxy that is not per-pixel) cannot run behind darktable's flip
    of the raw (a prefix flip that is not the identity), if it cannot: darktable's regions of interest through
    flip make such a module see its input otherwise than the replica's input render shows it (measured,
    2026-12-03: sharpen alone 37.9 dB at full size, vignette 47.5-52.1, graduated density 62.5, where the
    unflipped image gives 95-100)."""
    flip = next((st for st in prefix if st.module == "flip"), None)
    if flip is None or not local:
        return None
    from darkproxy.replica.ports.flip import resolved_orientation

    if resolved_orientation(flip.values, ctx) in (0, None):
        return None
    return f"{m} reads other pixels or the pixel's place: behind darktable's flip of the raw it is not reproduced"


def _commutes(stages: Sequence[StagePlan], ctx: StageContext) -> bool:
    """Whether every stage so far is an exact per-pixel one (unblended, or blended uniformly: per pixel too),
    so that a geometry stage after them can run first, in darktable's render of the input."""
    return all(st.kind == "exact" and EXACT[st.module].pointwise(st.values, ctx) for st in stages)
