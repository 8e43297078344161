"""Benchmark: slider regression through a proxy vs a black-box search on darktable.

Runs ``darkproxy regress-eval`` for one module and leaves
``bench/results/regress_eval_<module>.{json,md,png}`` (machine and date inside).
Without ``--run``, it first makes what it needs with the darkproxy CLI: synthetic
raws (``darkproxy samples``: the chart and four photos to train on, two photos
held out and evaluated on), a
dataset (``darkproxy generate``) and a proxy (``darkproxy train``), in ``--work``
(default: a folder under /tmp).

    python bench/bench_regress.py exposure -n 6
    python bench/bench_regress.py colorbalancergb -n 4 --run runs/cb --images raws/
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def cli(*args: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    print("+ darkproxy " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "darkproxy", *args], check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module")
    ap.add_argument("-n", type=int, default=6, help="evaluation samples")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--run", help="trained run (default: build one)")
    ap.add_argument("--images", help="raws to evaluate on (default: the synthetic ones built here)")
    ap.add_argument("--work", help="scratch folder (default: a temporary folder)")
    ap.add_argument("--train-n", type=int, default=128, help="dataset samples when building the run")
    ap.add_argument("--train-args", default="", help="extra arguments for darkproxy train (one string)")
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="darkproxy-bench-regress-"))
    work.mkdir(parents=True, exist_ok=True)
    images = Path(a.images) if a.images else work / "heldout"
    train_raws = work / "train"
    if not a.images and not any(images.glob("*.dng")):
        cli("samples", str(work / "raws"), "--count", "7", "--size", str(a.size))
        for d in (train_raws, images):
            d.mkdir(exist_ok=True)
        from darkproxy.raw.synth import DEFAULT_SOURCES  # make_samples order: chart first

        for k, name in enumerate(DEFAULT_SOURCES[:7]):
            shutil.copyfile(work / "raws" / f"{name}.dng", (images if k >= 5 else train_raws) / f"{name}.dng")
    run = Path(a.run) if a.run else work / f"run-{a.module}"
    if not a.run and not (run / "run.json").is_file():
        ds = work / f"ds-{a.module}"
        cli("generate", a.module, "-o", str(ds), "--images", str(train_raws), "-n", str(a.train_n), "--size", str(a.size))
        cli("train", str(ds), "-o", str(run), *a.train_args.split())
    ev = work / f"eval-{a.module}"
    args = ["regress-eval", str(run), "--images", str(images), "-n", str(a.n), "--size", str(a.size),
            "--iters", str(a.iters), "-o", str(ev)]
    if a.budget_s:
        args += ["--budget-s", str(a.budget_s)]
    cli(*args)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for src, ext in (("results.json", "json"), ("results.md", "md"), ("quality_vs_time.png", "png")):
        shutil.copyfile(ev / src, out / f"regress_eval_{a.module}.{ext}")
    agg = json.loads((ev / "results.json").read_text())["aggregate"]
    print(json.dumps(agg, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
