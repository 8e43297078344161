"""``darkproxy replica regress``: recover sliders of the whole chain from a display-referred target.

The target is an sRGB display image (what darktable exports) rendered from the raw
at the size the replica renders. The replica (:class:`~darkproxy.replica.ReplicaChain`)
outputs display values, so the one regression engine (:func:`darkproxy.engines.regress.regress`:
restarts, bounds by construction, snapping of enums) compares them with the target
as they are. The recovered sliders go into the history (``result.xmp``: the full
history, what a photographer opens), which darktable then renders (its 8-bit sRGB
export, ``darktable.png``) and which is compared with the target.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.colour.metrics import display_image_deltae2000, display_image_psnr
from darkproxy.data.paramspace import split_module_params
from darkproxy.fsutil import write_json
from darkproxy.replica.chain import ReplicaChain
from darkproxy.replica.plan import ReplicaError, plan_replica
from darkproxy.replica.references import Renders, render_references, replica_history
from darkproxy.replica.run import Log, build_chain
from darkproxy.viz.images import read_display_image, save_png, to_uint8


def default_free(chain: ReplicaChain) -> list[str]:
    """The usual sliders (:data:`darkproxy.data.ranges.DEFAULT_FREE`) of every chain module that has them."""
    from darkproxy.data.ranges import DEFAULT_FREE

    names = chain.param_space.names
    out = []
    for st in chain.plan.stages:
        out += [f"{st.key}.{p}" for p in DEFAULT_FREE.get(st.module, ()) if f"{st.key}.{p}" in names]
    return out


def _export_renderer(dt: Any, size: int) -> Any:
    return dt.renderer(max_size=size, icc_type="SRGB", bpp=8)


def _export_image(tiff: Path) -> np.ndarray:
    from darkproxy.darktable.render import read_tiff

    return (read_tiff(tiff) / 255.0).astype(np.float32)


def render_export(dt: Any, raw: Path, history: Any, size: int) -> np.ndarray:
    """darktable's 8-bit sRGB export of ``history`` at ``size`` px -> float (3, H, W) in [0, 1]."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="darkproxy-export-") as td:
        return _export_image(_export_renderer(dt, size).render(raw, history, Path(td) / "export.tif"))


def render_exports(dt: Any, raw: Path, histories: Sequence[Any], size: int) -> list[Any]:
    """:func:`render_export` of each of ``histories`` in one darktable-cli process
    (:func:`~darkproxy.darktable.render.render_jobs`: after a crash, one process each): per history its image,
    or the :class:`~darkproxy.darktable.render.RenderFailure` darktable gave it."""
    import tempfile

    from darkproxy.darktable.render import RenderFailure, RenderJob, render_jobs

    with tempfile.TemporaryDirectory(prefix="darkproxy-export-") as td:
        jobs = [RenderJob(Path(raw), h, Path(td) / f"export{i}.tif") for i, h in enumerate(histories)]
        outs = render_jobs(_export_renderer(dt, size), jobs)
        return [o if isinstance(o, RenderFailure) else _export_image(o) for o in outs]


