"""Acceptance: an exposure proxy trained on a tiny *darktable-generated* dataset on
this CPU reaches >= 35 dB validation PSNR within 90 s (a real training run: the
``exposure_run`` fixture trains with a time budget, see tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path


def test_exposure_proxy_on_generated_data(exposure_run: Path) -> None:
    m = json.loads((exposure_run / "metrics.json").read_text())
    run = json.loads((exposure_run / "run.json").read_text())
    print(
        f"exposure proxy: best val PSNR {m['best_val_psnr']:.2f} dB after {m['seconds']:.1f} s "
        f"({m['steps']} steps; identity {m['val_identity_psnr']:.2f} dB)"
    )
    assert m["best_val_psnr"] >= 35.0
    # when it got there: the first validation at >= 35 dB (every 400 steps)
    hist = [json.loads(line) for line in (exposure_run / "history.jsonl").read_text().splitlines()]
    step35, t35 = next((h["step"], h["elapsed"]) for h in hist if (h["val_psnr"] or 0) >= 35.0)
    print(
        f"35 dB at step {step35}, {t35:.1f} s; stopped early: {m['stopped_early']}; "
        f"val {[(h['step'], round(h['val_psnr'], 1)) for h in hist if h['val_psnr'] is not None]}"
    )
    # Measured on a loaded 2-core CPU, two runs: 36.4 / 40.5 dB at the first validation (step
    # 400, 8.6 / 9.6 s); both hit the 85 s budget (steps 3530 / 3051, 60.7 / 62.2 dB). Any
    # validation lies inside the budget, so "within 90 s" alone cannot fail: these bounds (3x
    # the measured step, ~5x the time) can.
    assert step35 <= 1200, hist
    assert t35 <= 45.0, hist
    assert m["best_val_psnr"] > m["val_identity_psnr"] + 10
    # the run holds what a later user needs
    for f in ("model.safetensors", "run.json", "history.jsonl", "metrics.json"):
        assert (exposure_run / f).is_file(), f
    assert run["module"] == "exposure" and run["data_space"] == "linear_rec2020"
    assert run["darktable_version"] and run["param_space"]["specs"]
