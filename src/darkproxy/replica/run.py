"""``darkproxy replica``: run a history raw to display through the replica, beside darktable's export.

Renders (two darktable-cli processes, ``--hq false`` as every darkproxy render):

* float linear Rec2020: the replica's input (every module of the chain that darktable
  can switch off switched off: darktable's demosaiced image seen through colorin)
  and darktable's tap-out after each stage of the chain (later stages off);
* darktable's own 8-bit sRGB export of the whole history (``darktable.png``), the
  reference of every display figure.

Display figures: PSNR of the sRGB display values (``[0, 1]``, data range 1) and
CIEDE2000 (CIELAB of the sRGB images, D65). Per-stage attribution: for each stage,
``psnr_vs_tapout`` (the chained replica after the stage against darktable's tap-out
there; display PSNR, the project's display encoding for linear images) and
``psnr_alone`` (the stage alone, on darktable's own input to it). The tap-outs are
rendered with a linear Rec2020 output profile, to which filmic rgb v6 gamut-maps:
the linear stages are compared in that context (:attr:`StageContext.output_profile`),
the display in sRGB; after such a stage, the display stages' input "alone" is the
replica's (sRGB context) from darktable's last image that does not depend on it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.replica.chain import ReplicaChain, ReplicaError, ReplicaPlan, plan_replica
from darkproxy.viz.metrics import PSNR_CAP, display_psnr, psnr_from_mse

Log = Callable[[str], None]


# ----------------------------------------------------------------- display metrics
def psnr_display(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, at most 100) of two sRGB display images ``(3, H, W)`` in ``[0, 1]``."""
    return psnr_from_mse(float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def deltae_display(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """CIEDE2000 between two sRGB display images ``(3, H, W)`` in ``[0, 1]``: (mean, 95th percentile)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    la = rgb2lab(np.moveaxis(np.clip(a, 0, 1), 0, -1).astype(np.float64))
    lb = rgb2lab(np.moveaxis(np.clip(b, 0, 1), 0, -1).astype(np.float64))
    de = deltaE_ciede2000(lb, la)
    return float(np.mean(de)), float(np.percentile(de, 95))


def to_uint8(display: np.ndarray) -> np.ndarray:
    """sRGB display ``(3, H, W)`` in ``[0, 1]`` -> uint8 ``(H, W, 3)`` (rounded)."""
    return (np.moveaxis(np.clip(np.nan_to_num(display), 0, 1), 0, -1) * 255.0 + 0.5).astype(np.uint8)


def error_map_display(a: np.ndarray, b: np.ndarray, gain: float = 10.0) -> np.ndarray:
    """Heat map (inferno) of ``gain * |a - b|`` (max over channels) of two display images -> uint8 (H, W, 3)."""
    from matplotlib import colormaps

    err = np.clip(np.abs(np.asarray(a) - np.asarray(b)).max(0) * gain, 0.0, 1.0)
    return (colormaps["inferno"](err)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def read_display_image(path: str | os.PathLike[str], what: str = "target") -> np.ndarray:
    """A display-referred sRGB image (PNG, JPEG, TIFF; 8/16-bit or float in
    ``[0, 1]``) -> float32 ``(3, H, W)`` in ``[0, 1]``; one-line
    :class:`ReplicaError` when missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise ReplicaError(f"{what} {p} does not exist")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            a = np.asarray(tifffile.imread(str(p)))
        else:
            import imageio.v3 as iio

            a = np.asarray(iio.imread(p))
    except Exception as e:  # any decoder error: one line
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ReplicaError(f"cannot read {what} {p}: {type(e).__name__}: {msg}") from None
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise ReplicaError(f"cannot read {what} {p}: not an RGB image (shape {a.shape})")
    a = a[..., :3]
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    else:
        f = np.clip(a.astype(np.float32), 0.0, 1.0)
    return np.ascontiguousarray(np.moveaxis(f, -1, 0))


# ----------------------------------------------------------------- history and size
def replica_history(
    dt: Any, raw: Path, xmp: str | os.PathLike[str] | None, sets: Mapping[str, Mapping[str, Any]] | None
) -> Any:
    """The history darktable would apply: ``xmp`` (or darktable's defaults for
    ``raw``) with ``sets`` applied; a module the history leaves off is turned on."""
    from darkproxy.darktable.xmp import read_xmp

    base = read_xmp(xmp).compressed() if xmp else dt.default_history(raw)
    return dt.edit(base, updates={m: dict(v) for m, v in (sets or {}).items()})


def pick_size(raw: Path, plan: ReplicaPlan, max_size: int | None) -> int:
    """``max_size``, or the largest size the chain's proxies accept: the raw's
    long side times the top of the narrowest trained scale range of a
    scale-dependent proxy (e.g. 128 px for a 256 px raw and the zoo's local
    proxies, trained at 0.5), else the raw's long side capped at 512."""
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.scale import ScaleRange
    from darkproxy.zoo import resolve_run

    wh = raw_size(raw)
    long_side = max(wh) if wh else 512
    if max_size:
        return int(max_size)
    his = []
    for st in plan.stages:
        if st.kind == "proxy" and st.run:
            import json

            info = json.loads((resolve_run(st.run) / "run.json").read_text())
            sr = ScaleRange.from_json(info.get("scale_range"))
            if sr is not None and sr.dependent:
                his.append(sr.hi)
    if his:
        return max(16, int(round(long_side * min(his))))
    return min(long_side, 512)


def load_proxies(plan: ReplicaPlan, scale: float | None, device: str = "cpu") -> dict[str, torch.nn.Module]:
    """The chain's proxies, fixed at render ``scale``; a proxy not trained at
    that scale raises :class:`~darkproxy.errors.ScaleError` naming the sizes that work."""
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
            out[st.module] = p.at_scale(scale)
        except ScaleError as e:
            sr = p.scale_range
            raise ScaleError(
                f"{st.module}: {e}; render at a scale in {sr} (--max-size = raw long side x {sr.hi:g})"
                if sr is not None
                else str(e)
            ) from None
    return out


# ----------------------------------------------------------------- darktable's side
@dataclass
class Renders:
    """darktable's images for one history at one size: ``input`` (3, H, W) linear
    Rec2020 (the replica's input), ``taps`` {module: (3, H, W) linear Rec2020 after
    that stage} (modules darktable cannot switch off share their neighbour's),
    ``export``: darktable's 8-bit sRGB export as float (3, H, W) in [0, 1];
    ``scale``: the render scale; ``seconds``: rendering time."""

    input: np.ndarray
    taps: dict[str, np.ndarray]
    export: np.ndarray
    scale: float
    seconds: float


def render_references(
    dt: Any, raw: Path, plan: ReplicaPlan, size: int, export: bool = True, taps: bool = True
) -> Renders:
    """Render the replica's input, every stage's tap-out (``taps``; else only those
    the chain runs on: its passthrough stages) and (``export``) darktable's sRGB
    export of ``plan.history`` at ``size`` px."""
    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
    from darkproxy.darktable.tapout import render_scale
    from darkproxy.errors import DarktableRenderError

    t0 = time.perf_counter()
    hist = plan.history
    chain_off = plan.chain_disable()
    sides = {"__input__": dt.edit(hist, disable=chain_off)}
    for k, st in enumerate(plan.stages):
        if st.can_disable and (taps or st.kind == "passthrough"):
            sides[st.module] = dt.edit(hist, disable=[m for m in chain_off if m in plan.modules[k + 1 :]])
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
    after: dict[str, np.ndarray] = {}
    prev = inp
    for st in plan.stages:
        prev = linear.get(st.module, prev)
        after[st.module] = prev
    exp = imgs[-1] / 255.0 if export else np.zeros_like(inp)
    scale = render_scale(raw, inp.shape) or 1.0
    return Renders(inp, after, exp.astype(np.float32), float(scale), time.perf_counter() - t0)


def build_chain(plan: ReplicaPlan, renders: Renders, device: str = "cpu") -> ReplicaChain:
    """The plan's chain at the renders' scale (passthrough stages take darktable's tap-outs)."""
    plan.context = dataclasses.replace(plan.context, scale=renders.scale)
    proxies = load_proxies(plan, renders.scale, device)
    taps = {st.module: torch.from_numpy(renders.taps[st.module]) for st in plan.stages if st.kind == "passthrough"}
    return ReplicaChain(plan, proxies, taps)


# ----------------------------------------------------------------- evaluation
def evaluate(chain: ReplicaChain, renders: Renders) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the chain on darktable's input: (display (3, H, W), figures: ``psnr``,
    ``deltae_mean``, ``deltae_p95`` against darktable's export, ``stages``)."""
    x = torch.from_numpy(renders.input)[None]
    # the tap-outs are rendered with a linear Rec2020 output profile (render_references), which filmic
    # rgb v6 gamut-maps to: the linear stages are compared with them in that context, the display in sRGB
    tap_ctx = dataclasses.replace(chain.ctx, output_profile="lin_rec2020")
    with torch.no_grad():
        out, outs = chain.run_stages(x, chain.history_u())
        _, tap_outs = chain.run_stages(x, chain.history_u(), ctx=tap_ctx)
    disp = out[0].numpy().astype(np.float32)
    stages: list[dict[str, Any]] = []
    for st in chain.plan.prefix:
        stages.append({"module": st.module, "kind": "passthrough", "psnr_vs_tapout": PSNR_CAP, "note": st.note})
    # prev_ref: darktable's input to the stage (its tap-out pipe); disp_in: that input as in the sRGB export's
    # pipe, known until a stage depends on the output profile (filmic rgb v6's gamut mapping): from there on
    # the replica's stages (sRGB context) on darktable's last profile-independent image
    prev_ref = disp_in = renders.input
    for st, o, o_tap in zip(chain.plan.stages, outs, tap_outs, strict=True):
        op_display = _is_display(chain, st.module)
        o_np = (o if op_display else o_tap)[0].numpy()
        if op_display:
            ref = renders.export
            vs = psnr_display(o_np, ref)
        else:
            ref = renders.taps[st.module]
            vs = display_psnr(o_np, ref)
        rec: dict[str, Any] = {"module": st.module, "kind": st.kind, "psnr_vs_tapout": vs, "note": st.note}
        nxt_disp_in = ref
        if st.kind != "passthrough":
            with torch.no_grad():
                if op_display:
                    alone = chain.stage_alone(st.module, torch.from_numpy(disp_in))[0].numpy()
                    rec["psnr_alone"] = psnr_display(alone, ref) if disp_in.shape == ref.shape else None
                else:
                    alone = chain.stage_alone(st.module, torch.from_numpy(prev_ref), ctx=tap_ctx)[0].numpy()
                    rec["psnr_alone"] = display_psnr(alone, ref)
                    if st.kind == "exact" or disp_in is not prev_ref:
                        alone_srgb = chain.stage_alone(st.module, torch.from_numpy(disp_in))[0].numpy()
                        if disp_in is not prev_ref or not np.array_equal(alone_srgb, alone):
                            nxt_disp_in = alone_srgb
        if st.kind == "proxy":
            rec["run"] = st.run
        stages.append(rec)
        prev_ref, disp_in = ref, nxt_disp_in
    m, p95 = deltae_display(disp, renders.export)
    return disp, {"psnr": psnr_display(disp, renders.export), "deltae_mean": m, "deltae_p95": p95, "stages": stages}


def _is_display(chain: ReplicaChain, module: str) -> bool:
    """Is ``module``'s output display-encoded (colorout and what follows it)?"""
    from darkproxy.replica.stages import EXACT

    seen = False
    for st in chain.plan.stages:
        op = EXACT.get(st.module)
        if st.kind == "exact" and op is not None and op.output == "display":
            seen = True
        if st.module == module:
            return seen
    return False


# ----------------------------------------------------------------- the command
def run_replica(
    dt: Any,
    raw: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    xmp: str | os.PathLike[str] | None = None,
    sets: Mapping[str, Mapping[str, Any]] | None = None,
    max_size: int | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """``darkproxy replica``: writes ``replica.png``, ``darktable.png``,
    ``error.png``, ``history.xmp`` (the history run), ``summary.json`` and
    ``index.html`` into ``out_dir``; returns the summary."""
    from darkproxy.errors import RawError

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    hist = replica_history(dt, raw, xmp, sets)
    plan = plan_replica(dt, hist, raw, allow_missing=allow_missing, prefer_proxy=prefer_proxy, runs=runs)
    size = pick_size(raw, plan, max_size)
    _precheck_scale(raw, plan, size)
    say(f"rendering {raw.name} with darktable at {size} px: input, {len(plan.stages)} tap-outs, sRGB export")
    renders = render_references(dt, raw, plan, size)
    chain = build_chain(plan, renders)
    say("running the replica: " + " -> ".join(f"{s.module} ({s.kind})" for s in plan.prefix + plan.stages))
    t1 = time.perf_counter()
    disp, fig = evaluate(chain, renders)
    replica_seconds = time.perf_counter() - t1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from darkproxy.viz.images import save_png

    save_png(out / "replica.png", to_uint8(disp))
    save_png(out / "darktable.png", to_uint8(renders.export))
    save_png(out / "error.png", error_map_display(disp, renders.export))
    plan.history.write(out / "history.xmp")
    passthrough = [s["module"] for s in fig["stages"] if s["kind"] == "passthrough" and s["module"] in plan.modules]
    summary = {
        "raw": str(raw),
        "xmp": str(xmp) if xmp else None,
        "set": {m: dict(v) for m, v in (sets or {}).items()},
        "darktable_version": dt.version,
        "size": [int(disp.shape[2]), int(disp.shape[1])],
        "render_scale": renders.scale,
        "psnr": fig["psnr"],
        "deltae_mean": fig["deltae_mean"],
        "deltae_p95": fig["deltae_p95"],
        "seconds": time.perf_counter() - t0,
        "render_seconds": renders.seconds,
        "replica_seconds": replica_seconds,
        "reference": "darktable-cli's 8-bit sRGB export of the same history at the same size (--hq false)",
        "stages": fig["stages"],
        "passthrough_allowed": passthrough,
        "differentiable_from": plan.stages[0].module if plan.stages else None,
    }
    if passthrough:
        summary["warning"] = (
            f"--allow-missing: {', '.join(passthrough)} ran as darktable's tap-out; no gradient reaches "
            "the stages before them"
        )
    from darkproxy.darktable.schema import write_json_atomic

    write_json_atomic(out / "summary.json", summary)
    write_report(out, summary)
    return summary


def _precheck_scale(raw: Path, plan: ReplicaPlan, size: int) -> None:
    """Refuse a size at which a scale-dependent proxy of the chain cannot run, before rendering."""
    from darkproxy.darktable.tapout import raw_size

    wh = raw_size(raw)
    if wh:
        load_proxies(plan, min(1.0, size / max(wh)))


def write_report(out: Path, summary: Mapping[str, Any]) -> Path:
    """``index.html``: replica beside darktable's export, the error map, the per-stage attribution."""
    import html

    from darkproxy.viz.report import HtmlReport

    rep = HtmlReport(f"darkproxy replica: {Path(str(summary['raw'])).name}")
    rep.add_text(
        f"Raw to display through every stage of the history, beside darktable's own sRGB export "
        f"({summary['size'][0]}x{summary['size'][1]} px, render scale {summary['render_scale']:.3g}): display PSNR "
        f"{summary['psnr']:.2f} dB, ΔE2000 mean {summary['deltae_mean']:.2f} (p95 {summary['deltae_p95']:.2f}), "
        f"{summary['seconds']:.1f} s."
    )
    if summary.get("warning"):
        rep.add_text(str(summary["warning"]), "warning")
    figs = "".join(
        f'<figure style="display:inline-block;margin:4px"><img src="{html.escape(f)}" alt="{html.escape(c)}" '
        f'style="width:{max(256, summary["size"][0] * 2)}px;image-rendering:pixelated">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        for f, c in (
            ("replica.png", "replica (differentiable)"),
            ("darktable.png", "darktable's export"),
            ("error.png", "error |replica - darktable| x10"),
        )
    )
    rep.add_html(f"<div>{figs}</div>")
    rep.add_heading("Per-stage attribution")
    rep.add_text(
        "psnr_vs_tapout: the chained replica after the stage against darktable's tap-out there (display PSNR; "
        "colorout and later: against darktable's export). psnr_alone: the stage alone on darktable's own input. "
        "exact: darktable's closed form in torch; proxy: a trained network; passthrough: darktable's render.",
        "note",
    )
    rep.add_table(
        [{k: s.get(k) for k in ("module", "kind", "psnr_vs_tapout", "psnr_alone", "note")} for s in summary["stages"]]
    )
    rep.add_json_block(summary, "summary.json")
    return rep.write(out / "index.html")
