"""The demo's stages, one function each: what it does and the record it leaves
(``OUT/stages/<name>.json``, reused by a re-run)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.demo.plan import REPLICA_EDIT, TRUE_MATCH, TRUE_PIPELINE, TRUE_REGRESS, DemoPlan


@dataclass
class DemoRun:
    """What the stages share: darktable, the output folder, the plan, the raws' folders and the
    trained runs (module -> run folder)."""

    dt: Any
    out: Path
    plan: DemoPlan
    device: str
    log: Callable[[str], None]
    runs: dict[str, Path] = field(default_factory=dict)

    @property
    def train_dir(self) -> Path:
        return self.out / "raws" / "train"

    @property
    def held_dir(self) -> Path:
        return self.out / "raws" / "heldout"

    def regress_raw(self) -> Path:
        """The held-out raw the regressions, the sweep, the replica and match work on."""
        return sorted(self.held_dir.iterdir())[0]


def samples(d: DemoRun) -> dict[str, Any]:
    """Synthetic raws; the last two held out."""
    from darkproxy.raw.synth import make_samples

    infos = make_samples(d.out / "raws" / "all", count=d.plan.n_raws, size=d.plan.raw_size)
    for folder in (d.train_dir, d.held_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(infos):
        dst = (d.held_dir if k >= len(infos) - 2 else d.train_dir) / i.path.name
        if not dst.exists():
            shutil.copyfile(i.path, dst)
    return {
        "train": sorted(p.name for p in d.train_dir.iterdir()),
        "heldout": sorted(p.name for p in d.held_dir.iterdir()),
    }


def generate_module(d: DemoRun, m: str) -> dict[str, Any]:
    from darkproxy.data.generate import GenerateOptions, generate

    opts = GenerateOptions(module=m, n=d.plan.samples, size=d.plan.size, seed=0)
    r = generate(d.dt, d.train_dir, d.out / "datasets" / m, opts, progress=True)
    return {
        "samples": r.total,
        "failed": r.failed,
        "samples_per_s": r.samples_per_s,
        "pointwise": r.pointwise,
        "darktable_processes": r.renders,
    }


def train_module(d: DemoRun, m: str) -> dict[str, Any]:
    from darkproxy.engines.train import TrainConfig, train

    run = d.out / "runs" / m
    resume = (run / "checkpoint.pt").is_file()
    cfg = TrainConfig(steps=d.plan.train_steps[m], device=d.device)
    r = train(d.out / "datasets" / m, run, cfg, resume=resume, overwrite=not resume)
    return {
        "best_val_psnr": r.best_val_psnr,
        "val_identity_psnr": r.val_identity_psnr,
        "arch": r.arch,
        "steps": r.steps,
        "train_seconds": r.seconds,
    }


def eval_module(d: DemoRun, m: str) -> dict[str, Any]:
    from darkproxy.engines.evaluate import evaluate_proxy
    from darkproxy.proxy import Proxy

    res = evaluate_proxy(d.dt, Proxy.load(d.runs[m]), d.held_dir, d.out / "eval" / m, n=d.plan.eval_n, size=d.plan.size)
    return {"proxy": res.metrics["proxy"], "identity": res.metrics["identity"], "report": f"eval/{m}/index.html"}


def regress_figures(rec: dict[str, Any]) -> dict[str, Any]:
    """What a regression summary reports: the proxy's PSNR, darktable's render
    of the recovered params against the target (tap-out / chain history:
    display, PU21, HDR-FLIP) and the full history (result.xmp) against the same
    history with the true params."""
    keys = (
        "proxy_psnr",
        "darktable_psnr",
        "darktable_pu21_psnr",
        "darktable_hdrflip_mean",
        "darktable_deltae_mean",
        "full_history_psnr",
        "full_history_pu21_psnr",
        "full_history_deltae_mean",
        "defaults_psnr",
        "defaults_pu21_psnr",
    )
    return {k: rec.get(k) for k in keys}


def _errors(errs: dict[str, float]) -> dict[str, Any]:
    return {
        "param_error": errs,
        "param_error_median": float(np.median(list(errs.values()))),
        "param_error_max": float(max(errs.values())),
    }


def slider_regression(d: DemoRun) -> dict[str, Any]:
    """colorbalancergb's hidden sliders recovered through the proxy, verified by darktable."""
    from darkproxy.darktable.render import write_tiff
    from darkproxy.darktable.tapout import tapout
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.engines.regress.recover import regress_files
    from darkproxy.proxy import Proxy

    raw, out = d.regress_raw(), d.out / "regress"
    tp = tapout(d.dt, raw, "colorbalancergb", TRUE_REGRESS, max_size=d.plan.size)
    write_tiff(out / "target.tif", tp.output)
    proxy = Proxy.load(d.runs["colorbalancergb"])
    rec = regress_files(
        proxy,
        out / "target.tif",
        out,
        raw=raw,
        dt=d.dt,
        config=RegressConfig(iters=d.plan.regress_iters, restarts=4),
        video=True,
        target_params=TRUE_REGRESS,
    )
    space = proxy.param_space
    errs = {k: space.spec(k).error(rec["params"][k], v)[1] for k, v in TRUE_REGRESS.items()}
    return {
        "module": "colorbalancergb",
        "raw": raw.name,
        "true": TRUE_REGRESS,
        "recovered": rec["params"],
        **_errors(errs),
        **regress_figures(rec),
    }


