"""A zoo proxy's capacity, measured: the same dataset, steps and held-out evaluation at several hparams.

    PYTHONPATH=src .venv/bin/python bench/bench_capacity.py --work /tmp/zoo33 --module bilat \
        --variant w32 '{"width": 32}' --variant w64 '{}' [--variant NAME HPARAMS_JSON ...]
        [--plan src/darkproxy/zoo/plan.toml] [--out bench/results]

``--work`` is a ``darkproxy zoo train`` work folder that holds the module's dataset (``datasets/MODULE``) and
held-out raws (``raws*/heldout``, of the plan's photos for the module). For each variant (a name and the
architecture's hparams over its defaults: width, depth, the multiscale's sigmas...) the module's architecture is
trained with the plan's steps into ``WORK/capacity/MODULE-NAME`` (a finished run is kept) and evaluated on the
held-out raws as the zoo evaluates (fresh darktable renders, the plan's sampler and render scales, the same seed:
the same draws for every variant). The zoo's own settings (``{}``) reuse the zoo's training in the work folder
(CPU training repeats bit for bit) and are evaluated again with the others. Writes
``bench/results/capacity_MODULE.md`` and ``.json``: per variant the weights' count, training seconds, validation
PSNR and the held-out median / worst per render scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.data.ranges import ZOO_MODULES  # noqa: E402
from darkproxy.engines.evaluate import evaluate_proxy  # noqa: E402
from darkproxy.engines.train import TrainConfig, train  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.proxy import Proxy  # noqa: E402
from darkproxy.proxy.tiling import WHOLE_IMAGE, tile_context  # noqa: E402
from darkproxy.zoo.plan import ZooPlan  # noqa: E402
from darkproxy.zoo.training import pre_demosaic_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def one_variant(
    dt: Darktable, m: str, name: str, hparams: dict[str, Any], plan: ZooPlan, work: Path, held: Path
) -> dict[str, Any]:
    mp = plan.for_module(m, pre_demosaic_module(dt.schemas, m))
    run = work / "capacity" / f"{m}-{name}"
    if not hparams and (work / "runs" / m / "metrics.json").is_file():
        run = work / "runs" / m  # the zoo's own training, with these settings (CPU training repeats bit for bit)
    if not (run / "metrics.json").is_file():  # written when training ends
        resume = (run / "checkpoint.pt").is_file()
        hp = {**mp.hparams, **hparams}
        cfg = TrainConfig(device="cpu", steps=mp.steps, threads=mp.threads, arch=mp.arch, hparams=hp)
        train(work / "datasets" / m, run, cfg, resume=resume, overwrite=not resume)
    metrics = json.loads((run / "metrics.json").read_text())
    proxy = Proxy.load(run)
    n_weights = sum(p.numel() for p in proxy.model.parameters())
    t0 = time.perf_counter()
    ev = work / "capacity" / f"{m}-{name}-eval"
    res = evaluate_proxy(dt, proxy, held, ev, n=mp.eval_n, size=mp.size or mp.raw_size, sampler=mp.eval_sampler,
                         scales=mp.eval_scales)  # fmt: skip
    per = res.metrics.get("per_scale") or []
    return {
        "variant": name,
        "hparams": hparams,
        "width": proxy.model.hparams.get("width"),
        # the context a tile needs: the widest blur's reach (None: the whole image, image_stats)
        "receptive_px": None if (h := tile_context(proxy.model).halo) >= WHOLE_IMAGE else h,
        "weights": n_weights,
        "arch": metrics.get("arch"),
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("seconds"),
        "val_psnr": metrics.get("best_val_psnr"),
        "heldout_psnr_median": res.metrics["proxy"].get("psnr_median"),
        "heldout_psnr_min": res.metrics["proxy"]["psnr_min"],
        "per_scale": [{k: p[k] for k in ("scale", "n", "psnr_median", "psnr_min")} for p in per],
        "eval_seconds": time.perf_counter() - t0,
    }


def _reach(px: float | None) -> str:
    return "whole image" if px is None or px >= WHOLE_IMAGE else f"{px:g}"


def markdown(o: dict[str, Any]) -> str:
    m = o["machine"]
    scales = [p["scale"] for p in o["rows"][0]["per_scale"]]
    lines = [
        f"# Capacity of the {o['module']} proxy (bench/bench_capacity.py)",
        "",
        f"{o['date']}, {m.get('nproc')} cores ({m.get('cpu')}), torch {m.get('torch')}, darktable {o['darktable']}, "
        f"load {m.get('loadavg')}. The zoo's dataset of {o['module']} ({o['samples']} samples), the plan's "
        f"{o['steps']} steps (the zoo's own training, `{{}}`, keeps its own: the steps column), architecture "
        f"{o['rows'][0]['arch']} in each variant; held out: {o['eval_n']} fresh "
        f"darktable renders per scale on the held-out raws (the same draws for every variant). Total "
        f"{o['minutes']:.1f} min.",
        "",
        "| variant | hparams | width | receptive field (px) | weights | steps | train s | val PSNR | "
        "held-out median / worst |" + "".join(f" scale {s:g}: median / worst |" for s in scales),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(scales),
    ]
    for r in o["rows"]:
        cells = "".join(f" {p['psnr_median']:.1f} / {p['psnr_min']:.1f} |" for p in r["per_scale"])
        lines.append(
            f"| {r['variant']} | `{json.dumps(r['hparams'])}` | {r['width']} | {_reach(r['receptive_px'])} | "
            f"{r['weights']:,} | {r.get('steps', o['steps'])} | {r['train_seconds']:.0f} | {r['val_psnr']:.1f} | "
            f"{r['heldout_psnr_median']:.1f} / {r['heldout_psnr_min']:.1f} |{cells}"
        )
    best = max(o["rows"], key=lambda r: r["heldout_psnr_median"])
    lines += [
        "",
        f"Best held-out median: {best['variant']} ({best['heldout_psnr_median']:.1f} dB, worst "
        f"{best['heldout_psnr_min']:.1f}). The zoo ships width {o['shipped_width']}. Each row one training (one "
        "seed) and 8 draws per scale: differences of a dB or two are within that noise. Seconds on this 2-core "
        "machine with the load in the header.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="a darkproxy zoo train work folder with the module's dataset")
    ap.add_argument("--module", required=True)
    ap.add_argument("--variant", nargs=2, action="append", required=True, metavar=("NAME", "HPARAMS_JSON"))
    ap.add_argument("--plan", default=None, help="zoo plan TOML (default: the shipped one)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    if a.module not in ZOO_MODULES:
        ap.error(f"{a.module!r} is not a zoo module")
    work, plan, dt = Path(a.work), ZooPlan.load(a.plan), Darktable()
    mp = plan.for_module(a.module, pre_demosaic_module(dt.schemas, a.module))
    held = next(work.glob(f"raws{'' if mp.raw_size == plan.raw_size else f'-{mp.raw_size}'}*/heldout"), None)
    if not (work / "datasets" / a.module).is_dir() or held is None:
        raise SystemExit(f"{work}: no dataset of {a.module} or held-out raws (run darkproxy zoo train first)")
    t0 = time.perf_counter()
    rows = []
    for name, hp in a.variant:
        rows.append(one_variant(dt, a.module, name, json.loads(hp), plan, work, held))
        print(json.dumps(rows[-1]), flush=True)
    shipped = json.loads((ROOT / "src/darkproxy/zoo/weights" / a.module / "run.json").read_text())["hparams"]
    o = {
        "module": a.module,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "darktable": dt.version,
        "samples": mp.samples,
        "steps": mp.steps,
        "eval_n": mp.eval_n,
        "shipped_width": shipped.get("width"),
        "rows": rows,
        "minutes": (time.perf_counter() - t0) / 60.0,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"capacity_{a.module}.json").write_text(json.dumps(o, indent=1) + "\n")
    (out / f"capacity_{a.module}.md").write_text(markdown(o))
    print((out / f"capacity_{a.module}.md").read_text())


if __name__ == "__main__":
    main()
