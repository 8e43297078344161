"""The test suite on the darktable that is installed, summarised: what passes, what fails and why, what skips.

    PYTHONPATH=src .venv/bin/python bench/bench_suite_darktable.py [-n 2] [PYTEST ARGS...]
    bash bench/darktable_chroot.sh run ROOT python bench/bench_suite_darktable.py   # darktable 5.0.1

CI runs the suite on Debian 12's darktable 4.2.1; this runs it (pytest with one worker per ``-n``, JUnit XML)
on whatever darktable-cli is found and writes ``bench/results/suite_darktable_<version>[_<n>workers].md``: the
counts, each failed test with the last line of its error, each skipped test with its reason.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.locate import locate_darktable  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _last_line(text: str) -> str:
    """The error's first line; for figures outside their bounds, the figures (what the run measured)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln[2:].strip() for ln in lines if ln.startswith("E ")]
    first = errors[0] if errors else lines[-1] if lines else ""
    if first.endswith("figures outside their bounds (bench/results/test_noise.md):"):
        first = "figures outside their bounds: " + "; ".join(e for e in errors[1:] if " = " in e)
    return first[:300].replace("|", "/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", default="2", help="pytest-xdist workers")
    args, rest = ap.parse_known_args()
    version = locate_darktable().version
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        xml = Path(td) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-n", args.n, "--dist", "loadscope", "-q", "-p", "no:cacheprovider"]
        proc = subprocess.run([*cmd, f"--junitxml={xml}", *rest], cwd=ROOT, capture_output=True, text=True)
        cases = ET.parse(xml).getroot().iter("testcase") if xml.is_file() else iter(())
        rows = []
        for c in cases:
            name = f"{c.get('classname', '').replace('.', '/')}.py::{c.get('name')}"
            kind, why = "passed", ""
            for tag in ("failure", "error", "skipped"):
                el = c.find(tag)
                if el is not None:
                    kind = "skipped" if tag == "skipped" else "failed"
                    why = _last_line(el.get("message", "") + "\n" + (el.text or ""))
            rows.append((kind, name, why))
    minutes = (time.perf_counter() - t0) / 60
    count = {k: sum(1 for r in rows if r[0] == k) for k in ("passed", "failed", "skipped")}
    info = machine_info()
    lines = [
        f"# The test suite on darktable {version}",
        "",
        f"{info.get('date', '')}, {info.get('nproc', '?')} cores: `bench/bench_suite_darktable.py -n {args.n}` "
        f"({minutes:.1f} min, pytest exit {proc.returncode}). CI runs it on darktable 4.2.1 "
        "(`bench/results/ci_runs.md`).",
        "",
        f"**{count['passed']} passed, {count['failed']} failed, {count['skipped']} skipped.**",
        "",
    ]
    for kind in ("failed", "skipped"):
        sel = [r for r in rows if r[0] == kind]
        if sel:
            lines += [f"## {kind.capitalize()}", "", "| test | why |", "|---|---|"]
            lines += [f"| `{name}` | {why} |" for _, name, why in sel]
            lines.append("")
    # -n 0 (serial) is the plain name; workers are named: darktable runs several processes at once then
    workers = "" if args.n in ("0", "1") else f"_{args.n}workers"
    out = ROOT / "bench" / "results" / f"suite_darktable_{version}{workers}.md"
    out.write_text("\n".join(lines))
    print(out.read_text())
    if not rows:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")


if __name__ == "__main__":
    main()
