"""color balance rgb's exact port against the installed darktable, setting by setting: the stage alone.

    PYTHONPATH=src .venv/bin/python bench/bench_colorbalancergb_darktable.py [--n 12] [--seed 3]
    bash bench/darktable_chroot.sh run ROOT python bench/bench_colorbalancergb_darktable.py   # darktable 5.x

darktable 5 computes color balance rgb otherwise than 4.2.1 at the same params version (replica/ports/
colorbalancergb.py: its 512-entry gamut LUTs, its polynomial power, its xyY); the port follows the running
darktable's version. Per setting: darktable's tap-out of the module's input and output on a synthetic raw
(coffee, 256 px, rendered at 128 px), the port on that input (in the context of the installed darktable's
version) against that output, display PSNR in dB (100: identical), and how far the module moved the image
(the input against the output). Settings: darktable's defaults, tests/replica/test_colorbalancergb.py's edit
and each of its sliders alone, the same under the JzAzBz saturation formula (0: what older edits upgrade to),
then ``--n`` edits drawing every slider the port reads uniformly (both formulas).

Writes ``bench/results/colorbalancergb_darktable_<version>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.colour.metrics import display_psnr  # noqa: E402
from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.darktable.tapout import tapout  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng  # noqa: E402
from darkproxy.replica.registry import EXACT, StageContext  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EDIT = {  # tests/replica/test_colorbalancergb.py's
    "saturation_global": 0.3,
    "contrast": 0.2,
    "vibrance": 0.2,
    "chroma_global": 0.1,
    "hue_angle": 10.0,
    "global_C": 0.05,
    "global_H": 200.0,
    "midtones_C": 0.1,
    "midtones_H": 45.0,
    "brilliance_shadows": 0.2,
}
RANGES = {  # the random edits' sliders, uniform
    **{f"{w}_{k}": r for w in ("shadows", "midtones", "highlights", "global") for k, r in (("Y", (-0.3, 0.3)),)},
    **{f"{w}_C": (0.0, 0.3) for w in ("shadows", "midtones", "highlights", "global")},
    **{f"{w}_H": (0.0, 360.0) for w in ("shadows", "midtones", "highlights", "global")},
    **{f"{k}_global": (-0.5, 0.5) for k in ("chroma", "saturation", "brilliance")},
    "vibrance": (-0.5, 0.5),
    "contrast": (-0.5, 0.5),
    "hue_angle": (-30.0, 30.0),
}


def settings(n: int, seed: int) -> dict[str, dict[str, float]]:
    """The named settings, then ``n`` random edits."""
    out: dict[str, dict[str, float]] = {"defaults": {}, "test edit": EDIT}
    for k, v in EDIT.items():
        if k.endswith("_H"):
            continue  # a hue alone moves nothing: with its chroma below
        c = {f"{k[:-2]}_H": EDIT[f"{k[:-2]}_H"]} if k.endswith("_C") else {}
        out[f"{k} alone"] = {k: v, **c}
    out["test edit, JzAzBz"] = {**EDIT, "saturation_formula": 0}
    for k in ("saturation_global", "chroma_global", "brilliance_global"):
        for v in (-0.3, 0.3):
            out[f"JzAzBz, {k} {v:+}"] = {"saturation_formula": 0, k: v}
    rng = np.random.default_rng(seed)
    for i in range(n):
        e = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in RANGES.items()}
        out[f"random {i}"] = {**e, "saturation_formula": int(rng.integers(0, 2))}
    return out


def measure(dt: Darktable, raw: Path, edit: dict[str, float]) -> dict[str, Any]:
    tp = tapout(dt, raw, "colorbalancergb", edit, max_size=128)
    ctx = StageContext(darktable_version=dt.install.version_tuple)
    with torch.no_grad():
        y = EXACT["colorbalancergb"].fn(torch.from_numpy(tp.input)[None], tp.meta["params"], ctx)[0].numpy()
    return {"psnr": display_psnr(y, tp.output), "moved": display_psnr(tp.input, tp.output)}


def markdown(out: dict[str, Any]) -> str:
    rows = out["rows"]
    named = [r for r in rows if not r["name"].startswith("random")]
    rand = np.array([r["psnr"] for r in rows if r["name"].startswith("random")])
    lines = [
        f"# color balance rgb's exact port against darktable {out['darktable']}, setting by setting",
        "",
        f"{out['machine'].get('date', '')}, {out['machine'].get('nproc', '?')} cores. "
        f"`bench/bench_colorbalancergb_darktable.py --n {out['n']} --seed {out['seed']}` ({out['seconds'] / 60:.1f} "
        "min): the port alone on darktable's tap-out of the module's input against its output (coffee, 256 px raw "
        "at 128 px), display PSNR in dB (100: identical); `moved`: the module's input against its output.",
        "",
    ]
    if rand.size:
        lines += [
            f"**{rand.size} random edits: median {np.median(rand):.1f} dB, worst {rand.min():.1f}; named settings "
            f"{min(r['psnr'] for r in named):.1f}-{max(r['psnr'] for r in named):.1f}.**",
            "",
        ]
    lines += ["| setting | port alone (dB) | moved (dB) | edit |", "|---|---|---|---|"]
    for r in rows:
        edit = ", ".join(f"{k} {v:.3g}" for k, v in r["edit"].items()) or "-"
        lines.append(f"| {r['name']} | {r['psnr']:.1f} | {r['moved']:.1f} | {edit} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="random edits after the named settings")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    dt = Darktable()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "coffee.dng"
        write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, SynthRawSpec(size=256))
        for name, edit in settings(args.n, args.seed).items():
            rows.append({"name": name, "edit": edit, **measure(dt, raw, edit)})
            print(f"{name}: {rows[-1]['psnr']:.1f} dB", flush=True)
    out = {
        "machine": machine_info(),
        "darktable": dt.version,
        "n": args.n,
        "seed": args.seed,
        "rows": rows,
        "seconds": time.perf_counter() - t0,
    }
    res = ROOT / "bench" / "results"
    (res / f"colorbalancergb_darktable_{dt.version}.json").write_text(json.dumps(out, indent=1) + "\n")
    (res / f"colorbalancergb_darktable_{dt.version}.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