def pipeline_regression(d: DemoRun) -> dict[str, Any]:
    """Every trained module chained; all their hidden sliders recovered jointly."""
    from darkproxy.darktable.render import write_tiff
    from darkproxy.pipeline import (
        PipelineConfig,
        ProxyPipeline,
        StageConfig,
        pipeline_regress,
        render_chain,
        stage_settings,
    )

    raw, out = d.regress_raw(), d.out / "pipeline"
    out.mkdir(parents=True, exist_ok=True)
    true = {m: v for m, v in TRUE_PIPELINE.items() if m in d.runs}
    cfg = PipelineConfig("demo", [StageConfig(m, d.runs[m]) for m in true])
    (out / "pipeline.toml").write_text(cfg.dump())
    p = ProxyPipeline.load(cfg)
    _, outs = render_chain(d.dt, raw, stage_settings(p, true), d.plan.size, with_input=False)
    write_tiff(out / "target.tif", outs[-1])
    rec = pipeline_regress(
        d.dt, p, raw, out / "target.tif", out, iters=d.plan.regress_iters, restarts=4, target_params=true
    )
    errs = {}
    for m, vals in true.items():
        sp = p.proxies[p.modules_names.index(m)].param_space
        for k, v in vals.items():
            errs[f"{m}.{k}"] = sp.spec(k).error(rec["params"][m][k], v)[1]
    return {
        "pipeline": p.modules_names,
        "true": true,
        "recovered": rec["params"],
        **_errors(errs),
        **regress_figures(rec),
    }


def exposure_sweep(d: DemoRun) -> dict[str, Any]:
    from darkproxy.engines.evaluate import sweep
    from darkproxy.proxy import Proxy

    r = sweep(
        d.dt,
        Proxy.load(d.runs["exposure"]),
        "exposure",
        d.regress_raw(),
        d.out / "sweep",
        steps=d.plan.sweep_steps,
        video="sweep.mp4",
        size=d.plan.size,
    )
    sm = r.summary  # pooled over the steps, worst step beside it
    return {
        "frames": len(r.frames),
        "video": "sweep/sweep.mp4",
        **{
            k: sm[k]
            for k in ("psnr", "psnr_min", "psnr_p05", "pu21_psnr", "pu21_psnr_min", "hdrflip_mean", "hdrflip_max")
        },
        "ffmpeg_command": r.ffmpeg_command,
    }


def replica(d: DemoRun) -> dict[str, Any]:
    from darkproxy.replica.run import run_replica

    raw = d.regress_raw()
    r = run_replica(d.dt, raw, d.out / "replica", sets=REPLICA_EDIT, max_size=d.plan.size)
    return {
        "raw": raw.name,
        "edit": REPLICA_EDIT,
        **{k: r[k] for k in ("psnr", "deltae_mean", "deltae_p95", "seconds", "replica_seconds", "render_scale")},
        "stages": [{k: s.get(k) for k in ("module", "kind", "psnr_vs_tapout", "psnr_alone")} for s in r["stages"]],
    }


def match_references(d: DemoRun) -> dict[str, Any]:
    """``darkproxy match`` on a darktable-made reference (a px off, 90 % of the size) and a
    rawpy-made one."""
    import rawpy
    from skimage.transform import resize

    from darkproxy.engines.regress import RegressConfig
    from darkproxy.match import match
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import replica_history

    raw = d.regress_raw()
    # a reference as another tool gives it: a px off, 90 % of the size
    img = render_export(d.dt, raw, replica_history(d.dt, raw, None, TRUE_MATCH), d.plan.size)
    cut = img[:, 1:, 1:]
    ref = np.stack([resize(c, (round(cut.shape[1] * 0.9), round(cut.shape[2] * 0.9))) for c in cut])
    with rawpy.imread(str(raw)) as rp:
        other = np.moveaxis(rp.postprocess(use_camera_wb=True, output_bps=8), -1, 0).astype(np.float32) / 255.0
    cfg = RegressConfig(iters=d.plan.regress_iters, restarts=4)
    res = {}
    for name, r_img in (("darktable", ref.astype(np.float32)), ("rawpy", other)):
        m = match(d.dt, raw, r_img, d.out / "match" / name, max_size=d.plan.size, config=cfg)
        res[name] = {k: m[k] for k in ("deltae_mean", "deltae_p95", "psnr", "default_deltae_mean", "params", "seconds")}
    return {"raw": raw.name, "hidden": TRUE_MATCH, **res}
