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
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_raws(folder: Path, count: int, size: int) -> list[Path]:
    """Synthetic Bayer DNGs from scikit-image's photos."""
    from darkproxy.raw.synth import make_samples

    return [i.path for i in make_samples(folder, count=count, size=size)]


def main() -> int:
    from darkproxy.machine import machine_info

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
            opts = GenerateOptions(
                a.module, n=a.n, size=a.size, workers=a.workers, seed=0, probe=False, **{"batch": a.batch, **extra}
            )
            t0 = time.perf_counter()
            res = generate(dt, raws_dir, tdp / name, opts, progress=False)
            sec = time.perf_counter() - t0
            recs = read_jsonl(tdp / name / "manifest.jsonl")
            runs[name] = {
                "seconds": round(sec, 2),
                "samples": res.total,
                "samples_per_s": round(res.total / sec, 3),
                "darktable_cli_processes": res.renders,
                "images_rendered": res.images,
                "params": sorted(json.dumps(r["params"], sort_keys=True) for r in recs),
            }
            print(
                f"{name:10s}: {res.total} samples in {sec:.1f} s = {res.total / sec:.2f} samples/s "
                f"({res.renders} darktable-cli runs, {res.images} images)",
                flush=True,
            )
        same = runs["batched"]["params"] == runs["per_render"]["params"]
        for r in runs.values():
            r.pop("params")
        ratio = runs["batched"]["samples_per_s"] / runs["per_render"]["samples_per_s"]
        shape = read_jsonl(tdp / "batched" / "manifest.jsonl")[0]["shape"]
    result = {
        "date": dt_.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "darktable_version": dt.version,
        "module": a.module,
        "n": a.n,
        "size": a.size,
        "sample_shape": shape,
        "raw_size": a.raw_size,
        "raws": a.raws,
        "workers": a.workers,
        "batch": a.batch,
        "same_samples": same,
        "runs": runs,
        "speedup": round(ratio, 2),
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
        md.append(
            f"| {name} | {r['seconds']} | {r['samples_per_s']} | "
            f"{r['darktable_cli_processes']} | {r['images_rendered']} |"
        )
    md += [
        "",
        f"**speed-up: {ratio:.2f}x** (batched: batch {a.batch}, module input rendered once per raw; "
        "per_render: input and output of every sample, each in its own darktable-cli process)",
        "",
    ]
    (out / "generate.md").write_text("\n".join(md))
    print(f"speed-up {ratio:.2f}x -> {out / 'generate.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
