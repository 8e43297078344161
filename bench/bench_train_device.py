"""Training speed and fidelity on each available device (CPU, CUDA), same data and settings.

Trains the given datasets (made by ``darkproxy generate``) with each architecture for a
fixed number of steps on every device asked for, and reports steps/s, wall seconds and
the best validation PSNR. It needs no darktable (the datasets are already rendered), so
it runs on a GPU machine that has only torch.

Writes ``OUT/NAME.json`` and ``NAME.md`` (machine and date included).

    PYTHONPATH=src python bench/bench_train_device.py DATASET:ARCH [DATASET:ARCH ...] \\
        [--devices cpu,cuda] [--steps 8000] [--out bench/results] [--name train_device]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", metavar="DATASET:ARCH")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--name", default="train_device", help="output file stem")
    args = ap.parse_args()

    import torch

    from darkproxy.data.dataset import load_dataset_info
    from darkproxy.engines.train import TrainConfig, train

    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="darkproxy-devbench-"))
    for case in args.cases:
        ds, arch = case.rsplit(":", 1)
        info = load_dataset_info(ds)
        for dev in devices:
            run = work / f"{info.module}-{arch}-{dev}"
            shutil.rmtree(run, ignore_errors=True)
            r = train(ds, run, TrainConfig(arch=arch, steps=args.steps, device=dev, seed=0), progress=False)
            row = {
                "module": info.module,
                "arch": r.arch,
                "device": dev,
                "steps": r.steps,
                "seconds": r.seconds,
                "steps_per_s": r.steps / r.seconds,
                "best_val_psnr": r.best_val_psnr,
                "identity_psnr": r.val_identity_psnr,
                "amp": json.loads((run / "run.json").read_text())["train_config"]["resolved"]["amp"],
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "steps": args.steps,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        f"# Training speed by device ({args.steps} steps, default settings per architecture)",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['cpu']} ({meta['cpu_threads']} torch threads), GPU: {gpu}",
        f"- torch {meta['torch']}",
        "",
        "| module | arch | device | AMP | seconds | steps/s | best val dB | identity dB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['module']} | {r['arch']} | {r['device']} | {r['amp']} | {r['seconds']:.1f} | "
            f"{r['steps_per_s']:.0f} | {r['best_val_psnr']:.2f} | {r['identity_psnr']:.2f} |"
        )
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
