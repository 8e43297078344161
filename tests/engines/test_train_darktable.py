"""Acceptance: an exposure proxy trained on a tiny *darktable-generated* dataset (the ``exposure_run``
fixture: 2000 steps on the CPU, see tests/conftest.py) reaches >= 35 dB validation PSNR, early. How fast
that is on a given machine is a speed target, measured by bench/bench_train_budget.py, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path


def test_exposure_proxy_on_generated_data(exposure_run: Path, expect) -> None:
    m = json.loads((exposure_run / "metrics.json").read_text())
    run = json.loads((exposure_run / "run.json").read_text())
    print(
        f"exposure proxy: best val PSNR {m['best_val_psnr']:.2f} dB after {m['seconds']:.1f} s "
        f"({m['steps']} steps; identity {m['val_identity_psnr']:.2f} dB)"
    )
    assert m["steps"] == 2000 and not m["stopped_early"]  # steps only: the same proxy on a loaded machine
    # when it got there: the first validation at >= 35 dB (every 200 steps)
    hist = [json.loads(line) for line in (exposure_run / "history.jsonl").read_text().splitlines()]
    vals = [(h["step"], h["val_psnr"]) for h in hist if h["val_psnr"] is not None]
    print(f"val {[(s, round(v, 1)) for s, v in vals]}")
    step35 = next((s for s, v in vals if v >= 35.0), 10**9)
    # bench/results/test_noise.md (13 fresh runs; the dataset is darktable's renders, which differ from run to
    # run): best 59.0-62.7 dB (std 1.1, the bound 21 std under the worst), first at 35 dB by step 200-400 (bound
    # 1200), 43.2-46.9 dB over the identity (bound 10)
    expect("best_val_psnr", m["best_val_psnr"], ">=", 35.0)
    expect("first step at 35 dB", step35, "<=", 1200)
    expect("best_val_psnr - identity", m["best_val_psnr"] - m["val_identity_psnr"], ">", 10)
    # the run holds what a later user needs
    for f in ("model.safetensors", "run.json", "history.jsonl", "metrics.json"):
        assert (exposure_run / f).is_file(), f
    assert run["module"] == "exposure" and run["data_space"] == "linear_rec2020"
    assert run["darktable_version"] and run["param_space"]["specs"]
