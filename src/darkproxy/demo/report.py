"""The demo's report.html: every image, plot and number of ``summary.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darkproxy.demo.plan import DemoPlan


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


def _proxies_section(rep: Any, out: Path, s: dict[str, Any]) -> None:
    """The proxies against darktable on the held-out raws."""
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


def _regression_sections(rep: Any, out: Path, s: dict[str, Any]) -> None:
    """The slider and the pipeline regressions."""
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


def _sweep_section(rep: Any, out: Path, s: dict[str, Any]) -> None:
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


def _replica_section(rep: Any, out: Path, s: dict[str, Any]) -> None:
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


def _match_section(rep: Any, out: Path, s: dict[str, Any]) -> None:
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


def write_demo_report(out: Path, s: dict[str, Any], plan: DemoPlan) -> Path:
    from darkproxy.viz.report import HtmlReport

    rep = HtmlReport(f"darkproxy demo ({'quick' if s['quick'] else 'full'}) — darktable {s['darktable_version']}")
    rep.add_text(
        "Every number below was measured in this run: proxies trained on darktable tap-outs of synthetic raws, "
        "evaluated on held-out raws rendered fresh by darktable; regressions verified by darktable's own render "
        "of the recovered sliders.",
        "note",
    )
    for section in (_proxies_section, _regression_sections, _sweep_section, _replica_section, _match_section):
        section(rep, out, s)
    rep.add_heading("Stage timings (s)")
    rep.add_table([{"stage": k, "seconds": v} for k, v in s["stage_seconds"].items()])
    return rep.write(out / "report.html")
