"""Where a proxy fails: its worst held-out draws and their sliders, from ``darkproxy eval``'s per-sample metrics.

    PYTHONPATH=src .venv/bin/python bench/bench_worst_draws.py --images HELDOUT_RAWS --run NAME=RUN_DIR [...] \
        [-n 32] [--sampler uniform] [--seed 7] [--worst 4] --out bench/results --name worst_draws

For each run, ``darkproxy eval`` (the command a user runs) on the same raws and draws; then its ``--worst`` lowest
draws (display PSNR, the identity's beside) with every slider, each as a fraction of its training range (0 and 1:
the range's ends), to tell a slider's end from a combination. Writes ``NAME.md`` and ``NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_eval_draws import run_eval  # noqa: E402

from darkproxy.proxy import Proxy  # noqa: E402


def worst_draws(run: Path, images: Path, n: int, sampler: str, seed: int, k: int) -> dict[str, Any]:
    """``run``'s ``k`` lowest draws of ``darkproxy eval`` (:func:`bench_eval_draws.run_eval`), sliders as fractions."""
    _, rows = run_eval(run, images, n, sampler, seed)
    space = Proxy.load(run).param_space
    rows.sort(key=lambda r: float(r["proxy_psnr"]))
    out = []
    for r in rows[:k]:
        frac = {s.name: round(s.normalize(float(r[s.name])), 3) for s in space.specs if s.name in r}
        out.append({"raw": r["raw"], "proxy_psnr": float(r["proxy_psnr"]), "identity_psnr": float(r["identity_psnr"])})
        out[-1]["sliders"] = frac
    psnr = sorted(float(r["proxy_psnr"]) for r in rows)
    return {"n": len(rows), "median": psnr[len(psnr) // 2], "worst": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of held-out raws")
    ap.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--sampler", default="uniform", choices=("sparse", "uniform"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--worst", type=int, default=4, help="draws listed per run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--name", default="worst_draws")
    a = ap.parse_args()
    t0 = time.time()
    res = {}
    for spec in a.run:
        name, _, path = spec.partition("=")
        res[name] = worst_draws(Path(path), a.images, a.n, a.sampler, a.seed, a.worst)
        print(f"{name}: worst {res[name]['worst'][0]['proxy_psnr']:.1f} dB", flush=True)
    rec = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": a.n, "sampler": a.sampler, "seed": a.seed}
    rec |= {"minutes": (time.time() - t0) / 60, "runs": res}
    (a.out / f"{a.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
    lines = [
        "# The worst held-out draws of proxies (bench/bench_worst_draws.py)",
        "",
        f"{rec['date']}, {os.cpu_count()} cores. `darkproxy eval RUN --images {a.images.name} -n {a.n} --sampler "
        f"{a.sampler} --seed {a.seed}` per run ({rec['minutes']:.1f} min); the {a.worst} lowest draws (display PSNR, "
        "dB; the identity's beside), each slider as a fraction of its training range (0, 1: its ends).",
        "",
    ]
    for name, r in res.items():
        lines += [f"## {name}", "", f"median {r['median']:.1f} dB over {r['n']} draws", ""]
        names = list(r["worst"][0]["sliders"])
        lines += ["| raw | proxy | identity | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
        for w in r["worst"]:
            cells = [w["raw"], f"{w['proxy_psnr']:.1f}", f"{w['identity_psnr']:.1f}"]
            lines.append("| " + " | ".join(cells + [f"{w['sliders'][s]:.3f}" for s in names]) + " |")
        lines.append("")
    (a.out / f"{a.name}.md").write_text("\n".join(lines))
    print((a.out / f"{a.name}.md").read_text())


if __name__ == "__main__":
    main()
