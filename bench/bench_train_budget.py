"""Training speed targets, out of the tests (a loaded CI machine must not fail them): the wall clock.

    PYTHONPATH=src .venv/bin/python bench/bench_train_budget.py [--work /tmp/train-budget] [--out bench/results]

* acceptance: an exposure proxy trained on this CPU on a tiny *darktable-generated* dataset (the tests'
  ``trained_run`` recipe, tests/conftest.py: five 96 px synthetic raws, 64 samples, pointwise) reaches >= 35 dB
  validation PSNR within 90 s: trained with an 85 s time budget (at most 8000 steps, validated every 200 as the
  fixture is), the seconds and step of its first validation at >= 35 dB, and where the budget left it;
* the pointwise exposure run of tests/engines/test_train.py (400 steps on its synthetic data): wall seconds
  (its test asserted < 55 s, measured 7 s);
* ``time_budget_s=2``: the steps a 2 s budget buys on this machine (real clock).

Writes ``OUT/train_budget.json`` and ``train_budget.md`` (machine, date and load average included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

TARGET_DB, TARGET_S = 35.0, 90.0


def acceptance(work: Path) -> dict[str, Any]:
    from darkproxy.darktable.session import Darktable
    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.engines.train import TrainConfig, train
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng
    from tests.conftest import RUN_SAMPLES, RUN_SIZE, TRAIN_SOURCES

    raws = work / "raws"
    raws.mkdir(parents=True)
    for s in TRAIN_SOURCES:
        write_synthetic_dng(default_source_images()[s], raws / f"{s}.dng", SynthRawSpec(size=RUN_SIZE))
    t = time.monotonic()
    opts = GenerateOptions(module="exposure", n=RUN_SAMPLES, size=RUN_SIZE, seed=0, probe=False)
    generate(Darktable(), raws, work / "ds", opts, progress=False)
    gen_s = time.monotonic() - t
    cfg = TrainConfig(arch="pointwise", seed=0, device="cpu", steps=8000, time_budget_s=TARGET_S - 5, val_every=200)
    res = train(work / "ds", work / "run", cfg, progress=False)
    hist = [json.loads(x) for x in (work / "run" / "history.jsonl").read_text().splitlines()]
    first = next((h for h in hist if (h["val_psnr"] or 0) >= TARGET_DB), None)
    return {
        "generate_s": round(gen_s, 1),
        "train_s": round(res.seconds, 1),
        "steps": res.steps,
        "stopped_early": res.stopped_early,
        "best_val_psnr": round(res.best_val_psnr, 2),
        "identity_psnr": round(res.val_identity_psnr or float("nan"), 2),
        "first_35db_step": first and first["step"],
        "first_35db_s": first and first["elapsed"],
        "met": bool(first and first["elapsed"] <= TARGET_S),
    }


def exposure_dataset(root: Path, n: int, size: int) -> Path:
    """tests/engines/test_train.py's synthetic exposure data: smooth random images, output = input * 2^ev."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from darkproxy.data.dataset import write_sample_arrays
    from darkproxy.data.paramspace import ParamSpace, ParamSpec

    rng = np.random.default_rng(0)
    samples, splits = [], []
    for i in range(n):
        img = np.stack([gaussian_filter(c, sigma=rng.uniform(2, 8)) for c in rng.normal(size=(3, size, size))])
        x = (2.0 * ((img - img.min()) / (img.max() - img.min() + 1e-9)) ** 2).astype(np.float32)
        ev = float(rng.uniform(-2, 4))
        samples.append((x, x * 2.0**ev, {"exposure": ev}))
        splits.append("val" if i % 5 == 0 else "train")
    space = ParamSpace.of("exposure", [ParamSpec("exposure", "float", -2.0, 4.0, 0.0)])
    return write_sample_arrays(root, space, samples, splits=splits, pointwise=True)


def synthetic(work: Path) -> dict[str, Any]:
    from darkproxy.engines.train import TrainConfig, train

    ds = exposure_dataset(work / "syn-ds", n=30, size=48)
    t = time.monotonic()
    r400 = train(ds, work / "syn-400", TrainConfig(steps=400, device="cpu"), progress=False)
    wall = time.monotonic() - t
    small = exposure_dataset(work / "syn-small", n=10, size=32)
    rb = train(small, work / "syn-budget", TrainConfig(steps=5000, time_budget_s=2.0, device="cpu"), progress=False)
    return {
        "steps400_wall_s": round(wall, 2),
        "steps400_best_val_psnr": round(r400.best_val_psnr, 2),
        "budget2s_steps": rb.steps,
        "budget2s_seconds": round(rb.seconds, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/train-budget"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    import os

    from darkproxy.machine import machine_info

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    os.environ.setdefault("DARKPROXY_HOME", str(args.work / "home"))
    res = {"meta": machine_info(), "acceptance": acceptance(args.work), "synthetic": synthetic(args.work)}
    res["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    a, s, m = res["acceptance"], res["synthetic"], res["meta"]
    md = [
        "# Training speed targets",
        "",
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), torch {m['torch']}; load average "
        f"{m['loadavg']} at the start, {m['loadavg_end']} at the end (a machine shared with other work).",
        "",
        f"## Acceptance: >= {TARGET_DB:.0f} dB validation within {TARGET_S:.0f} s: {'met' if a['met'] else 'NOT met'}",
        "",
        "Exposure proxy (pointwise) on the tests' darktable-generated dataset (five 96 px synthetic raws, "
        f"64 samples; generated in {a['generate_s']} s), trained with an 85 s budget:",
        "",
        f"- first validation at >= {TARGET_DB:.0f} dB: step {a['first_35db_step']}, {a['first_35db_s']} s",
        f"- end: {a['steps']} steps, {a['train_s']} s (stopped by the budget: {a['stopped_early']}), best "
        f"{a['best_val_psnr']} dB (identity {a['identity_psnr']} dB)",
        "",
        "## Synthetic data (tests/engines/test_train.py's exposure dataset)",
        "",
        f"- 400 steps: {s['steps400_wall_s']} s wall, {s['steps400_best_val_psnr']} dB",
        f"- a 2 s time budget: {s['budget2s_steps']} steps, {s['budget2s_seconds']} s",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_budget.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "train_budget.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
