"""Tap-out pairs for evaluation: darktable's module input and output for given params, the
proxy run on the same input, the region a render scale asks for, and the pre-demosaic baseline."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import (
    Region,
    full_size,
    packed_input,
    plan_tapout,
    raw_size,
    region_for_scale,
    render_scale,
)
from darkproxy.data.scale import FULL_SIZE_RADIUS
from darkproxy.errors import DarkproxyError, DarktableRenderError
from darkproxy.viz.images import error_map, side_by_side, to_display


@dataclass
class Pair:
    """A darktable tap-out: module input, darktable's output, and the params."""

    raw: Path
    params: dict[str, Any]
    input: np.ndarray
    output: np.ndarray | None  # None when rendered without outputs (render_pairs(with_outputs=False))
    scale: float | None = None  # render scale, measured (output px per raw px)


def default_size(run_info: Mapping[str, Any], fallback: int = 256) -> int:
    """The render size the proxy was trained at (from the run's dataset.json)."""
    ds = run_info.get("dataset")
    if ds and (Path(ds) / "dataset.json").is_file():
        info = json.loads((Path(ds) / "dataset.json").read_text())
        if info.get("size"):
            return int(info["size"])
    return int(run_info.get("size") or fallback)


def render_pairs(
    dt: Darktable,
    raw: Path,
    module: str,
    params_list: Sequence[Mapping[str, Any]],
    max_size: int | None,
    base=None,
    with_outputs: bool = True,
    region: Region | None = None,
) -> list[Pair]:
    """Tap ``module`` out of ``raw`` for every params dict: the module input is
    rendered once (it does not depend on the module's params), all outputs in
    the same darktable-cli process. ``region``: that region of the raw at its
    render scale (then its ``max_size`` is used)."""
    base = base if base is not None else dt.default_history(raw)
    plans = [plan_tapout(dt, base, module, dict(p), region=region) for p in params_list]
    pre = plans[0].pre_demosaic
    r = dt.renderer(max_size=None if pre else (region.max_size if region is not None else max_size))
    with tempfile.TemporaryDirectory(prefix="darkproxy-eval-") as td:
        jobs = []
        if not pre:
            jobs.append(RenderJob(raw, plans[0].input_sidecar, Path(td) / "in.tif"))
        if with_outputs:
            jobs += [RenderJob(raw, pl.output_sidecar, Path(td) / f"out{i}.tif") for i, pl in enumerate(plans)]
        res: list[Path] = []
        for x in r.render_batch(jobs):
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
            res.append(x)
        inp = packed_input(raw, module) if pre else read_tiff(res[0])
        outs = [read_tiff(p) for p in res[(0 if pre else 1) :]] if with_outputs else [None] * len(plans)
    scale = 1.0 if pre else render_scale(raw, inp.shape, region.box if region else None)
    return [Pair(raw, dict(pl.set_params), inp, o, scale) for pl, o in zip(plans, outs, strict=True)]


def eval_region(proxy, raw: Path, size: int, scale: float | None, rng: np.random.Generator) -> Region | None:
    """What to render of ``raw`` for ``proxy``: the region at ``scale`` when
    given; for a scale-dependent proxy without one, a region at a scale drawn
    log-uniformly in its trained range (whole raws at ``size`` would hand it
    whatever scale the raw's size makes); else ``None`` (the whole raw)."""
    sr = getattr(proxy, "scale_range", None)
    if proxy.pre_demosaic:
        if scale is not None:
            raise DarkproxyError(f"{proxy.module} runs on the full-resolution mosaic: it has no render scale")
        return None
    if scale is None and (sr is None or not sr.dependent):
        return None
    wh = raw_size(raw)
    if wh is None:
        raise DarkproxyError(f"{raw.name}: rawpy cannot read its size, which rendering at a scale needs")
    if scale is None:
        assert sr is not None
        scale = sr.render_scale(float(np.exp(rng.uniform(np.log(sr.lo), np.log(sr.hi)))), wh)  # soften's: a diagonal
    net_scale(proxy, scale, raw)
    return region_for_scale(wh, size, scale, rng)


def net_scale(proxy: Any, scale: float | None, raw: Path | None, shape: Sequence[int] = ()) -> float | None:
    """What ``proxy``'s network takes for a render of ``raw`` (or, without one, an image of ``shape`` taken as
    the whole image) at render ``scale``, checked: :meth:`Proxy.scale_for <darkproxy.proxy.Proxy.scale_for>`
    (soften's is the whole image's diagonal in output px; the scale itself for every other module)."""
    scale_for = getattr(proxy, "scale_for", None)
    if scale_for is None:
        return scale
    return scale_for(scale, full_size(shape, scale, raw) if proxy.module in FULL_SIZE_RADIUS else None)


@torch.no_grad()
def run_proxy(
    proxy, image: np.ndarray, params: Mapping[str, Any], scale: float | None = None, raw: Path | None = None
) -> np.ndarray:
    """proxy(image (C,H,W), params by name) at render ``scale`` of ``raw`` (:func:`net_scale`) -> float32
    (3,H',W')."""
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(proxy.device)
    u = proxy.normalize({k: v for k, v in params.items() if k in proxy.param_space.names}, batch=1)
    return proxy(x, u, scale=net_scale(proxy, scale, raw, image.shape))[0].float().cpu().numpy()


def panel(
    inp: np.ndarray | None, truth: np.ndarray, pred: np.ndarray, gain: float = 10.0, crop: int = 256
) -> np.ndarray:
    """input | darktable | proxy | error xgain, centre crops of ``crop`` px."""

    def c(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[-2:]
        y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        return a[..., y : y + crop, x : x + crop]

    ims, labels = [], []
    if inp is not None and inp.shape[0] == 3 and inp.shape == truth.shape:
        ims.append(to_display(c(inp)))
        labels.append("input")
    ims += [to_display(c(truth)), to_display(c(pred)), error_map(c(pred), c(truth), gain)]
    labels += ["darktable", "proxy", f"|error| x{gain:g}"]
    return side_by_side(ims, labels)


BASELINE_KIND = "bilinear demosaic + per-sample least-squares colour matrix (an oracle fit)"


def bilinear_baseline(packed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The baseline of a pre-demosaic module, where output = input is no image:
    ``packed (4, h, w)`` camera mosaic -> bilinear demosaic
    (:func:`~darkproxy.models.demosaic.packed_to_rgb_base`), then the 3x3
    matrix that best maps it onto ``target (3, 2h, 2w)`` linear_rec2020 in
    least squares (fitted on the target itself: an upper bound for any global
    colour transform after a crude demosaic). Returns (3, 2h, 2w) float32."""
    import torch

    from darkproxy.models.demosaic import packed_to_rgb_base

    base = packed_to_rgb_base(torch.from_numpy(np.asarray(packed, np.float32))[None])[0].numpy()
    h, w = target.shape[1:]
    base = base[:, :h, :w].reshape(3, -1).T.astype(np.float64)
    t = np.asarray(target, np.float64).reshape(3, -1).T
    ok = np.isfinite(base).all(1) & np.isfinite(t).all(1)
    mat, *_ = np.linalg.lstsq(base[ok], t[ok], rcond=None)
    return (base @ mat).T.reshape(3, h, w).astype(np.float32)
