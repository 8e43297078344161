"""Render scale as an input: regions rendered by darktable at a scale, scale-conditioned
training, eval per scale, and refusal of scales a proxy was not trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from darkproxy.colour.metrics import display_psnr
from darkproxy.darktable.tapout import raw_size, region_for_scale, render_scale, tapout
from darkproxy.data.scale import ScaleRange, parse_scales
from darkproxy.errors import ParamValueError, ScaleError
from tests.conftest import ONE_SCALE_RUN, run_cli


def test_scale_range_feature_check_and_parsing() -> None:
    sr = ScaleRange.from_scales([0.1, 0.4, 1.0, None], dependent=True)
    assert sr is not None and sr.conditioned and (sr.lo, sr.hi) == (0.1, 1.0)
    f = sr.feature(torch.tensor([0.1, 10**-0.5, 1.0]))
    assert torch.allclose(f, torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)  # log-scale midpoint
    sr.check(0.5)
    sr.check(1.01)  # within the 2 % measuring tolerance
    with pytest.raises(ScaleError, match="outside"):
        sr.check(0.05)
    with pytest.raises(ScaleError, match="pass the image's scale"):
        sr.check(None)
    one = ScaleRange.from_scales([0.5, 0.5], dependent=True)
    assert one is not None and not one.conditioned
    with pytest.raises(ScaleError):
        one.check(0.25)
    ScaleRange.from_scales([0.5], dependent=False).check(0.01)  # type: ignore[union-attr]  # pointwise: any scale
    assert ScaleRange.from_scales([None], dependent=True) is None
    assert parse_scales("0.1:1") == (0.1, 1.0) and parse_scales("0.1,0.3,1") == [0.1, 0.3, 1.0]
    for bad in ("1:0.1", "0:1", "0.5,2", "x"):
        with pytest.raises(ParamValueError):
            parse_scales(bad)


def test_diagonal_basis_for_a_radius_that_follows_the_image_size() -> None:
    """soften's radius is 1 % of the whole image's diagonal, times the render scale: its proxy is conditioned on
    that diagonal in output px, the same value for a 1024 px raw at 0.25 and a 256 px one at 1."""
    from types import SimpleNamespace

    from darkproxy.data.scale import DIAGONAL_PX, RENDER, basis_for, output_diagonal, sample_scale
    from darkproxy.engines.train.arch import training_scales
    from darkproxy.errors import DatasetError

    assert output_diagonal(0.5, (300.0, 400.0)) == pytest.approx(250.0)
    assert output_diagonal(0.25, (1024, 768)) == pytest.approx(output_diagonal(1.0, (256, 192)))
    assert basis_for("soften") == DIAGONAL_PX and basis_for("lowpass") == RENDER
    rec = {"render_scale": 0.5, "full_size": [300, 400]}
    assert sample_scale(rec, DIAGONAL_PX) == pytest.approx(250.0) and sample_scale(rec, RENDER) == 0.5
    assert sample_scale({"render_scale": 0.5}, DIAGONAL_PX) is None
    sr = ScaleRange.from_scales([125.0, 500.0], dependent=True, basis=DIAGONAL_PX)
    assert sr is not None and ScaleRange.from_json(sr.to_json()) == sr and str(sr) == "125-500 px of diagonal"
    assert "basis" not in ScaleRange(0.1, 1.0).to_json()  # runs before the basis read back as render scales
    with pytest.raises(ScaleError, match="diagonal is 1000 output px, outside"):
        sr.check(1000.0)
    assert sr.render_scale(250.0, (300, 400)) == pytest.approx(0.5) and sr.render_scale(900.0, (300, 400)) == 1.0
    assert ScaleRange(0.1, 1.0).render_scale(0.3, None) == 0.3  # a render-scale range: the value itself
    with pytest.raises(ScaleError, match="needs the image's size"):
        sr.render_scale(250.0, None)
    info = SimpleNamespace(module="soften", pointwise=False, pre_demosaic=False, raw={"scales": {"range": [0.1, 1]}})
    recs = [{"render_scale": 0.1, "full_size": [1024, 768]}, {"render_scale": 1.0, "full_size": [1024, 1024]}]
    got = training_scales(info, "multiscale", SimpleNamespace(records=recs))  # type: ignore[arg-type]
    assert got is not None and got.basis == DIAGONAL_PX and got.conditioned
    assert (got.lo, got.hi) == pytest.approx((128.0, 1448.15), abs=0.01)  # the data's, not the asked 0.1-1
    with pytest.raises(DatasetError, match="full_size"):  # a dataset generated before samples recorded it
        training_scales(info, "multiscale", SimpleNamespace(records=[{"render_scale": 0.5}]))  # type: ignore[arg-type]


def test_region_geometry() -> None:
    r = region_for_scale((1000, 500), 100, 0.5)  # 200 raw px, centred
    assert r.max_size == 100 and r.box == (0.4, 0.3, 0.6, 0.7)
    small = region_for_scale((300, 200), 128, 0.25)  # 512 raw px > the raw: all of it, fewer output px
    assert small.whole and small.max_size == 75
    rng = np.random.default_rng(0)
    for _ in range(50):
        left, top, right, bottom = region_for_scale((2000, 1000), 64, 0.5, rng).box
        assert 0 <= left <= 0.9 and 0 <= top <= 0.9 and right <= 1 and bottom <= 1  # darktable's crop limits
        assert right - left == pytest.approx(0.064, abs=1e-5) and bottom - top == pytest.approx(0.128, abs=1e-5)


def test_full_resolution_region_is_a_crop_of_the_full_size_render(dt, make_raw, expect) -> None:
    """A region at scale 1 is what darktable renders at full size, there: the crop module only
    cuts. Within a few px of the region's edge darktable demosaics without the pixels beyond it
    (measured: 95 dB inside an 8 px margin, ~31 dB with it), like at an image border; input and
    output of a sample share that, so the pair stays the module's exact I/O."""
    raw = make_raw(source="astronaut", size=256)  # 256 x 256: region fractions land on whole px
    region = region_for_scale((256, 256), 64, 1.0, np.random.default_rng(3))
    part = tapout(dt, raw, "exposure", {"exposure": 1.0}, region=region)
    whole = tapout(dt, raw, "exposure", {"exposure": 1.0}, max_size=None)
    left, top = region.box[:2]
    y, x = int(top * 256), int(left * 256)  # darktable's crop starts at the whole px
    h, w = part.output.shape[1:]
    assert (h, w) == (64, 64) and part.meta["render_scale"] == pytest.approx(1.0, abs=0.02)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    ref = whole.output[:, y : y + h, x : x + w]
    # 97.85 dB in each of 10 fresh runs (bench/results/test_noise.md): the bound leaves darktable's noise room
    expect("region vs full render psnr", display_psnr(part.output[inner], ref[inner]), ">", 60)
    half = tapout(dt, raw, "sharpen", {}, region=region_for_scale((256, 256), 64, 0.5))
    assert half.output.shape[1:] == (64, 64) and half.meta["render_scale"] == pytest.approx(0.5, rel=0.03)


