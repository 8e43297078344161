"""Benchmark `darkproxy generate --cluster`: the thread pool against Ray, on this machine.

The same dataset (module, raws, seed, params) is generated six ways in one invocation, each with
``--workers 1`` and ``2``: ``generate`` without a cluster (its thread pool driving darktable-cli),
the same with ``OMP_NUM_THREADS=1`` for darktable-cli (what a Ray task of 1 CPU gets), and with
``--cluster ray`` (a local Ray on 127.0.0.1 with as many CPUs as workers). Each is run
``--repeats`` times in alternating order (the machine may be shared: the best run of each counts,
every run is kept in the JSON). Reported per run:

* renders per second: images darktable rendered / wall seconds of ``generate`` (planning included,
  the Ray start and stop not: they are reported apart);
* the driver's overhead per sample: its own CPU seconds per sample (``time.process_time``: the
  generating process only, darktable-cli's children not counted), to set beside the thread pool's,
  and, for Ray, the seconds per sample a render batch spends outside its task (sending the job,
  scheduling, the TIFF bytes back, writing them) summed over batches.

Writes ``bench/results/cluster.json`` and ``cluster.md``. Needs the ``[cluster]`` extra.

    PYTHONPATH=src python bench/bench_cluster.py [--n 48] [--size 256] [--raws 4] [--batch 6] [--repeats 2]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def one_run(dt: Any, raws: Path, out: Path, a: argparse.Namespace, workers: int, mode: str) -> dict[str, Any]:
    from darkproxy.cluster import renderer_factory, session
    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.data.store import read_jsonl

    ray = mode == "ray"
    omp = os.environ.get("OMP_NUM_THREADS")
    if mode == "pool-omp1":
        os.environ["OMP_NUM_THREADS"] = "1"  # darktable-cli's, started from here (this process's pools are set up)
    opts = GenerateOptions(
        a.module,
        n=a.n,
        size=a.size,
        workers=workers,
        batch=a.batch,
        seed=0,
        probe=False,
        renderer_factory=renderer_factory("ray", dt, workers=workers, log=lambda _: None) if ray else None,
    )
    rec: dict[str, Any] = {"mode": mode, "workers": workers}
    t0 = time.perf_counter()
    with session("ray" if ray else None, dt.version, workers=workers, log=lambda _: None) as c:
        rec["ray_start_s"] = round(time.perf_counter() - t0, 2) if ray else None
        cpu0, w0 = time.process_time(), time.perf_counter()
        res = generate(dt, raws, out, opts, progress=False, log=lambda _: None)
        wall, cpu = time.perf_counter() - w0, time.process_time() - cpu0
        stats = c.stats if c is not None else None
        t1 = time.perf_counter()
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp
    rec["ray_stop_s"] = round(time.perf_counter() - t1, 2) if ray else None
    rec.update(
        seconds=round(wall, 2),
        samples=res.total,
        images=res.images,
        darktable_cli_processes=res.renders,
        renders_per_s=round(res.images / wall, 3),
        samples_per_s=round(res.total / wall, 3),
        driver_cpu_ms_per_sample=round(1000 * cpu / res.total, 1),
    )
    if stats is not None:
        outside = stats.driver_seconds - stats.task_seconds
        rec.update(
            tasks=stats.tasks,
            seconds_in_tasks=round(stats.task_seconds, 2),
            outside_task_ms_per_sample=round(1000 * outside / res.total, 1),
            outside_task_ms_per_task=round(1000 * outside / max(stats.tasks, 1), 1),
        )
    rec["params"] = sorted(json.dumps([r["id"], r["params"], r["split"]]) for r in read_jsonl(out / "manifest.jsonl"))
    return rec


def main() -> int:
    from darkproxy.machine import machine_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default="exposure")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--raw-size", type=int, default=768)
    ap.add_argument("--raws", type=int, default=4)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    import ray

    from darkproxy.raw.synth import make_samples

    with tempfile.TemporaryDirectory(prefix="darkproxy-bench-") as td:
        tdp = Path(td)
        os.environ.setdefault("DARKPROXY_HOME", str(tdp / "home"))
        from darkproxy.darktable.session import Darktable

        dt = Darktable()
        raws = tdp / "raws"
        make_samples(raws, count=a.raws, size=a.raw_size)
        for r in sorted(raws.iterdir()):
            dt.default_history(r)  # warm the history cache: in no measurement
        configs = [("pool", 1), ("pool-omp1", 1), ("ray", 1), ("pool", 2), ("pool-omp1", 2), ("ray", 2)]
        runs: list[dict[str, Any]] = []
        for rep in range(a.repeats):
            for mode, w in configs if rep % 2 == 0 else configs[::-1]:
                rec = one_run(dt, raws, tdp / f"{mode}{w}-{rep}", a, w, mode)
                rec["repeat"] = rep
                runs.append(rec)
                print(
                    f"{mode} x{w} (#{rep}): {rec['images']} images in {rec['seconds']} s = {rec['renders_per_s']} "
                    f"renders/s; driver {rec['driver_cpu_ms_per_sample']} ms CPU/sample"
                    + (f", {rec['outside_task_ms_per_sample']} ms/sample outside the tasks" if mode == "ray" else ""),
                    flush=True,
                )
        same = len({json.dumps(r.pop("params")) for r in runs}) == 1
        shape = json.loads((tdp / "pool1-0" / "manifest.jsonl").read_text().splitlines()[0])["shape"]
    best = {
        f"{m}{w}": min((r for r in runs if r["mode"] == m and r["workers"] == w), key=lambda r: r["seconds"])
        for m, w in configs
    }
    result = {
        "date": dt_.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "darktable_version": dt.version,
        "ray_version": ray.__version__,
        "module": a.module,
        "n": a.n,
        "size": a.size,
        "sample_shape": shape,
        "raw_size": a.raw_size,
        "raws": a.raws,
        "batch": a.batch,
        "repeats": a.repeats,
        "same_dataset": same,
        "best": best,
        "runs": runs,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    md = [
        "# darkproxy generate: thread pool vs Ray (local, 1 and 2 workers)",
        "",
        f"- date: {result['date']}; load average at the end {m['loadavg']}",
        f"- machine: {m['nproc']} cores, {m['cpu']}; Python {m['python']}; ray {ray.__version__}",
        f"- darktable {dt.version}; module `{a.module}`; {a.n} samples of {shape} (--size {a.size}) from {a.raws} "
        f"synthetic {a.raw_size} px DNGs; --batch {a.batch} (a darktable-cli process, or a Ray task, per batch); "
        f"the same dataset (ids, params, splits) every run: {same}",
        f"- best of {a.repeats} runs per row, alternating order (every run: `cluster.json`)",
        "",
        "| engine | workers | seconds | renders/s | samples/s | driver CPU ms/sample | ms/sample outside the tasks "
        "| Ray start / stop s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (mode, w), r in zip(configs, best.values(), strict=True):
        engine = {"pool": "thread pool", "pool-omp1": "thread pool, darktable OMP_NUM_THREADS=1"}.get(
            mode, f"Ray, local, {w} CPU{'s' if w > 1 else ''}"
        )
        outside = r.get("outside_task_ms_per_sample", "-")
        startstop = f"{r['ray_start_s']} / {r['ray_stop_s']}" if mode == "ray" else "-"
        md.append(
            f"| {engine} | {w} | {r['seconds']} | {r['renders_per_s']} | {r['samples_per_s']} | "
            f"{r['driver_cpu_ms_per_sample']} | {outside} | {startstop} |"
        )
    p1, p2, r1, r2 = (best[k] for k in ("pool1", "pool2", "ray1", "ray2"))
    o1, o2 = best["pool-omp11"], best["pool-omp12"]
    md += [
        "",
        f"Ray / thread pool renders per second: {r1['renders_per_s'] / p1['renders_per_s']:.2f}x with 1 worker, "
        f"{r2['renders_per_s'] / p2['renders_per_s']:.2f}x with 2; against the thread pool with single-threaded "
        f"darktable: {r1['renders_per_s'] / o1['renders_per_s']:.2f}x and "
        f"{r2['renders_per_s'] / o2['renders_per_s']:.2f}x. "
        "The driver's overhead per sample: "
        f"{r2['driver_cpu_ms_per_sample'] - p2['driver_cpu_ms_per_sample']:+.1f} ms of its CPU against the thread pool "
        f"(2 workers), and {r2['outside_task_ms_per_sample']} ms per sample of each batch's wall time outside its task "
        "(object store in and out, scheduling, writing the TIFFs), which the other batches in flight overlap.",
        "",
        "A render task asks Ray for 1 CPU, so Ray runs darktable-cli there with OMP_NUM_THREADS=1; the thread pool's "
        "darktable-cli processes use every core (OpenMP), unless told otherwise (the `OMP_NUM_THREADS=1` rows). "
        "The driver's CPU covers planning, reading the TIFFs and writing the samples in every engine. The load "
        "average above is the machine's: other work shared its 2 cores during the runs.",
        "",
    ]
    (out / "cluster.md").write_text("\n".join(md))
    print(f"-> {out / 'cluster.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
