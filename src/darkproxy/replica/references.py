"""darktable's references for the replica: the history, the size, the chain's proxies and
darktable's renders (the replica's input, every stage's tap-out, the sRGB export)."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.data.scale import RENDER
from darkproxy.replica.mosaicplan import needs_camera_matrix
from darkproxy.replica.plan import ReplicaError, ReplicaPlan
from darkproxy.replica.ports.crop import crop_frame


# ----------------------------------------------------------------- history and size
def replica_history(
    dt: Any,
    raw: Path,
    xmp: str | os.PathLike[str] | None,
    sets: Mapping[str, Mapping[str, Any]] | None,
    disable: Sequence[str] = (),
) -> Any:
    """The history darktable would apply: ``xmp`` (or darktable's defaults for
    ``raw``) with ``sets`` applied; a module the history leaves off is turned on, the modules ``disable`` off.
    Items of an older params version are upgraded by darktable itself (:meth:`Darktable.upgraded`), so
    that the replica reads what darktable runs."""
    from darkproxy.darktable.xmp import read_xmp

    base = dt.upgraded(raw, read_xmp(xmp).compressed()) if xmp else dt.default_history(raw)
    return dt.edit(base, updates={m: dict(v) for m, v in (sets or {}).items()}, disable=list(disable))


def pick_size(raw: Path, plan: ReplicaPlan, max_size: int | None) -> int:
    """``max_size``, or the largest size the chain's proxies accept: the raw's
    long side times the top of the narrowest trained scale range of a
    scale-dependent proxy (the raw's size for the zoo's local proxies, trained
    over 0.1-1; 128 px for a 256 px raw and a proxy trained at 0.5), else the
    raw's long side capped at 512."""
    from darkproxy.data.scale import ScaleRange
    from darkproxy.proxy.locate import resolve_run

    wh = rendered_raw_size(raw, plan)  # a crop's rectangle: darktable's size bounds the crop
    long_side = int(round(max(wh))) if wh else 512
    if max_size:
        return int(max_size)
    if plan.from_mosaic:  # the mosaic stages' figures are at full resolution (demosaic's resampling aside)
        return long_side
    his = []
    for st in plan.stages:
        if st.kind == "proxy" and st.run:
            import json

            info = json.loads((resolve_run(st.run) / "run.json").read_text())
            sr = ScaleRange.from_json(info.get("scale_range"))
            if sr is not None and sr.dependent and sr.basis == RENDER:
                his.append(sr.hi)
            elif sr is not None and sr.dependent and wh:  # soften's: the whole image's diagonal in output px
                his.append(min(1.0, sr.hi / math.hypot(*wh)))
    if his:
        return max(16, int(round(long_side * min(his))))
    return min(long_side, 512)


def load_proxies(
    plan: ReplicaPlan, scale: float | None, device: str = "cpu", full_size: tuple[float, float] | None = None
) -> dict[str, torch.nn.Module]:
    """The chain's proxies, fixed at render ``scale`` of an image whose full-resolution ``(width, height)`` is
    ``full_size`` (the raw's, uncut by a crop: soften's proxy needs it, :meth:`Proxy.scale_for`); a proxy not
    trained at that scale raises :class:`~darkproxy.errors.ScaleError` naming the sizes that work."""
    from darkproxy.errors import ScaleError
    from darkproxy.proxy import load_proxy

    out: dict[str, torch.nn.Module] = {}
    for st in plan.stages:
        if st.kind != "proxy" or st.run is None:
            continue
        p = load_proxy(st.run, device=device)
        if getattr(p, "pre_demosaic", False):
            raise ReplicaError(f"{st.module}: the proxy {st.run} runs on the mosaic; the replica starts after demosaic")
        try:
            out[st.module] = p.at_scale(scale, full_size)
        except ScaleError as e:
            sr = p.scale_range
            raise ScaleError(
                f"{st.module}: {e}; render at a scale in {sr} (--max-size = raw long side x {sr.hi:g})"
                if sr is not None and sr.basis == RENDER
                else f"{st.module}: {e}"
            ) from None
    return out


# ----------------------------------------------------------------- darktable's side
@dataclass
class Renders:
    """darktable's images for one history at one size: ``input`` (3, H, W) linear
    Rec2020 (the replica's input), ``taps`` {stage key: (3, H, W) linear Rec2020 after
    that stage} (modules darktable cannot switch off share their neighbour's),
    ``export``: darktable's 8-bit sRGB export as float (3, H, W) in [0, 1];
    ``scale``: the render scale; ``seconds``: rendering time."""

    input: np.ndarray
    taps: dict[str, np.ndarray]
    export: np.ndarray
    scale: float
    seconds: float
    # --from-mosaic: the raw's uncropped CFA (1, H, W) raw values (the chain's input), darktable's image after
    # demosaic in camera RGB (colorin passing it through: what colorin's matrix is measured on), and per
    # mosaic stage darktable's linear Rec2020 render with the later mosaic stages it can switch off, off (the
    # camera RGB image also without --from-mosaic when an exact port runs on it: mosaicplan.CAMERA_RGB)
    mosaic: np.ndarray | None = None
    camera: np.ndarray | None = None
    mosaic_taps: dict[str, np.ndarray] = field(default_factory=dict)
    # the (width, height) in raw px of what the chain starts from (StageContext.full_size)
    full_size: tuple[float, float] | None = None
    # the raw's own (width, height), no crop cutting it (StageContext.image_size: soften's radius)
    image_size: tuple[float, float] | None = None
    # what darktable-cli's export checks its scale against (StageContext.export_room; None: full_size)
    export_room: tuple[float, float] | None = None

    @property
    def chain_input(self) -> np.ndarray:
        """What the chain runs on: the CFA --from-mosaic, else darktable's demosaiced image."""
        return self.mosaic if self.mosaic is not None else self.input


