"""Compare the demo's summary.json of two trees (e.g. before and after a redesign), each run >= 2 times.

    .venv/bin/python bench/compare_demo_summaries.py --before A1 A2 --after B1 B2 \\
        [--label-before e7682fc] [--label-after main] [--out bench/results/redesign_demo.md]

Each argument is a demo output folder (``darkproxy demo -o DIR``, a fresh ``DARKPROXY_HOME`` each). Per
numeric figure of the summaries: every run's value, the spread within each tree (max - min: darktable's
and training's run-to-run noise) and the gap between the trees' means; a figure is ``within noise`` when
the gap is at most the larger of the two spreads (with 2 runs a tree, a rough estimate of the noise: the
table gives the values so that a reader can judge). Timings (``seconds``) are listed apart: they measure
the machine's load as much as the code.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict, by dotted key (booleans left out)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def compare(before: list[dict[str, float]], after: list[dict[str, float]]) -> list[dict[str, Any]]:
    keys = sorted(set.intersection(*(set(s) for s in before + after)))
    rows = []
    for k in keys:
        b, a = [s[k] for s in before], [s[k] for s in after]
        spread = max(max(b) - min(b), max(a) - min(a))
        gap = abs(statistics.mean(a) - statistics.mean(b))
        rows.append({"figure": k, "before": b, "after": a, "spread": spread, "gap": gap, "within": gap <= spread})
    return rows


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def markdown(
    rows: list[dict[str, Any]], label_before: str, label_after: str, n_b: int, n_a: int, note: str = ""
) -> str:
    timing = [r for r in rows if "seconds" in r["figure"] or r["figure"].endswith("_s")]
    plan = [r for r in rows if r["figure"].startswith("plan.")]
    figures = [r for r in rows if r not in timing and r not in plan]
    moved = [r for r in figures if not r["within"]]
    lines = [
        f"# The demo before ({label_before}) and after ({label_after})",
        "",
        f"`darkproxy demo --quick`, {n_b} and {n_a} runs of the two trees on one machine (a fresh "
        "`DARKPROXY_HOME` each), by "
        "`bench/compare_demo_summaries.py`. `spread`: the larger of the two trees' max - min over their runs "
        "(darktable's and the trainings' run-to-run noise); `gap`: the distance between the trees' means. "
        f"{len(figures) - len(moved)} of {len(figures)} figures are within that spread; "
        + ("the others: " + ", ".join(f"`{r['figure']}`" for r in moved) + "." if moved else "none moved beyond it."),
        "",
        *([note, ""] if note else []),
        "| figure | before | after | spread | gap | within |",
        "|---|---|---|---|---|---|",
    ]
    for r in figures:
        lines.append(
            f"| {r['figure']} | {', '.join(map(_fmt, r['before']))} | {', '.join(map(_fmt, r['after']))} "
            f"| {_fmt(r['spread'])} | {_fmt(r['gap'])} | {'yes' if r['within'] else '**no**'} |"
        )
    if timing:
        lines += ["", "Timings (s; the machine was shared with other work: load, not code):", ""]
        lines += [f"- {r['figure']}: before {r['before']}, after {r['after']}" for r in timing]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", nargs="+", required=True, type=Path)
    ap.add_argument("--after", nargs="+", required=True, type=Path)
    ap.add_argument("--label-before", default="before")
    ap.add_argument("--label-after", default="after")
    ap.add_argument("--note", default="", help="a paragraph of reading, printed above the table")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "redesign_demo.md")
    a = ap.parse_args()
    load = [flatten(json.loads((d / "summary.json").read_text())) for d in a.before]
    load_after = [flatten(json.loads((d / "summary.json").read_text())) for d in a.after]
    rows = compare(load, load_after)
    a.out.write_text(markdown(rows, a.label_before, a.label_after, len(load), len(load_after), a.note))
    (a.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1) + "\n")
    print(a.out)


if __name__ == "__main__":
    main()
