"""Benchmark: slider regression through a proxy vs black-box searches on darktable.

Runs ``darkproxy regress-eval`` for one module and leaves
``bench/results/regress_eval_<module>.{json,md,png}`` (machine, date and the
exact commands inside). Without ``--run``, it first makes what it needs with the
darkproxy CLI, in ``--work`` (default: a folder under /tmp), and times it (the
proxy's one-off cost, for the break-even):

* synthetic raws (``darkproxy samples --count 9``: the chart and all eight
  scikit-image photos of :data:`darkproxy.raw.synth.DEFAULT_SOURCES`); the
  first five (chart, astronaut, chelsea, coffee, rocket) are trained on, the
  other four (motorcycle, immunohistochemistry, retina, colorwheel) are held
  out and evaluated on: no evaluation raw was seen in training;
* a dataset (``darkproxy generate``, wall time = ``generate_s``) and a proxy
  (``darkproxy train``, wall time = ``train_s``), stored in
  ``WORK/oneoff-<module>.json`` so that a rerun with the same ``--work`` reuses
  them with their measured cost.

    python bench/bench_regress.py exposure -n 24
    python bench/bench_regress.py colorbalancergb -n 24 --baselines cma,nelder-mead:10 --work /tmp/br
    python bench/bench_regress.py colorbalancergb -n 2 --budgets 1,2 --out /tmp/dry   # a dry run
    python bench/bench_regress.py colorbalancergb -n 24 --work /tmp/br --collect      # what a cut-short run wrote

``regress-eval`` rewrites its results after every sample, so ``--collect`` turns
an interrupted run into (partial, marked) ``bench/results`` files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TRAIN = ("chart", "astronaut", "chelsea", "coffee", "rocket")
HELDOUT = ("motorcycle", "immunohistochemistry", "retina", "colorwheel")
MIN_HELDOUT = 4


def cli(*args: str) -> float:
    """Run ``darkproxy ARGS``; return its wall time (s)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    print("+ darkproxy " + " ".join(args), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "darkproxy", *args], check=True, env=env)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module")
    ap.add_argument("-n", type=int, default=24, help="evaluation samples (default 24)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--run", help="trained run (default: build one; then give --generate-s / --train-s yourself)")
    ap.add_argument("--images", help="raws to evaluate on (default: the held-out synthetic ones built here)")
    ap.add_argument("--work", help="scratch folder (default: a temporary folder)")
    ap.add_argument("--train-n", type=int, default=128, help="dataset samples when building the run")
    ap.add_argument("--train-args", default="", help="extra arguments for darkproxy train (one string)")
    ap.add_argument("--budgets", default="1,10,50", help="budget multiples of the proxy's time (default 1,10,50)")
    ap.add_argument(
        "--baselines", default="cma,nelder-mead", help="e.g. cma,nelder-mead:10 (default both, all budgets)"
    )
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--generate-s", type=float, default=None, help="with --run: its dataset generation seconds")
    ap.add_argument("--train-s", type=float, default=None, help="with --run: its training seconds")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: copy the results an earlier (or still running, or interrupted) evaluation in "
        "--work has written so far into --out (partial results are marked as such)",
    )
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    work = Path(a.work or tempfile.mkdtemp(prefix="darkproxy-bench-regress-"))
    work.mkdir(parents=True, exist_ok=True)
    images = Path(a.images) if a.images else work / "heldout"
    train_raws = work / "train"
    made: list[str] = []
    if (
        not a.images
        and not a.collect
        and (
            not all((images / f"{h}.dng").is_file() for h in HELDOUT)
            or not all((train_raws / f"{t}.dng").is_file() for t in TRAIN)
        )
    ):
        cli("samples", str(work / "raws"), "--count", "9", "--size", str(a.size))
        for d in (train_raws, images):
            d.mkdir(exist_ok=True)
        for name in TRAIN:
            shutil.copyfile(work / "raws" / f"{name}.dng", train_raws / f"{name}.dng")
        for name in HELDOUT:
            shutil.copyfile(work / "raws" / f"{name}.dng", images / f"{name}.dng")
    if not a.images:
        made.append(
            f"`darkproxy samples --count 9 --size {a.size}`; trained on {', '.join(TRAIN)}; "
            f"held out and evaluated on {', '.join(HELDOUT)}"
        )
    from darkproxy.data.raws import find_raws

    n_raws = len(find_raws(images))
    if n_raws < MIN_HELDOUT:
        print(f"error: {images} holds {n_raws} raw(s); the benchmark needs at least {MIN_HELDOUT}", file=sys.stderr)
        return 2
    run = Path(a.run) if a.run else work / f"run-{a.module}"
    oneoff_path = work / f"oneoff-{a.module}.json"
    gen_s, train_s = a.generate_s, a.train_s
    if not a.run:
        if not (run / "run.json").is_file() and not a.collect:
            ds = work / f"ds-{a.module}"
            if ds.exists():  # a partial dataset would make the timing meaningless
                shutil.rmtree(ds)
            gen_args = [
                "generate",
                a.module,
                "-o",
                str(ds),
                "--images",
                str(train_raws),
                "-n",
                str(a.train_n),
                "--size",
                str(a.size),
            ]
            train_args = ["train", str(ds), "-o", str(run), "--overwrite", "--quiet", *a.train_args.split()]
            gen_s = cli(*gen_args)
            train_s = cli(*train_args)
            oneoff_path.write_text(
                json.dumps(
                    {
                        "generate_s": gen_s,
                        "train_s": train_s,
                        "generate": "darkproxy " + shlex.join(gen_args),
                        "train": "darkproxy " + shlex.join(train_args),
                    },
                    indent=2,
                )
            )
        oo = json.loads(oneoff_path.read_text()) if oneoff_path.is_file() else {}
        gen_s = oo.get("generate_s", gen_s)
        train_s = oo.get("train_s", train_s)
        if oo:
            made.append(
                f"`{oo['generate']}` ({oo['generate_s']:.0f} s wall), `{oo['train']}` "
                f"({oo['train_s']:.0f} s wall): the one-off cost"
            )
    ev = work / f"eval-{a.module}"
    args = [
        "regress-eval",
        str(run),
        "--images",
        str(images),
        "-n",
        str(a.n),
        "--size",
        str(a.size),
        "--iters",
        str(a.iters),
        "--budgets",
        a.budgets,
        "--baselines",
        a.baselines,
        "-o",
        str(ev),
    ]
    if a.budget_s:
        args += ["--budget-s", str(a.budget_s)]
    if gen_s is not None:
        args += ["--generate-s", f"{gen_s:.1f}"]
    if train_s is not None:
        args += ["--train-s", f"{train_s:.1f}"]
    if a.collect:
        if not (ev / "results.json").is_file():
            print(f"error: no results in {ev} yet", file=sys.stderr)
            return 2
        eval_s = float(json.loads((ev / "results.json").read_text()).get("seconds", 0.0))
    else:
        eval_s = cli(*args)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = json.loads((ev / "results.json").read_text())
    res["bench"] = {
        "made": made,
        "command": "darkproxy " + shlex.join(args),
        "eval_wall_s": eval_s,
        "total_wall_s": time.perf_counter() - t_start,
        "argv": "python bench/bench_regress.py " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    md = (ev / "results.md").read_text()
    if a.collect:
        res["bench"]["total_wall_s"] = None
        head = (
            f"Collected with `{res['bench']['argv']}` from the evaluation below ({res['n']} of "
            f"{res.get('n_planned', res['n'])} samples done after {eval_s / 60:.1f} min):\n\n"
        )
    else:
        head = f"`{res['bench']['argv']}` ({res['bench']['total_wall_s'] / 60:.1f} min wall in all):\n\n"
    md += (
        "\n## How this was made\n\n"
        + head
        + "".join(f"* {m}\n" for m in made)
        + f"* `{res['bench']['command']}`"
        + ("" if a.collect else f" ({eval_s / 60:.1f} min wall)")
        + "\n"
    )
    (out / f"regress_eval_{a.module}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"regress_eval_{a.module}.md").write_text(md)
    shutil.copyfile(ev / "quality_vs_time.png", out / f"regress_eval_{a.module}.png")
    agg = res["aggregate"]
    print(json.dumps({"proxy": agg["proxy"], "break_even": res["break_even"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
