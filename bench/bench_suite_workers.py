"""The whole test suite serially and on pytest-xdist workers, one after the other on this machine: wall time, and
every bounded figure of each run against the spread bench/bench_test_noise.py measured (serially, at the default
thread count) in bench/results/test_noise.json.

    .venv/bin/python bench/bench_suite_workers.py [--workers 0,2] [--out bench/results]
        [--work /tmp/dp/suite-workers] [-- PYTEST ARGS]

``--workers 0`` is ``pytest`` as a developer runs it; ``N`` is ``pytest -n N --dist loadscope`` as ``./run.sh test``
runs it (tests/_parallel.py: one file at a time, the costliest first, ``OMP_NUM_THREADS`` = the CPUs / N per
worker). Each run gets a fresh ``--basetemp`` (every fixture from scratch) and records its figures through
``$DARKPROXY_TEST_FIGURES``. Writes ``OUT/suite_workers.json`` and ``suite_workers.md``: per run the wall time, the
pytest summary line and the CPU seconds (this process's children: pytest, its workers, darktable-cli), the wall
time as a ratio of the first run's, and per figure that came out worse than the worst of the noise runs: by how
much, in their standard deviations, and the share of the worst run's margin to the bound that is left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOISE = ROOT / "bench" / "results" / "test_noise.json"


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_suite(workers: int, work: Path, extra: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One pytest session over the whole suite; its wall time, outcome and figures."""
    tag = f"workers{workers}"
    base, figures = work / tag, work / f"{tag}.figures.jsonl"
    shutil.rmtree(base, ignore_errors=True)
    figures.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={base}", *extra]
    if workers:
        cmd += ["-n", str(workers), "--dist", "loadscope"]
    env = {**os.environ, "DARKPROXY_TEST_FIGURES": str(figures)}
    for k in ("OMP_NUM_THREADS", "PYTHONPATH"):  # as CI starts it (pyproject's pythonpath finds src)
        env.pop(k, None)
    cpu0, t0 = _cpu_seconds(), time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.monotonic() - t0, _cpu_seconds() - cpu0
    summary = next((ln for ln in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", ln)), "")
    (work / f"{tag}.log").write_text(proc.stdout + proc.stderr)
    rows = [json.loads(ln) for ln in figures.read_text().splitlines()] if figures.is_file() else []
    print(f"[suite] workers={workers}: {wall:.1f} s, {summary.strip('= ')}", flush=True)
    run = {"workers": workers, "rc": proc.returncode, "wall_s": wall, "cpu_s": cpu, "summary": summary.strip("= ")}
    return run, rows


def compare(rows: list[dict[str, Any]], noise: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bounded figures of one run that came out worse than the worst noise run."""
    spread = {}
    for s in noise:
        spread.setdefault((s["test"].split("::")[-1], s["name"]), s)
    out = []
    for f in rows:
        s = spread.get((f["test"].split("::")[-1], f["name"]))
        if f.get("bound") is None or s is None:
            continue
        lower_better = f["op"] in ("<", "<=")
        worst = s["max"] if lower_better else s["min"]
        v = f["value"]
        tol = 1e-9 * max(abs(worst), 1e-12)  # equal up to float printing: not worse
        if (v > worst + tol) if lower_better else (v < worst - tol):
            room = abs(f["bound"] - worst)
            out.append(
                {
                    "test": f["test"],
                    "name": f["name"],
                    "value": v,
                    "worst": worst,
                    "std": s["std"],
                    "n": s["n"],
                    "bound": f"{f['op']} {f['bound']:g}",
                    "beyond_std": abs(v - worst) / s["std"] if s["std"] else None,
                    "margin_left": abs(f["bound"] - v) / room if room else None,
                }
            )
    return sorted(out, key=lambda r: r["margin_left"] if r["margin_left"] is not None else 1.0)


def report(res: dict[str, Any]) -> str:
    m = res["meta"]
    lines = [
        "# The test suite serially and on pytest-xdist workers",
        "",
        f"`bench/bench_suite_workers.py`, {m['date']}, {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}: the whole "
        "suite, one run per worker count, one after the other on an otherwise idle machine, each from scratch.",
        "",
        "| workers | wall (s) | / first | CPU (s) | result |",
        "|---|---|---|---|---|",
    ]
    first = res["runs"][0]["wall_s"]
    for r in res["runs"]:
        lines.append(
            f"| {r['workers'] or 'serial'} | {r['wall_s']:.1f} | {r['wall_s'] / first:.2f} | {r['cpu_s']:.0f} | "
            f"{r['summary']} |"
        )
    for r in res["runs"]:
        worse = r["worse_than_noise"]
        lines += [
            "",
            f"## {r['workers'] or 'serial'}: {r['figures']} figures recorded, {r['bounded']} with a bound; "
            f"{len(worse)} worse than the worst of the noise runs (bench/results/test_noise.json)",
            "",
        ]
        if not worse:
            continue
        margins = [w["margin_left"] for w in worse if w["margin_left"] is not None]
        beyond = [w["beyond_std"] for w in worse if w["beyond_std"] is not None]
        lines.append(
            f"Least margin left: {min(margins):.3f} of the worst noise run's (1: as far from the bound as that run); "
            f"farthest beyond the worst run, where the runs spread: {max(beyond, default=0):.2f} std. "
            "std 0: a figure every noise run repeated exactly, moved here by float rounding "
            "(e.g. another thread count)."
        )
        lines += ["", "| test | figure | value | worst noise run (n) | std | bound | beyond (std) | margin left |"]
        lines.append("|---|---|---|---|---|---|---|---|")
        for w in worse:
            b = "" if w["beyond_std"] is None else f"{w['beyond_std']:.2f}"
            ml = "" if w["margin_left"] is None else f"{w['margin_left']:.3f}"
            lines.append(
                f"| {w['test'].split('::')[-1]} | {w['name']} | {w['value']:.6g} | {w['worst']:.6g} ({w['n']}) | "
                f"{w['std']:.3g} | {w['bound']} | {b} | {ml} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="0,2", help="comma-separated worker counts, 0 = serial (default 0,2)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--work", type=Path, default=Path("/tmp/dp/suite-workers"))
    ap.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    noise = json.loads(NOISE.read_text())["summary"]
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
    }
    runs = []
    for w in (int(x) for x in a.workers.split(",")):
        r, rows = run_suite(w, a.work, a.pytest_args)
        r["figures"] = len(rows)
        r["bounded"] = sum(f.get("bound") is not None for f in rows)
        r["worse_than_noise"] = compare(rows, noise)
        runs.append(r)
    res = {"meta": meta, "runs": runs}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "suite_workers.json").write_text(json.dumps(res, indent=1) + "\n")
    (a.out / "suite_workers.md").write_text(report(res))
    print(f"[suite] wrote {a.out / 'suite_workers.md'}")
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
