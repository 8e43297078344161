"""``darkproxy pipeline regress``: every free param of every stage recovered jointly through
the chained proxies, then proved by darktable's render of them."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.metrics import display_psnr
from darkproxy.darktable.tapout import full_size, input_scale
from darkproxy.data.paramspace import split_module_params
from darkproxy.engines.regress import RegressConfig, RegressError, regress
from darkproxy.engines.regress.optimisation_video import write_optimisation_video
from darkproxy.engines.regress.recover import darktable_figures, defaults_figures, full_history_check
from darkproxy.fsutil import write_json
from darkproxy.pipeline.chain import FlatPipelineProxy, ProxyPipeline, chain_histories, render_chain, stage_settings
from darkproxy.viz.images import read_image


def pipeline_regress(
    dt,
    pipe: ProxyPipeline,
    raw: str | os.PathLike[str],
    target: Any,
    out_dir: str | os.PathLike[str],
    iters: int = 300,
    restarts: int = 4,
    loss: str = "l1",
    seed: int = 0,
    video: bool = True,
    log: Any = None,
    target_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Recover every free param of every stage jointly through the chain.
    ``target``: path of a float TIFF (or a (3, H, W) array) rendered from ``raw``.
    Writes ``params.json`` (recovered params per module, ``proxy_psnr``,
    ``darktable_psnr`` of darktable's render of them vs the target),
    ``result.xmp`` (the raw's full default history with the recovered params:
    what a photographer opens), ``result_chain.xmp`` (the verification history,
    non-stage modules after the first stage disabled), and the optimisation
    frames/video/plot. ``darktable_psnr`` is measured on that chain history;
    with ``target_params`` ({module: {param: value}}) darktable also renders the
    full history with them and with the recovered params (``full_history_psnr``)."""
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = Path(raw)
    tgt = read_image(target, "target") if not isinstance(target, np.ndarray) else target.astype(np.float32)
    size = int(max(tgt.shape[-2:]))
    flat = FlatPipelineProxy(pipe)
    names = pipe.modules_names
    base = dt.default_history(raw)
    in_side, _ = chain_histories(dt, base, [(m, {}) for m in names])
    inp = dt.renderer(max_size=size).render_array(raw, in_side)
    if inp.shape != tgt.shape:
        raise RegressError(
            f"darktable renders {raw.name} at {inp.shape[2]}x{inp.shape[1]} but the target is "
            f"{tgt.shape[2]}x{tgt.shape[1]}: was the target rendered from this raw?"
        )
    sc = input_scale(inp, inp.shape[0] == 4, None, raw)  # as `darkproxy regress` measures it
    pipe.set_scale(sc, full_size(inp.shape, sc, raw))
    free = flat.free_names()
    cfg = RegressConfig(iters=iters, restarts=restarts, loss=loss, seed=seed, params=free)
    res = regress(flat, inp, tgt, cfg)
    recovered = split_module_params(res.params)
    stages = stage_settings(pipe, recovered)
    _, outs = render_chain(dt, raw, stages, size, with_input=False)
    dt_psnr = display_psnr(outs[-1], tgt)
    full = dt.edit(base, updates=dict(stages))
    full.write(out / "result.xmp")
    _, chain_sides = chain_histories(dt, base, stages)
    chain_sides[-1].write(out / "result_chain.xmp")
    files = write_optimisation_video(flat, inp, tgt, res, out) if video else {}
    result = {
        "pipeline": names,
        "raw": str(raw),
        "params": recovered,
        "free": free,
        "normalized": [float(x) for x in res.normalized],
        "proxy_psnr": res.proxy_psnr,
        "darktable_psnr": dt_psnr,
        **darktable_figures(outs[-1], tgt),
        "darktable_psnr_history": "the chain history (result_chain.xmp): non-stage modules after the first "
        "stage disabled",
        "full_history_psnr": None,
        "loss": res.loss,
        "loss_history": res.loss_history,
        "regress_seconds": res.seconds,
        "seconds": time.time() - t0,
        "iters": res.iters,
        "restarts": res.restarts,
        "files": files,
    }
    _, base_outs = render_chain(dt, raw, stage_settings(pipe, {}), size, with_input=False)
    result.update(defaults_figures(base_outs[-1], tgt))
    if target_params is not None:
        result.update(full_history_check(dt, raw, dict(stages), dict(stage_settings(pipe, target_params)), size))
    result["seconds"] = time.time() - t0
    write_json(out / "params.json", result)
    return result