def render_references(
    dt: Any, raw: Path, plan: ReplicaPlan, size: int, export: bool = True, taps: bool = True
) -> Renders:
    """Render the replica's input, every stage's tap-out (``taps``; else only those
    the chain runs on: its passthrough stages) and (``export``) darktable's sRGB
    export of ``plan.history`` at ``size`` px."""
    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
    from darkproxy.errors import DarktableRenderError

    t0 = time.perf_counter()
    hist = plan.history
    chain_off = plan.chain_disable()
    sides = {"__input__": dt.edit(hist, disable=chain_off)}
    for k, st in enumerate(plan.stages):
        if st.can_disable and (taps or st.kind == "passthrough"):
            sides[st.key] = dt.edit(hist, disable=[m for m in chain_off if m in plan.keys[k + 1 :]])
    if plan.from_mosaic:
        sides |= _mosaic_sides(dt, plan, chain_off, taps)
    elif needs_camera_matrix(plan.stages, plan.context.modules):  # a port on camera RGB: colorin's matrix
        from darkproxy.darktable.tapout import IDENTITY_SETTINGS

        sides["__camera__"] = dt.edit(hist, updates=dict(IDENTITY_SETTINGS), disable=chain_off)
    with tempfile.TemporaryDirectory(prefix="darkproxy-replica-") as td:
        jobs = [RenderJob(raw, s, Path(td) / f"{i:03d}.tif") for i, s in enumerate(sides.values())]
        res = dt.renderer(max_size=size).render_batch(jobs)
        if export:
            disp = dt.renderer(max_size=size, icc_type="SRGB", bpp=8).render_batch(
                [RenderJob(raw, hist, Path(td) / "export.tif")]
            )
            res = [*res, *disp]
        for x in res:
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
        imgs = [read_tiff(p) for p in res if not isinstance(p, RenderFailure)]
    linear = dict(zip(sides, imgs, strict=False))
    inp = linear.pop("__input__")
    mosaic_refs = {k: linear.pop(k) for k in list(linear) if k.startswith("__")}
    after: dict[str, np.ndarray] = {}
    prev = inp
    for st in plan.stages:
        prev = linear.get(st.key, prev)
        after[st.key] = prev
    exp = imgs[-1] / 255.0 if export else np.zeros_like(inp)
    full = rendered_raw_size(raw, plan)
    scale = _render_scale(full, inp.shape)
    if scale is None:  # local stages (sharpen's radius) and proxies depend on it: never a guess
        raise ReplicaError(f"cannot measure the render scale: rawpy cannot read the size of {raw}")
    out = Renders(
        inp,
        after,
        exp.astype(np.float32),
        float(scale),
        time.perf_counter() - t0,
        full_size=full,
        image_size=_raw_wh(raw),
        export_room=export_room(raw, plan),
    )
    if plan.from_mosaic:
        from darkproxy.raw.mosaic import read_full_mosaic

        out.mosaic = read_full_mosaic(raw).data[None]
        out.camera = mosaic_refs.pop("__camera__")
        out.mosaic_taps = {k[len("__mosaic__") :]: v for k, v in mosaic_refs.items()}
    elif "__camera__" in mosaic_refs:
        out.camera = mosaic_refs.pop("__camera__")
    return out


def _mosaic_sides(dt: Any, plan: ReplicaPlan, chain_off: list[str], taps: bool) -> dict[str, Any]:
    """--from-mosaic renders: darktable's demosaiced camera RGB (colorin passes it through) and, with
    ``taps``, per mosaic stage the history with the later mosaic stages darktable can switch off, off."""
    from darkproxy.darktable.tapout import IDENTITY_SETTINGS

    hist = plan.history
    sides = {"__camera__": dt.edit(hist, updates=dict(IDENTITY_SETTINGS), disable=chain_off)}
    if taps:
        for k, st in enumerate(plan.prefix):
            later = [p.module for p in plan.prefix[k + 1 :] if p.can_disable]
            if later:
                sides[f"__mosaic__{st.module}"] = dt.edit(hist, disable=chain_off + later)
    return sides


# a 3x3 fit of colorin worse than this (display PSNR of the fit on darktable's own images) is not a matrix
MATRIX_FIT_MIN_PSNR = 70.0


