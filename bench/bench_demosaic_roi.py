"""``--from-mosaic`` below full size: demosaic (PPG and RCD) and darktable's resampling against the installed
darktable, with the region darktable's demosaic reads (``resample.demosaic_roi``) and, beside it, the whole mosaic
(what the port did before session 34).

    PYTHONPATH=src .venv/bin/python bench/bench_demosaic_roi.py
    bash bench/darktable_chroot.sh run ROOT python bench/bench_demosaic_roi.py   # darktable 5.x

Synthetic DNGs (``SynthRawSpec``: scikit-image photos, no clipping) at sizes whose export scale is and is not a
fraction of the image; per case the display PSNR of the replica's demosaic stage (seen through colorin's measured
matrix) against darktable's tap-out and of the sRGB display against darktable's 8-bit export. Writes
``bench/results/demosaic_roi_<version>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.raw.demosaic import PPG, RCD  # noqa: E402
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng  # noqa: E402
from darkproxy.replica.run import run_replica  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (photo, CFA, raw long side, export box): 98 -> 63 (4.8's floor of 63.999...), 96 -> 64, 128 -> 84, then halves
CASES = [
    ("chelsea", "GBRG", 98, 64),
    ("coffee", "RGGB", 98, 64),
    ("chelsea", "GBRG", 96, 64),
    ("coffee", "RGGB", 128, 84),
    ("chelsea", "GBRG", 98, 49),
    ("coffee", "RGGB", 128, 64),
]
METHODS = {"PPG": PPG, "RCD": RCD}


def _whole(in_hw: tuple[int, int], size: tuple[int, int], version: object = None) -> tuple[int, int]:
    return in_hw


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    dt = Darktable()
    sources = default_source_images()
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for photo, cfa, size, box in CASES:
            raw = Path(tmp) / f"{photo}-{cfa}-{size}.dng"
            write_synthetic_dng(sources[photo], raw, SynthRawSpec(cfa=cfa, size=size))
            for name, method in METHODS.items():
                row: dict[str, object] = {"photo": photo, "cfa": cfa, "raw": size, "box": box, "method": name}
                for label, patch in (("region", None), ("whole", _whole)):
                    sets = {"demosaic": {"demosaicing_method": method}}
                    ctx = mock.patch("darkproxy.replica.ports.resample.demosaic_roi", patch) if patch else None
                    if ctx is not None:
                        ctx.start()
                    try:
                        s = run_replica(dt, raw, Path(tmp) / "o", sets=sets, from_mosaic=True, max_size=box)
                    finally:
                        if ctx is not None:
                            ctx.stop()
                    st = {x["module"]: x for x in s["stages"]}
                    row["size"] = s["size"]
                    row[f"{label}_demosaic_db"] = round(float(st["demosaic"]["psnr_vs_tapout"]), 2)
                    row[f"{label}_srgb_db"] = round(float(s["psnr"]), 2)
                print(row, flush=True)
                rows.append(row)
    out = ROOT / "bench" / "results" / f"demosaic_roi_{dt.version}"
    info = machine_info()
    worst = min(float(r["region_demosaic_db"]) for r in rows)  # type: ignore[arg-type]
    lines = [
        f"# demosaic below full size on darktable {dt.version}",
        "",
        f"{info['date']}, {info['nproc']} cores, load {info['loadavg']}: `bench/bench_demosaic_roi.py` "
        f"({time.perf_counter() - t0:.0f} s). Display PSNR (dB) against darktable: the demosaic stage "
        "(`--from-mosaic`, through colorin's measured matrix) against its tap-out, the sRGB display against the "
        "8-bit export. *region*: the mosaic stages on the region darktable's demosaic reads (`demosaic_roi`); "
        "*whole*: on the whole mosaic.",
        "",
        f"Worst demosaic figure with the region: **{worst:.2f} dB**.",
        "",
        "| photo | CFA | raw px | box | export | method | demosaic, region | demosaic, whole | sRGB, region "
        "| sRGB, whole |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, h = r["size"]  # type: ignore[misc]
        lines.append(
            f"| {r['photo']} | {r['cfa']} | {r['raw']} | {r['box']} | {w}x{h} | {r['method']} | "
            f"{r['region_demosaic_db']} | {r['whole_demosaic_db']} | {r['region_srgb_db']} | {r['whole_srgb_db']} |"
        )
    out.with_name(out.name + ".md").write_text("\n".join(lines) + "\n")
    record = {"darktable": dt.version, "machine": info, "rows": rows}
    out.with_name(out.name + ".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}.md")


if __name__ == "__main__":
    main()
