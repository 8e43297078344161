"""Seconds of ``darkproxy match`` for two source trees, in one run (A B A B ...), with their ratio.

    git worktree add /tmp/before <commit>
    PYTHONPATH=src .venv/bin/python bench/bench_match_speed.py --a /tmp/before/src [--b src] [--repeats 2]

Each match (the LibRaw references of bench_match.py's held-out raws, at ``--size`` px: about 1 MP, the
default chain) runs in a fresh process whose ``darkproxy`` is imported from ``--a`` or ``--b``, the two
alternating (their order swapped every round), so a drift of the machine's speed falls on both. Per tree:
the match's own ``seconds`` (its summary: darktable renders, alignment, fit, result) and ``regress_seconds``
(the fit), median over every raw and repeat, and the median of the per-pair ratios b / a; ΔE2000 per tree
(the two should agree). Writes ``OUT/NAME.json`` and ``NAME.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

ONE = """
import json, sys
from pathlib import Path
from darkproxy.darktable.session import Darktable
from darkproxy.match import match
s = match(Darktable(), Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], max_size=int(sys.argv[4]))
print("RESULT " + json.dumps({k: s[k] for k in ("seconds", "regress_seconds", "deltae_mean", "size")}))
"""


def run_one(src: Path, raw: Path, ref: Path, out: Path, size: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-c", ONE, str(raw), str(ref), str(out), str(size)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        raise SystemExit(f"match with {src} failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
    return json.loads(line[0][len("RESULT ") :])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="the first tree's src (e.g. a worktree of the old commit)")
    ap.add_argument("--b", type=Path, default=ROOT / "src", help="the second tree's src (default: this one)")
    ap.add_argument("--label-a", default="before")
    ap.add_argument("--label-b", default="after")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=1224)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "match-speed")
    ap.add_argument("--name", default="match_speed")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    from bench_match import rawpy_reference, run_record, synthetic_raws

    from darkproxy.darktable.session import Darktable
    from darkproxy.fsutil import write_json, write_text_atomic
    from darkproxy.viz.images import save_png, to_uint8

    dt = Darktable()
    raws = synthetic_raws(args.work, args.size)
    trees = {args.label_a: args.a.resolve(), args.label_b: args.b.resolve()}
    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for i, raw in enumerate(raws):
            ref = args.work / f"rawpy-{raw.stem}.png"
            if not ref.is_file():
                save_png(ref, to_uint8(rawpy_reference(raw)))
            order = list(trees) if (rep + i) % 2 == 0 else list(trees)[::-1]
            pair = {}
            for label in order:
                r = run_one(trees[label], raw, ref, args.work / f"out-{label}-{raw.stem}", args.size)
                pair[label] = r
                print(f"{rep + 1}/{args.repeats} {raw.stem} {label}: {r['seconds']:.1f} s", flush=True)
            runs.append({"raw": raw.name, "repeat": rep, **pair})
    a, b = args.label_a, args.label_b

    def med(label: str, k: str) -> float:
        return statistics.median(r[label][k] for r in runs)

    ratio = statistics.median(r[b]["seconds"] / r[a]["seconds"] for r in runs)
    ratio_fit = statistics.median(r[b]["regress_seconds"] / r[a]["regress_seconds"] for r in runs)
    mp = statistics.mean(r[a]["size"][0] * r[a]["size"][1] / 1e6 for r in runs)
    res = {**run_record(dt, args.size), "trees": {k: str(v) for k, v in trees.items()}, "runs": runs}
    res.update({"ratio_seconds": ratio, "ratio_regress_seconds": ratio_fit, "megapixels": mp})
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", res)
    m = res["machine"]
    lines = [
        f"# darkproxy match, {a} vs {b} (bench/bench_match_speed.py)",
        "",
        f"{res['date']}, {m['nproc']} cores, load {m['loadavg']}, darktable {dt.version}. The LibRaw references "
        f"of {len(raws)} held-out synthetic raws at {args.size} px ({mp:.2f} MP), default chain, {args.repeats} "
        f"repeats; each match a fresh process, the two trees alternating. {a}: `{trees[a]}`; {b}: `{trees[b]}`.",
        "",
        "| tree | seconds (median) | min | max | fit seconds (median) | s per MP (median) | ΔE2000 mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in (a, b):
        secs = [r[label]["seconds"] for r in runs]
        de = statistics.mean(r[label]["deltae_mean"] for r in runs)
        lines.append(
            f"| {label} | {med(label, 'seconds'):.1f} | {min(secs):.1f} | {max(secs):.1f} | "
            f"{med(label, 'regress_seconds'):.1f} | {med(label, 'seconds') / mp:.1f} | {de:.2f} |"
        )
    lines += ["", f"Ratio {b} / {a}, median of the pairs: {ratio:.2f} (whole match), {ratio_fit:.2f} (fit).", ""]
    write_text_atomic(args.out / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
