"""Tap-outs: the exact input and output of one darktable module.

darktable 4.2 has no ``--dump-pipe``, so a tap-out is two renders of the same
history in which every module *later in the pipe* than the target is disabled:
one with the target disabled (its input) and one with the target enabled with
the chosen params (its output). What this does not cover, and how it is handled:

* **Pass-through modules** that darktable keeps on whatever the XMP says
  (``rawprepare``, ``demosaic``, ``colorin``, ``colorout``, ``gamma``; checked by
  ``tests/darktable/test_tapout.py``) stay enabled after the target. ``colorout``
  and ``gamma`` are the export stage; with a linear Rec2020 output profile they
  are colorimetrically the identity. ``colorin`` converts camera RGB to the
  linear Rec2020 working space, so for modules placed before it (exposure,
  temperature...) input and output are both seen through the same linear
  matrix: every tap-out is in **linear Rec2020**, one data space for all proxies.
* **Always-on targets** cannot be disabled for the input render: the input is
  rendered with the target set to an identity setting instead
  (:data:`IDENTITY_SETTINGS`: colorin with a linear Rec2020 input profile).
* **Modules working in Lab** (sharpen, lowpass...): the pipe converts to and from
  Lab around them; ``colorout`` converts whatever comes last back to RGB, so
  their I/O is still linear Rec2020.
* **Scale-dependent modules**: input and output are rendered with the same
  ``max_size`` and ``--hq false``, so darktable scales the image at demosaic
  and every module runs *at the render scale* (sharpen's radius, for one, is
  multiplied by it): the pair is the module's exact I/O at that scale, which is
  recorded (``render_scale``, output size / raw size). darktable-cli's default
  ``--hq true`` would run the pipe at full size and downscale after the
  module, mixing pixels through its non-linearity.
* **Render regions** (:class:`Region`): a sample at render scale ``s`` is a
  region of the raw ``size / s`` raw px wide, cut by darktable's ``crop``
  module (enabled in both histories) and rendered with ``max_size = size``:
  a full-resolution crop at ``s = 1``, a downscaled neighbourhood below. For
  modules after ``crop`` in the pipe (sharpen, lowpass, bloom...) the region is
  the whole image they see, so the pair is exact; modules before it
  (hazeremoval, exposure) see the raw around the region too. darktable
  demosaics the region without the pixels beyond it: within ~8 px of its edge
  the image differs from a full render there (as at an image border), in the
  input and the output alike.
* **Workflow defaults** (filmic rgb, exposure +0.7 EV, ...): the upstream history
  is darktable's own default history for the raw (or the given XMP); modules
  before the target keep their state; everything enabled upstream is recorded.
* **Pre-demosaic targets** (rawprepare, temperature, highlights, demosaic,...):
  the input is the Bayer mosaic, read with rawpy and packed to 4 half-resolution
  channels (:mod:`darkproxy.raw.mosaic`); the output is darktable's render after
  the target (through the pass-through modules demosaic and colorin), at full size.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.darktable.params import decode_params, flatten
from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob, read_tiff, write_tiff
from darkproxy.darktable.session import Darktable, file_digest
from darkproxy.darktable.xmp import Sidecar, history_summary
from darkproxy.errors import DarktableRenderError, UnknownModule
from darkproxy.fsutil import write_json

# darktable ignores enabled=0 for these (measured on 4.2.1, see the tests)
PASS_THROUGH = ("rawprepare", "demosaic", "colorin", "colorout", "gamma", "finalscale")
# settings that make an always-on module an identity (by enum *name*, resolved via the schema)
IDENTITY_SETTINGS: dict[str, dict[str, str]] = {"colorin": {"type": "DT_COLORSPACE_LIN_REC2020"}}
DEMOSAIC = "demosaic"
CROP = "crop"
# darktable's crop module clamps its left/top edge to <= 0.9 and right/bottom to >= 0.1
CROP_EDGE_MAX = 0.9


@dataclass(frozen=True)
class Region:
    """A region of the raw rendered at a chosen render scale.

    ``box``: ``(left, top, right, bottom)`` as fractions of the raw's visible
    width and height (darktable's ``crop`` params ``cx, cy, cw, ch``);
    ``max_size``: darktable-cli's ``--width``/``--height``; ``scale``: the
    render scale asked for (the measured one is ``render_scale(..., box=)``)."""

    box: tuple[float, float, float, float]
    max_size: int
    scale: float

    @property
    def whole(self) -> bool:
        return self.box == (0.0, 0.0, 1.0, 1.0)

    def crop_params(self) -> dict[str, Any]:
        left, top, right, bottom = self.box
        return {"cx": left, "cy": top, "cw": right, "ch": bottom, "ratio_n": 0, "ratio_d": 0}

    def to_json(self) -> dict[str, Any]:
        return {"box": [round(v, 6) for v in self.box], "max_size": self.max_size, "scale": self.scale}


def region_for_scale(
    raw_size: tuple[int, int], size: int, scale: float, rng: np.random.Generator | None = None
) -> Region:
    """The region of a ``(width, height)`` raw that darktable renders at
    ``scale`` into at most ``size`` x ``size`` px: ``size / scale`` raw px per
    side (clipped to the raw; then ``max_size`` shrinks so the scale holds),
    placed by ``rng`` (centred when ``None``)."""
    w, h = raw_size
    if not 0 < scale <= 1:
        raise ValueError(f"render scale {scale} outside (0, 1]")
    side = size / scale
    # whole raw px: a box edge between pixels makes darktable's crop interpolate (a sub-pixel shift)
    rw, rh = min(w, max(1, round(side))), min(h, max(1, round(side)))
    max_size = max(16, int(round(scale * max(rw, rh))))
    # crop clamps left/top to <= 0.9: keep the box where darktable will put it
    hi_x, hi_y = min(w - rw, int(CROP_EDGE_MAX * w)), min(h - rh, int(CROP_EDGE_MAX * h))
    if rng is None:
        x0, y0 = min((w - rw) // 2, hi_x), min((h - rh) // 2, hi_y)
    else:
        x0, y0 = int(rng.integers(0, hi_x + 1)), int(rng.integers(0, hi_y + 1))
    box = (x0 / w, y0 / h, (x0 + rw) / w, (y0 + rh) / h)
    return Region(box, max_size, float(scale))


def with_region(dt: Darktable, sidecar: Sidecar, region: Region | None) -> Sidecar:
    """``sidecar`` with darktable's crop module cutting ``region`` (unchanged
    for ``None`` or the whole raw)."""
    if region is None or region.whole:
        return sidecar
    return dt.edit(sidecar, updates={CROP: region.crop_params()}, enable=[CROP])


def raw_size(raw: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The raw's visible ``(width, height)`` in px (rawpy), ``None`` when
    rawpy cannot read it. Read once per file version (rawpy unpacks the whole
    raw; the replica asks for the size, the crop's frame and the export's room
    of the same raw)."""
    try:
        st = os.stat(raw)
    except OSError:
        return None
    return _raw_size(os.fspath(raw), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _raw_size(path: str, mtime_ns: int, size: int) -> tuple[int, int] | None:
    """:func:`raw_size` of ``path`` as it is at ``mtime_ns`` and ``size`` (the cache's key: a rewritten raw is
    read again)."""
    try:
        import rawpy

        with rawpy.imread(path) as r:
            return int(r.sizes.width), int(r.sizes.height)
    except Exception:  # any unreadable raw: darktable reports it when rendering
        return None


def runs_on_mosaic(order: Sequence[str], module: str) -> bool:
    """Does ``module`` sit at or before demosaic in pipe ``order`` (its input is
    the raw mosaic; demosaic itself included)?"""
    return module in order and DEMOSAIC in order and order.index(module) <= order.index(DEMOSAIC)


@dataclass
class TapPlan:
    """The two histories of a tap-out, plus what they contain."""

    module: str
    module_version: int
    input_sidecar: Sidecar
    output_sidecar: Sidecar
    params: dict[str, Any]  # the target's full params by (dotted) name
    set_params: dict[str, Any]  # the params that were set explicitly
    pre_demosaic: bool
    upstream: list[dict[str, Any]]  # enabled modules before the target, with params
    disabled: list[str]  # modules after the target that were disabled
    kept_on: list[str]  # pass-through modules after the target (left on)
    region: Region | None = None  # the rendered region (crop module on in both histories)

    @property
    def upstream_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.upstream, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TapOut:
    """A module's input and output. ``input``: float32 (3, H, W) linear Rec2020,
    or (4, H/2, W/2) packed mosaic (R, G1, G2, B) for pre-demosaic modules;
    ``output``: float32 (3, H, W) linear Rec2020."""

    input: np.ndarray
    output: np.ndarray
    meta: dict[str, Any]

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write input.tif, output.tif and meta.json into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        write_tiff(d / "input.tif", self.input)
        write_tiff(d / "output.tif", self.output)
        write_json(d / "meta.json", self.meta)
        return d


def plan_tapout(
    dt: Darktable,
    base: Sidecar,
    module: str,
    params: Mapping[str, Any] | None = None,
    clamp: bool = False,
    region: Region | None = None,
) -> TapPlan:
    """Build the input/output histories for tapping ``module`` out of ``base``
    (a history, e.g. :meth:`Darktable.default_history`), with ``params`` set
    on the target (dotted names; values or CLI strings). Validates everything.
    ``region``: render only that region of the raw (render with
    ``region.max_size``); refused before demosaic (the mosaic is full size)."""
    schemas = dt.schemas
    sch = schemas.get(module)
    params = dict(params or {})
    base = base.compressed()
    order = base.pipe_order(schemas)
    if module not in order:
        raise UnknownModule(f"{module} is not in darktable's pipe order")
    pos = order.index(module)
    pre = runs_on_mosaic(order, module)  # demosaic itself too: its input is the packed mosaic
    if region is not None and pre and not region.whole:
        raise UnknownModule(f"{module} runs on the full-resolution mosaic: it has no render scale or region")
    later = order[pos + 1 :]
    disabled = [op for op in later if op not in PASS_THROUGH and (it := base.find(op)) is not None and it.enabled]
    kept = [op for op in later if op in PASS_THROUGH and base.find(op) is not None]
    out_side = dt.edit(base, updates={module: params}, enable=[module], disable=disabled, clamp=clamp)
    if module in PASS_THROUGH and module != DEMOSAIC and not pre:
        ident = IDENTITY_SETTINGS.get(module)
        if ident is None:
            raise UnknownModule(
                f"darktable keeps {module} always on and no identity setting is known for it: "
                "its input cannot be tapped out"
            )
        in_side = dt.edit(base, updates={module: ident}, disable=disabled)
    else:
        in_side = dt.edit(base, disable=[module, *disabled])
    in_side, out_side = with_region(dt, in_side, region), with_region(dt, out_side, region)
    item = out_side.find(module)
    assert item is not None
    full = flatten(decode_params(sch, item.params))
    upstream = []
    for op in order[:pos]:
        it = out_side.find(op)
        if it is not None and it.enabled:
            upstream.extend(history_summary([it]))
    return TapPlan(
        module=module,
        module_version=sch.version,
        input_sidecar=in_side,
        output_sidecar=out_side,
        params=full,
        set_params={k: full.get(k, v) for k, v in params.items()},
        pre_demosaic=pre,
        upstream=upstream,
        disabled=disabled,
        kept_on=kept,
        region=region,
    )


def tapout(
    dt: Darktable,
    raw: str | os.PathLike[str],
    module: str,
    params: Mapping[str, Any] | None = None,
    max_size: int | None = None,
    base: Sidecar | None = None,
    clamp: bool = False,
    renderer: Renderer | None = None,
    region: Region | None = None,
) -> TapOut:
    """Render ``module``'s input and output for ``raw`` (both in one darktable-cli
    process); ``region``: only that region, at its scale (``max_size`` is then
    the region's). See the module docstring for what is recorded in ``meta``."""
    raw = Path(raw)
    base = base if base is not None else dt.default_history(raw)
    plan = plan_tapout(dt, base, module, params, clamp, region=region)
    # pre-demosaic modules: the output must line up with the full-resolution mosaic
    size = None if plan.pre_demosaic else (region.max_size if region is not None else max_size)
    r = renderer or dt.renderer(max_size=size)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="darkproxy-tap-") as td:
        jobs = [RenderJob(raw, plan.output_sidecar, Path(td) / "out.tif")]
        if not plan.pre_demosaic:
            jobs.append(RenderJob(raw, plan.input_sidecar, Path(td) / "in.tif"))
        res: list[Path] = []
        for x in r.render_batch(jobs):
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
            res.append(x)
        out = read_tiff(res[0])
        inp = packed_input(raw, module) if plan.pre_demosaic else read_tiff(res[1])
    return TapOut(inp, out, tap_meta(dt, raw, plan, out.shape, inp.shape, size))


