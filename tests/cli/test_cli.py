"""The command line: help texts, doctor."""

from __future__ import annotations

import json

from darkproxy.cli import build_parser
from tests.conftest import run_cli


def test_help_lists_every_command_with_a_description() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = list(sub.choices)
    assert {"doctor", "modules", "params", "xmp", "render", "tapout"} <= set(names)
    for action in sub._choices_actions:
        assert action.help and len(action.help) > 10, action.dest
        assert action.dest in r.stdout


def test_every_command_has_help_with_examples() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        r = run_cli(name, "--help")
        assert r.returncode == 0, name
        assert "examples:" in r.stdout, name


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
    assert {"darktable-cli", "module schemas", "torch", "ffmpeg", "workspace"} <= names


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
