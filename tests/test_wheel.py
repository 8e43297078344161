"""The wheel a pip user gets: built offline from this tree, installed into a
fresh virtual environment, and run from there (not from the source tree).

The wheel is built with ``python -m build --wheel --no-isolation`` (the
installed setuptools; nothing is downloaded) from a copy of the tree, and
installed with ``pip install --no-deps --no-index``. Its dependencies are not
installed again: a ``.pth`` file makes this interpreter's site-packages
visible to the new environment, after its own (a ``.pth`` line adds a folder
without running the ``.pth`` files in it, so the editable install of the
source tree stays out).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = "darkproxy/darktable/schema_cache/darktable-4.2.1.json"


def _run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _copy_tree(dst: Path) -> Path:
    """pyproject.toml, README.md and src/ (without caches and egg-info): what the build reads."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return dst


def test_the_wheel_installs_and_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "tree")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(tree)])
    (wheel,) = (tmp_path / "dist").glob("darkproxy-*.whl")
    version = wheel.name.split("-")[1]

    # package data: the schema snapshot, and every other non-Python file of the package
    names = set(zipfile.ZipFile(wheel).namelist())
    assert SNAPSHOT in names
    pkg = tree / "src"
    data = {p.relative_to(pkg).as_posix() for p in (pkg / "darkproxy").rglob("*") if p.is_file() and p.suffix != ".py"}
    missing = sorted(data - names)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"

    # without the PYTHONPATH a developer may run the tests with (e.g. src): pip would find darkproxy there, "already
    # satisfied", and install nothing into the venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["DARKPROXY_HOME"] = str(tmp_path / "home")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)]
    _run(pip, env=env)
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(_run([str(py), "-c", where], env=env).stdout.strip())
    deps = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (purelib / "_darkproxy_test_deps.pth").write_text("\n".join(deps) + "\n")

    # the package, and its schema snapshot, come from the venv
    probe = (
        "import json, darkproxy; from importlib.resources import files;"
        "from darkproxy.darktable.schema import load_schema_snapshot; s = load_schema_snapshot();"
        "print(json.dumps({'file': darkproxy.__file__, 'version': darkproxy.__version__, 'source': s.source,"
        " 'modules': len(s.modules), 'cache': str(files('darkproxy.darktable') / 'schema_cache')}))"
    )
    info = json.loads(_run([str(py), "-c", probe], tmp_path, env).stdout)
    for key in ("file", "cache"):
        assert Path(info[key]).resolve().is_relative_to(purelib.resolve()), info
        assert not Path(info[key]).resolve().is_relative_to(ROOT), info
    assert (Path(info["cache"]) / Path(SNAPSHOT).name).is_file()
    assert info["version"] == version and info["source"].startswith("snapshot:") and info["modules"] >= 80, info

    r = _run([str(venv / "bin" / "darkproxy"), "--version"], tmp_path, env)
    lines = r.stdout.splitlines()
    assert lines[0] == f"darkproxy {version}", lines
    assert re.match(r"darktable \d+\.\d+", lines[1]), lines

    r = _run([str(venv / "bin" / "darkproxy"), "doctor"], tmp_path, env)
    assert re.search(r"\(darktable \d+\.\d+[^)]*\)", r.stdout), r.stdout
