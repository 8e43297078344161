"""``--shared``: one look for many images with each image's own exposure, with the real darktable-cli. darktable
made the references of three raws with one look (color balance rgb's saturation and contrast) at three exposures
(+0.4, +1.4, +1.0 EV), as a shoot is: one style, per-photo exposure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

LOOK = {"colorbalancergb": {"saturation_global": 0.3, "contrast": 0.15}}
EXPOSURE = {"coffee": 0.4, "motorcycle": 1.4, "rocket": 1.0}  # sorted by name: rocket is --pairs' held-out pair


def _shoot(dt, make_raw, folder: Path) -> None:
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import replica_history
    from darkproxy.viz.images import save_png, to_uint8

    folder.mkdir()
    for src, ev in EXPOSURE.items():
        raw = make_raw(source=src, size=128)
        shutil.copyfile(raw, folder / f"{src}.dng")
        look = replica_history(dt, raw, None, {**LOOK, "exposure": {"exposure": ev}})
        save_png(folder / f"{src}.png", to_uint8(render_export(dt, raw, look, 64)))


@pytest.mark.slow
def test_shared_look_with_each_images_exposure(dt, make_raw, tmp_path: Path, expect) -> None:
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.match import match_pairs
    from darkproxy.replica.plan import _decode

    shoot = tmp_path / "shoot"
    _shoot(dt, make_raw, shoot)
    chain = ["exposure", "colorbalancergb"]

    def cfg() -> RegressConfig:
        return RegressConfig(iters=80, restarts=1)

    kw = {"chain": chain, "max_size": 64, "holdout": 1, "demosaic": False}  # the choice: tests/match/test_demosaic.py
    shared = match_pairs(dt, shoot, tmp_path / "shared", config=cfg(), per_image=["exposure.exposure"], **kw)
    plain = match_pairs(dt, shoot, tmp_path / "plain", config=cfg(), **kw)
    assert shared["per_image_sliders"] == ["exposure.exposure"] and "exposure.exposure" not in shared["params"]
    # fresh runs (bench/results/test_noise.md, group match-shared): every figure repeats exactly (darktable's
    # renders and the seeded fit repeat): exposure differences off by 0.0018 and 0.0037 EV (bound 0.1: a stated
    # margin of 27x), fitted ΔE2000 / defaults 0.076 (bound 0.2), held out shared / plain 0.286 (bound 0.5), batch
    # (--shared's default chain, with color calibration and an rgb curve) exposure difference 0.0072 EV (bound
    # 0.15) and ΔE2000 / defaults 0.101 (bound 0.25; 0.0007 EV and 0.098 with the default chain)
    got = {}
    for rec in shared["pairs"]:  # each image's own exposure, the held-out one's fitted with the look fixed
        stem = Path(rec["raw"]).stem
        got[stem] = rec["per_image"]["exposure.exposure"]
        xmp = read_xmp(rec["xmp"]).compressed().find("exposure")
        assert _decode(dt, "exposure", xmp).values["exposure"] == pytest.approx(got[stem], abs=1e-4)  # in result.xmp
    # color balance rgb's brilliance (a shared slider) scales the light like exposure does: only the exposures'
    # differences are pinned by the references, not a common offset
    for a, b in (("motorcycle", "coffee"), ("rocket", "coffee")):
        err = abs((got[a] - got[b]) - (EXPOSURE[a] - EXPOSURE[b]))
        expect(f"exposure {a} - {b}: error (EV)", err, "<", 0.1)
    expect("common exposure offset (EV)", float(np.mean([got[k] - EXPOSURE[k] for k in got])))
    expect("fitted: ΔE2000 / defaults", shared["fit_deltae_mean"] / shared["fit_default_deltae_mean"], "<", 0.2)
    # one exposure for all (plain --pairs) cannot follow the shoot's exposures; the held-out photo with its own
    expect("held out: ΔE2000 shared / plain", shared["heldout_deltae_mean"] / plain["heldout_deltae_mean"], "<", 0.5)
    expect("held out: plain ΔE2000", plain["heldout_deltae_mean"])

    # --batch --shared (the default chain): every raw's sidecar with its own exposure; a rerun reuses the fit
    out = tmp_path / "batch"
    args = ["match", "--batch", str(shoot), "--shared", "-o", str(out), "--max-size", "64", "--iters", "80"]
    args += ["--demosaic", "keep"]
    r = run_cli(*args, "--restarts", "1", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert [row["status"] for row in s["images"]] == ["matched"] * 3 and Path(s["style"]).is_file()
    ev = {}
    for row in s["images"]:
        stem = Path(row["raw"]).stem
        side = read_xmp(shoot / f"{stem}.dng.xmp").compressed().find("exposure")
        ev[stem] = _decode(dt, "exposure", side).values["exposure"]
        assert ev[stem] == pytest.approx(row["per_image"]["exposure.exposure"], abs=1e-4)
    # filmic's white and black points are shared and fitted too: only the exposures' differences are pinned
    expect("batch: exposure difference error (EV)", abs((ev["motorcycle"] - ev["coffee"]) - 1.0), "<", 0.15)
    expect("batch: ΔE2000 / defaults", s["deltae_mean"] / s["default_deltae_mean"], "<", 0.25)
    r2 = run_cli(*args, "--restarts", "1", "--json")
    assert r2.returncode == 0, r2.stderr
    assert [row["status"] for row in json.loads(r2.stdout)["images"]] == ["reused"] * 3


def test_shared_refusals(tmp_path: Path) -> None:
    for args, msg in (
        (["--shared", "a.dng", "b.jpg"], "--shared is for --pairs DIR or --batch DIR"),
        (["a.dng", "--per-image", "exposure.exposure,temperature.red"], "--per-image is for --shared"),
        (["--pairs", str(tmp_path), "--shared", "--per-image", ","], "at least one --per-image"),
    ):
        r = run_cli("match", *args, "-o", str(tmp_path / "o"))
        assert r.returncode != 0 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
