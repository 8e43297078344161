"""Benchmark proxy fidelity after a fixed CPU budget, on raws and params not seen in training.

For each (module, architecture, loss space) the same dataset (darktable tap-outs of
``--train-raws`` synthetic raws) is trained for ``--budget`` seconds of wall time
(the learning-rate schedule ends at the budget), then evaluated with ``darkproxy eval``
machinery against fresh darktable renders of ``--heldout`` other raws at random
params (uniform in the training ranges). Also compares the loss on display-encoded
images (sRGB curve) with a plain linear loss, and the local-operator architectures
on sharpen: ``multiscale`` and both UNet variants (FiLM and concat conditioning), the
UNets also with ``--long-budget`` seconds.

Writes ``bench/results/proxies.json`` and ``proxies.md`` (machine and date included).

    PYTHONPATH=src python bench/bench_proxies.py [--budget 120] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SHARPEN = ["radius", "amount", "threshold"]
CASES = [
    # module, free params (the issue's), arch, loss space, long budget?
    ("exposure", ["exposure", "black"], "pointwise", "srgb", False),
    ("exposure", ["exposure", "black"], "pointwise", "linear", False),
    ("colorbalancergb", ["saturation_global", "vibrance", "contrast"], "pointwise", "srgb", False),
    ("colorbalancergb", ["saturation_global", "vibrance", "contrast"], "pointwise", "linear", False),
    ("sharpen", SHARPEN, "multiscale", "srgb", False),
    ("sharpen", SHARPEN, "spatial-film", "srgb", False),
    ("sharpen", SHARPEN, "spatial-concat", "srgb", False),
    ("sharpen", SHARPEN, "spatial-film", "srgb", True),
    ("sharpen", SHARPEN, "spatial-concat", "srgb", True),
]
GOALS = {"exposure": 45.0, "colorbalancergb": 40.0, "sharpen": 38.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=90.0, help="training seconds per case")
    ap.add_argument("--long-budget", type=float, default=300.0, help="training seconds of the long UNet cases")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--train-raws", type=int, default=5)
    ap.add_argument("--heldout", type=int, default=2)
    ap.add_argument("--eval-n", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--work", help="work folder (default: a temporary one)")
    args = ap.parse_args()

    from darkproxy.darktable.session import Darktable
    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.engines.evaluate import evaluate_proxy
    from darkproxy.engines.train import TrainConfig, train
    from darkproxy.proxy import Proxy
    from darkproxy.raw.synth import make_samples

    work = Path(args.work or tempfile.mkdtemp(prefix="darkproxy-bench-"))
    os.environ.setdefault("DARKPROXY_HOME", str(work / "home"))
    dt = Darktable()
    infos = make_samples(work / "all", count=args.train_raws + args.heldout, size=2 * args.size)
    tr, ho = work / "train", work / "heldout"
    for d in (tr, ho):
        d.mkdir(exist_ok=True)
    for k, i in enumerate(infos):
        dst = (ho if k >= args.train_raws else tr) / i.path.name
        if not dst.exists():
            shutil.copyfile(i.path, dst)
    rows = []
    for module, params, arch, loss_space, long in CASES:
        ds = work / f"ds-{module}"
        t0 = time.time()
        g = generate(
            dt,
            tr,
            ds,
            GenerateOptions(module=module, n=args.samples, params=params, size=args.size, seed=0, probe=False),
            progress=False,
        )
        gen_s = time.time() - t0
        budget = args.long_budget if long else args.budget
        run = work / f"run-{module}-{arch}-{loss_space}-{budget:g}s"
        if run.exists():
            shutil.rmtree(run)
        r = train(
            ds,
            run,
            TrainConfig(arch=arch, loss_space=loss_space, steps=100000, time_budget_s=budget, device="cpu", seed=0),
            progress=False,
        )
        ev = evaluate_proxy(dt, Proxy.load(run), ho, work / f"eval-{run.name}", n=args.eval_n, size=args.size, seed=99)
        m = ev.metrics
        row = {
            "module": module,
            "params": params,
            "arch": r.arch,
            "loss_space": loss_space,
            "budget_s": budget,
            "train_seconds": r.seconds,
            "steps": r.steps,
            "val_psnr": r.best_val_psnr,
            "heldout_psnr": m["proxy"]["psnr"],
            "heldout_psnr_min": m["proxy"]["psnr_min"],
            "heldout_ssim": m["proxy"]["ssim"],
            "heldout_deltae": m["proxy"]["deltae_mean"],
            "identity_psnr": m["identity"]["psnr"],
            "goal_psnr": GOALS[module],
            "dataset_samples": g.total,
            "generate_seconds": gen_s,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    from darkproxy.machine import machine_info

    mi = machine_info()
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{mi['nproc']} cores, {mi['cpu']}",
        "darktable": dt.version,
        "budget_s": args.budget,
        "long_budget_s": args.long_budget,
        "samples": args.samples,
        "size": args.size,
        "train_raws": args.train_raws,
        "heldout_raws": args.heldout,
        "eval_n": args.eval_n,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxies.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        f"# Proxy fidelity after a fixed CPU training budget ({args.budget:g} s; UNets also {args.long_budget:g} s)",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- darktable {meta['darktable']}",
        f"- data: {args.samples} tap-outs of {args.train_raws} synthetic raws at {args.size} px; evaluation: "
        f"{args.eval_n} fresh darktable renders of {args.heldout} held-out raws at random params "
        "(PSNR on display-encoded images; identity = doing nothing)",
        "",
        "| module | arch | loss on | budget s | steps | val dB | held-out dB (min) | SSIM | ΔE2000 "
        "| identity dB | goal dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['module']} | {r['arch']} | {r['loss_space']} | {r['budget_s']:g} | {r['steps']} | "
            f"{r['val_psnr']:.2f} | "
            f"{r['heldout_psnr']:.2f} ({r['heldout_psnr_min']:.2f}) | {r['heldout_ssim']:.4f} | "
            f"{r['heldout_deltae']:.3f} | {r['identity_psnr']:.2f} | {r['goal_psnr']:.0f} |"
        )
    lines += [
        "",
        "`pointwise` and `multiscale` train on random pixels of 64 samples per step; the UNets "
        "(`spatial-film`, `spatial-concat`) on 8 crops of 64 px with 16 px of context. `--arch auto` "
        "picks `multiscale` for modules darktable's probe finds not pointwise. `loss on`: the encoding "
        "the training loss compares in (srgb: the sRGB curve, unclipped; linear: none).",
    ]
    (out / "proxies.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