def packed_input(raw: Path, module: str) -> np.ndarray:
    """Packed mosaic input of a pre-demosaic module (white balance applied for
    modules after temperature, as darktable does)."""
    from darkproxy.raw.mosaic import read_packed_mosaic

    wb = module not in ("rawprepare", "temperature", "invert")
    return read_packed_mosaic(raw, white_balance=wb).data


def render_scale(
    raw: str | os.PathLike[str] | tuple[int, int],
    out_shape: Sequence[int],
    box: Sequence[float] | None = None,
) -> float | None:
    """Scale darktable rendered ``raw`` (a path or its ``(width, height)``) at:
    output px per raw px, the ``(C, H, W)`` output's width and height over those
    of the rendered part of the raw (``box``: a :class:`Region`'s box; the whole
    raw when ``None``), the larger of the two (approximate: darktable may crop a
    few border pixels). ``None`` when rawpy cannot read the raw's size."""
    wh = raw if isinstance(raw, tuple) else raw_size(raw)
    if not wh or not wh[0] or not wh[1]:
        return None
    left, top, right, bottom = box if box is not None else (0.0, 0.0, 1.0, 1.0)
    sx = out_shape[-1] / max((right - left) * wh[0], 1e-9)
    sy = out_shape[-2] / max((bottom - top) * wh[1], 1e-9)
    return round(max(sx, sy), 4)


