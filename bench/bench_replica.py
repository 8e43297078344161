"""The replica of darktable, raw to display, against darktable's own export, on held-out raws.

    PYTHONPATH=src .venv/bin/python bench/bench_replica.py [--work /tmp/replica-work] [--n 8] [--regress 2]

Held-out raws: synthetic DNGs (256 px) from the zoo plan's held-out photos (coffee,
motorcycle; src/darkproxy/zoo/plan.toml), with noise seed 0 and, as further raws,
seed 1. Per sample: darktable's default history plus a random edit over exposure
(exposure uniform in its zoo range), colorbalancergb and filmicrgb (the zoo's sparse
sampler over each proxy's sliders: 1-3 moved) and sharpen (uniform in its zoo
range), rendered at 128 px (render scale 0.5, the zoo's local proxies' scale). The
replica runs it (exact stages where there are, the zoo's proxies else), and, on the
same renders, the all-proxy variant (the four edited modules through their zoo
proxies) for the attribution. Figures: display PSNR and ΔE2000 against darktable-cli's
8-bit sRGB export (median and worst over samples), per stage (psnr_vs_tapout,
psnr_alone), seconds. Full-chain regression: a target made with hidden sliders
(the sample's edit) is regressed from the default history (those sliders freed);
darktable renders result.xmp and is compared with the target.

Writes ``bench/results/replica.md`` and ``replica.json`` (machine and date). Issue
goals: >= 35 dB median and >= 30 dB worst display PSNR, ΔE2000 mean <= 1.5; the
regression's darktable re-render >= 35 dB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.data.sampling import sample_params  # noqa: E402
from darkproxy.engines.regress import RegressConfig  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.proxy import Proxy  # noqa: E402
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng  # noqa: E402
from darkproxy.replica.fit import render_export, replica_regress  # noqa: E402
from darkproxy.replica.plan import plan_replica  # noqa: E402
from darkproxy.replica.references import render_references, replica_history  # noqa: E402
from darkproxy.replica.run import build_chain, score_replica  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = [("coffee", 0), ("motorcycle", 0), ("coffee", 1), ("motorcycle", 1)]
RAW_SIZE, SIZE = 256, 128
PROXIED = ("exposure", "sharpen", "colorbalancergb", "filmicrgb")  # the all-proxy variant: every edited module
FREE = ["exposure.exposure", "colorbalancergb.saturation_global", "colorbalancergb.contrast", "filmicrgb.contrast"]


def heldout_raws(work: Path) -> list[Path]:
    """The held-out raws (:data:`HELDOUT`) as synthetic DNGs in ``work``, made where missing."""
    work.mkdir(parents=True, exist_ok=True)
    src = default_source_images()
    raws = []
    for name, seed in HELDOUT:
        p = work / f"{name}-s{seed}.dng"
        if not p.is_file():
            write_synthetic_dng(src[name], p, SynthRawSpec(size=RAW_SIZE, seed=seed))
        raws.append(p)
    return raws


def draw_edits(n: int, seed: int) -> list[dict[str, dict[str, Any]]]:
    """``n`` random edits over exposure, colorbalancergb, filmicrgb and sharpen (zoo ranges)."""
    rng = np.random.default_rng(seed)
    cbs, fis = Proxy.load("zoo:colorbalancergb").param_space, Proxy.load("zoo:filmicrgb").param_space
    cb = sample_params(cbs, n, "sparse", seed)
    fi = sample_params(fis, n, "sparse", seed + 1)
    sh = Proxy.load("zoo:sharpen").param_space
    out = []
    for i in range(n):
        moved_cb = {k: v for k, v in cb[i].items() if v != cbs.spec(k).default}
        moved_fi = {k: v for k, v in fi[i].items() if v != fis.spec(k).default}
        out.append(
            {
                "exposure": {"exposure": float(rng.uniform(-2.0, 4.0))},
                "colorbalancergb": moved_cb,
                "filmicrgb": moved_fi,
                "sharpen": {s.name: float(rng.uniform(s.lo, s.hi)) for s in sh.specs},
            }
        )
    return out


def one_sample(dt: Darktable, raw: Path, edit: dict[str, dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    hist = replica_history(dt, raw, None, edit)
    plan = plan_replica(dt, hist, raw)
    renders = render_references(dt, raw, plan, SIZE)
    chain = build_chain(plan, renders)
    t1 = time.perf_counter()
    _, fig = score_replica(chain, renders)
    rep_s = time.perf_counter() - t1
    plan_p = plan_replica(dt, hist, raw, prefer_proxy=PROXIED)
    _, fig_p = score_replica(build_chain(plan_p, renders), renders)
    return {
        "raw": raw.name,
        "edit": edit,
        "psnr": fig["psnr"],
        "deltae_mean": fig["deltae_mean"],
        "deltae_p95": fig["deltae_p95"],
        "stages": fig["stages"],
        "all_proxy": {k: fig_p[k] for k in ("psnr", "deltae_mean", "deltae_p95", "stages")},
        "render_seconds": renders.seconds,
        "replica_seconds": rep_s,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/replica-work")
    ap.add_argument("--n", type=int, default=16, help="samples (edits), spread over the held-out raws")
    ap.add_argument("--regress", type=int, default=4, help="full-chain regressions (first samples)")
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = Path(args.work)
    dt = Darktable()
    raws = heldout_raws(work)
    t0 = time.perf_counter()
    edits = draw_edits(args.n, args.seed)
    samples = []
    for i, e in enumerate(edits):
        s = one_sample(dt, raws[i % len(raws)], e)
        print(f"#{i} {s['raw']}: {s['psnr']:.2f} dB, ΔE {s['deltae_mean']:.2f} ({s['seconds']:.1f} s)", flush=True)
        samples.append(s)
    regs = []
    for i in range(min(args.regress, len(edits))):
        raw = raws[i % len(raws)]
        e = edits[i]
        truth_hist = replica_history(dt, raw, None, e)
        target = render_export(dt, raw, truth_hist, SIZE)
        free = [f for f in FREE if f.split(".", 1)[1] in e.get(f.split(".", 1)[0], {})] or FREE[:1]
        truth = {f: e[f.split(".", 1)[0]][f.split(".", 1)[1]] for f in free}
        start = {m: {k: v for k, v in p.items() if f"{m}.{k}" not in free} for m, p in e.items()}
        r = replica_regress(
            dt,
            raw,
            target,
            work / f"regress{i}",
            free=free,
            sets=start,
            truth=truth,
            config=RegressConfig(iters=args.iters, restarts=args.restarts, seed=i),
        )
        print(f"regress #{i}: darktable {r['darktable_psnr']:.2f} dB (start {r['start_psnr']:.2f})", flush=True)
        regs.append({k: v for k, v in r.items() if k not in ("stages",)})
    out = {
        "machine": machine_info(),
        "raws": [p.name for p in raws],
        "size": SIZE,
        "raw_size": RAW_SIZE,
        "n": len(samples),
        "samples": samples,
        "regress": regs,
        "seconds": time.perf_counter() - t0,
        "summary": summarise(samples, regs),
    }
    res = ROOT / "bench" / "results"
    (res / "replica.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    (res / "replica.md").write_text(markdown(out))
    print((res / "replica.md").read_text())


def summarise(samples: list[dict[str, Any]], regs: list[dict[str, Any]]) -> dict[str, Any]:
    ps = np.array([s["psnr"] for s in samples])
    de = np.array([s["deltae_mean"] for s in samples])
    pp = np.array([s["all_proxy"]["psnr"] for s in samples])
    stages: dict[str, dict[str, list[float]]] = {}
    for s in samples:
        default_kinds = {st["module"]: st["kind"] for st in s["stages"]}
        for st in s["stages"] + [x for x in s["all_proxy"]["stages"] if x["kind"] != default_kinds.get(x["module"])]:
            d = stages.setdefault(f"{st['module']}|{st['kind']}", {"vs": [], "alone": []})
            d["vs"].append(st["psnr_vs_tapout"])
            if st.get("psnr_alone") is not None:
                d["alone"].append(st["psnr_alone"])
    return {
        "psnr_median": float(np.median(ps)),
        "psnr_worst": float(ps.min()),
        "deltae_mean": float(de.mean()),
        "deltae_mean_worst": float(de.max()),
        "all_proxy_psnr_median": float(np.median(pp)),
        "all_proxy_psnr_worst": float(pp.min()),
        "seconds_median": float(np.median([s["seconds"] for s in samples])),
        "replica_seconds_median": float(np.median([s["replica_seconds"] for s in samples])),
        "stages": {
            k: {
                "psnr_vs_tapout_median": float(np.median(v["vs"])) if v["vs"] else None,
                "psnr_alone_median": float(np.median(v["alone"])) if v["alone"] else None,
                "psnr_alone_worst": float(np.min(v["alone"])) if v["alone"] else None,
            }
            for k, v in stages.items()
        },
        "regress_darktable_psnr": [r["darktable_psnr"] for r in regs],
        "regress_start_psnr": [r["start_psnr"] for r in regs],
        "regress_param_error_median": [r.get("param_error_median") for r in regs],
    }


def _f(v: Any, nd: int = 2) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def markdown(o: dict[str, Any]) -> str:
    s = o["summary"]
    m = o["machine"]
    goal = lambda ok: "met" if ok else "missed"  # noqa: E731
    lines = [
        "# The replica vs darktable's export (bench/bench_replica.py)",
        "",
        f"{m['date']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']}, load {m['loadavg']}. "
        f"{o['n']} samples over {len(o['raws'])} held-out raws ({', '.join(o['raws'])}; {o['raw_size']} px, "
        f"rendered at {o['size']} px: render scale 0.5), darktable's default history plus a random edit over "
        "exposure, colorbalancergb, filmicrgb (zoo sparse sampler) and sharpen (zoo ranges). Reference: "
        "darktable-cli's 8-bit sRGB export of the same history at the same size (--hq false). Total "
        f"{o['seconds'] / 60:.1f} min.",
        "",
        "## Replica vs darktable's export",
        "",
        "| variant | display PSNR median | worst | ΔE2000 mean (mean over samples) | worst sample's mean |",
        "|---|---|---|---|---|",
        f"| replica (exact stages where registered, zoo proxies else) | {_f(s['psnr_median'])} | "
        f"{_f(s['psnr_worst'])} | {_f(s['deltae_mean'])} | {_f(s['deltae_mean_worst'])} |",
        "| all-proxy (exposure, sharpen, colorbalancergb, filmicrgb through the zoo) | "
        f"{_f(s['all_proxy_psnr_median'])} | "
        f"{_f(s['all_proxy_psnr_worst'])} | | |",
        "",
        f"Goals: median >= 35 dB {goal(s['psnr_median'] >= 35)} ({_f(s['psnr_median'])}), worst >= 30 dB "
        f"{goal(s['psnr_worst'] >= 30)} ({_f(s['psnr_worst'])}), ΔE2000 mean <= 1.5 {goal(s['deltae_mean'] <= 1.5)} "
        f"({_f(s['deltae_mean'])}). Seconds per sample (median): {_f(s['seconds_median'], 1)} in all, of which "
        f"the replica itself {_f(s['replica_seconds_median'], 2)} (the rest: darktable renders the references).",
        "",
        "## Per-stage attribution (medians over samples)",
        "",
        "psnr_vs_tapout: the chained replica after the stage vs darktable's tap-out there (display PSNR); "
        "psnr_alone: the stage alone on darktable's own input to it (colorout: vs darktable's sRGB export).",
        "",
        "| stage | kind | psnr_vs_tapout | psnr_alone median | psnr_alone worst |",
        "|---|---|---|---|---|",
    ]
    for k, v in s["stages"].items():
        mod, kind = k.split("|")
        lines.append(
            f"| {mod} | {kind} | {_f(v['psnr_vs_tapout_median'])} | {_f(v['psnr_alone_median'])} | "
            f"{_f(v['psnr_alone_worst'])} |"
        )
    lines += ["", "## Full-chain regression", ""]
    if o["regress"]:
        lines += [
            "Target: darktable's export of a sample's edit (hidden sliders); start: the same history with the "
            "freed sliders at darktable's defaults; recovered through the replica, written into result.xmp "
            "and rendered by darktable.",
            "",
            "| raw | freed | darktable(result.xmp) vs target dB | start dB | replica vs target dB | ΔE2000 | "
            "median slider error (% of range) | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in o["regress"]:
            lines.append(
                f"| {Path(r['raw']).name} | {', '.join(r['free'])} | {_f(r['darktable_psnr'])} | "
                f"{_f(r['start_psnr'])} | {_f(r['replica_psnr'])} | {_f(r['darktable_deltae_mean'])} | "
                f"{_f(100 * (r.get('param_error_median') or 0), 1)} | {_f(r['seconds'], 0)} |"
            )
        dp = s["regress_darktable_psnr"]
        lines += ["", f"Goal: darktable's render of result.xmp >= 35 dB: {goal(min(dp) >= 35)} (worst {_f(min(dp))})."]
    lines += ["", "## Per sample", "", "| # | raw | PSNR | ΔE2000 mean | p95 | all-proxy PSNR |"]
    lines.append("|---|---|---|---|---|---|")
    for i, smp in enumerate(o["samples"]):
        lines.append(
            f"| {i} | {smp['raw']} | {_f(smp['psnr'])} | {_f(smp['deltae_mean'])} | {_f(smp['deltae_p95'])} | "
            f"{_f(smp['all_proxy']['psnr'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
