"""regress-eval's figures: the quality-against-time plot and the Markdown summary (results.md)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.engines.regress.benchmark.breakeven import break_even_text
from darkproxy.engines.regress.benchmark.config import multiple_label


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------- plot
def _step_median(traces: list[tuple[list[float], list[float], float]], grid: np.ndarray) -> np.ndarray:
    """Median over samples of step functions ``(x, y, x_end)`` (value = y at the
    last x <= g, defined from x[0] to x_end); NaN unless more than half of the
    samples are defined there."""
    vals = np.full((len(traces), len(grid)), np.nan)
    for i, (x, y, end) in enumerate(traces):
        xs = np.asarray(x, np.float64)
        idx = np.searchsorted(xs, grid, side="right") - 1
        ok = (idx >= 0) & (grid <= end * (1 + 1e-9))
        vals[i, ok] = np.asarray(y, np.float64)[idx[ok]]
    enough = np.sum(~np.isnan(vals), axis=0) * 2 > len(traces)
    med = np.full(len(grid), np.nan)
    if enough.any():
        med[enough] = np.nanmedian(vals[:, enough], axis=0)
    return med


def plot_quality_vs_time(results: dict[str, Any], path: Path) -> None:
    """darktable PSNR and param error against wall time and renders: per black
    box the median over samples of the best-so-far (bold) and each sample's
    trace (faint); the proxy's samples as points; dashed lines at the budgets
    (median unit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    samples = results["samples"]
    colors = {"cma-es": "C0", "bracket-1d": "C0", "nelder-mead": "C1"}
    for lab in results["methods"]:
        col = colors.get(lab, "C4")
        runs = [s["baselines"][lab] for s in samples]
        for row, key in ((0, "darktable_psnr"), (1, "mean_param_error")):
            for col_i, xkey in ((0, "seconds"), (1, "renders")):
                ax = axes[row, col_i]
                for r in runs:
                    tr = r["trace"]
                    y = np.asarray(tr[key], np.float64)
                    if key == "mean_param_error":
                        y = np.maximum(y, 1e-6)
                    ax.step(tr[xkey], y, where="post", color=col, alpha=0.18, lw=0.8)
                # a run that stopped early (PSNR cap, converged) holds its result later on; one that ran
                # out of budget has no data beyond its end
                tr_all = [
                    (r["trace"][xkey], r["trace"][key], r["trace"][xkey][-1] if r["stop"] == "budget" else math.inf)
                    for r in runs
                ]
                lo = max(min(t[0][0] for t in tr_all), 1e-3)
                hi = max(r["trace"][xkey][-1] for r in runs)
                grid = np.geomspace(lo, hi, 300) if hi > lo else np.array([lo])
                med = _step_median(tr_all, grid)
                if key == "mean_param_error":
                    med = np.maximum(med, 1e-6)
                ax.plot(grid, med, color=col, lw=2.2, label=f"{lab} (median of best-so-far)")
    px = [s["proxy"] for s in samples]
    for row, key in ((0, "darktable_psnr"), (1, "mean_param_error")):
        py = [max(p[key], 1e-6) if key == "mean_param_error" else p[key] for p in px]
        axes[row, 0].scatter([p["seconds"] for p in px], py, c="C3", zorder=3, s=18, label="proxy regression")
        axes[row, 1].scatter([p["renders"] for p in px], py, c="C3", zorder=3, s=18, label="proxy regression")

    unit = results["budgets"]["median_unit_s"]
    for m in results["budgets"]["multiples"]:
        for row in range(2):
            axes[row, 0].axvline(m * unit, ls="--", color="0.4", lw=0.8)
        axes[0, 0].text(
            m * unit,
            0.02,
            f" {multiple_label(m)}x",
            transform=axes[0, 0].get_xaxis_transform(),
            fontsize=8,
            color="0.3",
        )
    for ax in axes.ravel():
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[0]:
        ax.axhline(40.0, ls=":", color="C2", lw=1)
        ax.set_ylabel("darktable PSNR vs target (dB)")
    for ax in axes[1]:
        ax.set_yscale("log")
        ax.set_ylabel("mean |param error| (fraction of range)")
    for ax in axes[:, 0]:
        ax.set_xlabel("wall time (s)")
    for ax in axes[:, 1]:
        ax.set_xlabel("darktable images rendered")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    m = results["machine"]
    fig.suptitle(
        f"{results['module']} ({', '.join(results['free_params'])}): proxy regression vs "
        f"{', '.join(results['methods'])} on darktable, {results['n']} samples, {results['size']} px;\n"
        f"budgets {', '.join(multiple_label(b) + 'x' for b in results['budgets']['multiples'])} of the proxy's "
        f"time (median {unit:.1f} s)  [{m['nproc']} x {m['cpu']}]",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------- markdown
def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"| {label} | {r['median_param_error']:.4f} | {r['max_param_error']:.4f} | {r['darktable_psnr']:.1f} | "
        f"{r['darktable_psnr_min']:.1f} | {r['darktable_psnr_p05']:.1f} | {r['pu21_psnr']:.1f} | "
        f"{r['pu21_psnr_min']:.1f} | {r['hdrflip_mean']:.4f} | {r['hdrflip_max']:.4f} | "
        f"{r['median_seconds']:.1f} | {r['median_renders']:.0f} |"
    )


def _baseline_descriptions(results: dict[str, Any]) -> list[str]:
    """One phrase per black box: what it is and its largest budget."""
    base_desc = []
    for b in results["baselines"]:
        upto = f"up to {multiple_label(b['multiples'][-1])}x"
        if b["method"] == "cma-es":
            base_desc.append(
                f"CMA-ES (sigma0 {b['sigma0']}, population {b['popsize'] or 'default'} rendered by one "
                f"darktable-cli process per generation, IPOP restarts when it converges), {upto}"
            )
        elif b["method"] == "bracket-1d":
            base_desc.append(
                f"a batched 1-D bracket search (CMA-ES needs >= 2 params; one darktable-cli process "
                f"per bracket), {upto}"
            )
        else:
            base_desc.append(
                f"SciPy's Nelder-Mead (one render per darktable-cli process, restarts from a random "
                f"point when it converges), {upto}"
            )
    return base_desc


def _settings_lines(results: dict[str, Any]) -> list[str]:
    """Title, what was run, budgets, machine, what the columns mean, skipped raws, warnings."""
    m = results["machine"]
    names = results["free_params"]
    bud = results["budgets"]
    mults = bud["multiples"]
    rg = results["regress"]
    counts = ", ".join(f"{k} {v}" for k, v in results["raw_counts"].items())
    base_desc = _baseline_descriptions(results)
    lines = [
        f"# Slider regression: {results['module']} ({', '.join(names)})",
        "",
    ]
    if not results.get("complete", True):
        lines += [
            f"**Partial: {results['n']} of the {results['n_planned']} planned samples** (the run was "
            "interrupted or is still going).",
            "",
        ]
    lines += [
        f"{results['n']} samples (true params uniform in the training ranges, seed {results['seed']}) over "
        f"{len(results['raws'])} raws, round-robin ({counts}); targets rendered by darktable "
        f"{results['darktable_version']} at {results['size']} px. Proxy regression: {rg['restarts']} restarts x "
        f"{rg['iters']} iterations, loss {rg['loss']}; its time includes rendering the module input and the "
        f"darktable verification render (2 renders). Black boxes driving darktable-cli from the defaults: "
        + "; ".join(base_desc)
        + ".",
        "",
        f"Budgets: {', '.join(multiple_label(b) + 'x' for b in mults)} of the unit = {bud['unit']} (median "
        f"{bud['median_unit_s']:.2f} s). Each black box runs ONCE per sample up to its largest budget; its result at "
        "a budget B is its best-so-far over the darktable batches finished within B seconds of that same run (the "
        "first batch counts even if it alone took longer: overruns are counted in the tables). A run also stops "
        "when its best render reaches the 100 dB PSNR cap.",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, torch {m['torch']} "
        f"(torch threads: {m['torch_threads']}), {m['date']}"
        + (
            f", load average {m['loadavg'][0]:.1f} at the start and {results['machine_end']['loadavg'][0]:.1f} at "
            f"the end ({results['machine_end']['date']}; a shared machine)"
            if m.get("loadavg")
            else ""
        )
        + ".",
        "",
        "Param error: |recovered - true| as a fraction of the training range (median over samples x params, and "
        "max). darktable PSNR: darktable's render of the recovered params vs the target, display-encoded, pooled "
        "(PSNR of the mean squared error over samples) with the minimum and 5th percentile over samples. PU21 "
        "PSNR: PSNR of PU21-encoded luminance (sees highlights above display white), pooled and minimum. HDR-FLIP: "
        "mean over pixels, mean and max over samples (0 = identical).",
        "",
    ]
    if results["unreadable_raws"]:
        lines += [
            "Unreadable raws (skipped): "
            + "; ".join(f"`{Path(u['raw']).name}` ({u['error']})" for u in results["unreadable_raws"]),
            "",
        ]
    for w in results.get("warnings", []):
        lines += [f"Warning: {w}.", ""]
    return lines


def _budget_tables(results: dict[str, Any]) -> list[str]:
    """One table per budget: the proxy and each black box."""
    bud = results["budgets"]
    mults = bud["multiples"]
    lines: list[str] = []
    header = (
        "| method | median param err | max param err | darktable PSNR (dB) | min | p05 | PU21 PSNR (dB) | "
        "PU21 min | HDR-FLIP mean | HDR-FLIP max | median s | median renders |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|"
    a = results["aggregate"]
    for mult in mults:
        lines += [
            f"## Budget {multiple_label(mult)}x (median {mult * bud['median_unit_s']:.1f} s per sample)",
            "",
            header,
            sep,
            _row("proxy regression", a["proxy"]),
        ]
        for lab in results["methods"]:
            r = a[lab].get(multiple_label(mult))
            if r is None:
                lines.append(f"| {lab} | not run at this budget | | | | | | | | | | |")
            else:
                ov = f" ({r['overruns']} overrun)" if r["overruns"] else ""
                lines.append(_row(lab + ov, r))
        lines.append("")
    return lines


def _break_even_lines(results: dict[str, Any]) -> list[str]:
    oo = results["oneoff"]
    lines: list[str] = []
    oneoff = (
        f"{oo['total_s']:.0f} s = dataset generation "
        + (f"{oo['generate_s']:.0f} s" if oo["generate_s"] is not None else "(not given: 0)")
        + f" + training {oo['train_s']:.0f} s"
    )
    lines += [
        "## Break-even",
        "",
        f"Proxy one-off cost: {oneoff}. Equal quality: the baseline's best-so-far darktable PSNR reaches the "
        "proxy's on the same sample. T = median over samples of the seconds it needs (a sample that never gets "
        "there within its run is censored: its time is only known to exceed the run, so T and N come as "
        "ranges). The proxy's total time N x p + one-off is at most N x T from N = ceil(one-off / (T - p)) "
        "images on (p: the proxy's median seconds per image).",
        "",
    ]
    for lab in results["methods"]:
        be = results["break_even"][lab]
        lines.append(f"* **{lab}**, darktable PSNR: {break_even_text(be['darktable_psnr'])}.")
        lines.append(f"* {lab}, param error (at most the proxy's): {break_even_text(be['param_error'])}.")
    return lines


def _per_sample_lines(results: dict[str, Any]) -> list[str]:
    names = results["free_params"]
    lines: list[str] = []
    hdr = ["#", "raw", "true params", "proxy err", "proxy dB", "proxy s"]
    for lab in results["methods"]:
        for b in results["baselines"]:
            if b["method"] == lab:
                hdr += [f"{lab} {multiple_label(x)}x err / dB" for x in b["multiples"]]
        hdr.append(f"{lab} s to proxy dB")
    lines += ["", "## Per sample", "", "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for s in results["samples"]:
        p = s["proxy"]
        tp = ", ".join(f"{k}={_fmt(s['true_params'][k])}" for k in names)
        cells = [
            str(s["index"]),
            Path(s["raw"]).name,
            tp,
            f"{p['mean_param_error']:.4f}",
            f"{p['darktable_psnr']:.1f}",
            f"{p['seconds']:.1f}",
        ]
        for lab in results["methods"]:
            b = s["baselines"][lab]
            cells += [f"{x['mean_param_error']:.4f} / {x['darktable_psnr']:.1f}" for x in b["budgets"]]
            t = b["to_proxy_quality"]["psnr_seconds"]
            cells.append(f"{t:.1f}" if t is not None else f"> {b['run_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def results_markdown(results: dict[str, Any]) -> str:
    """A Markdown summary: settings, machine, one table per budget, break-even,
    unreadable raws and a per-sample table."""
    lines = _settings_lines(results) + _budget_tables(results) + _break_even_lines(results)
    return "\n".join(lines + _per_sample_lines(results)) + "\n"
