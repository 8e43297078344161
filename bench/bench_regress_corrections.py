"""Slider regression through a local module's proxy, then corrected by darktable's renders of the result.

    PYTHONPATH=src .venv/bin/python bench/bench_regress_corrections.py [--module bilat] [--n 12] [--corrections 2]

The edits, raws, targets and first fit are bench_regress_exact.py's (``n`` edits of MODULE, every slider of the zoo
proxy's uniform in its training ranges, seed 0, on the held-out raws coffee and motorcycle, 256 px; targets:
darktable's 8-bit export at 128 px; :func:`darkproxy.replica.fit.replica_regress` with ``--prefer-proxy MODULE``
from darktable's defaults, 4 restarts x 300 iterations, seed 0), then ``--corrections`` rounds of output-space
correction (``replica_regress(corrections=K)``: darktable renders the recovered edit, the replica's error there is
taken off the target, the sliders fitted again from where they are, one restart). Per round: the slider error as a
fraction of the training range (median over edits x sliders, max) and darktable's render against the target; the
last row is what ``replica regress --corrections K`` returns (the round closest to the target in darktable's
render). Writes ``bench/results/regress_corrections_MODULE.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_regress_exact import HELDOUT, RAW_SIZE, SIZE, edits  # noqa: E402

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.engines.regress import RegressConfig  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.replica.fit import replica_regress  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default="bilat")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--corrections", type=int, default=2)
    ap.add_argument("--work", default="/tmp/regress-corrections")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    dt = Darktable()
    t0 = time.time()
    rows = []
    for i, (raw, truth, space, tgt) in enumerate(edits(dt, a.module, a.n, Path(a.work))):
        with tempfile.TemporaryDirectory() as td:
            rec = replica_regress(
                dt,
                raw,
                tgt,
                td,
                free=[f"{a.module}.{n}" for n in space.names],
                sets={a.module: dict(space.fixed)},
                prefer_proxy=(a.module,),
                config=RegressConfig(iters=a.iters, restarts=a.restarts, seed=0),
                truth=truth,
                corrections=a.corrections,
            )
        rounds = [
            {"errors": {n: e["frac"] for n, e in r["param_errors"].items()}, "darktable_psnr": r["darktable_psnr"]}
            for r in rec["rounds"]
        ]
        kept = {
            "errors": {n: e["frac"] for n, e in rec["param_errors"].items()},
            "darktable_psnr": rec["darktable_psnr"],
        }
        rows.append({"raw": raw.name, "truth": truth, "rounds": rounds, "kept": kept, "seconds": rec["seconds"]})
        print(
            f"#{i} {raw.name}: "
            + ", ".join(f"{max(r['errors'].values()):.3f}/{r['darktable_psnr']:.1f}" for r in rounds),
            flush=True,
        )
    write(a.module, rows, time.time() - t0, a, Path(a.out))


def _row(label: str, fits: list[dict[str, Any]]) -> str:
    errs = [float(e) for f in fits for e in f["errors"].values()]
    ps = [float(f["darktable_psnr"]) for f in fits]
    return (
        f"| {label} | {statistics.median(errs):.4f} | {max(errs):.4f} | {statistics.median(ps):.1f} / {min(ps):.1f} |"
    )


def write(module: str, rows: list[dict[str, Any]], seconds: float, a: Any, out: Path) -> None:
    mi = machine_info()
    k = len(rows[0]["rounds"]) - 1
    lines = [
        f"# Slider regression through the {module} proxy, corrected by darktable's renders",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {mi['nproc']} cores ({mi['cpu']}), darktable "
        f"{Darktable().version}. {len(rows)} edits of {module} (the zoo proxy's sliders, uniform in its training "
        f"ranges, seed 0) on the held-out raws {', '.join(HELDOUT)} ({RAW_SIZE} px, round-robin); targets: "
        f"darktable's 8-bit export at {SIZE} px (bench_regress_exact.py's edits and targets). `replica_regress` with "
        f"`--prefer-proxy {module}` from the module at darktable's defaults, {a.restarts} restarts x {a.iters} "
        f"iterations, seed 0, then {k} corrections (one restart x {a.iters} iterations each). Total "
        f"{seconds / 60:.1f} min, {statistics.median(r['seconds'] for r in rows):.0f} s per edit (median). "
        f"`python bench/bench_regress_corrections.py --module {module} --n {a.n} --corrections {a.corrections}`.",
        "",
        "Slider error: |recovered - hidden| as a fraction of the training range (median over edits x sliders, and "
        "max). darktable PSNR: darktable's render of the recovered sliders against the target (median / worst over "
        "the edits). Round 0 is the plain fit through the proxy; `kept`: the round whose darktable render is "
        "closest to the target (what `replica regress --corrections` returns).",
        "",
        "| fit | median slider error | max | darktable PSNR (median / worst) |",
        "|---|---|---|---|",
    ]
    for j in range(k + 1):
        lines.append(
            _row("proxy" if j == 0 else f"proxy + {j} correction{'s' * (j > 1)}", [r["rounds"][j] for r in rows])
        )
    lines.append(_row("kept", [r["kept"] for r in rows]))
    names = list(rows[0]["truth"])
    lines += [
        "",
        "Per slider, median error (round 0 / kept): "
        + ", ".join(
            f"{n.split('.', 1)[1]} {statistics.median(float(r['rounds'][0]['errors'][n]) for r in rows):.4f} / "
            f"{statistics.median(float(r['kept']['errors'][n]) for r in rows):.4f}"
            for n in names
        )
        + ".",
        "",
        "## Per edit (max slider error / darktable dB per round)",
        "",
        "| # | raw | hidden | " + " | ".join(f"round {j}" for j in range(k + 1)) + " | kept |",
        "|---|---|---|" + "---|" * (k + 2),
    ]
    for i, r in enumerate(rows):
        hidden = ", ".join(f"{n.split('.', 1)[1]} {v:.3f}" for n, v in r["truth"].items())
        cells = [f"{max(f['errors'].values()):.4f} / {f['darktable_psnr']:.1f}" for f in [*r["rounds"], r["kept"]]]
        lines.append(f"| {i} | {r['raw']} | {hidden} | " + " | ".join(cells) + " |")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"regress_corrections_{module}.md").write_text("\n".join(lines))
    meta = {"machine": mi, "n": len(rows), "seconds": seconds, "iters": a.iters, "restarts": a.restarts}
    (out / f"regress_corrections_{module}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
