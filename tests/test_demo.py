"""``darkproxy demo`` end to end on a tiny plan: every stage, summary.json, a
report that opens in Chromium, and a re-run that reuses finished stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from darkproxy.demo import DemoPlan, run_demo
from darkproxy.viz.browser import check_images_render, validate_references
from tests.conftest import have_chromium

TINY = DemoPlan(
    quick=True,
    n_raws=4,
    raw_size=96,
    size=48,
    samples=16,
    train_steps={"exposure": 300, "colorbalancergb": 300},
    eval_n=1,
    regress_iters=30,
    sweep_steps=4,
)


@pytest.mark.slow
def test_tiny_demo_runs_every_stage_and_reuses_them(dt, tmp_path: Path, expect) -> None:
    out = tmp_path / "demo"
    logs: list[str] = []
    s = run_demo(dt, out, device="cpu", plan=TINY, log=logs.append)
    # Bounds from 13 fresh runs (bench/results/test_noise.md, "darktable"): the tiny plan's proxies (300 steps)
    # are rough, and darktable's run-to-run noise changes the data they learn from, so its figures spread, in
    # two clusters (2 of 13 runs: pipeline param error 0.150-0.155, PSNR 26.4-26.7; CI saw 0.1527). Each bound
    # sits >= 3 std beyond the worst run, or, where that would test nothing (below the baseline), at the claim
    # itself with the margin stated; each must still show the proxy, regression, replica or match working.
    # The colorbalancergb proxy's PU21 gain over identity: 10.8-22.6 dB (std 4.5): the bound is the claim (> 0).
    for m in ("exposure", "colorbalancergb"):  # the summary holds what the issue asks for, worst cases too
        v = s["proxies"][m]
        expect(f"{m}.heldout_psnr_min - identity", v["heldout_psnr_min"] - v["identity_psnr"], ">", 0)
        expect(f"{m}.heldout_pu21_psnr_min - identity", v["heldout_pu21_psnr_min"] - v["identity_pu21_psnr"], ">", 0)
        expect(f"{m}.identity - heldout_hdrflip_mean", v["identity_hdrflip_mean"] - v["heldout_hdrflip_mean"], ">", 0)
    reg, pipe = s["slider_regression"], s["pipeline_regression"]
    # darktable's renders of the recovered sliders must be far closer to the target than the sliders at their
    # defaults (the baseline, measured in the same run)
    # darktable PSNR 37.5-43.8 dB (std 1.7), full history 38.1-44.4: 30 is 4.4 std under the worst; gain over
    # the defaults 10.9-17.3 dB: 4 is 4.1 std under. PU21 49.6-62.2 dB (std 5.0, two clusters): 3 std under the
    # worst (34.6 dB) would be below the defaults' own PU21 (35.6 dB), so 39 (10.6 dB under the worst) and the
    # gain over the defaults' PU21 (14.0-26.6 dB) at the claim, > 0
    expect("regress.darktable_psnr", reg["darktable_psnr"], ">", 30)
    expect("regress.full_history_psnr", reg["full_history_psnr"], ">", 30)
    expect("regress.darktable_pu21_psnr", reg["darktable_pu21_psnr"], ">", 39)
    expect("regress.defaults_psnr", reg["defaults_psnr"])
    expect("regress.darktable_psnr - defaults", reg["darktable_psnr"] - reg["defaults_psnr"], ">", 4)
    expect("regress.pu21_psnr - defaults", reg["darktable_pu21_psnr"] - reg["defaults_pu21_psnr"], ">", 0)
    expect("regress.param_error_median", reg["param_error_median"], "<", 0.3)
    assert pipe["pipeline"] == ["exposure", "colorbalancergb"]
    # pipeline: darktable PSNR 26.4-28.8 dB (std 0.62): 24 is 3.9 std under the worst; full history 29.7-31.5
    # (std 0.50): 26 is 7.4 std under; param error median 0.121-0.155 (std 0.011): 0.2 is 4.1 std over the worst
    expect("pipeline.darktable_psnr", pipe["darktable_psnr"], ">", 24)
    expect("pipeline.full_history_psnr", pipe["full_history_psnr"], ">", 26)
    expect("pipeline.param_error_median", pipe["param_error_median"], "<", 0.2)
    expect("pipeline.defaults_psnr", pipe["defaults_psnr"])
    expect("pipeline.darktable_psnr - defaults", pipe["darktable_psnr"] - pipe["defaults_psnr"], ">", 10)
    sw = s["sweep"]
    assert sw["psnr_min"] <= sw["psnr"] and sw["pu21_psnr_min"] <= sw["pu21_psnr"] and sw["frames"] == 4
    rp = s["replica"]  # every stage of this edit is exact: darktable's 8-bit export limits it (60.3 dB, no spread)
    expect("replica.psnr", rp["psnr"], ">", 40)
    expect("replica.deltae_mean", rp["deltae_mean"], "<", 1.0)
    assert {st["module"]: st["kind"] for st in rp["stages"]}["filmicrgb"] == "exact"
    mt = s["match"]
    for k, most in (("darktable", 0.5), ("rawpy", 1.0)):  # the fitted sliders' ΔE over the defaults' ΔE
        expect(f"match.{k}.deltae_mean / default", mt[k]["deltae_mean"] / mt[k]["default_deltae_mean"], "<", most)
    html = (out / "report.html").read_text()
    assert "worst sample" in html and "PU21" in html and "Full history" in html
    assert "The replica" in html and "darkproxy match" in html
    stages = {
        "samples",
        "generate-exposure",
        "train-exposure",
        "eval-exposure",
        "generate-colorbalancergb",
        "train-colorbalancergb",
        "eval-colorbalancergb",
        "regress",
        "pipeline",
        "sweep",
        "replica",
        "match",
    }
    assert set(s["stage_seconds"]) == stages and all(v > 0 for v in s["stage_seconds"].values())
    assert json.loads((out / "summary.json").read_text())["stage_seconds"] == s["stage_seconds"]
    report = out / "report.html"
    assert not validate_references(report)
    if have_chromium():
        r = check_images_render(report)
        assert r["images"] >= 6 and r["broken"] == [] and r["broken_videos"] == [], r
    # a re-run reuses every finished stage and rewrites the same summary
    logs.clear()
    s2 = run_demo(dt, out, device="cpu", plan=TINY, log=logs.append)
    assert sum("reused" in line for line in logs) == len(stages)
    assert s2["proxies"] == s["proxies"] and s2["stage_seconds"] == s["stage_seconds"]