def tap_meta(
    dt: Darktable, raw: Path, plan: TapPlan, out_shape: tuple[int, ...], in_shape: tuple[int, ...], max_size: int | None
) -> dict[str, Any]:
    return {
        "module": plan.module,
        "module_version": plan.module_version,
        "darktable_version": dt.version,
        "raw": str(raw),
        "raw_sha256": file_digest(raw),
        "params": plan.params,
        "set_params": plan.set_params,
        "pre_demosaic": plan.pre_demosaic,
        "data_space": "linear_rec2020",
        "input_layout": "packed_mosaic_RG1G2B" if plan.pre_demosaic else "rgb",
        "input_shape": list(in_shape),
        "output_shape": list(out_shape),
        "max_size": max_size,
        "render_scale": render_scale(raw, out_shape, plan.region.box if plan.region else None),
        "region": plan.region.to_json() if plan.region else None,
        "upstream": plan.upstream,
        "upstream_hash": plan.upstream_hash,
        "disabled_after": plan.disabled,
        "pass_through_after": plan.kept_on,
    }


# ------------------------------------------------------- a tap-out as regression input
def read_tap_meta(input_path: Path) -> dict[str, Any]:
    """The ``meta.json`` (:func:`tap_meta`) of the tap-out ``input_path`` belongs to,
    read from its folder ({} when there is none or it is unreadable)."""
    meta = input_path.parent / "meta.json"
    try:
        d = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def raw_from_meta(input_path: Path) -> Path | None:
    """The raw of a tap-out whose ``meta.json`` sits next to ``input_path``
    (None when there is no meta or its raw is gone)."""
    raw = read_tap_meta(input_path).get("raw")
    if raw and Path(raw).is_file():
        return Path(raw)
    return None


