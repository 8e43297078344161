"""Recover a darktable module's params from image files and prove them with darktable.

This is the ``darkproxy regress`` command's pipeline around the regression
engine (:mod:`darkproxy.engines.regress`, which only optimises tensors): read the target
(and the module input, or render it from the raw), run
:func:`darkproxy.engines.regress.regress`, render the recovered params with darktable
(:func:`verify_with_darktable`, :func:`full_history_check`) and write what a
photographer opens (``result.xmp``) beside ``params.json``, the renders and,
on request, the optimisation video and plot (:mod:`darkproxy.viz.video`).

Named ``recover`` for what it delivers, recovered params with darktable's
proof, to keep it apart from the engine (``regress.py``), which slider,
pipeline and replica regression share. The darktable figures here
(:func:`darktable_figures`, :func:`defaults_figures`, :func:`full_history_check`)
are used by ``pipeline regress`` too; :func:`verify_with_darktable` by
``regress-eval``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.metrics import display_psnr
from darkproxy.darktable.tapout import (
    full_size,
    input_scale,
    plan_tapout,
    raw_from_meta,
    read_tap_meta,
    render_module_input,
)
from darkproxy.data.scale import FULL_SIZE_RADIUS
from darkproxy.engines.regress import RegressConfig, RegressError, regress, resolve_free
from darkproxy.fsutil import write_json
from darkproxy.proxy.compat import check_zoo_proxy
from darkproxy.viz.images import read_image


@dataclass
class Verification:
    """darktable's render of recovered params. ``output``: float32 ``(3, H, W)``
    linear Rec2020 (tap-out output: later modules disabled); ``sidecar``: the
    full history (nothing disabled); ``tapout_sidecar``: the verification history."""

    output: np.ndarray
    psnr: float
    sidecar: Any
    tapout_sidecar: Any
    seconds: float
    upstream_hash: str = ""


def verify_with_darktable(
    dt: Any, raw: Path, module: str, named: Mapping[str, Any], target: np.ndarray, pre_demosaic: bool = False
) -> Verification:
    """Render ``named`` params of ``module`` with darktable (default history of
    ``raw`` upstream, later modules disabled, at the target's size) and compare
    with ``target`` (display PSNR)."""
    t0 = time.perf_counter()
    base = dt.default_history(raw)
    plan = plan_tapout(dt, base, module, named)
    size = None if pre_demosaic else int(max(target.shape[-2:]))
    out = dt.renderer(max_size=size).render_array(raw, plan.output_sidecar)
    if out.shape != target.shape:
        raise RegressError(
            f"darktable renders {raw} at {out.shape[2]}x{out.shape[1]}, the target is "
            f"{target.shape[2]}x{target.shape[1]}: was the target made from this raw?"
        )
    full = dt.edit(base, updates={module: named})
    return Verification(
        out, display_psnr(out, target), full, plan.output_sidecar, time.perf_counter() - t0, plan.upstream_hash
    )


def full_history_check(
    dt: Any,
    raw: Path,
    recovered: Mapping[str, Mapping[str, Any]],
    truth: Mapping[str, Mapping[str, Any]],
    max_size: int | None,
) -> dict[str, Any]:
    """What a photographer sees: darktable renders the raw's whole default
    history (every module on, as when ``result.xmp`` is opened) once with the
    ``recovered`` params ({module: {param: value}}) and once with the target's
    (``truth``), in one darktable-cli process, at ``max_size``. Returns
    ``full_history_psnr`` (display), ``full_history_pu21_psnr`` and
    ``full_history_deltae_mean`` between the two."""
    import tempfile

    from darkproxy.colour.metrics import compare
    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
    from darkproxy.errors import DarktableRenderError

    base = dt.default_history(raw)
    with tempfile.TemporaryDirectory(prefix="darkproxy-full-") as td:
        jobs = [
            RenderJob(raw, dt.edit(base, updates=u), Path(td) / f"{k}.tif") for k, u in enumerate((recovered, truth))
        ]
        res = dt.renderer(max_size=max_size).render_batch(jobs)
        for x in res:
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
        a, b = (read_tiff(p) for p in res)
    m = compare(a, b)
    return {
        "full_history_psnr": m.psnr,
        "full_history_pu21_psnr": m.pu21_psnr,
        "full_history_deltae_mean": m.deltae_mean,
    }


def darktable_figures(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Unclipped figures of darktable's render of recovered params against the
    target, beside the display PSNR: ``darktable_pu21_psnr``,
    ``darktable_hdrflip_mean``, ``darktable_deltae_mean``."""
    from darkproxy.colour.metrics import compare

    m = compare(output, target)
    return {
        "darktable_pu21_psnr": m.pu21_psnr,
        "darktable_hdrflip_mean": m.hdrflip_mean,
        "darktable_deltae_mean": m.deltae_mean,
    }


def defaults_figures(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """The baseline a regression must beat: darktable's render of the same
    history with the regressed sliders at their defaults, against the target
    (``defaults_psnr`` display, ``defaults_pu21_psnr``)."""
    from darkproxy.colour.metrics import compare

    m = compare(output, target)
    return {"defaults_psnr": m.psnr, "defaults_pu21_psnr": m.pu21_psnr}


def regress_files(
    proxy: Any,
    target_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    input_path: str | os.PathLike[str] | None = None,
    raw: str | os.PathLike[str] | None = None,
    config: RegressConfig | None = None,
    dt: Any = None,
    video: bool = False,
    log: Callable[[str], None] | None = None,
    target_params: Mapping[str, Any] | None = None,
    scale: float | None = None,
    corrections: int = 0,
) -> dict[str, Any]:
    """The ``darkproxy regress`` pipeline. Reads the target (and the input, or
    renders it from ``raw``), regresses, verifies with darktable when a raw is
    known (``raw``, or the ``meta.json`` of a tap-out next to ``input_path``),
    writes ``params.json``, ``proxy_output.tif``, and with a raw
    ``darktable_output.tif``, ``result.xmp`` (the raw's default history with
    the module set to the recovered params: what a photographer opens) and
    ``result_tapout.xmp`` (the same with every later module disabled: the
    history ``darktable_psnr`` is measured on). When the target's params are
    known (``target_params``, or the ``set_params`` of a tap-out's
    ``meta.json`` next to the target), darktable also renders the full history
    with them and with the recovered ones: ``full_history_psnr``
    (:func:`full_history_check`). ``scale``: the images' render scale
    (default: from the input tap-out's ``meta.json`` or the raw's size); a
    scale-dependent proxy refuses one it was not trained on.

    ``corrections``: that many rounds of correction by darktable after the fit (a raw is needed): darktable
    renders the recovered params, the proxy's error there (darktable's output minus the proxy's) is taken off
    the target and the params are fitted again from where they are (one restart). A slider the proxy misplaces
    by its own error moves to where darktable's render meets the target. ``rounds`` in params.json records each
    fit (the first is the plain one): params, proxy and darktable PSNR and, with the target's params known, the
    error of each free slider as a fraction of its range; the round whose darktable render is closest to the
    target is the result (``kept_round``: 0 is the fit before corrections). Returns the params.json dict."""
    from darkproxy.darktable.render import write_tiff

    cfg = config or RegressConfig()
    cfg.check()
    if corrections < 0:
        raise RegressError(f"corrections must be >= 0, got {corrections}")
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    space = proxy.param_space
    resolve_free(space, cfg.params)  # unknown names fail before any render
    target, inp, pre, raw_p = _read_inputs(proxy.module, target_path, input_path, raw, dt, say)
    if corrections and raw_p is None:
        raise RegressError("corrections need darktable's renders of the raw: give --raw (or a tap-out's --input)")
    if raw_p is not None and dt is None:
        raise RegressError("a darktable session is needed to verify the params")
    if scale is None:
        scale = input_scale(inp, pre, Path(input_path) if input_path is not None else None, raw_p)
    if hasattr(proxy, "at_scale"):  # a Proxy: fixed at the images' scale (refused outside its trained range)
        # and the whole image's size where the radius follows it (soften)
        proxy = proxy.at_scale(scale, full_size(inp.shape, scale, raw_p) if proxy.module in FULL_SIZE_RADIUS else None)
    say(f"regressing {', '.join(cfg.params or space.names)} ({cfg.restarts} restarts x {cfg.iters} iters)")
    res = regress(proxy, inp, target, cfg)
    truth = _truth(target_params, target_path) if raw_p is not None else None
    rounds: list[dict[str, Any]] = []
    kept, kept_ver = 0, None
    if corrections:
        fit = _corrected_fit(dt, proxy, raw_p, inp, target, pre, cfg, res, corrections, truth, say)
        res, rounds, kept, kept_ver = fit
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_tiff(out / "proxy_output.tif", res.proxy_output)
    named = space.for_darktable(res.params)
    record = _base_record(proxy, res, named, cfg, target_path, input_path, raw_p, scale)
    if corrections:
        record.update(rounds=rounds, kept_round=kept)
    if raw_p is not None:
        record.update(_darktable_proof(dt, proxy, raw_p, named, target, pre, out, input_path, truth, say, kept_ver))
    if video:
        from darkproxy.engines.regress.optimisation_video import write_optimisation_video

        say("writing the optimisation video")
        record.update(write_optimisation_video(proxy, inp, target, res, out))
    record["seconds"] = time.perf_counter() - t0
    write_json(out / "params.json", record)
    return record


def _corrected_fit(
    dt: Any,
    proxy: Any,
    raw_p: Any,
    inp: np.ndarray,
    target: np.ndarray,
    pre: bool,
    cfg: RegressConfig,
    res: Any,
    corrections: int,
    truth: Mapping[str, Any] | None,
    say: Callable[[str], None],
) -> tuple[Any, list[dict[str, Any]], int, Verification]:
    """:func:`regress_files`'s ``corrections`` after the fit ``res`` -> (the kept fit, the rounds' records, the
    kept one's index, darktable's render of it)."""
    import dataclasses

    space = proxy.param_space
    fits, vers, rounds = [res], [], []
    for k in range(corrections + 1):
        ver = verify_with_darktable(dt, raw_p, proxy.module, space.for_darktable(res.params), target, pre)
        if ver.output.shape != res.proxy_output.shape:
            raise RegressError(f"darktable's output {ver.output.shape} and the proxy's {res.proxy_output.shape} differ")
        rounds.append(_round_record(space, res, ver.psnr, truth))
        vers.append(ver)
        if k == corrections:
            break
        say(f"correction {k + 1} of {corrections}: darktable {ver.psnr:.2f} dB, fitting again")
        corrected = (target - (ver.output - res.proxy_output)).astype(np.float32)
        # restart 0 starts from ``fixed``: the params as recovered
        res = regress(proxy, inp, corrected, dataclasses.replace(cfg, restarts=1), fixed=res.params)
        fits.append(res)
    best = max(range(len(vers)), key=lambda i: -math.inf if math.isnan(vers[i].psnr) else vers[i].psnr)
    say(f"kept round {best} (0: the fit before corrections): darktable {vers[best].psnr:.2f} dB")
    return fits[best], rounds, best, vers[best]


def _round_record(space: Any, res: Any, darktable_psnr: float, truth: Mapping[str, Any] | None) -> dict[str, Any]:
    """One fit of the corrections: its params, PSNRs and, with ``truth``, each free slider's error as a fraction
    of its training range (and their median)."""
    rec: dict[str, Any] = {
        "params": _jsonable({n: res.params[n] for n in res.free}),
        "proxy_psnr": _num(res.proxy_psnr),
        "darktable_psnr": _num(darktable_psnr),
    }
    if truth:
        errs = {}
        for n in res.free:
            s = space.spec(n)
            if n in truth and s.kind in ("float", "int") and s.hi > s.lo:
                errs[n] = s.error(res.params[n], truth[n])[1]
        rec["param_errors"] = errs
        rec["param_error_median"] = float(np.median(list(errs.values()))) if errs else None
    return rec


def _read_inputs(
    module: str,
    target_path: str | os.PathLike[str],
    input_path: str | os.PathLike[str] | None,
    raw: str | os.PathLike[str] | None,
    dt: Any,
    say: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, bool, Path | None]:
    """``(target, module input, pre-demosaic?, raw)``: the input read, or rendered from the raw at
    the target's size; the raw given, or named by the input tap-out's meta.json."""
    target = read_image(target_path, "target")
    raw_p = Path(raw) if raw is not None else None
    if raw_p is not None and not raw_p.is_file():
        from darkproxy.errors import RawError

        raise RawError(f"raw file {raw_p} does not exist")
    if input_path is not None:
        inp = read_image(input_path, "input")
        if raw_p is None:
            raw_p = raw_from_meta(Path(input_path))
        pre = inp.shape[0] == 4  # packed mosaic: a pre-demosaic module
    else:
        if raw_p is None:
            raise RegressError("give the module input (--input) or the raw it comes from (--raw)")
        if dt is None:
            raise RegressError("a darktable session is needed to render the input from the raw")
        say(f"rendering {module}'s input from {raw_p} at {max(target.shape[1:])} px")
        inp, pre = render_module_input(dt, raw_p, module, int(max(target.shape[-2:])))
    _check_shapes(inp, target, pre)
    return target, inp, pre, raw_p


def _base_record(
    proxy: Any,
    res: Any,
    named: Mapping[str, Any],
    cfg: RegressConfig,
    target_path: str | os.PathLike[str],
    input_path: str | os.PathLike[str] | None,
    raw_p: Path | None,
    scale: float | None,
) -> dict[str, Any]:
    """params.json before darktable's proof: the recovered params and how they were found."""
    return {
        "module": proxy.module,
        "params": _jsonable(res.params),
        "normalized": [float(v) for v in res.normalized],
        "free": res.free,
        "darktable_params": _jsonable(named),
        "proxy_psnr": _num(res.proxy_psnr),
        "darktable_psnr": None,
        "loss": res.loss,
        "loss_kind": cfg.loss,
        "regress_seconds": res.seconds,
        "seconds": None,
        "iters": res.iters,
        "restarts": res.restarts,
        "best_restart": res.best_restart,
        "restart_losses": res.restart_losses,
        "loss_history": res.loss_history,
        "lr": cfg.lr,
        "schedule": cfg.schedule,
        "seed": cfg.seed,
        "target": str(target_path),
        "input": str(input_path) if input_path else None,
        "raw": str(raw_p) if raw_p else None,
        "run": str(getattr(proxy, "run_dir", "") or ""),
        "render_scale": scale,
    }


def _darktable_proof(
    dt: Any,
    proxy: Any,
    raw_p: Path,
    named: Mapping[str, Any],
    target: np.ndarray,
    pre: bool,
    out: Path,
    input_path: str | os.PathLike[str] | None,
    truth: Mapping[str, Any] | None,
    say: Callable[[str], None],
    ver: Verification | None = None,
) -> dict[str, Any]:
    """darktable renders the recovered params (result.xmp, result_tapout.xmp, darktable_output.tif; ``ver``: that
    render, already made by the corrections), the module's defaults (the baseline) and, when the target's params
    (``truth``) are known, the full history."""
    from darkproxy.darktable.render import write_tiff

    module, space = proxy.module, proxy.param_space
    check_zoo_proxy(proxy, dt, say)
    if ver is None:
        say("rendering the recovered params with darktable")
        ver = verify_with_darktable(dt, raw_p, module, named, target, pre)
    write_tiff(out / "darktable_output.tif", ver.output)
    ver.sidecar.write(out / "result.xmp")
    ver.tapout_sidecar.write(out / "result_tapout.xmp")
    say("rendering the module's defaults with darktable (the baseline)")
    base_ver = verify_with_darktable(dt, raw_p, module, space.for_darktable(), target, pre)
    record: dict[str, Any] = dict(defaults_figures(base_ver.output, target))
    record.update(
        darktable_psnr=_num(ver.psnr),
        verify_seconds=ver.seconds,
        darktable_psnr_history="tap-out: the raw's default history, modules after "
        f"{module} disabled (result_tapout.xmp)",
        xmp=str(out / "result.xmp"),
        tapout_xmp=str(out / "result_tapout.xmp"),
        **darktable_figures(ver.output, target),
    )
    if truth and not pre:
        say("rendering the full history (result.xmp) and the target's params with darktable")
        record.update(
            full_history_check(
                dt, raw_p, {module: named}, {module: space.for_darktable(truth)}, int(max(target.shape[-2:]))
            )
        )
    else:
        record["full_history_psnr"] = None
    meta_hash = read_tap_meta(Path(input_path)).get("upstream_hash") if input_path is not None else None
    if meta_hash and meta_hash != ver.upstream_hash:
        record["warning"] = (
            "the input's tap-out was made with another upstream history than darktable's "
            "defaults for the raw: darktable_psnr compares against the default history"
        )
        say("warning: " + record["warning"])
    return record


def _truth(target_params: Mapping[str, Any] | None, target_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The target's params: given, or the ``set_params`` of a tap-out's ``meta.json`` next to the target."""
    return dict(target_params) if target_params is not None else read_tap_meta(Path(target_path)).get("set_params")


def _check_shapes(inp: np.ndarray, target: np.ndarray, pre_demosaic: bool) -> None:
    th, tw = target.shape[-2:]
    if inp.shape[0] == 4 or pre_demosaic:
        ok = (2 * inp.shape[-2], 2 * inp.shape[-1]) == (th, tw)
    else:
        ok = inp.shape == target.shape
    if not ok:
        raise RegressError(
            f"input {tuple(inp.shape)} and target {tuple(target.shape)} do not match: render both at the same size"
        )


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    for k, v in d.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = float(v)
        else:
            out[k] = v
    return out
