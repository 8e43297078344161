"""``--json`` and ``--quiet``: every command has both; the result is one JSON value on stdout, and
``--quiet`` leaves stderr to warnings and errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darkproxy.cli import build_parser
from tests.conftest import run_cli


def _leaf_parsers(p: argparse.ArgumentParser, name: str = "darkproxy") -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {name: p}
    out: dict[str, argparse.ArgumentParser] = {}
    for a in subs:
        for sub_name, sp in a.choices.items():
            out.update(_leaf_parsers(sp, f"{name} {sub_name}"))
    return out


def test_every_command_takes_json_and_quiet() -> None:
    leaves = _leaf_parsers(build_parser())
    assert len(leaves) > 15
    for name, p in leaves.items():
        opts = {s for a in p._actions for s in a.option_strings}
        assert {"--json", "--quiet", "-q"} <= opts, name


def test_json_results_parse(tmp_path: Path) -> None:
    from tests.engines.test_train import exposure_dataset

    r = run_cli("params", "exposure", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["module"] == "exposure"

    ds = exposure_dataset(tmp_path / "ds", n=6, size=16, pointwise=True)
    r = run_cli("verify", str(ds), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "dataset": str(ds),
        "ok": True,
        "samples": 6,
        "problems": [],
        "summary": "ok: 6 samples verified",
    }

    run = tmp_path / "run"
    r = run_cli("train", str(ds), "-o", str(run), "--steps", "8", "--device", "cpu", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)  # the whole of stdout is one JSON object
    assert res["run_dir"] == str(run) and res["steps"] == 8 and res["arch"] == "pointwise"
    assert isinstance(res["best_val_psnr"], float)
    # --quiet: no progress, no messages; only warnings could be left (none here: tensorboard is installed)
    assert [ln for ln in r.stderr.splitlines() if not ln.startswith("darkproxy: warning:")] == [], r.stderr


def test_quiet_prints_nothing_on_stderr_but_keeps_the_result() -> None:
    r = run_cli("params", "exposure", "--quiet")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("exposure (params v")
    r = run_cli("params", "nosuchmodule", "-q")  # errors still go to stderr
    assert r.returncode == 2 and "unknown darktable module" in r.stderr
