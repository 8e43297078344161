"""Benchmark `darkproxy generate`: batched engine vs one darktable-cli process per render.

Both runs produce the same samples (same module, raws, seed, params) on the same
machine in one invocation:

* batched: shared module input per raw, ``--batch B`` renders per darktable-cli
  process, ``--workers W`` processes at a time (the defaults of ``generate``);
* per-render: every sample renders its input and its output, each in its own
  darktable-cli process, with the same ``W`` workers.

Writes ``bench/results/generate.json`` and ``generate.md``.

    PYTHONPATH=src python bench/bench_generate.py [--n 48] [--size 512] [--raws 4]
"""

from __future__ import annotations

import argparse
import datetime as dt_
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_raws(folder: Path, count: int, size: int) -> list[Path]:
    """Synthetic Bayer DNGs (darkproxy.raw.synth if present, else a minimal maker)."""
    from skimage import data, transform

    sources = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"][:count]
    out = []
    try:
        from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

        imgs = default_source_images()
        for i, s in enumerate(sources):
            p = folder / f"{s}.dng"
            write_synthetic_dng(imgs[s] if s in imgs else list(imgs.values())[i % len(imgs)], p, SynthRawSpec(size=size))
            out.append(p)
        return out
    except ImportError:
        pass
    from darkproxy.data.probe import write_mosaic_dng

    for s in sources:
        img = transform.resize(getattr(data, s)()[..., :3] / 255.0, (size, size), anti_aliasing=True)
        lin = img ** 2.2
        m = np.empty((size, size))
        m[0::2, 0::2], m[0::2, 1::2] = lin[0::2, 0::2, 0] * 0.5, lin[0::2, 1::2, 1]
        m[1::2, 0::2], m[1::2, 1::2] = lin[1::2, 0::2, 1], lin[1::2, 1::2, 2] * 0.7
        p = folder / f"{s}.dng"
        write_mosaic_dng((512 + m * 0.8 * (16383 - 512)).astype(np.uint16), p, "RGGB", 512, 16383, np.eye(3), (0.5, 1.0, 0.7))
        out.append(p)
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default="exposure")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--raw-size", type=int, default=1024)
    ap.add_argument("--raws", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="darkproxy-bench-") as td:
        tdp = Path(td)
        os.environ.setdefault("DARKPROXY_HOME", str(tdp / "home"))
        from darkproxy.darktable.session import Darktable
        from darkproxy.data.generate import GenerateOptions, generate
        from darkproxy.data.store import read_jsonl

        dt = Darktable()
        raws_dir = tdp / "raws"
        raws_dir.mkdir()
        make_raws(raws_dir, a.raws, a.raw_size)
        for r in sorted(raws_dir.iterdir()):
            dt.default_history(r)  # warm the history cache: not part of either measurement
        runs = {}
        for name, extra in (("batched", {}), ("per_render", {"batch": 1, "share_input": False, "per_render": True})):
            opts = GenerateOptions(a.module, n=a.n, size=a.size, workers=a.workers, seed=0,
                                   probe=False, **{"batch": a.batch, **extra})
            t0 = time.perf_counter()
            res = generate(dt, raws_dir, tdp / name, opts, progress=False)
            sec = time.perf_counter() - t0
            recs = read_jsonl(tdp / name / "manifest.jsonl")
            runs[name] = {"seconds": round(sec, 2), "samples": res.total, "samples_per_s": round(res.total / sec, 3),
                          "darktable_cli_processes": res.renders, "images_rendered": res.images,
                          "params": sorted(json.dumps(r["params"], sort_keys=True) for r in recs)}
            print(f"{name:10s}: {res.total} samples in {sec:.1f} s = {res.total / sec:.2f} samples/s "
                  f"({res.renders} darktable-cli runs, {res.images} images)", flush=True)
        same = runs["batched"]["params"] == runs["per_render"]["params"]
        for r in runs.values():
            r.pop("params")
        ratio = runs["batched"]["samples_per_s"] / runs["per_render"]["samples_per_s"]
        shape = read_jsonl(tdp / "batched" / "manifest.jsonl")[0]["shape"]
    result = {
        "date": dt_.datetime.now().isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "darktable_version": dt.version, "module": a.module, "n": a.n, "size": a.size, "sample_shape": shape,
        "raw_size": a.raw_size, "raws": a.raws, "workers": a.workers, "batch": a.batch,
        "same_samples": same, "runs": runs, "speedup": round(ratio, 2),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generate.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [
        "# darkproxy generate: batched vs one darktable-cli per render",
        "",
        f"- date: {result['date']}",
        f"- machine: {result['machine']['nproc']} cores, {result['machine']['cpu']}",
        f"- darktable {dt.version}; module `{a.module}`; {a.n} samples of {shape} (--size {a.size}) from "
        f"{a.raws} synthetic {a.raw_size} px DNGs; {a.workers} workers; same samples both ways: {same}",
        "",
        "| mode | seconds | samples/s | darktable-cli processes | images rendered |",
        "|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        md.append(f"| {name} | {r['seconds']} | {r['samples_per_s']} | {r['darktable_cli_processes']} | {r['images_rendered']} |")
    md += ["", f"**speed-up: {ratio:.2f}x** (batched: batch {a.batch}, module input rendered once per raw; "
           "per_render: input and output of every sample, each in its own darktable-cli process)", ""]
    (out / "generate.md").write_text("\n".join(md))
    print(f"speed-up {ratio:.2f}x -> {out / 'generate.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
