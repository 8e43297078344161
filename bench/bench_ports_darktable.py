"""The exact ports against the installed darktable's tap-outs: every setting's figure, per port test.

    PYTHONPATH=src .venv/bin/python bench/bench_ports_darktable.py [-k EXPR]
    bash bench/darktable_chroot.sh run ROOT python bench/bench_ports_darktable.py   # darktable 5.x

Runs the port tests that compare a stage with darktable-cli's tap-outs (``tests/replica``, ``-k tapouts`` by
default; one process, serially, as each prints its figures) and collects the lines they print, ``LABEL: [dB per
setting] dB ...``, into ``bench/results/ports_darktable_<version>.md`` and ``.json``: per case the display PSNR
of the port on darktable's input against darktable's output for every setting, and the worst. The tests' pass or
fail is the suite's (``bench_suite_darktable.py``); this keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.locate import locate_darktable  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^([A-Za-z][\w .@/-]*): \[([-\d., ]+)\] dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="tapouts", help="pytest -k expression (default: the tap-out tests)")
    args = ap.parse_args()
    version = locate_darktable().version
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/replica", "-k", args.k]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    cases: dict[str, list[float]] = {}
    for ln in proc.stdout.splitlines():
        m = LINE.match(ln.strip())
        if m:
            cases[m.group(1)] = [float(v) for v in m.group(2).split(",") if v.strip()]
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    seconds = time.perf_counter() - t0
    md = ROOT / "bench" / "results" / f"ports_darktable_{version}.md"  # not with_suffix: the version has dots
    rec = {
        "darktable": version,
        "machine": machine_info(),
        "pytest": summary,
        "seconds": seconds,
        "cases": {k: {"psnr": v, "worst": min(v)} for k, v in sorted(cases.items())},
    }
    md.with_name(md.stem + ".json").write_text(json.dumps(rec, indent=1) + "\n")
    lines = [
        f"# The exact ports against darktable {version}'s tap-outs",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `bench/bench_ports_darktable.py -k {args.k}` "
        f"({seconds / 60:.1f} min; pytest: {summary}).",
        "",
        "Display PSNR (dB, 100: the cap) of each port on darktable's input against darktable's output, per setting "
        "of its test (`tests/replica`), and the worst.",
        "",
        "| case | worst | every setting |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {min(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |" for k, v in sorted(cases.items())]
    md.write_text("\n".join(lines) + "\n")
    print(f"{len(cases)} cases -> {md}")


if __name__ == "__main__":
    main()
