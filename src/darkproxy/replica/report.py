"""``index.html`` of ``darkproxy replica``: the replica beside darktable's export, the per-stage attribution."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
