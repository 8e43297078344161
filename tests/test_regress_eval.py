"""regress-eval: proxy regression vs a black-box search on darktable, same budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.conftest import RUN_SIZE as SIZE


@pytest.mark.slow
def test_regress_eval_cli_both_methods(make_raw, exposure_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "raws"
    images.mkdir()
    for s in ("chelsea", "astronaut"):
        (images / f"{s}.dng").symlink_to(make_raw(source=s, size=SIZE))
    out = tmp_path / "eval"
    r = run_cli("regress-eval", str(exposure_run), "--images", str(images), "-n", "2", "--size", str(SIZE),
                "--iters", "150", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["n"] == 2 and len(res["samples"]) == 2 and res["free_params"] == ["exposure", "black"]
    for s in res["samples"]:
        p, b = s["proxy"], s["baseline"]
        assert set(p["param_error"]) == {"exposure", "black"} and p["renders"] == 2
        # the baseline's PSNR is that of its best darktable render: its trace ends there
        assert b["trace"]["darktable_psnr"][-1] == pytest.approx(b["darktable_psnr"])
        assert b["renders"] == b["trace"]["renders"][-1] >= b["darktable_processes"] >= 1
        assert b["budget_s"] == pytest.approx(p["seconds"])  # the same wall time as the proxy took
        assert np.all(np.diff(b["trace"]["darktable_psnr"]) >= 0)  # best so far
    a = res["aggregate"]
    assert a["proxy"]["median_param_error"] <= 0.02
    assert a["proxy"]["median_darktable_psnr"] >= 40
    assert res["machine"]["nproc"] >= 1 and res["machine"]["cpu"]
    assert (out / "quality_vs_time.png").stat().st_size > 10_000
    md = (out / "results.md").read_text()
    assert "proxy regression" in md and "cma-es" in md


def test_regress_eval_needs_raws(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "empty").mkdir()
    r = run_cli("regress-eval", str(run), "--images", str(tmp_path / "empty"), "-n", "1", "-o", str(tmp_path / "o"))
    assert r.returncode != 0 and "no raw files" in r.stderr and "Traceback" not in r.stderr
