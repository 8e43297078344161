"""Slider regression from a darktable target through the exact port and through the zoo's proxy of one module.

    PYTHONPATH=src .venv/bin/python bench/bench_regress_exact.py [--module bilat] [--n 12]

For ``n`` random edits of MODULE (every slider of the zoo proxy's, uniform in its training ranges, seed 0) on
darktable's default history of the held-out raws (coffee, motorcycle; 256 px synthetic DNGs, round-robin),
darktable renders the target (8-bit sRGB export at 128 px); the sliders are then recovered by
:func:`darkproxy.replica.fit.replica_regress` from darktable's defaults for the module (the history without
the edit) twice, on the same target and config: through the replica with MODULE's exact stage, and with
``--prefer-proxy MODULE`` (that module through the zoo's proxy, every other stage exact). Figures: the slider
error as a fraction of the training range (median over edits x sliders, and max), darktable's render of the
recovered sliders against the target (display PSNR, ΔE2000), seconds. The proxy's own regression figure from
``darkproxy regress-eval`` (its black-box baselines beside it) is ``regress_local_MODULE.md``.

Writes ``bench/results/regress_exact_MODULE.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_match import synthetic_raws  # noqa: E402

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.data.sampling import sample_params  # noqa: E402
from darkproxy.engines.regress import RegressConfig  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.proxy import Proxy  # noqa: E402
from darkproxy.replica.fit import render_export, replica_regress  # noqa: E402
from darkproxy.replica.references import replica_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ("coffee", "motorcycle")
RAW_SIZE, SIZE = 256, 128
METHODS = ("exact", "proxy")


def edits(dt: Darktable, module: str, n: int, work: Path) -> Iterator[tuple[Path, dict[str, float], Any, np.ndarray]]:
    """The bench's ``n`` edits of ``module`` (the zoo proxy's sliders uniform in its training ranges, seed 0, on
    the held-out raws round-robin): (raw, the hidden sliders ``{"module.param": value}``, the proxy's param space,
    darktable's 8-bit export of the edit at :data:`SIZE` px)."""
    raws = synthetic_raws(work, RAW_SIZE, sources=HELDOUT)
    space = Proxy.load(f"zoo:{module}").param_space
    for i, d in enumerate(sample_params(space, n, "uniform", 0)):
        raw = raws[i % len(raws)]
        truth = {f"{module}.{k}": float(v) for k, v in space.for_darktable(d).items() if k in space.names}
        edit = {module: {**space.fixed, **space.for_darktable(d)}}
        yield raw, truth, space, render_export(dt, raw, replica_history(dt, raw, None, edit), SIZE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default="bilat")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--work", default="/tmp/regress-exact")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    dt = Darktable()
    t0 = time.time()
    rows = []
    for i, (raw, truth, space, tgt) in enumerate(edits(dt, a.module, a.n, Path(a.work))):
        free = [f"{a.module}.{n}" for n in space.names]
        row: dict[str, Any] = {"raw": raw.name, "truth": truth}
        for method in METHODS:
            with tempfile.TemporaryDirectory() as td:
                rec = replica_regress(
                    dt,
                    raw,
                    tgt,
                    td,
                    free=free,
                    sets={a.module: dict(space.fixed)},  # on, at darktable's defaults but what the proxy holds
                    prefer_proxy=(a.module,) if method == "proxy" else (),
                    config=RegressConfig(iters=a.iters, restarts=a.restarts, seed=0),
                    truth=truth,
                )
            row[method] = {
                "params": rec["params"],
                "errors": {n: e["frac"] for n, e in rec["param_errors"].items()},
                "darktable_psnr": rec["darktable_psnr"],
                "darktable_deltae_mean": rec["darktable_deltae_mean"],
                "seconds": rec["seconds"],
                "stages": [s["kind"] for s in rec["stages"] if s["module"] == a.module],
            }
            print(f"#{i} {raw.name} {method}: {row[method]['errors']} {rec['darktable_psnr']:.1f} dB", flush=True)
        rows.append(row)
    write(a.module, rows, time.time() - t0, a, Path(a.out))


def _errors(row: dict[str, Any], method: str) -> list[float]:
    return [float(v) for v in row[method]["errors"].values()]


def write(module: str, rows: list[dict[str, Any]], seconds: float, a: Any, out: Path) -> None:
    mi = machine_info()
    lines = [
        f"# Slider regression through the exact {module} and through its proxy",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {mi['nproc']} cores ({mi['cpu']}), darktable "
        f"{Darktable().version}. {len(rows)} edits of {module} (the zoo proxy's sliders, uniform in its training "
        f"ranges, seed 0) on the held-out raws {', '.join(HELDOUT)} ({RAW_SIZE} px, round-robin); targets: "
        f"darktable's 8-bit export at {SIZE} px. Both methods: `replica_regress` from the module at darktable's "
        f"defaults, {a.restarts} restarts x {a.iters} iterations, seed 0, the same target. Total "
        f"{seconds / 60:.1f} min. `python bench/bench_regress_exact.py --module {module} --n {a.n}`.",
        "",
        "Slider error: |recovered - hidden| as a fraction of the training range (median over edits x sliders, "
        "and max). darktable PSNR / ΔE2000: darktable's render of the recovered sliders against the target (median "
        "and worst over the edits).",
        "",
        "| method | stage | median slider error | max | darktable PSNR (median / worst) | ΔE2000 (median / worst) | "
        "seconds (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        errs = [e for r in rows for e in _errors(r, m)]
        ps = [r[m]["darktable_psnr"] for r in rows]
        de = [r[m]["darktable_deltae_mean"] for r in rows]
        lines.append(
            f"| {m} | {rows[0][m]['stages'][0] if rows[0][m]['stages'] else '-'} | {statistics.median(errs):.4f} | "
            f"{max(errs):.4f} | {statistics.median(ps):.1f} / {min(ps):.1f} | {statistics.median(de):.3f} / "
            f"{max(de):.3f} | {statistics.median(r[m]['seconds'] for r in rows):.1f} |"
        )
    names = list(rows[0]["truth"])
    lines += [
        "",
        "Per slider, median error (exact / proxy): "
        + ", ".join(
            f"{n.split('.', 1)[1]} {statistics.median(float(r['exact']['errors'][n]) for r in rows):.4f} / "
            f"{statistics.median(float(r['proxy']['errors'][n]) for r in rows):.4f}"
            for n in names
        )
        + ".",
        "",
        "## Per edit",
        "",
        "| # | raw | hidden | exact: error max / dB | proxy: error max / dB |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        hidden = ", ".join(f"{n.split('.', 1)[1]} {v:.3f}" for n, v in r["truth"].items())
        lines.append(
            f"| {i} | {r['raw']} | {hidden} | {max(_errors(r, 'exact')):.4f} / {r['exact']['darktable_psnr']:.1f} | "
            f"{max(_errors(r, 'proxy')):.4f} / {r['proxy']['darktable_psnr']:.1f} |"
        )
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"regress_exact_{module}.md").write_text("\n".join(lines))
    meta = {"machine": mi, "n": len(rows), "seconds": seconds, "iters": a.iters, "restarts": a.restarts}
    (out / f"regress_exact_{module}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