def input_scale(inp: np.ndarray, pre: bool, input_path: Path | None, raw: Path | None) -> float | None:
    """Render scale of a module input: 1 for a packed mosaic, the tap-out's
    ``meta.json`` ``render_scale``, else measured against ``raw``'s size
    (``None`` when nothing tells)."""
    if pre:
        return 1.0
    if input_path is not None and (got := read_tap_meta(input_path).get("render_scale")):
        return float(got)
    return render_scale(raw, inp.shape) if raw is not None else None


def full_size(shape: Sequence[int], scale: float | None, raw: Path | None) -> tuple[float, float] | None:
    """The full-resolution ``(width, height)`` of the image a module input of ``shape`` (``(..., H, W)``) comes
    from: ``raw``'s size (rawpy), else the input taken as the whole image at render ``scale``; ``None`` when
    neither tells."""
    if raw is not None:
        wh = raw_size(raw)
        return (float(wh[0]), float(wh[1])) if wh else None
    if scale is None or not scale > 0:
        return None
    return shape[-1] / scale, shape[-2] / scale


def render_module_input(dt: Any, raw: Path, module: str, max_size: int | None) -> tuple[np.ndarray, bool]:
    """The module's input for ``raw`` (darktable's default history upstream),
    as a tap-out at ``max_size``: ``(array, pre_demosaic)`` (one render)."""
    plan = plan_tapout(dt, dt.default_history(raw), module, {})
    if plan.pre_demosaic:
        return packed_input(raw, module), True
    return dt.renderer(max_size=max_size).render_array(raw, plan.input_sidecar), False
