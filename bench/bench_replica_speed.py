"""The replica's speed at full size, beside darktable-cli on the same history, in one run (issue 27).

    PYTHONPATH=src .venv/bin/python bench/bench_replica_speed.py [--sizes 1024,2048] [--repeats 3]
        [--work /tmp/dp/replica-speed] [--out bench/results]

For each size: a synthetic 14-bit RGGB DNG (scikit-image's ``coffee``, that long side) and darktable's
default history for it; darktable-cli exports it at full size (8-bit sRGB, ``--hq false``, as the replica's
reference) ``--repeats`` times in separate processes (its wall clock, and the same for a 64 px raw: the
process's start, subtracted for darktable's own processing time); the replica of the same history at full
size runs forward (no gradient) and forward + backward (the gradient of the mean display value with respect
to every slider of the chain) ``--repeats`` times, from darktable's demosaiced image (the default) and from
the raw's CFA (``--from-mosaic``). Seconds per megapixel, medians; the ratios are measured in one run on one
machine (the machine's load is recorded: compare ratios, not seconds). Issue 27's goals: the forward pass no
slower per megapixel than darktable's export, forward + backward within 3x of it.

Writes ``OUT/replica_speed.json`` and ``replica_speed.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]


def _darktable_seconds(dt: Any, raw: Path, hist: Any, size: int, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as td:
            t = time.perf_counter()
            dt.renderer(max_size=size, icc_type="SRGB", bpp=8).render(raw, hist, Path(td) / f"{i}.tif")
            out.append(time.perf_counter() - t)
    return out


def _replica_seconds(dt: Any, raw: Path, hist: Any, size: int, repeats: int, from_mosaic: bool) -> dict[str, Any]:
    import torch

    from darkproxy.replica import plan_replica
    from darkproxy.replica.references import render_references
    from darkproxy.replica.run import build_chain

    plan = plan_replica(dt, hist, raw, from_mosaic=from_mosaic)
    renders = render_references(dt, raw, plan, size, export=False, taps=False)
    chain = build_chain(plan, renders)
    x = torch.from_numpy(renders.chain_input)[None]
    with torch.no_grad():  # not timed: the first call's one-time costs (lazy imports, allocator)
        chain(x, chain.history_u())
    fwd, bwd = [], []
    for _ in range(repeats):
        u = chain.history_u()
        t = time.perf_counter()
        with torch.no_grad():
            y = chain(x, u)
        fwd.append(time.perf_counter() - t)
        u = chain.history_u().requires_grad_(True)
        t = time.perf_counter()
        chain(x, u).mean().backward()
        bwd.append(time.perf_counter() - t)
    return {
        "forward_s": fwd,
        "forward_backward_s": bwd,
        "shape": list(y.shape[-2:]),
        "sliders": int(u.shape[-1]),
        "stages": [f"{s.module} ({s.kind})" for s in (plan.prefix if from_mosaic else []) + plan.stages],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,2048", help="raw long sides in px (default: 1024,2048)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dp/replica-speed"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    os.environ.setdefault("DARKPROXY_HOME", str(args.work / "home"))
    import torch

    from darkproxy.darktable.session import Darktable
    from darkproxy.fsutil import write_json
    from darkproxy.machine import machine_info
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    args.work.mkdir(parents=True, exist_ok=True)
    dt = Darktable()
    src = default_source_images(["coffee"])["coffee"]
    tiny = args.work / "coffee-64.dng"
    write_synthetic_dng(src, tiny, SynthRawSpec(size=64))
    start = _darktable_seconds(dt, tiny, dt.default_history(tiny), 64, args.repeats)
    res: dict[str, Any] = {"meta": machine_info(), "darktable_start_s": start, "sizes": []}
    for size in [int(s) for s in args.sizes.split(",")]:
        raw = args.work / f"coffee-{size}.dng"
        write_synthetic_dng(src, raw, SynthRawSpec(size=size))
        hist = dt.default_history(raw)
        rec: dict[str, Any] = {"size": size, "darktable_s": _darktable_seconds(dt, raw, hist, size, args.repeats)}
        for mode, mosaic in (("rgb", False), ("mosaic", True)):
            rec[mode] = _replica_seconds(dt, raw, hist, size, args.repeats, mosaic)
            print(f"{size} px {mode}: {rec[mode]['forward_s']} / {rec[mode]['forward_backward_s']} s", flush=True)
        h, w = rec["rgb"]["shape"]
        rec["megapixels"] = h * w / 1e6
        res["sizes"].append(rec)
    res["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["meta"]["torch_threads"] = torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "replica_speed.json", res)
    (args.out / "replica_speed.md").write_text(_markdown(res))
    print(_markdown(res))
    return 0


def _markdown(res: dict[str, Any]) -> str:
    med = statistics.median
    m = res["meta"]
    start = med(res["darktable_start_s"])
    lines = [
        "# The replica's speed beside darktable-cli (bench/bench_replica_speed.py)",
        "",
        f"{m['date']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} ({m['torch_threads']} threads); load "
        f"{m['loadavg']} at the start, {m['loadavg_end']} at the end. Medians of the repeats. darktable-cli: the "
        f"wall clock of one export process (8-bit sRGB, full size, --hq false); its start and a 64 px export "
        f"take {start:.2f} s, subtracted for 'darktable processing'. Replica: darktable's default history of "
        "the raw, full size, CPU; forward without gradient, forward + backward (gradient of the mean display "
        "value with respect to every slider); `rgb` starts from darktable's demosaiced image (the default), "
        "`mosaic` from the raw's CFA (`--from-mosaic`: rawprepare, temperature, highlights, RCD demosaic in "
        "torch). The renders the replica needs from darktable are not timed.",
        "",
        "| raw | MP | darktable s/MP (process) | darktable s/MP (processing) | mode | forward s/MP | "
        "forward / darktable | forward+backward s/MP | f+b / darktable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for r in res["sizes"]:
        mp = r["megapixels"]
        dt_all = med(r["darktable_s"]) / mp
        proc = med(r["darktable_s"]) - start
        dt_proc = proc / mp if proc > 0.1 * start else float("nan")  # at tiny sizes the start is all there is
        for mode in ("rgb", "mosaic"):
            f = med(r[mode]["forward_s"]) / mp
            fb = med(r[mode]["forward_backward_s"]) / mp
            lines.append(
                f"| {r['size']} px | {mp:.2f} | {dt_all:.3f} | {dt_proc:.3f} | {mode} | {f:.3f} | "
                f"{f / dt_all:.2f} ({f / dt_proc:.2f} of processing) | {fb:.3f} | {fb / dt_all:.2f} "
                f"({fb / dt_proc:.2f}) |"
            )
            verdicts.append(
                f"- {r['size']} px, {mode}: forward {'met' if f <= dt_all else 'NOT met'} ({f / dt_all:.2f}x the "
                f"export process; {f / dt_proc:.2f}x its processing), forward + backward within 3x "
                f"{'met' if fb <= 3 * dt_all else 'NOT met'} ({fb / dt_all:.2f}x; {fb / dt_proc:.2f}x)"
            )
    lines += ["", "Issue 27's goals (against the export process; its processing alone in brackets):", "", *verdicts, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