def replica_regress(
    dt: Any,
    raw: str | os.PathLike[str],
    target: str | os.PathLike[str] | np.ndarray,
    out_dir: str | os.PathLike[str],
    free: Sequence[str] | None = None,
    xmp: str | os.PathLike[str] | None = None,
    sets: Mapping[str, Mapping[str, Any]] | None = None,
    allow_missing: bool = False,
    prefer_proxy: Sequence[str] = (),
    runs: Mapping[str, str] | None = None,
    config: Any = None,
    truth: Mapping[str, Any] | None = None,
    log: Log | None = None,
    from_mosaic: bool = False,
    corrections: int = 0,
) -> dict[str, Any]:
    """Recover ``free`` (``"module.param"``; default :func:`default_free`) from
    ``target`` (a display-referred sRGB image path, or a float (3, H, W) array in
    [0, 1]), starting from the history (``xmp`` or darktable's defaults, plus
    ``sets``). Writes ``result.xmp``, ``replica.png``, ``darktable.png`` (darktable's
    render of ``result.xmp``), ``target.png`` and ``params.json``; returns its dict:
    ``params`` (recovered), ``replica_psnr`` (the replica's output vs the target),
    ``darktable_psnr`` / ``darktable_deltae_mean`` / ``darktable_deltae_p95``
    (darktable's render of ``result.xmp`` vs the target), ``start_psnr`` (darktable's
    render of the starting history), and with ``truth`` ({``"module.param"``: value})
    ``param_errors`` (absolute and as a fraction of the slider's range).

    ``corrections``: that many rounds of output-space correction after the fit, for a replica whose proxies
    err: darktable renders the recovered edit, the replica's error there (darktable's export minus the
    replica's output) is taken off the target, and the sliders are fitted again from where they are (one
    restart). A slider the proxy misplaces because of its own error moves to where darktable's render meets
    the target. ``rounds`` records each fit (the first is the plain one): its params, darktable's PSNR against
    the target and, with ``truth``, the slider errors; the round whose darktable render is closest to the target is
    the result."""
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.errors import RawError

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    if corrections < 0:
        raise ReplicaError(f"corrections must be >= 0, got {corrections}")
    tgt = target.astype(np.float32) if isinstance(target, np.ndarray) else read_display_image(target)
    hist = replica_history(dt, raw, xmp, sets)
    chain, renders = _chain_for_target(dt, raw, hist, tgt, allow_missing, prefer_proxy, runs, say, from_mosaic)
    names = _free_names(chain, free)
    cfg = config or RegressConfig(polish=10)
    cfg.params = names
    cfg.record = False
    proxied = [
        st.key for st in chain.plan.stages if st.kind == "proxy" and any(n.startswith(f"{st.key}.") for n in names)
    ]
    if cfg.polish and proxied:
        say(f"polish off: the sliders of {', '.join(proxied)} are a proxy's (the polish would fit the proxy's error)")
        cfg = dataclasses.replace(cfg, polish=0)  # this run's: the caller's config keeps what it asked for
    say(f"regressing {', '.join(names)} through the replica ({cfg.restarts} restarts x {cfg.iters} iters)")
    size = int(max(tgt.shape[-2:]))
    res, result, dt_img, rounds = _fit(dt, raw, chain, renders, hist, tgt, cfg, corrections, truth, say)
    recovered = {n: res.params[n] for n in names}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.write(out / "result.xmp")
    say("rendering the starting history with darktable")
    start_img = render_export(dt, raw, hist, size)
    with torch.no_grad():
        u = torch.as_tensor(res.normalized)[None]
        rep_img = chain(torch.from_numpy(renders.chain_input)[None], u)[0].numpy()
    save_png(out / "replica.png", to_uint8(rep_img))
    save_png(out / "darktable.png", to_uint8(dt_img))
    save_png(out / "target.png", to_uint8(tgt))
    de, de95 = display_image_deltae2000(dt_img, tgt)
    record: dict[str, Any] = {
        "raw": str(raw),
        "target": str(target) if not isinstance(target, np.ndarray) else None,
        "free": names,
        "params": recovered,
        "replica_psnr": display_image_psnr(rep_img, tgt),
        "darktable_psnr": display_image_psnr(dt_img, tgt),
        "darktable_deltae_mean": de,
        "darktable_deltae_p95": de95,
        "start_psnr": display_image_psnr(start_img, tgt),
        "stages": [
            {"module": s.module, "instance": s.instance, "kind": s.kind} for s in chain.plan.prefix + chain.plan.stages
        ],
        "loss": res.loss,
        "iters": res.iters,
        "restarts": res.restarts,
        "polish": cfg.polish,  # Levenberg-Marquardt iterations after Adam (0 where a regressed slider is a proxy's)
        "regress_seconds": res.seconds,
        "xmp": str(out / "result.xmp"),
        "rounds": rounds,
    }
    if truth:
        record.update(_param_errors(chain, recovered, truth))
    record["seconds"] = time.perf_counter() - t0
    write_json(out / "params.json", record)
    return record


def _chain_for_target(
    dt: Any,
    raw: Path,
    hist: Any,
    tgt: np.ndarray,
    allow_missing: bool,
    prefer_proxy: Sequence[str],
    runs: Mapping[str, str] | None,
    say: Log,
    from_mosaic: bool = False,
) -> tuple[ReplicaChain, Renders]:
    """The replica of ``hist`` at the target's size, and darktable's input to it (refused
    when darktable renders the raw at another size than the target's)."""
    plan = plan_replica(
        dt, hist, raw, allow_missing=allow_missing, prefer_proxy=prefer_proxy, runs=runs, from_mosaic=from_mosaic
    )
    size = int(max(tgt.shape[-2:]))  # a proxy that cannot run at this scale is refused by build_chain
    say(f"rendering the replica's input from {raw.name} at {size} px")
    renders = render_references(dt, raw, plan, size, export=False, taps=False)
    if renders.input.shape[-2:] != tgt.shape[-2:]:
        raise ReplicaError(
            f"darktable renders {raw.name} at {renders.input.shape[2]}x{renders.input.shape[1]} but the target is "
            f"{tgt.shape[2]}x{tgt.shape[1]}: was the target rendered from this raw (long side {size} px)?"
        )
    return build_chain(plan, renders), renders


def _free_names(chain: ReplicaChain, free: Sequence[str] | None) -> list[str]:
    """``free`` (or :func:`default_free`), each checked to be a slider of the chain."""
    from darkproxy.errors import UnknownParam

    names = list(free) if free else default_free(chain)
    for n in names:
        if n not in chain.param_space.names:
            raise UnknownParam(
                f"{n!r} is not a slider of this replica; it has: {', '.join(chain.param_space.names) or 'none'}"
            )
    if not names:
        raise ReplicaError("nothing to recover: give --free module.param,...")
    return names


