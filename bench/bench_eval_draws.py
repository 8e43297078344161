"""Proxies side by side on more held-out draws than the zoo's 8: ``darkproxy eval`` (the command a user runs) of each
run on the same raws, draws and seed, one table.

    python bench/bench_eval_draws.py --images HELDOUT_RAWS -n 32 --run NAME=RUN_DIR [--run NAME=RUN_DIR ...] \
        [--sweep PARAM=V1,V2,...] --out bench/results --name pointwise_32_draws

Why: a worst-sample figure over 8 draws is one draw; the zoo's goals read a worst case, so a proxy chosen over
another on 8 draws is checked here on more. ``--sweep``: each run once per value, the slider pinned there
(``darkproxy eval --set``), the others drawn. Writes ``NAME.json`` and ``NAME.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_eval(
    run: Path, images: Path, n: int, sampler: str, seed: int, pin: str | None = None, scales: str | None = None
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """``darkproxy eval`` of ``run`` (``pin``: ``PARAM=VALUE`` for ``--set``; ``scales``: its ``--scales``): its
    metrics.json and metrics.csv's rows (one per draw: the sliders and the figures)."""
    with tempfile.TemporaryDirectory(prefix="darkproxy-evaldraws-") as td:
        cmd = [sys.executable, "-m", "darkproxy", "eval", str(run), "--images", str(images), "-n", str(n)]
        cmd += ["--sampler", sampler, "--seed", str(seed), "-o", td, "-q"] + (["--set", pin] if pin else [])
        cmd += ["--scales", scales] if scales else []
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        with (Path(td) / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        return json.loads((Path(td) / "metrics.json").read_text()), rows


def evaluate(
    run: Path, images: Path, n: int, sampler: str, seed: int, pin: str | None = None, scales: str | None = None
) -> dict[str, Any]:
    """:func:`run_eval`'s metrics.json: the proxy and identity figures, and per render scale where it has them."""
    m, _ = run_eval(run, images, n, sampler, seed, pin, scales)
    per = [{k: s[k] for k in ("scale", "psnr_median", "psnr_min")} for s in m.get("per_scale") or []]
    return {"proxy": m["proxy"], "identity": m.get("identity"), "per_scale": per}


def per_scale(per: list[dict[str, Any]]) -> str:
    """``scale S: median / worst, ...`` or ``-``."""
    return ", ".join(f"{s['scale']:g}: {s['psnr_median']:.1f} / {s['psnr_min']:.1f}" for s in per) or "-"


def markdown(o: dict[str, Any]) -> str:
    lines = [
        f"# Proxies on {o['n']} held-out draws (bench/bench_eval_draws.py)",
        "",
        f"{o['date']}, {o['machine']}. `darkproxy eval RUN --images {o['images']} -n {o['n']} --sampler "
        f"{o['sampler']} --seed {o['seed']}{' --scales ' + o['scales'] if o.get('scales') else ''}` for each run: "
        "the same raws and draws for all (display PSNR, dB; "
        f"the zoo's own held-out figures are over 8 draws). {o['minutes']:.1f} min.",
        "",
        "| run | module | pinned | median | worst | 5th percentile | pooled | per render scale: median / worst |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in o["rows"]:
        p = r["proxy"]
        lines.append(
            f"| {r['name']} | {r['module']} | {r.get('pin') or '-'} | {p['psnr_median']:.1f} | {p['psnr_min']:.1f} | "
            f"{p['psnr_p05']:.1f} | {p['psnr']:.1f} | {per_scale(r.get('per_scale') or [])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="folder of held-out raws")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--sampler", default="sparse", choices=("sparse", "uniform"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--name", default="eval_draws")
    ap.add_argument("--sweep", metavar="PARAM=V1,V2,...", help="each run once per value of PARAM (the others drawn)")
    ap.add_argument("--scales", metavar="S1,S2,...", help="render scales (darkproxy eval --scales): the same draws")
    a = ap.parse_args()
    t0 = time.perf_counter()
    pins: list[str | None] = [None]
    if a.sweep:
        param, _, values = a.sweep.partition("=")
        pins = [f"{param}={v}" for v in values.split(",")]
    runs = [(name, Path(path)) for name, _, path in (spec.rpartition("=") for spec in a.run)]  # a name may hold "="
    for name, run in runs:
        if not name or not (run / "run.json").is_file():
            ap.error(f"--run {name or '?'}={run}: expected NAME=RUN_DIR with RUN_DIR/run.json")
    rows = []
    for name, run in runs:
        module = json.loads((run / "run.json").read_text())["module"]
        for pin in pins:
            res = evaluate(run, Path(a.images), a.n, a.sampler, a.seed, pin, a.scales)
            rows.append({"name": name, "run": str(run), "module": module, "pin": pin, **res})
            p = res["proxy"]
            fig = f"{p['psnr_median']:.2f} / {p['psnr_min']:.2f} / {p['psnr']:.2f}"
            print(f"{name} ({module}, {pin or 'no slider pinned'}): {fig}", flush=True)
    o = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "images": Path(a.images).name,
        "n": a.n,
        "sampler": a.sampler,
        "seed": a.seed,
        "scales": a.scales,
        "rows": rows,
        "minutes": (time.perf_counter() - t0) / 60.0,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(o, indent=1) + "\n")
    (out / f"{a.name}.md").write_text(markdown(o))


if __name__ == "__main__":
    main()
