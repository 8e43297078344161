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
* **Workflow defaults** (filmic rgb, exposure +0.7 EV, ...): the upstream history
  is darktable's own default history for the raw (or the given XMP); modules
  before the target keep their state; everything enabled upstream is recorded.
* **Pre-demosaic targets** (rawprepare, temperature, highlights, demosaic,...):
  the input is the Bayer mosaic, read with rawpy and packed to 4 half-resolution
  channels (:mod:`darkproxy.raw.mosaic`); the output is darktable's render after
  the target (through the pass-through modules demosaic and colorin), at full size.
"""

from __future__ import annotations

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

# darktable ignores enabled=0 for these (measured on 4.2.1, see the tests)
PASS_THROUGH = ("rawprepare", "demosaic", "colorin", "colorout", "gamma", "finalscale")
# settings that make an always-on module an identity (by enum *name*, resolved via the schema)
IDENTITY_SETTINGS: dict[str, dict[str, str]] = {"colorin": {"type": "DT_COLORSPACE_LIN_REC2020"}}
DEMOSAIC = "demosaic"


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
        from darkproxy.darktable.schema import write_json_atomic

        write_json_atomic(d / "meta.json", self.meta)
        return d


def plan_tapout(
    dt: Darktable, base: Sidecar, module: str, params: Mapping[str, Any] | None = None, clamp: bool = False
) -> TapPlan:
    """Build the input/output histories for tapping ``module`` out of ``base``
    (a history, e.g. :meth:`Darktable.default_history`), with ``params`` set
    on the target (dotted names; values or CLI strings). Validates everything."""
    schemas = dt.schemas
    sch = schemas.get(module)
    params = dict(params or {})
    base = base.compressed()
    order = schemas.pipe_order(base.iop_order_version)
    if module not in order:
        raise UnknownModule(f"{module} is not in darktable's pipe order")
    pos = order.index(module)
    pre = runs_on_mosaic(order, module)  # demosaic itself too: its input is the packed mosaic
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
) -> TapOut:
    """Render ``module``'s input and output for ``raw`` (both in one darktable-cli
    process). See the module docstring for what is recorded in ``meta``."""
    raw = Path(raw)
    base = base if base is not None else dt.default_history(raw)
    plan = plan_tapout(dt, base, module, params, clamp)
    # pre-demosaic modules: the output must line up with the full-resolution mosaic
    size = None if plan.pre_demosaic else max_size
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


def render_scale(raw: str | os.PathLike[str], out_shape: Sequence[int]) -> float | None:
    """Scale darktable rendered ``raw`` at: longest side of the ``(C, H, W)``
    output over the raw's longest visible side (approximate: darktable may crop
    a few border pixels). ``None`` when rawpy cannot read the raw's size."""
    try:
        import rawpy

        with rawpy.imread(str(raw)) as r:
            side = max(r.sizes.width, r.sizes.height)
    except Exception:  # any unreadable raw: the scale is informative only
        return None
    return round(max(out_shape[-2:]) / side, 4) if side else None


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
        "render_scale": render_scale(raw, out_shape),
        "upstream": plan.upstream,
        "upstream_hash": plan.upstream_hash,
        "disabled_after": plan.disabled,
        "pass_through_after": plan.kept_on,
    }
