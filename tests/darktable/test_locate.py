"""Locating darktable, and the errors when it is missing or broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkproxy.darktable.locate import locate_darktable
from darkproxy.errors import DarktableNotFound
from tests.conftest import run_cli


def test_locates_installed_darktable() -> None:
    inst = locate_darktable()
    assert inst.cli.name == "darktable-cli"
    assert inst.version_tuple >= (4, 2)
    assert inst.libdir is not None and (inst.libdir / "libdarktable.so").exists()
    assert inst.plugindir is not None and (inst.plugindir / "libexposure.so").exists()


def test_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    real = locate_darktable().cli
    monkeypatch.setenv("DARKPROXY_DARKTABLE_CLI", str(real))
    assert locate_darktable().cli == real


def test_missing_darktable_cli_is_one_line_error(tmp_path: Path) -> None:
    r = run_cli("modules", env={"DARKPROXY_DARKTABLE_CLI": str(tmp_path / "nope" / "darktable-cli")})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr and "apt-get install darktable" in r.stderr
    assert "Traceback" not in r.stderr


def test_not_executable(tmp_path: Path) -> None:
    f = tmp_path / "darktable-cli"
    f.write_text("not a program")
    with pytest.raises(DarktableNotFound, match="not an executable"):
        locate_darktable(f)


@pytest.mark.parametrize(
    "script, error",
    [
        ("echo hello", "does not look like darktable-cli"),  # a stand-in program, only to provoke the error path
        ("echo 'this is darktable-cli 3.8.1'", "too old"),
    ],
)
def test_wrong_program(tmp_path: Path, script: str, error: str) -> None:
    f = tmp_path / "darktable-cli"
    f.write_text(f"#!/bin/sh\n{script}\n")
    f.chmod(0o755)
    with pytest.raises(DarktableNotFound, match=error):
        locate_darktable(f)
