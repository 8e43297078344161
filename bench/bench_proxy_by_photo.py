"""A proxy on its own dataset, photo by photo, beside its held-out evaluation: where its error comes from.

    PYTHONPATH=src .venv/bin/python bench/bench_proxy_by_photo.py --work /tmp/zoo-lp --module lowpass \
        [--proxy src/darkproxy/zoo/weights/lowpass] [--train-max 400] [--name proxy_by_photo_lowpass]

``--work``: the ``darkproxy zoo train`` work folder the proxy was trained in (``datasets/MODULE``: the darktable
pairs it saw; ``stages/eval-MODULE.json``: its held-out evaluation). ``--proxy``: the weights to measure (default
the work folder's run). Every sample is scored whole (no crop), as validation does, with the render scale it was
rendered at. Writes ``bench/results/NAME.md`` and ``.json``: display PSNR median / 10th percentile / worst per
photo and split (train photos: the samples it was trained on; val, test: photos generate set aside), per render
scale band, and the three ways of summarising one set of samples (mean of the per-sample PSNR, which validation
reports; median, which zoo.md reports; pooled, the PSNR of the mean squared error, which ``eval`` reports first).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.colour.metrics import display_psnr_batch
from darkproxy.data.dataset import ModuleDataset
from darkproxy.machine import machine_info
from darkproxy.proxy import Proxy

ROOT = Path(__file__).resolve().parents[1]
BANDS = ((0.0, 0.2), (0.2, 0.5), (0.5, 1.01))


def summary(ps: list[float]) -> dict[str, Any]:
    """n, mean, median, 10th percentile, worst and pooled (PSNR of the mean squared error) of per-sample PSNRs."""
    a = np.asarray(ps, np.float64)
    return {
        "n": len(a),
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "p10": float(np.percentile(a, 10)),
        "worst": float(a.min()),
        "pooled": float(-10 * np.log10(np.mean(10 ** (-a / 10)))),
    }


@torch.no_grad()
def score(proxy: Proxy, root: Path, split: str, cap: int | None) -> list[dict[str, Any]]:
    """Display PSNR of the proxy on the samples of ``split`` (at most ``cap``, evenly spaced)."""
    ds = ModuleDataset(root, split, crop=None, flips=False)
    idx = np.arange(len(ds))
    if cap is not None and len(idx) > cap:
        idx = np.linspace(0, len(ds) - 1, cap).round().astype(int)
    n_params = len(proxy.param_space)
    rows = []
    for i in idx:
        it, rec = ds[int(i)], ds.records[int(i)]
        pred = proxy(it["input"][None], it["params"][None][:, :n_params], scale=rec.get("render_scale"))
        psnr = float(display_psnr_batch(pred, it["output"][None])[0])
        rows.append({"split": split, "raw": rec["raw"], "scale": rec.get("render_scale"), "psnr": psnr})
    return rows


def measure(work: Path, module: str, proxy_dir: Path, train_max: int) -> dict[str, Any]:
    proxy = Proxy.load(proxy_dir)
    root = work / "datasets" / module
    rows = [r for s in ("train", "val", "test") for r in score(proxy, root, s, train_max if s == "train" else None)]
    photos = {}
    for split in ("train", "val", "test"):
        for raw in sorted({r["raw"] for r in rows if r["split"] == split}):
            photos[f"{split}:{raw}"] = summary([r["psnr"] for r in rows if r["split"] == split and r["raw"] == raw])
    held = [r for r in rows if r["split"] != "train"]
    bands = {}
    for lo, hi in BANDS:
        sel = [r["psnr"] for r in held if r["scale"] is not None and lo <= r["scale"] < hi]
        if sel:
            bands[f"{lo:g}-{min(hi, 1):g}"] = summary(sel)
    ev = json.loads((work / "stages" / f"eval-{module}.json").read_text())
    ev = ev.get("result", ev)
    return {
        "module": module,
        "proxy": str(proxy_dir),
        "dataset": str(root),
        "splits": {s: summary([r["psnr"] for r in rows if r["split"] == s]) for s in ("train", "val", "test")},
        "photos": photos,
        "scale_bands_val_test": bands,
        "heldout_eval": [
            {k: p.get(k) for k in ("scale", "n", "psnr", "psnr_median", "psnr_min")} for p in ev.get("per_scale") or []
        ],
        "samples": rows,
    }


def markdown(o: dict[str, Any]) -> str:
    r = o["result"]
    f = "{:.1f}".format
    lines = [
        f"# The {r['module']} proxy photo by photo (bench/bench_proxy_by_photo.py)",
        "",
        f"{o['date']}, {o['machine_line']}. Proxy `{r['proxy']}` on its dataset `{r['dataset']}` (darktable's pairs, "
        "scored whole at the render scale each was rendered at; train: at most "
        f"{o['train_max']} of its samples, evenly spaced), beside its held-out evaluation (fresh darktable renders of "
        "raws never generated from). Display PSNR in dB.",
        "",
        "## One set of samples, three summaries",
        "",
        "| split | n | mean (validation's) | median (zoo.md's) | pooled (eval's first figure) | 10th pct | worst |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, v in r["splits"].items():
        if v["n"]:
            lines.append(
                f"| {s} | {v['n']} | {f(v['mean'])} | {f(v['median'])} | {f(v['pooled'])} | {f(v['p10'])} | "
                f"{f(v['worst'])} |"
            )
    lines += [
        "",
        "## Per photo",
        "",
        "| split: photo | n | median | 10th pct | worst |",
        "|---|---|---|---|---|",
    ]
    for k, v in sorted(r["photos"].items(), key=lambda kv: (kv[0].split(":")[0] != "train", kv[1]["median"])):
        lines.append(f"| {k} | {v['n']} | {f(v['median'])} | {f(v['p10'])} | {f(v['worst'])} |")
    lines += ["", "## val and test samples by render scale", "", "| scale | n | median | worst |", "|---|---|---|---|"]
    for k, v in r["scale_bands_val_test"].items():
        lines.append(f"| {k} | {v['n']} | {f(v['median'])} | {f(v['worst'])} |")
    lines += [
        "",
        "## Held out (`stages/eval-MODULE.json`)",
        "",
        "| scale | n | pooled | median | worst |",
        "|---|---|---|---|---|",
    ]
    for p in r["heldout_eval"]:
        lines.append(f"| {p['scale']} | {p['n']} | {f(p['psnr'])} | {f(p['psnr_median'])} | {f(p['psnr_min'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--module", required=True)
    ap.add_argument("--proxy", type=Path, help="weights folder (default: WORK/runs/MODULE)")
    ap.add_argument("--train-max", type=int, default=400)
    ap.add_argument("--name", help="default proxy_by_photo_MODULE")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = ap.parse_args()
    torch.set_num_threads(1)
    mi = machine_info()
    o = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": mi,
        "machine_line": f"{mi['nproc']} cores ({mi['cpu']}), torch {mi['torch']}, load {mi['loadavg']}",
        "train_max": a.train_max,
        "result": measure(a.work, a.module, a.proxy or a.work / "runs" / a.module, a.train_max),
    }
    name = a.name or f"proxy_by_photo_{a.module}"
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{name}.json").write_text(json.dumps(o, indent=1) + "\n")
    (a.out / f"{name}.md").write_text(markdown(o))
    print(markdown(o))


if __name__ == "__main__":
    main()
