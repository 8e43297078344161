"""The command line: help texts, doctor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from darkproxy.cli import build_parser
from tests.conftest import SRC, run_cli


def test_help_lists_every_command_with_a_description() -> None:
    r = run_cli("--help", fresh=True)  # a new interpreter: the entry point exactly as a user starts it
    assert r.returncode == 0
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = list(sub.choices)
    assert {"doctor", "modules", "params", "xmp", "render", "tapout"} <= set(names)
    for action in sub._choices_actions:
        assert action.help and len(action.help) > 10, action.dest
        assert action.dest in r.stdout


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from darkproxy.cli import main

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert run_cli("zoo", "--help", fresh=True).returncode == 0  # the real entry point, once
    for name in sub.choices:  # in process: a subprocess each took ~1 s of suite time
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name
        assert "examples:" in capsys.readouterr().out, name


def test_doctor_reports_everything() -> None:
    r = run_cli("doctor", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["ok"] is True
    assert d["darktable"]["version"] and d["darktable"]["cli"].endswith("darktable-cli")
    assert d["darktable"]["plugindir"]
    assert d["schemas"]["modules"] >= 80
    assert d["torch"]["version"] and d["torch"]["device"] in ("cpu", "cuda", "mps")
    assert d["ffmpeg"]
    names = {c["name"] for c in d["checks"]}
    assert {"darktable-cli", "module schemas", "torch", "ffmpeg", "workspace", "replica ports"} <= names
    ports = d["ports"]
    assert ports["exact"] >= 50
    # 4.2.1 here; 5.0.1 and 5.4.1 too (bench/darktable_chroot.sh): every port reads the installed params version
    assert ports["refused_by_version"] == [], ports


def test_doctor_fails_with_fix_when_darktable_missing(tmp_path) -> None:
    r = run_cli("doctor", env={"DARKPROXY_DARKTABLE_CLI": str(tmp_path / "none")})
    assert r.returncode == 1
    assert "fix:" in r.stdout and "apt-get install darktable" in r.stderr


def test_unwritable_workspace_is_reported(tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("doctor", "--json", env={"DARKPROXY_HOME": str(f / "sub")})
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert not next(c for c in d["checks"] if c["name"] == "workspace")["ok"]


def test_version_names_darkproxy_and_the_darktable_found() -> None:
    from importlib.metadata import version

    import darkproxy

    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"darkproxy {version('darkproxy')}" == f"darkproxy {darkproxy.__version__}"
    assert re.fullmatch(r"darktable \d+\.\d+\S* \(\S*darktable-cli\)", lines[1]), lines
    # through argparse too (the fast path takes `--version` alone): the same text, before any command runs
    r2 = run_cli("--version", "doctor")
    assert r2.returncode == 0 and r2.stdout == r.stdout


def test_version_without_darktable_says_so_and_exits_0(tmp_path) -> None:
    r = run_cli("--version", env={"DARKPROXY_DARKTABLE_CLI": str(tmp_path / "none")}, fresh=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("darkproxy ")
    assert lines[1].startswith("darktable: not found (") and "apt-get install darktable" in lines[1]


def test_train_without_tensorboard_warns_in_one_line(tmp_path) -> None:
    from tests.engines.test_train import exposure_dataset

    ds = exposure_dataset(tmp_path / "ds", n=6, size=16, pointwise=True)
    blocker = tmp_path / "no-tensorboard" / "tensorboard"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tensorboard is blocked by this test')\n")
    r = run_cli(
        "train", str(ds), "-o", str(tmp_path / "run"), "--steps", "4", "--device", "cpu", "--quiet",
        env={"PYTHONPATH": f"{blocker.parent}{os.pathsep}{SRC}"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if "TensorBoard" in ln]
    assert warn == [
        "darkproxy: warning: TensorBoard logs disabled: tensorboard is not installed "
        "(pip install 'darkproxy[tensorboard]')"
    ], r.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file() and not (tmp_path / "run" / "tb").exists()


def test_help_and_argument_parsing_do_not_load_torch() -> None:
    """Every command module is imported to build `darkproxy --help`: none may load torch or scipy.stats at
    import (2.5 s of every command's start, --help and one-line usage errors included, measured)."""
    code = (
        "import sys; from darkproxy.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'scipy.stats') if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
