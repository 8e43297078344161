"""HTML reports of ``darkproxy match``: one reference, and one style over many pairs."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_pairs_report(out: Path, summary: Mapping[str, Any]) -> Path:
    """``index.html`` of ``--pairs``: per pair figures and images, the style's sliders."""
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
    if summary.get("demosaic"):
        d = summary["demosaic"]
        rep.add_text(
            f"Demosaic for every pair: {d['chosen'] or 'each its own (no setting common to all)'} (mean ΔE2000 of "
            "darktable's render over the fitted pairs per setting below; the style leaves demosaic out: set it "
            "for the camera's raws)."
        )
        rep.add_table([{"demosaic": k, "fitted pairs' ΔE2000": v} for k, v in d["fit_deltae_means"].items()])
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
    if summary.get("demosaic"):
        rep.add_heading("Demosaic (darktable's render with each; the closest kept)")
        rep.add_table(
            [{"demosaic": d["label"], "ΔE2000": d["deltae_mean"], "kept": d["chosen"]} for d in summary["demosaic"]]
        )
    rep.add_json_block(dict(summary), "summary.json")
    return rep.write(out / "index.html")
