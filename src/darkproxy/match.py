"""``darkproxy match``: the darktable edit that reproduces a reference look.

A reference is a display-referred image (JPEG, PNG, TIFF: sRGB, or tagged with an
ICC profile, which is honoured) of the raw's scene: the camera's JPEG, another
editor's export, an older edit. Matching:

1. darktable renders the raw (the replica's input, linear Rec2020, and its own sRGB
   export of the default history) at the working size;
2. the reference is aligned to darktable's render (:func:`align_reference`: its size,
   a small zoom and translation found by phase correlation of edge maps; a
   reference that does not show the same scene is refused) and both are cropped to
   the region the reference covers;
3. the sliders of the chain's modules are optimised through the replica
   (:class:`darkproxy.replica.ReplicaChain`, display output) by the one regression
   engine (:func:`darkproxy.regress.regress`);
4. the matched sliders go into the raw's history (``result.xmp``) and into a
   darktable style of the chain's modules (``result.dtstyle``); darktable renders
   ``result.xmp`` and every figure (ΔE2000, PSNR) is measured on darktable's own
   render against the reference, beside darktable's defaults.

``match_pairs`` fits one style to many (raw, reference) pairs ("make darktable look
like my camera"): the chain's stages are pointwise, so pixels of every pair are
pooled into one optimisation; pairs held out of the fit measure how it transfers.
"""

from __future__ import annotations

import html
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.errors import DarkproxyError
from darkproxy.pipeline import per_module

Log = Callable[[str], None]

DEFAULT_CHAIN = ("exposure", "colorbalancergb", "filmicrgb")
# the sliders a look is made of, per module (the free sliders by default)
MATCH_FREE: Mapping[str, tuple[str, ...]] = {
    "exposure": ("exposure",),
    "colorbalancergb": (
        "contrast",
        "saturation_global",
        "chroma_global",
        "vibrance",
        "brilliance_global",
        "global_C",
        "global_H",
    ),
    "filmicrgb": ("white_point_source", "black_point_source", "contrast", "latitude", "saturation"),
    "sigmoid": ("middle_grey_contrast", "contrast_skewness"),
    "sharpen": ("amount",),
}
MIN_CORRELATION = 0.5  # edge-map correlation below which a reference is not the raw's scene
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


class MatchError(DarkproxyError):
    """A reference that cannot be matched (unreadable, another scene, another framing...)."""


# ----------------------------------------------------------------- the reference
def read_reference(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """A display-referred reference -> (float32 ``(3, H, W)`` sRGB display values
    in ``[0, 1]``, a note on its colour profile). An embedded ICC profile other than
    sRGB is converted to sRGB (littleCMS through Pillow, relative colorimetric);
    without one the image is taken as sRGB."""
    from darkproxy.replica.run import read_display_image

    p = Path(path)
    img = read_display_image(p, "reference")
    icc = _icc_profile(p)
    if icc is None:
        return img, "untagged: taken as sRGB"
    from PIL import ImageCms

    try:
        prof = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(prof) or "").strip()
    except (OSError, ImageCms.PyCMSError) as e:
        raise MatchError(f"reference {p}: its embedded ICC profile cannot be read ({e})") from None
    if "srgb" in desc.lower().replace(" ", "").replace("-", ""):
        return img, f"ICC profile {desc!r}: sRGB"
    from PIL import Image

    with Image.open(p) as im:
        if im.mode != "RGB":
            raise MatchError(
                f"reference {p} is tagged {desc!r} in a {im.mode} image: convert it to 8-bit RGB or to sRGB first"
            )
        srgb = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(im, prof, srgb, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
        assert out is not None  # not in place: a new image
        a = np.asarray(out, np.float32) / 255.0
    return np.ascontiguousarray(np.moveaxis(a, -1, 0)), f"ICC profile {desc!r}: converted to sRGB"


def _icc_profile(p: Path) -> bytes | None:
    if p.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(str(p)) as tf:
            tag = tf.pages[0].tags.get(34675)  # InterColorProfile
            return bytes(tag.value) if tag is not None else None
    from PIL import Image

    try:
        with Image.open(p) as im:
            icc = im.info.get("icc_profile")
    except OSError:
        return None
    return bytes(icc) if icc else None


@dataclass
class Alignment:
    """How a reference maps onto darktable's render: ``scale`` (render px per
    reference px: its resize to the render's size times the zoom found), ``shift``
    (dy, dx) in render px, ``correlation`` (edge maps, after alignment), ``box`` (top, left, bottom,
    right): the render's region the reference covers."""

    scale: tuple[float, float]
    shift: tuple[float, float]
    correlation: float
    box: tuple[int, int, int, int]
    size: tuple[int, int]  # the reference's own (width, height)

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": list(self.scale),
            "shift": list(self.shift),
            "correlation": self.correlation,
            "box": list(self.box),
            "reference_size": list(self.size),
        }


