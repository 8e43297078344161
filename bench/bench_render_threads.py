"""darktable's run-to-run noise against its OpenMP thread count, in one run.

    PYTHONPATH=src .venv/bin/python bench/bench_render_threads.py [--batches 4] [--per-batch 6] [--out bench/results]

darktable 4.2.1's color balance rgb builds its gamut LUT (commit_params, JzAzBz saturation) with
``LUT[i] = fmaxf(s, LUT[i])`` inside an OpenMP parallel loop: threads that meet on one hue bin lose each
other's maxima, so the LUT (and the gamut soft clip of saturated pixels) changes from one render to the next.
Each threads setting (``Renderer.threads``: ``-t N`` and ``OMP_NUM_THREADS=N`` for darktable-cli) renders a
strong color balance rgb edit of a 128 px synthetic DNG at 64 px, ``--per-batch`` times in each of
``--batches`` darktable-cli processes; every render is compared with one single-thread render (no race).
Per setting: renders that differ, the largest difference, the largest fraction of values that differ, and
seconds per batch. Writes ``OUT/NAME.json`` and ``NAME.md``.

darktable sizes its per-thread buffers by the processors OpenMP sees, so more threads than processors
overflow them (darktable 4.2.1 aborts, "corrupted size vs. prev_size"). ``--fake-cpus N`` runs darktable as
on an N-processor machine: ``bench/fakecpus.c`` (compiled with gcc, LD_PRELOADed into darktable-cli) makes
libgomp see N processors; the threads then share this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

# the edit of tests/darktable/test_legacy.py (saturated enough that the gamut clip bites), with JzAzBz
# saturation (what every edit of params version 1-4 upgrades to; the default darktable UCS fills its LUT
# without a max: a render of it did not vary here)
EDIT = {
    "saturation_formula": 0,
    "shadows_Y": 0.1,
    "midtones_C": 0.2,
    "midtones_H": 40.0,
    "highlights_Y": -0.1,
    "global_C": 0.05,
    "global_H": 200.0,
    "chroma_global": 0.3,
    "saturation_global": 0.25,
    "saturation_shadows": 0.2,
    "hue_angle": 10.0,
    "brilliance_global": 0.1,
    "vibrance": 0.2,
    "contrast": 0.15,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--per-batch", type=int, default=6)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--formula", type=int, choices=(0, 1), default=0, help="saturation: 0 JzAzBz, 1 darktable UCS")
    ap.add_argument("--name", default="render_threads", help="output file stem")
    ap.add_argument("--fake-cpus", type=int, default=0, help="run darktable as on a machine of N processors")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    ap_fake = args.fake_cpus
    edit = {**EDIT, "saturation_formula": args.formula}
    if ap_fake:
        shim = Path(tempfile.mkdtemp(prefix="darkproxy-fakecpus-")) / "fakecpus.so"
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(ROOT / "bench" / "fakecpus.c")], check=True
        )
        os.environ["LD_PRELOAD"], os.environ["FAKE_CPUS"] = str(shim), str(ap_fake)
    probe = "import ctypes; print(ctypes.CDLL('libgomp.so.1').omp_get_num_procs())"
    procs = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    print(f"darktable's OpenMP sees {procs} processors")
    if max(args.threads) > procs:
        ap.error(f"--threads up to {procs}: more overflow darktable's per-thread buffers (try --fake-cpus)")

    import numpy as np

    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.session import Darktable
    from darkproxy.fsutil import write_json, write_text_atomic
    from darkproxy.machine import machine_info
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    dt = Darktable()
    rows = []
    with tempfile.TemporaryDirectory(prefix="darkproxy-threads-") as td:
        tdp = Path(td)
        raw = tdp / "coffee.dng"
        write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, SynthRawSpec(size=128))
        hist = dt.edit(dt.default_history(raw), updates={"colorbalancergb": edit})
        ref = dt.renderer(max_size=64, threads=1).render_array(raw, hist)
        for n in args.threads:
            r = dt.renderer(max_size=64, threads=n)
            dmax, fracs, differ, secs = 0.0, [], 0, []
            for b in range(args.batches):
                jobs = [RenderJob(raw, hist, tdp / f"t{n}-{b}-{k}.tif") for k in range(args.per_batch)]
                t = time.perf_counter()
                imgs = [read_tiff(p) for p in r.render_batch(jobs)]  # type: ignore[arg-type]
                secs.append(time.perf_counter() - t)
                for img in imgs:
                    d = np.abs(img.astype(np.float64) - ref)
                    dmax, differ = max(dmax, float(d.max())), differ + int(d.max() > 0)
                    fracs.append(float((d > 0).mean()))
            rows.append(
                {
                    "threads": n,
                    "renders": len(fracs),
                    "differ": differ,
                    "max_abs_diff": dmax,
                    "max_fraction_differing": max(fracs),
                    "median_s_per_batch": statistics.median(secs),
                }
            )
            print(rows[-1], flush=True)
    res = {
        "machine": machine_info(),
        "darktable": dt.version,
        "edit": edit,
        "procs_seen_by_darktable": procs,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", res)
    m = res["machine"]
    lines = [
        "# darktable's render noise against its thread count (bench/bench_render_threads.py)",
        "",
        f"{m['date']}, {m['nproc']} cores, load {m['loadavg']}, darktable {dt.version}, its OpenMP seeing {procs} "
        f"processors{' (--fake-cpus)' if ap_fake else ''}. A strong color balance rgb edit "
        f"({'JzAzBz' if args.formula == 0 else 'darktable UCS'} saturation) of a 128 px synthetic DNG rendered at "
        f"64 px, {args.per_batch} times in each of {args.batches} darktable-cli processes per setting, each render "
        "compared with a single-thread render.",
        "",
        "| threads | renders | differ from 1 thread | max abs diff | max % of values differing | s / batch |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['threads']} | {row['renders']} | {row['differ']} | {row['max_abs_diff']:.2e} | "
            f"{100 * row['max_fraction_differing']:.2f} | {row['median_s_per_batch']:.2f} |"
        )
    lines += [
        "",
        "Reading: darktable 4.2.1's color balance rgb fills its JzAzBz gamut LUT with a racy parallel max "
        "(src/iop/colorbalancergb.c, commit_params: ``LUT[i] = fmaxf(s, LUT[i])`` in an OpenMP loop); its darktable "
        "UCS LUT takes no max. Where renders with several threads differ from the single-thread one and "
        "single-thread renders never do, that race is darktable's run-to-run noise; tests that compare two "
        "darktable renders of such an edit render with ``threads=1`` (tests/darktable/test_legacy.py).",
        "",
    ]
    write_text_atomic(args.out / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
