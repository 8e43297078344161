"""``darkproxy demo``: everything darkproxy does, on its own synthetic raws.

Stages (each recorded in ``OUT/stages/<name>.json`` when done, so a re-run
reuses finished stages; generation and training resume on their own):

1. ``samples``   synthetic Bayer DNGs from scikit-image's photos; the last two
                 are held out (never seen in training).
2. ``generate-M`` darktable tap-out datasets for exposure, colorbalancergb (and
                 sharpen unless quick).
3. ``train-M``   one proxy per module.
4. ``eval-M``    each proxy against fresh darktable renders of held-out raws,
                 next to the identity baseline.
5. ``regress``   slider regression: a held-out raw rendered by darktable with
                 hidden colorbalancergb params; recovered through the proxy,
                 verified by darktable's render of ``result.xmp``.
6. ``pipeline``  exposure -> colorbalancergb (-> sharpen unless quick) chained;
                 joint regression of every module's hidden params, verified by
                 darktable.
7. ``sweep``     exposure swept across its range: frames and an mp4.
8. ``replica``   the whole history, raw to display, through the differentiable
                 replica (an edit over exposure, colorbalancergb, filmicrgb and
                 sharpen) beside darktable's own sRGB export.
9. ``match``     ``darkproxy match``: the edit that reproduces a reference made by
                 darktable with hidden sliders (a few px off, another size) and
                 one made by another renderer (LibRaw through rawpy).
10. ``report``   ``report.html`` with every image, plot and number, and
                 ``summary.json`` with every figure it shows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from darkproxy.darktable.schema import write_json_atomic
from darkproxy.stages import Stages

TRUE_REGRESS = {"saturation_global": 0.25, "vibrance": -0.2, "contrast": 0.15}
TRUE_PIPELINE = {
    "exposure": {"exposure": 1.1, "black": 0.01},
    "colorbalancergb": {"saturation_global": -0.2, "vibrance": 0.25, "contrast": 0.1},
    "sharpen": {"radius": 3.0, "amount": 1.2, "threshold": 0.4},
}
REPLICA_EDIT = {
    "exposure": {"exposure": 1.2},
    "colorbalancergb": {"saturation_global": 0.25, "contrast": 0.15, "vibrance": 0.2},
    "filmicrgb": {"contrast": 1.4, "white_point_source": 5.0},
    "sharpen": {"amount": 1.0},
}
TRUE_MATCH = {
    "exposure": {"exposure": 1.4},
    "colorbalancergb": {"saturation_global": -0.2, "contrast": 0.2, "chroma_global": 0.15},
    "filmicrgb": {"contrast": 1.5},
}


@dataclass
class DemoPlan:
    """Sizes of the demo (``quick``: about 3 min on 2 CPU cores, measured)."""

    quick: bool = True
    n_raws: int = 6
    raw_size: int = 384
    size: int = 128
    samples: int = 64
    train_steps: dict[str, int] = field(default_factory=dict)
    eval_n: int = 4
    regress_iters: int = 200
    sweep_steps: int = 24
    modules: tuple[str, ...] = ("exposure", "colorbalancergb")

    @classmethod
    def make(cls, quick: bool) -> DemoPlan:
        if quick:
            return cls(True, 6, 384, 128, 96, {"exposure": 4000, "colorbalancergb": 8000}, 4, 200, 24)
        return cls(
            False,
            8,
            512,
            192,
            192,
            {"exposure": 8000, "colorbalancergb": 16000, "sharpen": 8000},
            8,
            300,
            50,
            ("exposure", "colorbalancergb", "sharpen"),
        )


def run_demo(
    dt,
    out_dir: str | os.PathLike[str],
    quick: bool = True,
    log: Callable[[str], None] = print,
    device: str = "auto",
    plan: DemoPlan | None = None,
) -> dict[str, Any]:
    """Run every stage (see the module docstring); returns ``summary.json``.
    ``plan`` overrides the sizes that ``quick`` picks (tests run a tiny one)."""
    import numpy as np

    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.evaluate import evaluate, sweep
    from darkproxy.proxy import Proxy
    from darkproxy.raw.synth import make_samples
    from darkproxy.train import TrainConfig, train

    out = Path(out_dir)
    plan = plan or DemoPlan.make(quick)
    st = Stages(out, log)
    t_start = time.time()
    train_dir, held_dir = out / "raws" / "train", out / "raws" / "heldout"

    def samples() -> dict[str, Any]:
        infos = make_samples(out / "raws" / "all", count=plan.n_raws, size=plan.raw_size)
        for d in (train_dir, held_dir):
            d.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(infos):
            dst = (held_dir if k >= len(infos) - 2 else train_dir) / i.path.name
            if not dst.exists():
                shutil.copyfile(i.path, dst)
        return {
            "train": sorted(p.name for p in train_dir.iterdir()),
            "heldout": sorted(p.name for p in held_dir.iterdir()),
        }

    st.run("samples", samples)

    runs: dict[str, Path] = {}
    for m in plan.modules:
        ds = out / "datasets" / m

        def gen(m: str = m, ds: Path = ds) -> dict[str, Any]:
            r = generate(
                dt, train_dir, ds, GenerateOptions(module=m, n=plan.samples, size=plan.size, seed=0), progress=True
            )
            return {
                "samples": r.total,
                "failed": r.failed,
                "samples_per_s": r.samples_per_s,
                "pointwise": r.pointwise,
                "darktable_processes": r.renders,
            }

        st.run(f"generate-{m}", gen)
        run = out / "runs" / m

        def tr(m: str = m, ds: Path = ds, run: Path = run) -> dict[str, Any]:
            resume = (run / "checkpoint.pt").is_file()
            r = train(
                ds, run, TrainConfig(steps=plan.train_steps[m], device=device), resume=resume, overwrite=not resume
            )
            return {
                "best_val_psnr": r.best_val_psnr,
                "val_identity_psnr": r.val_identity_psnr,
                "arch": r.arch,
                "steps": r.steps,
                "train_seconds": r.seconds,
            }

        st.run(f"train-{m}", tr)
        runs[m] = run

    evals: dict[str, Any] = {}
    for m in plan.modules:

        def ev(m: str = m) -> dict[str, Any]:
            res = evaluate(dt, Proxy.load(runs[m]), held_dir, out / "eval" / m, n=plan.eval_n, size=plan.size)
            return {
                "proxy": res.metrics["proxy"],
                "identity": res.metrics["identity"],
                "report": f"eval/{m}/index.html",
            }

        evals[m] = st.run(f"eval-{m}", ev)

    held = sorted(held_dir.iterdir())
    regress_raw = held[0]

    def reg() -> dict[str, Any]:
        from darkproxy.darktable.render import write_tiff
        from darkproxy.darktable.tapout import tapout
        from darkproxy.recover import regress_files
        from darkproxy.regress import RegressConfig

        d = out / "regress"
        tp = tapout(dt, regress_raw, "colorbalancergb", TRUE_REGRESS, max_size=plan.size)
        write_tiff(d / "target.tif", tp.output)
        proxy = Proxy.load(runs["colorbalancergb"])
        rec = regress_files(
            proxy,
            d / "target.tif",
            d,
            raw=regress_raw,
            dt=dt,
            config=RegressConfig(iters=plan.regress_iters, restarts=4),
            video=True,
            target_params=TRUE_REGRESS,
        )
        space = proxy.param_space
        errs = {k: abs(rec["params"][k] - v) / (space.spec(k).hi - space.spec(k).lo) for k, v in TRUE_REGRESS.items()}
        return {
            "module": "colorbalancergb",
            "raw": regress_raw.name,
            "true": TRUE_REGRESS,
            "recovered": rec["params"],
            "param_error": errs,
            "param_error_median": float(np.median(list(errs.values()))),
            "param_error_max": float(max(errs.values())),
            **_regress_figures(rec),
        }

    regress_res = st.run("regress", reg)

    def pipe() -> dict[str, Any]:
        from darkproxy.darktable.render import write_tiff
        from darkproxy.pipeline import (
            PipelineConfig,
            ProxyPipeline,
            StageConfig,
            _render_chain,
            pipeline_regress,
            stage_settings,
        )

        d = out / "pipeline"
        d.mkdir(parents=True, exist_ok=True)
        true = {m: v for m, v in TRUE_PIPELINE.items() if m in runs}
        cfg = PipelineConfig("demo", [StageConfig(m, runs[m]) for m in true])
        (d / "pipeline.toml").write_text(cfg.dump())
        p = ProxyPipeline.load(cfg)
        _, outs = _render_chain(dt, regress_raw, stage_settings(p, true), plan.size, with_input=False)
        write_tiff(d / "target.tif", outs[-1])
        rec = pipeline_regress(
            dt, p, regress_raw, d / "target.tif", d, iters=plan.regress_iters, restarts=4, target_params=true
        )
        errs = {}
        for m, vals in true.items():
            sp = p.proxies[p.modules_names.index(m)].param_space

            for k, v in vals.items():
                errs[f"{m}.{k}"] = abs(rec["params"][m][k] - v) / (sp.spec(k).hi - sp.spec(k).lo)
        return {
            "pipeline": p.modules_names,
            "true": true,
            "recovered": rec["params"],
            "param_error": errs,
            "param_error_median": float(np.median(list(errs.values()))),
            "param_error_max": float(max(errs.values())),
            **_regress_figures(rec),
        }

    pipe_res = st.run("pipeline", pipe)

    def sw() -> dict[str, Any]:
        r = sweep(
            dt,
            Proxy.load(runs["exposure"]),
            "exposure",
            regress_raw,
            out / "sweep",
            steps=plan.sweep_steps,
            video="sweep.mp4",
            size=plan.size,
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

    sweep_res = st.run("sweep", sw)

    def rep() -> dict[str, Any]:
        from darkproxy.replica.run import run_replica

        r = run_replica(dt, regress_raw, out / "replica", sets=REPLICA_EDIT, max_size=plan.size)
        return {
            "raw": regress_raw.name,
            "edit": REPLICA_EDIT,
            **{k: r[k] for k in ("psnr", "deltae_mean", "deltae_p95", "seconds", "replica_seconds", "render_scale")},
            "stages": [{k: s.get(k) for k in ("module", "kind", "psnr_vs_tapout", "psnr_alone")} for s in r["stages"]],
        }

    replica_res = st.run("replica", rep)

    def mat() -> dict[str, Any]:
        import rawpy
        from skimage.transform import resize

        from darkproxy.match import match
        from darkproxy.regress import RegressConfig
        from darkproxy.replica.fit import render_export
        from darkproxy.replica.run import replica_history

        # a reference as another tool gives it: a px off, 90 % of the size
        img = render_export(dt, regress_raw, replica_history(dt, regress_raw, None, TRUE_MATCH), plan.size)
        cut = img[:, 1:, 1:]
        ref = np.stack([resize(c, (round(cut.shape[1] * 0.9), round(cut.shape[2] * 0.9))) for c in cut])
        with rawpy.imread(str(regress_raw)) as rp:
            other = np.moveaxis(rp.postprocess(use_camera_wb=True, output_bps=8), -1, 0).astype(np.float32) / 255.0
        cfg = RegressConfig(iters=plan.regress_iters, restarts=4)
        res = {}
        for name, r_img in (("darktable", ref.astype(np.float32)), ("rawpy", other)):
            m = match(dt, regress_raw, r_img, out / "match" / name, max_size=plan.size, config=cfg)
            res[name] = {
                k: m[k] for k in ("deltae_mean", "deltae_p95", "psnr", "default_deltae_mean", "params", "seconds")
            }
        return {"raw": regress_raw.name, "hidden": TRUE_MATCH, **res}

    match_res = st.run("match", mat)

    summary = {
        "quick": plan.quick,
        "darktable_version": dt.version,
        "plan": asdict(plan),
        "proxies": {
            m: {
                "heldout_psnr": evals[m]["proxy"]["psnr"],
                "identity_psnr": evals[m]["identity"]["psnr"],
                **{
                    f"heldout_{k}": evals[m]["proxy"][k]
                    for k in ("psnr_min", "psnr_p05", "pu21_psnr", "pu21_psnr_min", "hdrflip_mean", "hdrflip_max")
                },
                "identity_pu21_psnr": evals[m]["identity"]["pu21_psnr"],
                "identity_hdrflip_mean": evals[m]["identity"]["hdrflip_mean"],
                "heldout_ssim": evals[m]["proxy"]["ssim"],
                "heldout_deltae": evals[m]["proxy"]["deltae_mean"],
                "best_val_psnr": st.results[f"train-{m}"]["result"]["best_val_psnr"],
                "arch": st.results[f"train-{m}"]["result"]["arch"],
            }
            for m in plan.modules
        },
        "slider_regression": regress_res,
        "pipeline_regression": pipe_res,
        "sweep": sweep_res,
        "replica": replica_res,
        "match": match_res,
        "stage_seconds": {k: v["seconds"] for k, v in st.results.items()},
        "total_seconds_this_run": time.time() - t_start,
    }
    write_demo_report(out, summary, plan)
    write_json_atomic(out / "summary.json", summary)
    log(f"report: {out / 'report.html'}")
    return summary


def _regress_figures(rec: dict[str, Any]) -> dict[str, Any]:
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


def _regress_text(r: dict[str, Any], history: str) -> str:
    return (
        f"proxy PSNR {r['proxy_psnr']:.2f} dB. darktable's render of the recovered sliders vs the target on the "
        f"{history} (later modules disabled): {r['darktable_psnr']:.2f} dB display, {r['darktable_pu21_psnr']:.2f} dB "
        f"PU21, HDR-FLIP {r['darktable_hdrflip_mean']:.4f} (the sliders at their defaults: {r['defaults_psnr']:.2f} dB "
        f"display, {r['defaults_pu21_psnr']:.2f} dB PU21). Full history (result.xmp, every module on, as a "
        f"photographer opens it) vs the same history with the true sliders: {r['full_history_psnr']:.2f} dB display, "
        f"ΔE2000 {r['full_history_deltae_mean']:.3f}. Worst param error {100 * r['param_error_max']:.2f} % of "
        f"its range."
    )


def write_demo_report(out: Path, s: dict[str, Any], plan: DemoPlan) -> Path:
    from darkproxy.viz.report import HtmlReport

    rep = HtmlReport(f"darkproxy demo ({'quick' if s['quick'] else 'full'}) — darktable {s['darktable_version']}")
    rep.add_text(
        "Every number below was measured in this run: proxies trained on darktable tap-outs of synthetic raws, "
        "evaluated on held-out raws rendered fresh by darktable; regressions verified by darktable's own render "
        "of the recovered sliders.",
        "note",
    )
    rep.add_heading("Proxies vs darktable (held-out raws)")
    rep.add_text(
        "Display PSNR is pooled over the held-out samples (PSNR of the mean squared error) with the worst "
        "sample beside it; it clips at linear 1.0. PU21 PSNR (luminance, 1.0 = 100 cd/m², unclipped to "
        "10,000 cd/m²) and HDR-FLIP (0 = identical) see the highlights the display image clips.",
        "note",
    )
    rep.add_table(
        [
            {
                "module": m,
                "arch": v["arch"],
                "proxy PSNR (dB)": v["heldout_psnr"],
                "worst sample (dB)": v["heldout_psnr_min"],
                "PU21 PSNR (dB)": v["heldout_pu21_psnr"],
                "PU21 worst (dB)": v["heldout_pu21_psnr_min"],
                "HDR-FLIP": v["heldout_hdrflip_mean"],
                "identity PSNR (dB)": v["identity_psnr"],
                "identity PU21 (dB)": v["identity_pu21_psnr"],
                "SSIM": v["heldout_ssim"],
                "ΔE2000": v["heldout_deltae"],
                "val PSNR (dB)": v["best_val_psnr"],
            }
            for m, v in s["proxies"].items()
        ]
    )
    for m in s["proxies"]:
        imgs = sorted((out / "eval" / m / "img").glob("*.png"))[:2]
        for p in imgs:
            rep.add_image(p, f"{m}: input | darktable | proxy | error x10", name=f"eval-{m}-{p.name}")
    r = s["slider_regression"]
    rep.add_heading("Slider regression (colorbalancergb, hidden params)")
    rep.add_table(
        [
            {
                "param": k,
                "true": r["true"][k],
                "recovered": r["recovered"][k],
                "error (% of range)": 100 * r["param_error"][k],
            }
            for k in r["true"]
        ]
    )
    rep.add_text(_regress_text(r, "tap-out history"))
    for name in ("optimisation.png",):
        if (out / "regress" / name).is_file():
            rep.add_image(out / "regress" / name, "loss and params per iteration", name="regress-" + name)
    if (out / "regress" / "optimisation.mp4").is_file():
        rep.add_video(out / "regress" / "optimisation.mp4", "the optimisation (proxy | target)")
    p = s["pipeline_regression"]
    rep.add_heading(f"Pipeline regression ({' → '.join(p['pipeline'])}, all params jointly)")
    rep.add_table([{"param": k, "error (% of range)": 100 * v} for k, v in p["param_error"].items()])
    rep.add_text(_regress_text(p, "chain history"))
    if (out / "pipeline" / "optimisation.png").is_file():
        rep.add_image(out / "pipeline" / "optimisation.png", "joint optimisation", name="pipeline-optimisation.png")
    sw = s["sweep"]
    rep.add_heading("Exposure sweep: proxy | darktable")
    rep.add_text(
        f"Over {sw['frames']} steps: display PSNR {sw['psnr']:.2f} dB pooled, worst step {sw['psnr_min']:.2f} dB; "
        f"PU21 PSNR {sw['pu21_psnr']:.2f} dB pooled, worst step {sw['pu21_psnr_min']:.2f} dB; HDR-FLIP worst "
        f"step {sw['hdrflip_max']:.4f}."
    )
    if (out / "sweep" / "psnr.png").is_file():
        rep.add_image(
            out / "sweep" / "psnr.png", "display and PU21 PSNR against the exposure value", name="sweep-psnr.png"
        )
    frames = sorted((out / "sweep" / "frames").glob("*.png"))
    for f in frames[:: max(1, len(frames) // 3)][:3]:
        rep.add_image(f, f"frame {f.stem}", name=f"sweep-{f.name}")
    if (out / "sweep" / "sweep.mp4").is_file():
        rep.add_video(out / "sweep" / "sweep.mp4", "the sweep as a video")
    r = s["replica"]
    rep.add_heading("The replica: raw to display, differentiable, beside darktable")
    rep.add_text(
        f"darktable's default history plus an edit over exposure, colorbalancergb, filmicrgb and sharpen, run "
        f"raw to display through the replica (exact torch ports of darktable's maths where registered, proxies "
        f"else; the mosaic stages are darktable's render) on held-out {r['raw']}: display PSNR {r['psnr']:.2f} dB "
        f"against darktable's own sRGB export, ΔE2000 mean {r['deltae_mean']:.3f} (p95 {r['deltae_p95']:.3f}); "
        f"the replica ran in {r['replica_seconds']:.2f} s."
    )
    for fn, c in (
        ("replica.png", "the replica"),
        ("darktable.png", "darktable's export"),
        ("error.png", "|replica - darktable| x10"),
    ):
        if (out / "replica" / fn).is_file():
            rep.add_image(out / "replica" / fn, c, name=f"replica-{fn}")
    rep.add_table(r["stages"])
    mt = s["match"]
    rep.add_heading("darkproxy match: the darktable edit that reproduces a reference")
    rep.add_text(
        "References of held-out "
        f"{mt['raw']}: one made by darktable with hidden sliders (then cropped by a px and resized), one made by "
        "another renderer (LibRaw through rawpy). The sliders of exposure, colorbalancergb and filmicrgb are fitted "
        "through the replica; figures are darktable's own render of result.xmp against the reference, beside "
        "darktable's defaults."
    )
    rep.add_table(
        [
            {
                "reference": k,
                "ΔE2000 mean": mt[k]["deltae_mean"],
                "ΔE2000 p95": mt[k]["deltae_p95"],
                "defaults ΔE2000": mt[k]["default_deltae_mean"],
                "PSNR (dB)": mt[k]["psnr"],
                "seconds": mt[k]["seconds"],
            }
            for k in ("darktable", "rawpy")
        ]
    )
    for k in ("darktable", "rawpy"):
        for fn, c in (("reference.png", "reference"), ("default.png", "defaults"), ("result.png", "matched")):
            if (out / "match" / k / fn).is_file():
                rep.add_image(out / "match" / k / fn, f"{k}: {c}", name=f"match-{k}-{fn}")
    rep.add_heading("Stage timings (s)")
    rep.add_table([{"stage": k, "seconds": v} for k, v in s["stage_seconds"].items()])
    return rep.write(out / "report.html")