def _edges(lum: np.ndarray) -> np.ndarray:
    """Edge magnitude of a luminance image ``(H, W)``, zero-mean, unit-norm (tone-curve tolerant); NaN -> 0."""
    from skimage.filters import sobel

    ok = np.isfinite(lum)
    g = sobel(np.where(ok, lum, np.nanmean(lum) if ok.any() else 0.0))
    g = np.where(ok, g - g[ok].mean(), 0.0) if ok.any() else g
    return g / (np.linalg.norm(g) + 1e-12)


def _place(
    img: np.ndarray, scale: float | tuple[float, float], shift: tuple[float, float], shape: tuple[int, int]
) -> np.ndarray:
    """``img (C, h, w)`` scaled by ``scale`` (one, or (x, y)) about its centre, centred on a
    ``shape`` canvas and moved by ``shift`` (dy, dx) px: render px
    ``q = scale (p - c_ref) + c_render + shift``; NaN outside."""
    from skimage.transform import AffineTransform, warp

    H, W = shape
    h, w = img.shape[-2:]
    sc = np.array(scale if isinstance(scale, tuple) else (scale, scale), np.float64)
    c_ref = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    c_out = np.array([(W - 1) / 2.0, (H - 1) / 2.0]) + np.array(shift[::-1])
    fwd = AffineTransform(scale=tuple(sc), translation=c_out - sc * c_ref)
    return np.stack(
        [warp(ch, fwd.inverse, output_shape=shape, order=1, cval=np.nan) for ch in np.asarray(img, np.float64)]
    )