@pytest.fixture(scope="module")
def scales_run(make_raw, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sharpen dataset over scales 0.25-1 (two 192 px raws) and a tiny proxy trained on it."""
    root = tmp_path_factory.mktemp("scales")
    raws = root / "raws"
    raws.mkdir()
    for s in ("astronaut", "rocket"):
        shutil.copyfile(make_raw(source=s, size=192), raws / f"{s}.dng")
    ds, run = root / "ds", root / "run"
    r = run_cli(
        "generate",
        "sharpen",
        "-o",
        str(ds),
        "--images",
        str(raws),
        "-n",
        "8",
        "--size",
        "48",
        "--scales",
        "0.25:1",
        "--no-probe",
    )
    assert r.returncode == 0, r.stderr
    r = run_cli("train", str(ds), "-o", str(run), "--steps", "30", "--arch", "multiscale")
    assert r.returncode == 0, r.stderr
    return {"raws": raws, "ds": ds, "run": run, "root": root}


def test_generate_scales_records_regions_and_scales(scales_run) -> None:
    recs = [json.loads(x) for x in (scales_run["ds"] / "manifest.jsonl").read_text().splitlines()]
    info = json.loads((scales_run["ds"] / "dataset.json").read_text())
    assert len(recs) == 8 and info["scales"] == {"range": [0.25, 1.0]}
    for rec in recs:
        asked = rec["region"]["scale"]
        assert 0.25 <= asked <= 1.0
        assert rec["render_scale"] == pytest.approx(asked, rel=0.03)  # measured from darktable's output size
        assert tuple(rec["full_size"]) == raw_size(scales_run["raws"] / rec["raw"])  # soften's radius follows it
    assert max(r["render_scale"] for r in recs) / min(r["render_scale"] for r in recs) > 1.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sharpen", "--scales", "0.5", "--crops", "2"], "--crops 1"),
        (["sharpen", "--scales", "0:1"], "(0, 1]"),
        (["temperature", "--scales", "0.5"], "full-resolution mosaic"),
    ],
)
def test_generate_scales_refusals(scales_run, tmp_path: Path, args: list[str], message: str) -> None:
    r = run_cli("generate", *args, "-o", str(tmp_path / "ds"), "--images", str(scales_run["raws"]), "-n", "2")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_trained_run_is_conditioned_and_refuses_other_scales(scales_run) -> None:
    from darkproxy.proxy import Proxy

    info = json.loads((scales_run["run"] / "run.json").read_text())
    sr = info["scale_range"]
    assert sr["conditioned"] and sr["dependent"] and sr["lo"] == 0.25 and 1.0 <= sr["hi"] < 1.03  # asked range
    proxy = Proxy.load(scales_run["run"])
    assert proxy.model.n_params == 4  # radius, amount, threshold + the scale
    x = torch.rand(1, 3, 32, 32)
    lo_out, hi_out = proxy(x, {}, scale=sr["lo"]), proxy(x, {}, scale=sr["hi"])
    assert not torch.equal(lo_out, hi_out)  # the scale reaches the network
    with pytest.raises(ScaleError, match="outside"):
        proxy(x, {}, scale=0.1)
    with pytest.raises(ScaleError, match="pass the image's scale"):
        proxy(x, {})


def test_eval_per_scale_and_refusal(scales_run) -> None:
    out = scales_run["root"] / "eval"
    r = run_cli(
        "eval",
        str(scales_run["run"]),
        "--images",
        str(scales_run["raws"]),
        "-n",
        "3",
        "--scales",
        "0.3,1",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert [p["scale"] for p in m["per_scale"]] == [0.3, 1.0]
    for p in m["per_scale"]:
        assert p["n"] == 3 and p["render_scale"] == pytest.approx(p["scale"], rel=0.03)
        assert np.isfinite(p["psnr"]) and p["identity_psnr"] is not None
    # each draw its own region (one per raw let a flat patch stand for a whole scale): draws 0 and 2 share a raw
    at1 = [s for s in m["samples"] if s["scale"] == 1.0]
    assert at1[0]["raw"] == at1[2]["raw"] and at1[0]["region"]["box"] != at1[2]["region"]["box"]
    assert "scale 0.3:" in r.stdout and "scale 1:" in r.stdout
    r = run_cli("eval", str(scales_run["run"]), "--images", str(scales_run["raws"]), "--scales", "0.1", "-o", str(out))
    assert r.returncode == 2 and "outside" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_zoo_local_proxy_refused_at_an_untrained_scale(scales_run, tmp_path: Path) -> None:
    """A bilat proxy trained at scale 0.5 only (``ONE_SCALE_RUN``) refuses full size in one line;
    the pointwise exposure proxy does not depend on the scale."""
    from darkproxy.proxy import Proxy

    e = tmp_path / "e"
    r = run_cli("eval", str(ONE_SCALE_RUN), "--images", str(scales_run["raws"]), "--scales", "1", "-o", str(e))
    assert r.returncode == 2 and "0.5" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    expo = Proxy.load("zoo:exposure")
    assert expo.scale_range is not None and not expo.scale_range.dependent
    expo.check_scale(0.05)
    assert render_scale((400, 300), (3, 150, 200)) == 0.5