def _fit(
    dt: Any,
    raw: Path,
    chain: ReplicaChain,
    renders: Renders,
    hist: Any,
    tgt: np.ndarray,
    cfg: Any,
    corrections: int,
    truth: Mapping[str, Any] | None,
    say: Log,
) -> tuple[Any, Any, np.ndarray, list[dict[str, Any]]]:
    """:func:`replica_regress`'s fit and its ``corrections`` -> (the regression's result, the history with its
    sliders, darktable's export of it, the rounds' records)."""
    from darkproxy.engines.regress import regress

    names = list(cfg.params)
    res = regress(chain, renders.chain_input, tgt, cfg)
    size = int(max(tgt.shape[-2:]))
    rounds, recovered = [], {n: res.params[n] for n in names}
    result = _recovered_history(dt, hist, recovered)
    dt_img = render_export(dt, raw, result, size)
    if dt_img.shape != tgt.shape:
        raise ReplicaError(f"darktable's export is {dt_img.shape}, the target {tgt.shape}")
    fits = [(res, result, dt_img)]
    for k in range(corrections):
        rounds.append(_round_record(chain, recovered, dt_img, tgt, truth))
        with torch.no_grad():
            u = torch.as_tensor(res.normalized)[None]
            rep = chain(torch.from_numpy(renders.chain_input)[None], u)[0].numpy()
        say(f"correction {k + 1} of {corrections}: darktable {rounds[-1]['darktable_psnr']:.2f} dB, fitting again")
        # restart 0 starts from ``fixed``: the sliders as recovered
        again = dataclasses.replace(cfg, restarts=1)
        res = regress(chain, renders.chain_input, (tgt - (dt_img - rep)).astype(np.float32), again, fixed=res.params)
        recovered = {n: res.params[n] for n in names}
        result = _recovered_history(dt, hist, recovered)
        dt_img = render_export(dt, raw, result, size)
        fits.append((res, result, dt_img))
    if corrections:  # the round whose darktable render is closest to the target is the answer
        rounds.append(_round_record(chain, recovered, dt_img, tgt, truth))
        best = max(range(len(rounds)), key=lambda i: rounds[i]["darktable_psnr"])
        res, result, dt_img = fits[best]
        say(f"kept round {best} (0: the fit before corrections): darktable {rounds[best]['darktable_psnr']:.2f} dB")
    return res, result, dt_img, rounds


def _recovered_history(dt: Any, hist: Any, recovered: Mapping[str, Any]) -> Any:
    """``hist`` with the ``recovered`` sliders (``"module.param"``; a blend's opacity into its item's blend
    params, in percent as darktable stores it)."""
    from darkproxy.darktable.blendop import item_blend
    from darkproxy.darktable.legacy import upgrade_history
    from darkproxy.darktable.xmp import parse_instance_key
    from darkproxy.replica.blend import BLEND_OPACITY

    opacities = {n[: -len(BLEND_OPACITY) - 1]: v for n, v in recovered.items() if n.endswith("." + BLEND_OPACITY)}
    edits = split_module_params({n: v for n, v in recovered.items() if not n.endswith("." + BLEND_OPACITY)})
    result = dt.edit(upgrade_history(hist, dt.schemas, modules=list(edits)), updates=edits)
    for key, opacity in opacities.items():
        item = result.find(*parse_instance_key(key))
        bp = item_blend(item)
        if bp is None:  # the chain only has this slider for an item that blends
            raise ReplicaError(f"{key}: its history item has no blend params to write the opacity to")
        item.blendop_params = dataclasses.replace(bp, opacity=100.0 * float(opacity)).encode()
    return result


def _round_record(
    chain: ReplicaChain, recovered: Mapping[str, Any], dt_img: np.ndarray, tgt: np.ndarray, truth: Any
) -> dict[str, Any]:
    """One fit of :func:`replica_regress`'s rounds: its params, darktable's PSNR, its slider errors."""
    rec: dict[str, Any] = {"params": dict(recovered), "darktable_psnr": display_image_psnr(dt_img, tgt)}
    if truth:
        pe = _param_errors(chain, recovered, truth)
        rec.update(param_errors=pe["param_errors"], param_error_median=pe["param_error_median"])
    return rec


def _param_errors(chain: ReplicaChain, recovered: Mapping[str, Any], truth: Mapping[str, Any]) -> dict[str, Any]:
    """``truth``, ``param_errors`` (absolute and as a fraction of the slider's range) and their median."""
    errs = {}
    for n in recovered:
        if n in truth:
            e, frac = chain.param_space.spec(n).error(recovered[n], truth[n])
            errs[n] = {"abs": e, "frac": frac}
    fr = [v["frac"] for v in errs.values()]
    return {"truth": dict(truth), "param_errors": errs, "param_error_median": float(np.median(fr)) if fr else None}
