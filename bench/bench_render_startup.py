"""darktable-cli's start-up with darkproxy's config template against an empty config dir, in one run.

    PYTHONPATH=src .venv/bin/python bench/bench_render_startup.py [--repeats 12] [--out bench/results]

Every darkproxy render is one darktable-cli process with its own config dir. Started empty, darktable builds
its ``data.db`` (the built-in presets of every module) and ``darktablerc`` in it; started from a copy of a
config dir darktable made once (``darkproxy.darktable.render.config_template``), it skips that. Each repeat
renders darktable's default history of a synthetic 128 px DNG at 96 px (one image per process, the worst case
for start-up) both ways, alternating; per way: seconds per process (median, min, max) and the largest
difference between the two ways' images (darktable's run-to-run noise aside, they are the same renders:
``tests/darktable/test_render.py``). Writes ``OUT/render_startup.json`` and ``render_startup.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    import numpy as np

    from darkproxy.darktable.render import config_template, read_tiff
    from darkproxy.darktable.session import Darktable
    from darkproxy.fsutil import write_json, write_text_atomic
    from darkproxy.machine import machine_info
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    dt = Darktable()
    assert dt.install is not None
    with tempfile.TemporaryDirectory(prefix="darkproxy-startup-") as td:
        tdp = Path(td)
        raw = tdp / "coffee.dng"
        write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, SynthRawSpec(size=128))
        hist = dt.default_history(raw)
        t = time.perf_counter()
        config_template(dt.install, tdp / "root")
        made = time.perf_counter() - t
        ways = {
            "template": dt.renderer(max_size=96, tmp_root=tdp / "root"),
            "empty": replace(dt.renderer(max_size=96, tmp_root=tdp / "root"), use_config_template=False),
        }
        secs: dict[str, list[float]] = {k: [] for k in ways}
        imgs: dict[str, list[np.ndarray]] = {k: [] for k in ways}
        for i in range(args.repeats):
            for name in sorted(ways, key=lambda k: (k == "empty") == bool(i % 2)):  # alternate who goes first
                t = time.perf_counter()
                p = ways[name].render(raw, hist, tdp / f"{name}-{i}.tif")
                secs[name].append(time.perf_counter() - t)
                imgs[name].append(read_tiff(p))
            print(f"{i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in secs.items()), flush=True)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(imgs["template"], imgs["empty"], strict=True))
    same = max(float(np.abs(a - imgs["empty"][0]).max()) for a in imgs["empty"])
    res = {
        "machine": machine_info(),
        "darktable": dt.version,
        "repeats": args.repeats,
        "template_made_s": made,
        "seconds": secs,
        "median_s": {k: statistics.median(v) for k, v in secs.items()},
        "max_abs_diff_template_vs_empty": diff,
        "max_abs_diff_empty_runs": same,
    }
    saved = res["median_s"]["empty"] - res["median_s"]["template"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "render_startup.json", res)
    m = res["machine"]
    lines = [
        "# darktable-cli start-up: config template vs empty config dir (bench/bench_render_startup.py)",
        "",
        f"{m['date']}, {m['nproc']} cores, load {m['loadavg']}, darktable {dt.version}. "
        f"{args.repeats} repeats, alternating; one 96 px render of darktable's default history of a 128 px "
        "synthetic DNG per process.",
        "",
        "| config dir | median s / process | min | max |",
        "|---|---|---|---|",
    ]
    for k, v in secs.items():
        lines.append(f"| {k} | {statistics.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |")
    lines += [
        "",
        f"Saved per process: {saved:.3f} s ({100 * saved / res['median_s']['empty']:.0f} %); making the template "
        f"once: {made:.2f} s. Largest difference between the two ways' images: {diff:.2e} (between the empty "
        f"dir's own repeats: {same:.2e}; darktable's run-to-run noise is up to 1e-2, tests/darktable/render_noise.py).",
        "",
    ]
    write_text_atomic(args.out / "render_startup.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
