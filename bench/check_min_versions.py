"""Do the declared lower bounds hold? The fast tests on the minimum versions.

Creates a virtual environment with the *lowest* release of each dependency that
``pyproject.toml`` allows (``name>=X``: the first release >= X that has a wheel
for this Python), installs them there with their own dependencies, makes this
interpreter's site-packages visible after them (a ``.pth`` file) for what is
not pinned, and runs a few fast test files with that environment's Python.

Not pinned, and taken from this environment instead:

* torch: PyPI's Linux torch wheels are multi-GB CUDA builds and only the
  pinned CPU wheel (2.13.0) is available offline, so the installed torch is
  used (pyproject.toml says why the torch bound is what it is);
* imagecodecs and imageio-ffmpeg: large binary bundles (a codec library, an
  ffmpeg build), APIs the code uses that have not changed in years;
* markers for other Pythons (tomli) and the extras (tensorboard, ray).

pip must not fetch torch for a pinned package that depends on it (kornia): each
of these gets a stub ``.dist-info`` (name and version only) in the new
environment, so pip sees it installed, while ``import torch`` finds the real
one through the ``.pth`` file.

Writes ``bench/results/min_versions.md`` (machine, date, versions, test result).

    .venv/bin/python bench/check_min_versions.py [--out bench/results/min_versions.md] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
NOT_PINNED = {
    "torch": "the installed build: PyPI's Linux torch wheels are multi-GB CUDA builds; only CPU 2.13.0 is offline",
    "imagecodecs": "the installed one: a large binary codec bundle (tifffile's plugin)",
    "imageio-ffmpeg": "the installed one: bundles an ffmpeg build",
}
TESTS = [
    "tests/data/test_sampling.py",
    "tests/data/test_store.py",
    "tests/data/test_dataset.py",
    "tests/colour/test_encodings.py",
    "tests/colour/test_metrics.py",
    "tests/viz/test_report.py",
    "tests/viz/test_video.py",
    "tests/raw/test_synth.py",
    "tests/models/test_models.py",
    "tests/proxy/test_model.py",
    "tests/engines/test_regress.py::test_params_stay_in_range_by_construction",  # imports kornia
]


def sh(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd, env=env, check=check)


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return sh([sys.executable, "-m", "pip", *args])


def lowest_with_wheel(req: Requirement, dl: Path) -> tuple[str, str]:
    """The lowest release allowed by ``req`` with a wheel for this Python, and a note."""
    out = pip("index", "versions", req.name).stdout
    m = re.search(r"Available versions: (.*)", out)
    if not m:
        raise SystemExit(f"pip index versions {req.name} listed nothing:\n{out}")
    allowed = sorted(v for v in (Version(s.strip()) for s in m.group(1).split(",")) if v in req.specifier)
    skipped: list[str] = []
    for v in allowed[:8]:
        r = pip("download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(dl), f"{req.name}=={v}")
        if r.returncode == 0:
            return str(v), (f"no wheel for this Python: {', '.join(skipped)}" if skipped else "")
        skipped.append(str(v))
    raise SystemExit(f"no wheel of {req.name} for this Python among {', '.join(skipped)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "min_versions.md"))
    ap.add_argument("--keep", metavar="DIR", help="build the environment in DIR and keep it (default: a temp dir)")
    args = ap.parse_args()
    t_start = time.monotonic()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs = [r for r in reqs if r.marker is None or r.marker.evaluate()]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="darkproxy-minver-"))
    work.mkdir(parents=True, exist_ok=True)

    rows: list[tuple[str, str, str, str]] = []  # name, declared, tested, note
    pins = []
    for r in reqs:
        if r.name in NOT_PINNED:
            continue
        v, note = lowest_with_wheel(r, work / "dl")
        pins.append(f"{r.name}=={v}")
        rows.append((r.name, str(r.specifier), v, note))
        print(f"{r.name}{r.specifier}: {v} {note}", flush=True)

    venv = work / "venv"
    if venv.exists():
        shutil.rmtree(venv)
    sh([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = Path(sh([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    for name in NOT_PINNED:  # stubs: installed as far as pip can tell, imported from this environment
        ver = metadata.version(name)
        stub = purelib / f"{name.replace('-', '_')}-{ver}.dist-info"
        stub.mkdir()
        (stub / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
    inst = pip("--python", str(py), "install", "-q", "--only-binary", ":all:", *pins)
    if inst.returncode != 0:
        raise SystemExit(f"the minimum versions do not install together:\n{inst.stdout}\n{inst.stderr}")
    # after the install (pip would take this environment's packages for installed ones)
    (purelib / "_darkproxy_rest.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    names = [n for n, *_ in rows] + list(NOT_PINNED)
    probe = (
        "import sys, importlib.metadata as m\n"
        f"for n in {names!r}:\n"
        "    d = m.distribution(n); print(n, d.version, d.locate_file(''))\n"
    )
    seen = {}
    for line in sh([str(py), "-c", probe], check=True).stdout.splitlines():
        n, ver, where = line.split(" ", 2)
        seen[n] = (ver, where)
    for n, _, v, _ in rows:
        assert seen[n][0] == v, f"{n}: {seen[n]} is imported, not the pinned {v} (the .pth shadows it?)"
    for n, why in NOT_PINNED.items():
        rows.append((n, next(str(r.specifier) for r in reqs if r.name == n), seen[n][0], why))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *TESTS]
    t0 = time.monotonic()
    res = sh(cmd, cwd=ROOT, env=env)
    test_s = time.monotonic() - t0
    tail = (res.stdout + res.stderr).strip().splitlines()
    summary = next(
        (ln for ln in reversed(tail) if re.search(r"\d+ (passed|failed|error)", ln)), tail[-1] if tail else ""
    )
    failures = [ln for ln in tail if ln.startswith(("FAILED", "ERROR"))]
    print("\n".join(tail[-30:]))

    date = sh(["date"]).stdout.strip()
    lines = [
        "# The fast tests on the minimum versions of the dependencies",
        "",
        f"- date: {date}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- Python {platform.python_version()}; made by `bench/check_min_versions.py` "
        f"({time.monotonic() - t_start:.0f} s in all)",
        "",
        "Each dependency at the lowest release that `pyproject.toml` allows with a wheel for this Python,",
        "installed with its own dependencies into a fresh venv (pip's resolver picks those); torch,",
        "imagecodecs and imageio-ffmpeg are the installed ones (see the notes), and so are pytest and",
        "whatever else the tests need beyond these. macOS declares torch>=2.5 (MPS autocast), not tested here.",
        "",
        "| package | declared | tested | note |",
        "|---|---|---|---|",
        *(f"| {n} | `{spec}` | {v} | {note} |" for n, spec, v, note in rows),
        "",
        f"Tests (`-m 'not slow'`, {test_s:.0f} s): `{' '.join(TESTS)}`",
        "",
        f"Result: **{summary.strip('= ')}** (exit code {res.returncode})",
    ]
    if failures:
        lines += ["", "Failures:", "", *(f"- `{f}`" for f in failures)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