def _score(
    e_dt: np.ndarray, lum: np.ndarray, scale: float, shape: tuple[int, int], max_shift: float
) -> tuple[float, tuple[float, float]]:
    """The best shift at ``scale`` (phase correlation of edge maps, 1/10 px) and the edge correlation there."""
    from skimage.registration import phase_cross_correlation

    H, W = shape
    placed = _place(lum[None], scale, (0.0, 0.0), shape)[0]
    shift, _, _ = phase_cross_correlation(e_dt, _edges(placed), upsample_factor=10, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    if abs(dy) > max_shift * H or abs(dx) > max_shift * W:
        return -1.0, (dy, dx)
    moved = _place(lum[None], scale, (dy, dx), shape)[0]
    ok = np.isfinite(moved)
    if ok.mean() < 0.5:
        return -1.0, (dy, dx)
    return _edge_corr(e_dt, moved), (dy, dx)


def _edge_corr(e_dt: np.ndarray, moved: np.ndarray) -> float:
    """Correlation of the render's edge map with the placed reference's, over where the reference reaches."""
    e = np.where(np.isfinite(moved), e_dt, 0.0)
    return float((_edges(moved) * e).sum() / (np.linalg.norm(e) + 1e-12))


def _refine(
    e_dt: np.ndarray,
    lum: np.ndarray,
    sxy: tuple[float, float],
    shift: tuple[float, float],
    corr: float,
    rounds: int = 2,
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Refine the x and y scales apart (a reference resized to whole px, or cropped
    unevenly, is not scaled alike in both): after placing, phase correlation of
    the left and right (top and bottom) thirds gives the residual stretch per axis
    and shift; ``rounds`` times. Returns the scales, the shift and the edge correlation."""
    from skimage.registration import phase_cross_correlation

    H, W = e_dt.shape
    for _ in range(rounds):
        moved = _place(lum[None], sxy, shift, (H, W))[0]
        e_ref = _edges(moved)
        d = []
        for axis, n in ((1, W), (0, H)):
            a, b = (slice(None), slice(0, n // 3)), (slice(None), slice(n - n // 3, n))
            if axis == 0:
                a, b = a[::-1], b[::-1]
            sa = phase_cross_correlation(e_dt[a], e_ref[a], upsample_factor=20, normalization=None)[0][axis]
            sb = phase_cross_correlation(e_dt[b], e_ref[b], upsample_factor=20, normalization=None)[0][axis]
            d.append((float(sa), float(sb), n))
        (ax, bx, nx), (ay, by, ny) = d
        # ref content at the thirds' centres moves by sa / sb: stretch about the centre, shift by the mean
        new_sxy = (sxy[0] * (1 + (bx - ax) / (2 * nx / 3)), sxy[1] * (1 + (by - ay) / (2 * ny / 3)))
        if max(abs(new_sxy[0] / sxy[0] - 1), abs(new_sxy[1] / sxy[1] - 1)) > 0.01:
            break  # thirds that disagree this much are not a stretch: keep the global fit
        sxy, shift = new_sxy, (shift[0] + (ay + by) / 2, shift[1] + (ax + bx) / 2)
    return sxy, shift, _edge_corr(e_dt, _place(lum[None], sxy, shift, (H, W))[0])


def align_reference(reference: np.ndarray, render: np.ndarray, max_shift: float = 0.1) -> tuple[np.ndarray, Alignment]:
    """Align ``reference`` (``(3, h, w)`` display) to darktable's ``render``
    (``(3, H, W)`` display) with one scale and a translation (a reference is the
    shot at another size, maybe cropped by a few px): the scale is searched within
    4 % of the two sides' ratios (coarse on a small copy, then fine), the translation
    by phase correlation of edge maps (1/10 px). Returns the aligned reference
    ``(3, H, W)`` (NaN where it does not reach) and the :class:`Alignment`. Raises
    :class:`MatchError` (one line) for another aspect ratio (over 5 %), a shift over
    ``max_shift`` of the image, or an edge correlation under :data:`MIN_CORRELATION`."""
    _, h, w = reference.shape
    _, H, W = render.shape
    if abs((w / h) / (W / H) - 1.0) > 0.05:
        raise MatchError(
            f"the reference is {w}x{h} but darktable renders the raw at {W}x{H}: another aspect ratio "
            "(cropped or rotated?): crop it to the raw's framing"
        )
    lum_ref = np.asarray(reference, np.float64).mean(0)
    lum_dt = np.asarray(render, np.float64).mean(0)
    lo, hi = min(W / w, H / h) * 0.96, max(W / w, H / h) * 1.04
    # coarse: both images at most ~320 px; then fine at full size around the best
    k = max(1.0, max(H, W) / 320.0)
    small = (max(8, round(H / k)), max(8, round(W / k)))
    from skimage.transform import resize

    e_small = _edges(resize(lum_dt, small, anti_aliasing=k > 1))
    ref_small = resize(lum_ref, (max(8, round(h / k)), max(8, round(w / k))), anti_aliasing=k > 1)
    ks = (ref_small.shape[1] / w, ref_small.shape[0] / h)  # reference px of the small copy per px
    coarse = np.geomspace(lo, hi, 41)
    best_c = max(coarse, key=lambda s: _score(e_small, ref_small, s * (small[1] / W) / ks[0], small, max_shift)[0])
    step = float(coarse[1] / coarse[0])
    e_dt = _edges(lum_dt)
    fine = best_c * step ** np.linspace(-1.0, 1.0, 9)
    scored = [(_score(e_dt, lum_ref, float(s), (H, W), max_shift), float(s)) for s in fine]
    (corr, shift), scale = max(scored, key=lambda t: t[0][0])
    if corr >= MIN_CORRELATION:
        sxy, shift, corr = _refine(e_dt, lum_ref, (scale, scale), shift, corr)
    else:
        raise MatchError(
            f"the reference does not show the raw's scene (edge correlation {max(corr, 0.0):.2f} after alignment; "
            f"a match needs >= {MIN_CORRELATION}): give the same shot, uncropped"
        )
    al = _place(reference, sxy, shift, (H, W))
    # a scale and a shift leave an axis-aligned rectangle covered: its rows and columns, less one px of edge
    ok = np.isfinite(al).all(0)
    rows, cols = np.where(ok.any(1))[0], np.where(ok.any(0))[0]
    box = (int(rows.min()) + 1, int(cols.min()) + 1, int(rows.max()), int(cols.max()))
    if not ok[box[0] : box[2], box[1] : box[3]].all():
        raise MatchError("the reference's aligned region is not a rectangle (internal error in the alignment)")
    return al.astype(np.float32), Alignment(sxy, shift, corr, box, (w, h))


# ----------------------------------------------------------------- matching
def _free_names(chain: Any, modules: Sequence[str], free: Sequence[str] | None) -> list[str]:
    from darkproxy.errors import UnknownParam

    names = chain.param_space.names
    if free:
        for n in free:
            if n not in names:
                raise UnknownParam(f"{n!r} is not a slider of this chain; it has: {', '.join(names) or 'none'}")
        return list(free)
    return [f"{m}.{p}" for m in modules for p in MATCH_FREE.get(m, ()) if f"{m}.{p}" in names]


def _plan(dt: Any, raw: Path, chain: Sequence[str], xmp: str | os.PathLike[str] | None) -> tuple[Any, Any]:
    from darkproxy.replica.chain import plan_replica
    from darkproxy.replica.run import replica_history

    if not chain:
        raise MatchError("--chain is empty: name the modules to match, e.g. exposure,colorbalancergb,filmicrgb")
    for m in chain:
        if m not in dt.schemas:
            from darkproxy.errors import UnknownModule

            raise UnknownModule(f"--chain: {m!r} is not a darktable {dt.version} module")
    hist = replica_history(dt, raw, xmp, {m: {} for m in chain})
    return hist, plan_replica(dt, hist, raw)


# per-raw modules a style must not carry (the camera's black levels, white balance, matrix, orientation...)
RAW_SPECIFIC = ("flip", "lens", "crop", "ashift", "clipping")


def _style(dt: Any, result: Any, name: str, description: str) -> Any:
    """The style of a matched history: every enabled module after demosaic but the
    raw-specific ones and those darktable always runs (colorin, colorout...): the
    chain's modules and darktable's auto-applied presets (exposure, filmic rgb).
    Applied with ``--style-overwrite`` (darktable-cli) on darktable's defaults it
    gives the matched history back; darktable-cli's default, append, would add a
    second exposure and filmic rgb instance."""
    from darkproxy.darktable.styles import style_from_items
    from darkproxy.darktable.tapout import PASS_THROUGH, runs_on_mosaic

    h = result.compressed()
    order = dt.schemas.pipe_order(h.iop_order_version)
    items = [
        it
        for it in h.items
        if it.enabled
        and it.operation in order
        and not runs_on_mosaic(order, it.operation)
        and it.operation not in PASS_THROUGH
        and it.operation not in RAW_SPECIFIC
    ]
    items.sort(key=lambda it: order.index(it.operation))
    return style_from_items(name, items, description)


def region_figures(img: np.ndarray, ref: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
    """ΔE2000 (mean, p95) and display PSNR of two sRGB display images ``(3, H, W)``
    over ``box`` (top, left, bottom, right)."""
    from darkproxy.replica.run import deltae_display, psnr_display

    t, left, b, r = box
    a, c = img[:, t:b, left:r], ref[:, t:b, left:r]
    de, de95 = deltae_display(a, c)
    return {"deltae_mean": de, "deltae_p95": de95, "psnr": psnr_display(a, c)}


@dataclass
class Prepared:
    """One (raw, reference) pair ready to match: the history (chain modules on) and
    its replica plan, darktable's renders at ``size`` (the replica's input; its
    sRGB export of the default history, ``default_img``), the reference aligned to
    them and the replica chain."""

    raw: Path
    reference: str | None
    profile: str
    history: Any
    plan: Any
    size: int
    input: np.ndarray
    default_img: np.ndarray
    aligned: np.ndarray
    alignment: Alignment
    chain: Any

    def crop(self, img: np.ndarray) -> np.ndarray:
        t, left, b, r = self.alignment.box
        return img[:, t:b, left:r]


def prepare(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    chain: Sequence[str] = DEFAULT_CHAIN,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    log: Log | None = None,
) -> Prepared:
    """Read and align ``reference``, render ``raw`` with darktable and build the replica (see the module docstring)."""
    from darkproxy.errors import RawError
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.run import build_chain, pick_size, render_references

    say = log or (lambda s: None)
    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    if isinstance(reference, np.ndarray):
        ref_img, profile, ref_name = reference.astype(np.float32), "array: sRGB", None
    else:
        (ref_img, profile), ref_name = read_reference(reference), str(reference)
    hist, plan = _plan(dt, raw, chain, xmp)
    size = pick_size(raw, plan, max_size)
    say(f"rendering {raw.name} with darktable at {size} px (the replica's input and darktable's defaults)")
    renders = render_references(dt, raw, plan, size, export=False, taps=False)
    default_img = render_export(dt, raw, dt.default_history(raw) if xmp is None else hist, size)
    aligned, al = align_reference(ref_img, default_img)
    say(
        f"reference aligned: scale {al.scale[0]:.4f} x {al.scale[1]:.4f}, shift ({al.shift[0]:+.1f}, "
        f"{al.shift[1]:+.1f}) px, edge correlation {al.correlation:.2f}"
    )
    return Prepared(
        raw, ref_name, profile, hist, plan, size, renders.input, default_img, aligned, al, build_chain(plan, renders)
    )


def _config(config: Any, names: list[str]) -> Any:
    from darkproxy.regress import RegressConfig

    cfg = config or RegressConfig(iters=300, restarts=4, lr=0.1)
    cfg.params = names
    cfg.record = False
    return cfg


def _render_result(dt: Any, prep: Prepared, matched: Mapping[str, float], out: Path) -> tuple[dict[str, Any], Any]:
    """Write ``result.xmp`` (``prep``'s history with ``matched``), render it with
    darktable, write the images; return the figures (result and defaults vs the
    reference) and the result history."""
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.run import error_map_display, to_uint8
    from darkproxy.viz.images import save_png

    out.mkdir(parents=True, exist_ok=True)
    result = dt.edit(prep.history, updates=per_module(matched))
    result.write(out / "result.xmp")
    result_img = render_export(dt, prep.raw, result, prep.size)
    u = torch.as_tensor(prep.chain.param_space.normalize({**prep.chain.param_space.defaults(), **matched}))
    with torch.no_grad():
        rep_img = prep.chain(torch.from_numpy(prep.input)[None], u[None].float())[0].numpy()
    ref_show = np.where(np.isfinite(prep.aligned), prep.aligned, 0.0)
    save_png(out / "reference.png", to_uint8(ref_show))
    save_png(out / "default.png", to_uint8(prep.default_img))
    save_png(out / "result.png", to_uint8(result_img))
    save_png(out / "replica.png", to_uint8(rep_img))
    save_png(out / "error_default.png", error_map_display(prep.default_img, ref_show))
    save_png(out / "error_result.png", error_map_display(result_img, ref_show))
    fig = region_figures(result_img, ref_show, prep.alignment.box)
    base = region_figures(prep.default_img, ref_show, prep.alignment.box)
    return {
        "raw": str(prep.raw),
        "reference": prep.reference,
        "reference_profile": prep.profile,
        "size": [int(prep.default_img.shape[2]), int(prep.default_img.shape[1])],
        "alignment": prep.alignment.to_json(),
        **fig,
        "default_deltae_mean": base["deltae_mean"],
        "default_deltae_p95": base["deltae_p95"],
        "default_psnr": base["psnr"],
        "replica_psnr": region_figures(rep_img, ref_show, prep.alignment.box)["psnr"],
        "xmp": str(out / "result.xmp"),
    }, result


def match(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    config: Any = None,
    style_name: str | None = None,
    truth: Mapping[str, float] | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Match ``raw``'s edit to ``reference`` (a path, or a float ``(3, H, W)`` sRGB
    display array in ``[0, 1]``). Writes into ``out_dir``: ``result.xmp``,
    ``result.dtstyle``, ``reference.png`` (aligned), ``default.png`` (darktable's
    defaults), ``result.png`` (darktable's render of result.xmp), ``replica.png``,
    ``error_default.png``, ``error_result.png``, ``summary.json``, ``index.html``;
    returns the summary (figures from darktable's render of result.xmp, over the
    region the reference covers). ``truth``: hidden slider values (``"module.param"``)
    of a darktable-made reference, to report slider errors."""
    from darkproxy.darktable.schema import write_json_atomic
    from darkproxy.regress import regress

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    prep = prepare(dt, raw, reference, chain, xmp, max_size, log)
    modules = [m for m in chain if m in prep.plan.modules]
    names = _free_names(prep.chain, modules, free)
    if not names:
        raise MatchError(f"nothing to match: the chain {', '.join(chain)} has no free sliders (give --free)")
    cfg = _config(config, names)
    say(f"matching {len(names)} sliders through the replica ({cfg.restarts} restarts x {cfg.iters} iters)")
    res = regress(prep.chain, prep.crop(prep.input), prep.crop(prep.aligned), cfg)
    matched = {n: float(res.params[n]) for n in names}
    out = Path(out_dir)
    say("rendering result.xmp with darktable")
    summary, result = _render_result(dt, prep, matched, out)
    name = style_name or f"darkproxy match {prep.raw.stem}"
    _style(dt, result, name, f"darkproxy match of {prep.raw.name} to {prep.reference or 'a reference'}").write(
        out / "result.dtstyle"
    )
    summary.update(
        {
            "darktable_version": dt.version,
            "chain": modules,
            "stages": [{"module": s.module, "kind": s.kind} for s in prep.plan.prefix + prep.plan.stages],
            "params": matched,
            "free": names,
            "loss": res.loss,
            "regress_seconds": res.seconds,
            "style": str(out / "result.dtstyle"),
            "style_name": name,
        }
    )
    if truth:
        sp = prep.chain.param_space
        summary["truth"] = dict(truth)
        summary["param_errors"] = {
            n: abs(matched[n] - float(truth[n])) / max(1e-12, sp.spec(n).hi - sp.spec(n).lo)
            for n in names
            if n in truth
        }
    summary["seconds"] = time.perf_counter() - t0
    write_json_atomic(out / "summary.json", summary)
    write_report(out, summary)
    say(
        f"ΔE2000 {summary['deltae_mean']:.2f} (darktable's defaults {summary['default_deltae_mean']:.2f}), "
        f"{summary['seconds']:.0f} s"
    )
    return summary


def find_pairs(folder: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """(raw, reference) pairs of ``folder`` matched by file stem (``IMG_1.CR2`` with
    ``IMG_1.jpg``); one-line :class:`MatchError` when there are none."""
    from darkproxy.data.generate import RAW_EXTENSIONS

    d = Path(folder)
    if not d.is_dir():
        raise MatchError(f"--pairs {d} is not a folder")
    files = sorted(p for p in d.iterdir() if p.is_file())
    refs = {p.stem: p for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [(p, refs[p.stem]) for p in files if p.suffix.lower() in RAW_EXTENSIONS and p.stem in refs]
    if not pairs:
        raise MatchError(
            f"no (raw, reference) pairs in {d}: put each raw beside its reference with the same name "
            "(IMG_1.dng + IMG_1.jpg)"
        )
    return pairs


def match_pairs(
    dt: Any,
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    holdout: int | None = None,
    max_size: int | None = None,
    pixels_per_pair: int = 4096,
    config: Any = None,
    style_name: str | None = None,
    seed: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """One style fitted to every pair of ``folder`` (:func:`find_pairs`) but the
    ``holdout`` last ones (default: a quarter, at least one when there are two
    pairs or more): pixels of the fitted pairs are pooled (the chain must be
    pointwise: no sharpen) and the chain's sliders optimised once. Writes
    ``result.dtstyle``, ``pairs/STEM/`` (result.xmp and images per pair),
    ``summary.json`` (per pair ΔE2000 of darktable's render vs its reference and of
    its defaults, ``fit_deltae_mean``, ``heldout_deltae_mean``) and ``index.html``."""
    from darkproxy.darktable.schema import write_json_atomic
    from darkproxy.progress import progress_bar
    from darkproxy.regress import regress

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    pairs = find_pairs(folder)
    n_hold = (len(pairs) // 4 or (1 if len(pairs) >= 2 else 0)) if holdout is None else int(holdout)
    if not 0 <= n_hold < len(pairs):
        raise MatchError(f"--holdout {n_hold}: there are {len(pairs)} pairs, at least one must be fitted")
    preps = []
    bar = progress_bar(len(pairs), "darktable renders the pairs", unit="pair", disable=log is None)
    for raw, ref in pairs:
        preps.append(prepare(dt, raw, ref, chain, None, max_size, None))
        bar.update(1)
    bar.close()
    fit, held = preps[: len(preps) - n_hold], preps[len(preps) - n_hold :]
    base = fit[0]
    if base.chain.full_image_only:
        raise MatchError(
            "--pairs pools pixels of every pair: the chain must be pointwise (drop sharpen and other local modules)"
        )
    modules = [m for m in chain if m in base.plan.modules]
    names = _free_names(base.chain, modules, free)
    rng = np.random.default_rng(seed)
    xs, ts = [], []
    for p in fit:
        x, t = p.crop(p.input).reshape(3, -1), p.crop(p.aligned).reshape(3, -1)
        idx = rng.choice(x.shape[1], size=min(pixels_per_pair, x.shape[1]), replace=False)
        xs.append(x[:, idx])
        ts.append(t[:, idx])
    side = int(np.sqrt(sum(a.shape[1] for a in xs)))
    x_pool = np.concatenate(xs, 1)[:, : side * side].reshape(3, side, side)
    t_pool = np.concatenate(ts, 1)[:, : side * side].reshape(3, side, side)
    cfg = _config(config, names)
    cfg.max_pixels = None  # the pool is already a sample
    say(f"fitting one style ({len(names)} sliders) to {len(fit)} pairs; {n_hold} held out")
    res = regress(base.chain, x_pool, t_pool, cfg)
    matched = {n: float(res.params[n]) for n in names}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = style_name or f"darkproxy match {Path(folder).name}"
    records, results = [], []
    bar = progress_bar(len(preps), "darktable renders the style", unit="pair", disable=log is None)
    for p in preps:
        rec, res_hist = _render_result(dt, p, matched, out / "pairs" / p.raw.stem)
        rec["held_out"] = p in held
        records.append(rec)
        results.append(res_hist)
        bar.update(1)
    bar.close()
    # the style of the first fitted pair's matched history (preps[0] is fit[0])
    _style(dt, results[0], name, f"darkproxy match of {len(fit)} pairs in {Path(folder).name}").write(
        out / "result.dtstyle"
    )

    def mean(rs: list[dict[str, Any]], k: str) -> float | None:
        return float(np.mean([r[k] for r in rs])) if rs else None

    fit_r, held_r = [r for r in records if not r["held_out"]], [r for r in records if r["held_out"]]
    summary = {
        "folder": str(folder),
        "darktable_version": dt.version,
        "chain": modules,
        "params": matched,
        "free": names,
        "style": str(out / "result.dtstyle"),
        "style_name": name,
        "pairs": records,
        "fit_deltae_mean": mean(fit_r, "deltae_mean"),
        "fit_default_deltae_mean": mean(fit_r, "default_deltae_mean"),
        "heldout_deltae_mean": mean(held_r, "deltae_mean"),
        "heldout_default_deltae_mean": mean(held_r, "default_deltae_mean"),
        "regress_seconds": res.seconds,
        "seconds": time.perf_counter() - t0,
    }
    write_json_atomic(out / "summary.json", summary)
    _write_pairs_report(out, summary)
    return summary


def _write_pairs_report(out: Path, summary: Mapping[str, Any]) -> Path:
    from darkproxy.viz.report import HtmlReport

    rep = HtmlReport(f"darkproxy match --pairs: {Path(str(summary['folder'])).name}")
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rep.add_text(
        f"One style ({', '.join(summary['chain'])}) fitted to {sum(not r['held_out'] for r in summary['pairs'])} "
        f"pairs: ΔE2000 mean {fmt(summary['fit_deltae_mean'])} on them (darktable's defaults "
        f"{fmt(summary['fit_default_deltae_mean'])}), {fmt(summary['heldout_deltae_mean'])} on the pairs held out "
        f"(defaults {fmt(summary['heldout_default_deltae_mean'])}). Figures: darktable's render of each pair's "
        "result.xmp against its reference."
    )
    rep.add_table(
        [
            {
                "pair": Path(r["raw"]).stem,
                "held out": r["held_out"],
                "ΔE2000": r["deltae_mean"],
                "defaults ΔE2000": r["default_deltae_mean"],
                "PSNR": r["psnr"],
            }
            for r in summary["pairs"]
        ]
    )
    for r in summary["pairs"]:
        stem = Path(r["raw"]).stem
        figs = "".join(
            f'<figure style="display:inline-block;margin:4px"><img src="pairs/{html.escape(stem)}/{f}" '
            f'style="width:256px"><figcaption>{html.escape(stem)}: {c}</figcaption></figure>'
            for f, c in (("reference.png", "reference"), ("default.png", "defaults"), ("result.png", "style"))
        )
        rep.add_html(f"<div>{figs}</div>")
    rep.add_heading("The style's sliders")
    rep.add_table([{"slider": k, "value": v} for k, v in summary["params"].items()])
    rep.add_json_block(dict(summary), "summary.json")
    return rep.write(out / "index.html")


def write_report(out: Path, summary: Mapping[str, Any]) -> Path:
    """``index.html``: reference, darktable's defaults, the matched result, error maps, figures."""
    from darkproxy.viz.report import HtmlReport

    title = Path(str(summary.get("raw", "match"))).name
    rep = HtmlReport(f"darkproxy match: {title}")
    rep.add_text(
        f"darktable's render of result.xmp against the reference: ΔE2000 mean {summary['deltae_mean']:.2f} "
        f"(p95 {summary['deltae_p95']:.2f}), PSNR {summary['psnr']:.2f} dB; darktable's defaults: ΔE2000 "
        f"{summary['default_deltae_mean']:.2f}. Chain: {', '.join(summary['chain'])}; {summary['seconds']:.1f} s. "
        f"Reference: {summary['reference_profile']}; alignment: scale {summary['alignment']['scale'][0]:.4f}, edge "
        f"correlation {summary['alignment']['correlation']:.2f}."
    )
    width = max(256, int(summary["size"][0]))
    figs = "".join(
        f'<figure style="display:inline-block;margin:4px"><img src="{html.escape(f)}" alt="{html.escape(c)}" '
        f'style="width:{width}px"><figcaption>{html.escape(c)}</figcaption></figure>'
        for f, c in (
            ("reference.png", "reference (aligned)"),
            ("default.png", "darktable's defaults"),
            ("result.png", "darktable: result.xmp"),
            ("error_default.png", "|defaults - reference| x10"),
            ("error_result.png", "|result - reference| x10"),
            ("replica.png", "the replica's prediction"),
        )
    )
    rep.add_html(f"<div>{figs}</div>")
    rep.add_heading("Matched sliders")
    rep.add_table([{"slider": k, "value": v} for k, v in summary["params"].items()])
    rep.add_json_block(dict(summary), "summary.json")
    return rep.write(out / "index.html")
