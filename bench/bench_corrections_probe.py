"""Why a darktable correction cannot move a slider through some proxies: the loss along one slider.

    PYTHONPATH=src .venv/bin/python bench/bench_corrections_probe.py [--module denoiseprofile] [--slider strength]
        [--value 2.0] [--start 1.89]

On one synthetic raw (astronaut, 128 px, darktable's defaults plus MODULE at its defaults but SLIDER), darktable
renders the target at SLIDER = VALUE (8-bit export at 128 px). Along the slider: the mean absolute difference of the
replica with MODULE's zoo proxy (P) and of darktable's render (D) from the target, and of P from D; then the loss
the first correction minimises (``replica_regress(corrections=1)`` from START: the target less D - P at START). A
correction moves the slider only if that loss is lowest nearer VALUE than START. Writes
``bench/results/corrections_probe_MODULE.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng  # noqa: E402
from darkproxy.replica.fit import _chain_for_target, _recovered_history, render_export  # noqa: E402
from darkproxy.replica.references import replica_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default="denoiseprofile")
    ap.add_argument("--slider", default="strength")
    ap.add_argument("--value", type=float, default=2.0)
    ap.add_argument("--start", type=float, default=1.89)
    ap.add_argument("--values", default="1.0,1.5,1.89,2.0,2.2,2.5")
    ap.add_argument("--work", default="/tmp/corrections-probe")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "astronaut.dng"
    spec = SynthRawSpec(cfa="RGGB", bits=14, size=SIZE, seed=0, headroom=0.85)
    write_synthetic_dng(default_source_images()["astronaut"], raw, spec)
    dt = Darktable()
    mod, name = a.module, f"{a.module}.{a.slider}"
    tgt = render_export(dt, raw, replica_history(dt, raw, None, {mod: {a.slider: a.value}}), SIZE)
    hist = replica_history(dt, raw, None, {mod: {}})
    chain, renders = _chain_for_target(dt, raw, hist, tgt, False, (mod,), None, lambda s: None, False)
    spec_i = chain.param_space.names.index(name)
    s = chain.param_space.specs[spec_i]
    x = torch.from_numpy(renders.chain_input)[None]

    def proxy(v: float) -> np.ndarray:
        u = chain.history_u()
        u[0, spec_i] = (v - s.lo) / (s.hi - s.lo)
        with torch.no_grad():
            return chain(x, u)[0].numpy()

    def darktable(v: float) -> np.ndarray:
        return render_export(dt, raw, _recovered_history(dt, hist, {name: v}), SIZE)

    values = [float(v) for v in a.values.split(",")]
    p = {v: proxy(v) for v in values}
    d = {v: darktable(v) for v in values}
    corrected = tgt - (darktable(a.start) - proxy(a.start))
    lines = [
        f"# A darktable correction through the {mod} proxy, along {a.slider}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, darktable {dt.version}. Target: darktable's render "
        f"of {mod} {a.slider} = {a.value} on astronaut ({SIZE} px synthetic DNG). Mean absolute difference (display "
        f"values, 0-1). The corrected target: the target less (darktable - replica) at {a.slider} = {a.start}. "
        f"`python bench/bench_corrections_probe.py --module {mod} --slider {a.slider} --value {a.value} "
        f"--start {a.start}`.",
        "",
        f"| {a.slider} | replica - target | darktable - target | replica - darktable | replica - corrected target |",
        "|---|---|---|---|---|",
    ]
    for v in values:
        lines.append(
            f"| {v:g} | {np.abs(p[v] - tgt).mean():.5f} | {np.abs(d[v] - tgt).mean():.5f} | "
            f"{np.abs(p[v] - d[v]).mean():.5f} | {np.abs(p[v] - corrected).mean():.5f} |"
        )
    lines.append("")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"corrections_probe_{mod}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
