"""Each zoo proxy beside the exact port of the same module, on the same held-out darktable renders.

    PYTHONPATH=src .venv/bin/python bench/bench_proxy_vs_exact.py [--n 8] [--modules exposure,sharpen]

For every module that has both a proxy in the shipped zoo and an exact stage in the replica (after
demosaic: the mosaic stages run through ``--from-mosaic``, measured in replica_coverage.md), ``n``
edits drawn like the zoo's held-out evaluation (its proxy's sliders, the sparse sampler, seed 0) on
darktable's default history of the held-out raws (coffee, motorcycle; 256 px, rendered at 128 px:
render scale 0.5, the zoo's). Per edit, one set of darktable renders, and on them:

* the stage alone (``psnr_alone``): the exact port and the proxy each on darktable's own input to the
  module, against darktable's tap-out of its output (display PSNR);
* the whole replica against darktable's export, with the exact stage and with ``--prefer-proxy MODULE``.

Writes ``bench/results/proxy_vs_exact.md`` and ``.json``. The zoo's own figure (its proxy on its own
eval draws) is beside it in zoo.md; this puts the port on the same draws.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_match import synthetic_raws  # noqa: E402

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.data.sampling import sample_params  # noqa: E402
from darkproxy.errors import DarkproxyError  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.proxy import Proxy  # noqa: E402
from darkproxy.proxy.locate import list_zoo, shipped_root  # noqa: E402
from darkproxy.replica import EXACT  # noqa: E402
from darkproxy.replica.plan import plan_replica  # noqa: E402
from darkproxy.replica.references import render_references, replica_history  # noqa: E402
from darkproxy.replica.run import build_chain, score_replica  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ("coffee", "motorcycle")
RAW_SIZE, SIZE = 256, 128


def modules_to_compare() -> list[str]:
    zoo = {r["module"] for r in list_zoo(shipped_root())}
    return sorted(m for m in zoo if m in EXACT and not EXACT[m].mosaic)


def stage_psnr(fig: dict[str, Any], module: str) -> float | None:
    for st in fig["stages"]:
        if st["module"] == module and st.get("psnr_alone") is not None:
            return float(st["psnr_alone"])
    return None


def one(dt: Darktable, raw: Path, module: str, edit: dict[str, Any]) -> dict[str, Any]:
    hist = replica_history(dt, raw, None, {module: edit})
    row: dict[str, Any] = {"raw": raw.name, "edit": edit}
    try:
        pplan = plan_replica(dt, hist, raw, prefer_proxy=(module,))
    except DarkproxyError as e:  # the replica refuses the proxy there (colorin's: its data's input is camera RGB)
        pplan, row = plan_replica(dt, hist, raw), {**row, "proxy_alone": None, "proxy_chain": None}
        row["proxy_refused"] = str(e)
    # the references of the exact plan: they also hold what only a port needs (darktable's camera render, from which
    # the chain measures colorin's matrix for a module on camera RGB); the proxy's stage reads the same tap-outs
    try:
        renders = render_references(dt, raw, plan_replica(dt, hist, raw), SIZE)
    except DarkproxyError:
        renders = render_references(dt, raw, pplan, SIZE)
    if "proxy_refused" not in row:
        _, prox = score_replica(build_chain(pplan, renders), renders)
        row |= {"proxy_alone": stage_psnr(prox, module), "proxy_chain": prox["psnr"]}
    try:
        _, exact = score_replica(build_chain(plan_replica(dt, hist, raw), renders), renders)
    except DarkproxyError as e:  # the port refuses what it cannot reproduce: counted, not scored
        return {**row, "exact_alone": None, "exact_chain": None, "exact_refused": str(e)}
    return {**row, "exact_alone": stage_psnr(exact, module), "exact_chain": exact["psnr"]}


def _pair(v: tuple[float, float]) -> str:
    return "refused" if math.isnan(v[0]) else f"{v[0]:.1f} / {v[1]:.1f}"


def summary(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    vals = [r[key] for r in rows if r[key] is not None]
    return (statistics.median(vals), min(vals)) if vals else (float("nan"), float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/proxy-vs-exact")
    ap.add_argument("--n", type=int, default=8, help="edits per module, alternating over the held-out raws")
    ap.add_argument("--modules", help="comma-separated (default: every zoo module with an exact stage)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--merge", action="store_true", help="keep the other modules' rows of OUT/proxy_vs_exact.json (a port added)"
    )
    a = ap.parse_args()
    dt = Darktable()
    raws = synthetic_raws(Path(a.work), RAW_SIZE, sources=HELDOUT)
    mods = a.modules.split(",") if a.modules else modules_to_compare()
    t0 = time.time()
    results: dict[str, list[dict[str, Any]]] = {}
    for m in mods:
        space = Proxy.load(f"zoo:{m}").param_space
        draws = sample_params(space, a.n, "sparse", 0) if len(space) else [{} for _ in range(a.n)]
        results[m] = []
        for i, d in enumerate(draws):
            edit = {**space.fixed, **space.for_darktable(d)} if len(space) else dict(space.fixed)
            r = one(dt, raws[i % len(raws)], m, edit)
            results[m].append(r)
            print(f"{m} #{i}: exact {r['exact_alone']}, proxy {r['proxy_alone']}", file=sys.stderr, flush=True)
    out = Path(a.out)
    run = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "modules": list(results),
        "n": a.n,
        "seconds": time.time() - t0,
    }
    runs = [run]
    if a.merge and (out / "proxy_vs_exact.json").is_file():
        old = json.loads((out / "proxy_vs_exact.json").read_text())
        meta = old["meta"]
        prev = meta.get("runs") or [
            {"date": None, "modules": list(old["modules"]), "n": meta["n"], "seconds": meta["seconds"]}
        ]
        runs = [{**r, "modules": [m for m in r["modules"] if m not in results]} for r in prev] + runs
        results = {**{m: v for m, v in old["modules"].items() if m not in results}, **results}
    write(dict(sorted(results.items())), runs, out)


def write(results: dict[str, list[dict[str, Any]]], runs: list[dict[str, Any]], out: Path) -> None:
    mi = machine_info()
    said = "; ".join(
        f"{r['date'] or 'first run'}: {', '.join(r['modules'])} ({r['n']} edits each, {r['seconds'] / 60:.1f} min)"
        for r in runs
        if r["modules"]
    )
    head = (
        f"{mi['nproc']} cores ({mi['cpu']}), darktable {Darktable().version}; edits per module over the held-out "
        f"raws {', '.join(HELDOUT)} ({RAW_SIZE} px, rendered at {SIZE} px), drawn as the zoo draws its held-out "
        f"edits (the proxy's sliders, sparse). Runs: {said}. `python bench/bench_proxy_vs_exact.py --n N "
        "[--modules M --merge]`."
    )
    lines = [
        "# Proxy or exact port: the same module, the same darktable renders",
        "",
        head,
        "",
        "Display PSNR in dB, median / worst over the edits. *Alone*: the stage on darktable's own input to the "
        "module against darktable's tap-out of its output. *Replica*: the whole replica against darktable's "
        "8-bit export, with the exact stage, and with `--prefer-proxy MODULE` (that module through its proxy, "
        "every other stage exact).",
        "",
        "| module | exact alone | proxy alone | replica, exact | replica, --prefer-proxy | gap (replica) | "
        "refused by the port |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, rows in results.items():
        ea, pa, ec, pc = (summary(rows, k) for k in ("exact_alone", "proxy_alone", "exact_chain", "proxy_chain"))
        refused = sum(1 for r in rows if r.get("exact_refused"))
        proxy_refused = sum(1 for r in rows if r.get("proxy_refused"))
        said = f"{refused} of {len(rows)}" + (f" (the proxy: {proxy_refused})" if proxy_refused else "")
        gap = "-" if math.isnan(pc[0]) or math.isnan(ec[0]) else f"{ec[0] - pc[0]:+.1f}"
        lines.append(f"| {m} | {_pair(ea)} | {_pair(pa)} | {_pair(ec)} | {_pair(pc)} | {gap} | {said} |")
    lines += [
        "",
        "100 dB is the PSNR cap (identical up to float rounding). Where darktable is a closed form the port is "
        "the stage the replica uses; a proxy is for the modules no one ports (zoo.md). Refused: edits the port "
        "declines in one line (the exact columns are over the others); the replica then stops there unless "
        "`--prefer-proxy` is given. (the proxy: N): edits where the replica refuses the proxy (colorin's, since "
        "2026-12-05: its data map camera RGB, the chain is in Rec2020 from its start).",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy_vs_exact.md").write_text("\n".join(lines))
    meta = {"machine": mi, "runs": runs, "size": SIZE, "raw_size": RAW_SIZE}
    (out / "proxy_vs_exact.json").write_text(json.dumps({"meta": meta, "modules": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