def fit_camera_matrix(inp: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, float]:
    """colorin's camera RGB -> linear Rec2020 matrix measured from darktable: least squares of
    ``inp`` (3, H, W, darktable's image after colorin) on ``camera`` (the same image with colorin
    passing camera RGB through) -> (3x3 float64, display PSNR of the fit). Raises
    :class:`ReplicaError` when the fit shows colorin is not a matrix on this raw."""
    from darkproxy.colour.metrics import display_psnr

    if inp.shape != camera.shape:
        raise ReplicaError(f"colorin: darktable's renders differ in size ({inp.shape} vs {camera.shape})")
    a = inp.reshape(3, -1).astype(np.float64)
    b = camera.reshape(3, -1).astype(np.float64)
    m = np.linalg.lstsq(b.T, a.T, rcond=None)[0].T
    fit = (m @ b).reshape(inp.shape).astype(np.float32)
    psnr = float(display_psnr(fit, inp))
    if psnr < MATRIX_FIT_MIN_PSNR:
        raise ReplicaError(
            f"colorin: darktable's input profile is not a 3x3 matrix on this raw (fit {psnr:.1f} dB < "
            f"{MATRIX_FIT_MIN_PSNR:g} dB): --from-mosaic cannot model it"
        )
    return m, psnr


def rendered_raw_size(raw: Path, plan: ReplicaPlan) -> tuple[float, float] | None:
    """The raw's ``(width, height)`` in px as darktable's render of the replica's input frames it: turned
    by a flip that swaps the axes and cut to a crop's rectangle (both darktable's, before the chain);
    ``None`` when rawpy cannot read the raw's size."""
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.replica.ports.flip import SWAP_XY, resolved_orientation

    wh = raw_size(raw)
    if not wh:
        return None
    w, h = float(wh[0]), float(wh[1])
    geometry = {st.module: st for st in plan.prefix}
    if "flip" in geometry:  # darktable's render of the input is turned: so is its frame (and the scale's)
        o = resolved_orientation(geometry["flip"].values, plan.context)
        if o is None:
            raise ReplicaError(
                "flip before the chain: the raw's EXIF orientation (the image's frame) could not be read"
            )
        if o & SWAP_XY:
            w, h = h, w
    crop = geometry.get("crop")
    if crop is None:
        return w, h
    cw_px, ch_px, _, _ = crop_frame(int(w), int(h), crop.values, _sensor_ratio(wh), plan.context.darktable_version)
    return float(cw_px), float(ch_px)


def export_room(raw: Path, plan: ReplicaPlan) -> tuple[float, float] | None:
    """The ``(width, height)`` darktable-cli's export checks its render against before it corrects the export
    scale upwards (``dt_imageio_export_with_flags``: ``ceil(processed_width / scale) + origin[0] >
    pipe->iwidth``, ``origin`` the output's corner taken back through the pipe's geometry): with a crop, the
    crop's input less its left and top cut (``distort_backtransform``: ``buf_in.width * cx`` in float32, not
    floored), wider than the crop's output, so that darktable rarely corrects there; ``None`` without a crop
    (the image's own size: :func:`rendered_raw_size`) or when rawpy cannot read the raw's size. A flip's part
    in ``origin`` is not followed (as without a crop); rawprepare's crop is taken as the raw's visible size."""
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.replica.ports.flip import SWAP_XY, resolved_orientation

    geometry = {st.module: st for st in plan.prefix}
    crop = geometry.get("crop")
    wh = raw_size(raw)
    if crop is None or not wh:
        return None
    w, h = int(wh[0]), int(wh[1])
    if "flip" in geometry:
        o = resolved_orientation(geometry["flip"].values, plan.context)
        if o is not None and o & SWAP_XY:
            w, h = h, w
    _, _, left, top = crop_frame(w, h, crop.values, _sensor_ratio(wh), plan.context.darktable_version)
    return w - left, h - top


def _sensor_ratio(wh: tuple[int, int]) -> float:
    """darktable's ``dt_image_get_sensor_ratio``: the raw's width over its height after rawprepare's crop,
    unturned (taken, as everywhere here, as rawpy's visible size)."""
    return wh[0] / wh[1]


def _render_scale(wh: tuple[float, float] | None, shape: tuple[int, ...]) -> float | None:
    """The render scale of an image of ``shape`` rendered from ``wh`` (:func:`rendered_raw_size`)."""
    from darkproxy.darktable.tapout import render_scale

    return None if wh is None else render_scale((int(round(wh[0])), int(round(wh[1]))), shape)


def _raw_wh(raw: Path) -> tuple[float, float] | None:
    """The raw's ``(width, height)`` (rawpy's visible size: darktable's ``pipe->iwidth``, ``iheight``), uncut."""
    from darkproxy.darktable.tapout import raw_size

    wh = raw_size(raw)
    return (float(wh[0]), float(wh[1])) if wh else None


def precheck_scale(raw: Path, plan: ReplicaPlan, size: int) -> None:
    """Refuse a size at which a scale-dependent proxy of the chain cannot run, before rendering."""
    wh = rendered_raw_size(raw, plan)
    if wh:
        load_proxies(plan, min(1.0, size / max(wh)), full_size=_raw_wh(raw))
