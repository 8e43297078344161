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
def test_tiny_demo_runs_every_stage_and_reuses_them(dt, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    logs: list[str] = []
    s = run_demo(dt, out, device="cpu", plan=TINY, log=logs.append)
    for m in ("exposure", "colorbalancergb"):  # the summary holds what the issue asks for, worst cases too
        v = s["proxies"][m]
        assert v["heldout_psnr_min"] > v["identity_psnr"], (m, v)
        assert (
            v["heldout_pu21_psnr_min"] > v["identity_pu21_psnr"]
            and v["heldout_hdrflip_mean"] < v["identity_hdrflip_mean"]
        )
    reg, pipe = s["slider_regression"], s["pipeline_regression"]
    # the tiny plan's proxies (300 steps) are rough, so the sliders are too, and darktable's run-to-run noise
    # changes the data they learn from: 5 runs gave regression 35.1-42.3 dB tap-out (36.5-43.5 full history),
    # param error median 12-21 %; pipeline 30.3-31.4 dB, 5-6 %. darktable's renders of them must still be far
    # closer to the target than the sliders at their defaults (the baseline, measured in the same run: 26.6 dB
    # for the regression, 12.3 dB for the pipeline)
    assert reg["darktable_psnr"] > 32 and reg["full_history_psnr"] > 32 and reg["darktable_pu21_psnr"] > 45
    assert reg["darktable_psnr"] > reg["defaults_psnr"] + 5 and reg["darktable_pu21_psnr"] > reg["defaults_pu21_psnr"]
    assert reg["param_error_median"] < 0.3
    assert pipe["pipeline"] == ["exposure", "colorbalancergb"] and pipe["darktable_psnr"] > 26
    assert pipe["full_history_psnr"] > 26 and pipe["param_error_median"] < 0.15
    assert pipe["darktable_psnr"] > pipe["defaults_psnr"] + 10
    sw = s["sweep"]
    assert sw["psnr_min"] <= sw["psnr"] and sw["pu21_psnr_min"] <= sw["pu21_psnr"] and sw["frames"] == 4
    rp = s["replica"]  # every stage of this edit is exact: darktable's 8-bit export limits it (measured 50+ dB)
    assert rp["psnr"] > 40 and rp["deltae_mean"] < 1.0, rp
    assert {st["module"]: st["kind"] for st in rp["stages"]}["filmicrgb"] == "exact"
    mt = s["match"]
    for k in ("darktable", "rawpy"):
        assert mt[k]["deltae_mean"] < mt[k]["default_deltae_mean"], (k, mt[k])
    assert mt["darktable"]["deltae_mean"] < 0.5 * mt["darktable"]["default_deltae_mean"], mt["darktable"]
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
