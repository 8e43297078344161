"""The exact sigmoid stage against darktable over random edits: the port alone and the whole replica.

    PYTHONPATH=src .venv/bin/python bench/bench_sigmoid_port.py [--n 14] [--seed 1]

darktable's default history of four synthetic raws (coffee, astronaut, chelsea, rocket; 256 px, rendered at
128 px, round-robin) with filmic rgb off and sigmoid on: the first edit is tests/replica/test_sigmoid.py's,
the others draw exposure (-2.3..3.7 EV) and every sigmoid slider the port reads (contrast 0.5-3, skew
+-0.9, hue preservation 0-100 %, both colour processings, display white 80-300 %, black 0-0.5 %)
uniformly. Per edit: the stage alone (the port on darktable's input to sigmoid against darktable's
tap-out of its output) and the replica against darktable's 8-bit sRGB export, display PSNR in dB (100 is
the cap: identical).

Writes ``bench/results/sigmoid_port.md`` and ``.json``.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_match import synthetic_raws  # noqa: E402

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.replica.plan import plan_replica  # noqa: E402
from darkproxy.replica.references import render_references  # noqa: E402
from darkproxy.replica.run import build_chain, score_replica  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("coffee", "astronaut", "chelsea", "rocket")
TEST_EDIT = {
    "exposure": {"exposure": 1.8},
    "sigmoid": {"middle_grey_contrast": 1.9, "contrast_skewness": 0.2, "hue_preservation": 60.0},
}


def draw_edits(n: int, seed: int) -> list[dict[str, dict[str, float]]]:
    """The test's edit, then ``n - 1`` drawn uniformly."""
    rng = np.random.default_rng(seed)
    edits: list[dict[str, dict[str, float]]] = [TEST_EDIT]
    for _ in range(n - 1):
        exposure = {"exposure": float(rng.uniform(-2.3, 3.7))}
        sig = {
            "middle_grey_contrast": float(rng.uniform(0.5, 3.0)),
            "contrast_skewness": float(rng.uniform(-0.9, 0.9)),
            "hue_preservation": float(rng.uniform(0.0, 100.0)),
            "color_processing": float(rng.integers(0, 2)),
            "display_white_target": float(rng.uniform(80.0, 300.0)),
            "display_black_target": float(rng.uniform(0.0, 0.5)),
        }
        edits.append({"exposure": exposure, "sigmoid": sig})
    return edits


def measure(dt: Darktable, raw: Path, edit: dict[str, dict[str, float]]) -> dict[str, Any]:
    hist = dt.edit(dt.edit(dt.default_history(raw), disable=["filmicrgb"]), updates=edit)
    plan = plan_replica(dt, hist, raw)
    renders = render_references(dt, raw, plan, 128)
    _, fig = score_replica(build_chain(plan, renders), renders)
    alone = next(s["psnr_alone"] for s in fig["stages"] if s["module"] == "sigmoid")
    return {"raw": raw.stem, "edit": edit, "alone": float(alone), "replica": float(fig["psnr"])}


def write_md(rec: dict[str, Any], path: Path) -> None:
    rows = rec["rows"]
    alone = [r["alone"] for r in rows]
    rep = [r["replica"] for r in rows]
    mi = rec["machine"]
    about = " ".join((__doc__ or "").split("\n\n")[2].split())
    lines = [
        "# The exact sigmoid stage against darktable, random edits",
        "",
        f"{rec['date']}, {mi['nproc']} cores ({mi['cpu']}), darktable {rec['darktable']}. `{rec['command']}` "
        f"({rec['minutes']:.1f} min). {about}",
        "",
        f"Over {len(rows)} edits: the stage alone **{statistics.median(alone):.1f} / {min(alone):.1f}** dB "
        f"(median / worst), the replica {statistics.median(rep):.1f} / {min(rep):.1f}.",
        "",
        "| # | raw | exposure | contrast | skew | hue preservation | processing | white | black | alone | replica |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        s = r["edit"]["sigmoid"]
        proc = "rgb ratio" if s.get("color_processing", 0) else "per channel"
        lines.append(
            f"| {i} | {r['raw']} | {r['edit']['exposure']['exposure']:.2f} | {s['middle_grey_contrast']:.3f} | "
            f"{s['contrast_skewness']:.3f} | {s['hue_preservation']:.1f} | {proc} | "
            f"{s.get('display_white_target', 100.0):.1f} | {s.get('display_black_target', 0.0152):.4f} | "
            f"{r['alone']:.1f} | {r['replica']:.1f} |"
        )
    path.write_text("\n".join(lines + [""] + rec.get("notes", [])) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=14, help="edits (the first is the test's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--note", action="append", default=[], help="a line appended to the .md")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/sigmoid_port")
    args = ap.parse_args()
    t0 = time.time()
    dt = Darktable()
    with tempfile.TemporaryDirectory() as tmp:
        raws = synthetic_raws(Path(tmp), 256, sources=SOURCES)
        rows = []
        for i, edit in enumerate(draw_edits(args.n, args.seed)):
            rows.append(measure(dt, raws[i % len(raws)], edit))
            print(f"{i}: alone {rows[-1]['alone']:.2f} dB, replica {rows[-1]['replica']:.2f} dB", flush=True)
    rec = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(),
        "darktable": dt.version,
        "command": f"python bench/bench_sigmoid_port.py --n {args.n} --seed {args.seed}",
        "minutes": (time.time() - t0) / 60,
        "rows": rows,
        "notes": args.note,
    }
    args.out.with_suffix(".json").write_text(json.dumps(rec, indent=1) + "\n")
    write_md(rec, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
