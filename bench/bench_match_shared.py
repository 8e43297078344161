"""``darkproxy match --pairs --shared``: one look for a shoot, each photo its own exposure, on held-out raws.

    PYTHONPATH=src .venv/bin/python bench/bench_match_shared.py [--work /tmp/match-shared] [--size 1224]

Raws: the synthetic DNGs of bench_match.py (coffee, motorcycle, rocket, chelsea; long side ``--size`` px, about
1 MP). References: LibRaw's rendering (``bench_match.rawpy_reference``) in two shoots:

* ``fixed``: one rendering for every shot (no per-image brightness): bench_match.py's ``--pairs`` set;
* ``auto``: LibRaw's per-image auto brightness on (as a camera that meters each shot): one look, the brightness
  per photo.

Each shoot is matched twice with the default chain, the last pair (by name: rocket) held out: plain ``--pairs``
(one style, one exposure for all) and ``--shared`` (the look shared, ``exposure.exposure`` per photo; the
held-out photo gets the look as fitted on the others and only its own exposure fitted on it). Every figure is
darktable's render of each pair's result.xmp against its reference (ΔE2000 over the region it covers). Writes
``bench/results/match_shared.md`` and ``match_shared.json``. Goal (issue 29): ``--shared`` on a shoot's held-out
pairs ΔE2000 <= 2.5 (plain ``--pairs`` held out: 3.60 in bench/results/match.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import SOURCES, rawpy_reference, run_record, synthetic_raws, write_results  # noqa: E402

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.match import match_pairs  # noqa: E402
from darkproxy.match.fit import DEFAULT_CHAIN  # noqa: E402
from darkproxy.viz.images import save_png, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOOTS = {"fixed": False, "auto": True}  # LibRaw's per-image auto brightness off / on
GOAL = 2.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/match-shared")
    ap.add_argument("--size", type=int, default=1224)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--chain", default=",".join(DEFAULT_CHAIN), help="the modules matched (default: match's)")
    ap.add_argument("--name", default="match_shared", help="the results' file stem")
    a = ap.parse_args()
    chain = a.chain.split(",")
    work = Path(a.work)
    dt = Darktable()
    t_all = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for shoot, auto in SHOOTS.items():
        folder = work / shoot
        for raw in synthetic_raws(folder, a.size):
            save_png(folder / f"{raw.stem}.png", to_uint8(rawpy_reference(raw, auto_bright=auto)))
        for mode, per_image in (("plain", []), ("shared", ["exposure.exposure"])):
            out = work / f"{shoot}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            s = match_pairs(dt, folder, out, chain=chain, max_size=a.size, holdout=1, per_image=per_image, log=print)
            runs.append(
                {
                    "shoot": shoot,
                    "mode": mode,
                    "pairs": [
                        {
                            "raw": Path(r["raw"]).name,
                            "held_out": r["held_out"],
                            "deltae_mean": r["deltae_mean"],
                            "deltae_p95": r["deltae_p95"],
                            "default_deltae_mean": r["default_deltae_mean"],
                            "per_image": r.get("per_image", {}),
                        }
                        for r in s["pairs"]
                    ],
                    **{k: s[k] for k in ("fit_deltae_mean", "fit_default_deltae_mean", "heldout_deltae_mean")},
                    "heldout_default_deltae_mean": s["heldout_default_deltae_mean"],
                    "params": s["params"],
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    o = {
        **run_record(dt, a.size),
        "chain": chain,
        "runs": runs,
        "minutes": (time.perf_counter() - t_all) / 60.0,
    }
    write_results(Path(a.out), a.name, o, markdown)


def markdown(o: dict[str, Any]) -> str:
    m = o["machine"]
    lines = [
        "# darkproxy match --pairs --shared (bench/bench_match_shared.py)",
        "",
        f"{o['date']}, {m.get('nproc')} cores ({m.get('cpu')}), torch {m.get('torch')}, darktable "
        f"{o['darktable']}, load {m.get('loadavg')}. Raws: synthetic DNGs, long side {o['size']} px (held-out photos "
        f"{', '.join(SOURCES)}); references: LibRaw's rendering, one rendering for all (`fixed`) or with its "
        f"per-image auto brightness (`auto`: one look, each photo's brightness). Chain: "
        f"{', '.join(o.get('chain', DEFAULT_CHAIN))}; rocket held out. `plain`: one style for all (`--pairs`); "
        "`shared`: the look shared, exposure per photo (`--pairs --shared`; the held-out photo gets the look as "
        "fitted on the others and only its exposure fitted on it). Figures: darktable's render of each result.xmp "
        f"against its reference (ΔE2000). Total {o['minutes']:.1f} min.",
        "",
        "| shoot | mode | fitted ΔE2000 (defaults) | held out ΔE2000 (defaults) | held-out p95 | s |",
        "|---|---|---|---|---|---|",
    ]
    for r in o["runs"]:
        held = [p for p in r["pairs"] if p["held_out"]]
        lines.append(
            f"| {r['shoot']} | {r['mode']} | {r['fit_deltae_mean']:.2f} ({r['fit_default_deltae_mean']:.2f}) | "
            f"{r['heldout_deltae_mean']:.2f} ({r['heldout_default_deltae_mean']:.2f}) | "
            f"{max(p['deltae_p95'] for p in held):.2f} | {r['seconds']:.0f} |"
        )
    lines += ["", "Per photo (ΔE2000; `shared`: its exposure):", ""]
    lines += ["| shoot | mode | photo | held out | ΔE2000 | defaults | exposure (EV) |", "|" + "---|" * 7]
    for r in o["runs"]:
        for p in r["pairs"]:
            ev = p["per_image"].get("exposure.exposure")
            lines.append(
                f"| {r['shoot']} | {r['mode']} | {p['raw']} | {'yes' if p['held_out'] else ''} | "
                f"{p['deltae_mean']:.2f} | {p['default_deltae_mean']:.2f} | {'-' if ev is None else f'{ev:+.2f}'} |"
            )
    shared = [r for r in o["runs"] if r["mode"] == "shared"]
    worst = max(r["heldout_deltae_mean"] for r in shared)
    lines += [
        "",
        f"Goal: `--shared` held out ΔE2000 <= {GOAL}: {'met' if worst <= GOAL else 'missed'} (worst of the shoots "
        f"{worst:.2f}; " + ", ".join(f"{r['shoot']} {r['heldout_deltae_mean']:.2f}" for r in shared) + ").",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
