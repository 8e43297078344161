"""``darkproxy match`` against the tools photographers have, on the same held-out raws and references.

    PYTHONPATH=src .venv/bin/python bench/bench_match_peers.py [--work /tmp/match-peers] [--size 816]
        [--lut-generator /tmp/lutvenv/bin/darktable_lut_generator] [--rawtherapee rawtherapee-cli]
        [--only METHOD,...]

The peers are not darkproxy's dependencies: ``apt-get install rawtherapee`` (Debian 12: 5.9), and
darktable-lut-generator in a venv of its own (``python3 -m venv /tmp/lutvenv && /tmp/lutvenv/bin/pip install
darktable-lut-generator colour-science statsmodels``: 0.1.5 imports the last two without declaring them).

Raws: synthetic DNGs (long side ``--size`` px) of the held-out photos (coffee, motorcycle, rocket, chelsea), each
with the camera's own look embedded as its preview JPEG (the photo the raw is made from: rendered by no raw
developer). The reference of each raw is that preview. Methods, each rendered by its own tool and compared with
the reference over the region it covers (aligned as ``match`` aligns: :func:`darkproxy.match.align_reference`):

* held out (leave one out: a look learnt on the other three raws, applied to the fourth):
  - ``darkproxy --pairs``: one darktable style (the default chain's 13 sliders) fitted on three pairs;
  - ``darkproxy --pairs --shared``: the same with each photo's exposure its own (the held-out photo's fitted
    on it with the look fixed), with --shared's default chain (``SHARED_CHAIN``: color calibration and an rgb
    curve added); both choose one demosaic on the fitted pairs, as the CLI does;
  - ``darktable-lut-generator`` (PyPI, 0.1.5): a 3D LUT (.cube, 9^3) fitted on the three pairs by its own CLI
    (it renders them with darktable-cli), applied to the held-out raw through darktable's lut 3D module
    (application colour space Adobe RGB, trilinear, as the generator fits it) on darktable's default history
    with sharpen off (the generator renders without it);
* per image (the image's own preview is the reference the tool reads):
  - ``darkproxy match RAW`` (no reference: the embedded preview), the default chain and the default chain with an
    rgb curve (``--chain exposure,colorbalancergb,filmicrgb,rgbcurve``);
  - RawTherapee 5.9's auto-matched tone curve (its shipped profile "Auto-Matched Curve - ISO Low": the curve is
    matched to the raw's embedded preview);
* darktable's defaults.

``--camera``: previews that follow the raw's exposure as a camera's JPEG does (``SynthRawSpec.preview_gain``: the
photo's linear light times the raw's auto exposure times one gain for the four, the inverse of their exposures'
geometric mean), where the default previews are the photos as they are whatever exposure the raw got; written
to ``match_peers_camera.md`` / ``.json`` (work folder ``/tmp/match-peers-camera`` by default).

Writes ``bench/results/match_peers.md`` and ``match_peers.json``: ΔE2000 mean and p95 per raw and method, the
mean and worst over the raws, seconds per MP. Goal (issue 29): >= 30 % lower held-out ΔE2000 than
darktable-lut-generator and than RawTherapee's auto-matched curve. ``--only`` runs the methods named (and
darktable's defaults) and replaces their rows in the JSON already there, the others kept as they were measured
(the record lists each partial run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import SOURCES, run_record, synthetic_raws, write_results  # noqa: E402

from darkproxy.darktable.render import read_tiff  # noqa: E402
from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.match import (  # noqa: E402
    DEFAULT_CHAIN,
    SHARED_CHAIN,
    align_reference,
    match,
    match_pairs,
    read_reference,
    region_figures,
)
from darkproxy.match.reference import embedded_reference  # noqa: E402
from darkproxy.replica.fit import render_export  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RT_PROFILE = "/usr/share/rawtherapee/profiles/Auto-Matched Curve - ISO Low.pp3"
HELD_OUT = ("darkproxy --pairs", "darkproxy --pairs --shared", "darktable-lut-generator")
PER_IMAGE = (
    "darkproxy match RAW",
    "darkproxy match RAW + rgb curve",
    "darkproxy match RAW + local contrast",
    "RawTherapee auto-matched curve",
)
CURVE_CHAIN = ("exposure", "colorbalancergb", "filmicrgb", "rgbcurve")
BILAT_CHAIN = ("exposure", "colorbalancergb", "filmicrgb", "bilat")
RT = PER_IMAGE[-1]


def score(render: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """ΔE2000 (mean, p95) and PSNR of ``render`` against ``reference`` (both sRGB display ``(3, H, W)``) over the
    region the aligned reference covers."""
    aligned, al = align_reference(reference, render)
    return region_figures(render, np.where(np.isfinite(aligned), aligned, 0.0), al.box)


def read_display(path: Path) -> np.ndarray:
    img = read_tiff(path).astype(np.float32)
    return img / (65535.0 if img.max() > 255.5 else 255.0)


def read_png(path: Path) -> np.ndarray:
    """darktable's render as ``match`` saved it (result.png, 8-bit sRGB)."""
    return read_reference(path)[0]


def rawtherapee(rt: str, raw: Path, out: Path) -> np.ndarray:
    cmd = [rt, "-o", str(out), "-b8", "-t", "-Y", "-p", RT_PROFILE, "-c", str(raw)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return read_display(out)


def lut_generator(gen: str, dt: Darktable, fit_pairs: list[tuple[Path, Path]], work: Path) -> Path:
    """The generator's .cube fitted on ``fit_pairs`` (raw, reference PNG) by its own CLI."""
    d = work / "pairs"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for raw, ref in fit_pairs:
        shutil.copyfile(raw, d / raw.name)
        shutil.copyfile(ref, d / f"{raw.stem}.png")
    cube = work / "look.cube"
    cmd = [gen, str(d), str(cube), "--path_dt_cli", str(dt.install.cli), "--resize", "1000"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0 or not cube.is_file():
        raise RuntimeError(f"darktable-lut-generator failed: {r.stderr[-2000:]}")
    return cube


def apply_lut(dt: Darktable, raw: Path, cube: Path, size: int) -> np.ndarray:
    """darktable's render of ``raw`` with the generator's LUT: its default history, sharpen off (the generator
    renders without it), lut 3D on in Adobe RGB (the generator's colour space), trilinear."""
    hist = dt.default_history(raw)
    off = ["sharpen"] if hist.compressed().find("sharpen") is not None else []
    hist = dt.edit(hist, updates={"lut3d": {"filepath": cube.name, "colorspace": 1, "interpolation": 1}}, disable=off)
    with tempfile.TemporaryDirectory(prefix="darkproxy-peers-") as td:
        r = dt.renderer(
            max_size=size, icc_type="SRGB", bpp=8, extra_conf={"plugins/darkroom/lut3d/def_path": str(cube.parent)}
        )
        return (read_tiff(r.render(raw, hist, Path(td) / "lut.tif")) / 255.0).astype(np.float32)


def shoot_preview_gain(size: int) -> float:
    """One preview gain for the four raws (``--camera``): the inverse of the geometric mean of their auto
    exposures, so that the shoot's previews are, on average over the four, as bright as the photos."""
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, unprocess

    photos = default_source_images(list(SOURCES))
    exposures = [unprocess(photos[n], SynthRawSpec(size=size, seed=0)).exposure for n in SOURCES]
    return float(np.exp(-np.mean(np.log(exposures))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="default: /tmp/match-peers (--camera: /tmp/match-peers-camera)")
    ap.add_argument("--size", type=int, default=816)
    ap.add_argument("--lut-generator", default="/tmp/lutvenv/bin/darktable_lut_generator")
    ap.add_argument("--rawtherapee", default="rawtherapee-cli")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--report-only", action="store_true", help="rewrite match_peers.md from match_peers.json")
    ap.add_argument("--only", default="", metavar="METHOD,...", help="re-run these methods, keep the other rows")
    ap.add_argument("--camera", action="store_true", help="previews that follow the raw's exposure (see above)")
    a = ap.parse_args()
    stem = "match_peers_camera" if a.camera else "match_peers"
    only = [m for m in a.only.split(",") if m]
    for m in only:
        if m not in (*HELD_OUT, *PER_IMAGE):
            ap.error(f"--only: unknown method {m!r} (known: {', '.join((*HELD_OUT, *PER_IMAGE))})")

    def runs(method: str) -> bool:
        return not only or method in only

    if a.report_only:
        o = json.loads((Path(a.out) / f"{stem}.json").read_text())
        (Path(a.out) / f"{stem}.md").write_text(markdown(o))
        return
    work = Path(a.work or ("/tmp/match-peers-camera" if a.camera else "/tmp/match-peers"))
    work.mkdir(parents=True, exist_ok=True)
    dt = Darktable()
    gain = shoot_preview_gain(a.size) if a.camera else 0.0
    raws = synthetic_raws(work, a.size, preview=a.size, preview_gain=gain)
    refs = [embedded_reference(raw, work / f"ref-{raw.stem}") for raw in raws]
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()

    def add(raw: Path, method: str, img: np.ndarray, seconds: float) -> None:
        ref = read_reference(refs[raws.index(raw)])[0]
        mp = img.shape[1] * img.shape[2] / 1e6
        rows.append({"raw": raw.name, "method": method, **score(img, ref), "seconds": seconds, "mp": mp})
        print(json.dumps(rows[-1]), flush=True)

    for i, raw in enumerate(raws):
        add(raw, "darktable defaults", render_export(dt, raw, dt.default_history(raw), a.size), 0.0)
        for method, chain, tag in ((PER_IMAGE[0], None, ""), (PER_IMAGE[1], CURVE_CHAIN, "-curve"),
                                   (PER_IMAGE[2], BILAT_CHAIN, "-bilat")):  # fmt: skip
            if runs(method):
                t0 = time.perf_counter()
                kw = {"chain": list(chain)} if chain else {}
                s = match(dt, raw, refs[i], work / f"match-{raw.stem}{tag}", max_size=a.size, log=print, **kw)
                add(raw, method, read_png(Path(s["xmp"]).with_name("result.png")), time.perf_counter() - t0)
        if runs(RT):
            t0 = time.perf_counter()
            img = rawtherapee(a.rawtherapee, raw, work / f"rt-{raw.stem}.tif")
            add(raw, RT, img, time.perf_counter() - t0)
    for i, held in enumerate(raws):  # leave one out
        if not any(runs(m) for m in HELD_OUT):
            break
        fold = work / f"fold-{held.stem}"
        shutil.rmtree(fold, ignore_errors=True)
        pairs = fold / "pairs"
        pairs.mkdir(parents=True)
        others = [j for j in range(len(raws)) if j != i]
        for k, j in enumerate([*others, i]):  # the held-out pair sorts last: --pairs holds it out
            shutil.copyfile(raws[j], pairs / f"{k}-{raws[j].name}")
            shutil.copyfile(refs[j], pairs / f"{k}-{raws[j].stem}.png")
        for method, per_image in ((HELD_OUT[0], []), (HELD_OUT[1], ["exposure.exposure"])):
            if not runs(method):
                continue
            t0 = time.perf_counter()
            chain = list(SHARED_CHAIN if per_image else DEFAULT_CHAIN)  # the CLI's defaults
            s = match_pairs(dt, pairs, fold / method.split()[-1].lstrip("-"), chain=chain, max_size=a.size,
                            holdout=1, per_image=per_image, log=print)  # fmt: skip
            rec = next(r for r in s["pairs"] if r["held_out"])
            add(held, method, read_png(Path(rec["xmp"]).with_name("result.png")), time.perf_counter() - t0)
        if not runs(HELD_OUT[2]):
            continue
        t0 = time.perf_counter()
        cube = lut_generator(a.lut_generator, dt, [(raws[j], refs[j]) for j in others], fold / "lut")
        add(held, HELD_OUT[2], apply_lut(dt, held, cube, a.size), time.perf_counter() - t0)
    o = {
        **run_record(dt, a.size),
        "rows": rows,
        "minutes": (time.perf_counter() - t_all) / 60.0,
        "previews": "camera" if a.camera else "photo",
        "preview_gain": gain,
    }
    if only and (Path(a.out) / f"{stem}.json").is_file():  # the other rows as measured; this run beside the first
        old = json.loads((Path(a.out) / f"{stem}.json").read_text())
        if old["size"] != a.size:
            raise SystemExit(f"--only: {stem}.json was measured at {old['size']} px, not {a.size}")
        rerun = {"methods": only, "date": o["date"], "machine": o["machine"], "minutes": o["minutes"]}
        keep = [r for r in old["rows"] if r["method"] not in only and r["method"] != "darktable defaults"]
        defaults = [r for r in rows if r["method"] == "darktable defaults"]
        o = {**old, "rows": defaults + keep + [r for r in rows if r["method"] in only]}
        o["partial_runs"] = [*old.get("partial_runs", []), rerun]
    write_results(Path(a.out), stem, o, markdown)


LOOKS = {
    "photo": "the photo itself",
    "camera": "the photo relit by the raw's exposure, as a camera's JPEG follows it",
}
READING = {
    "photo": (
        "Reading: the synthetic raws are auto-exposed (each photo's 99.9th percentile at the same level of the "
        "white point) while their previews keep the photo's own brightness, so the look differs from raw to raw by "
        "an exposure: a look learnt on other raws without a per-image exposure (plain `--pairs`, the LUT) cannot "
        "follow it, `--shared` fits it per photo. A camera whose JPEG brightness follows the raw's exposure does "
        "not pose that problem: match_peers_camera.md measures that case (`--camera`). RawTherapee's curve is "
        "matched to each image's own preview (per image, like `darkproxy match RAW`): a tone curve, no colour, and "
        "its profile's demosaic (AMaZE). `darkproxy match RAW` chooses darktable's demosaic against the preview "
        "after its fit (from the re-run of 21:04 on: LMMSE with refine & medians on all four; the previews are "
        "smoother than RCD's render; `demosaic_choice.md`, the same previews: 2.69 with RCD, 1.92 chosen). The "
        "held-out darkproxy rows: from the re-run of 2026-12-05 on, one demosaic chosen on the three fitted pairs "
        "and `--shared` with its own default chain (color calibration and an rgb curve added); before, darktable's "
        "default demosaic and the default chain. Seconds: on this 2-core machine, with the load in the header "
        "(other runs shared it for part of the time): upper bounds; RawTherapee's are its whole run (no fit beyond "
        "the curve)."
    ),
    "camera": (
        "Reading: the synthetic raws are auto-exposed (each photo's 99.9th percentile at the same level of the "
        "white point) and their previews follow that exposure, as a camera's JPEG does (`--camera`: the photo's "
        "linear light times the raw's exposure times one gain for the four raws, clipped to white): the look is "
        "the same function of the sensor's values for every raw, which a look learnt on other raws can follow "
        "without a per-image exposure (match_peers.md: previews that keep the photo's own brightness). Only the "
        "held-out methods ran on these raws (`--only`; the per-image ones: match_peers.md). The held-out "
        "darkproxy rows choose one demosaic on the three fitted pairs, and `--shared` has its own default chain "
        "(color calibration and an rgb curve added), as the CLI does. Seconds: upper bounds (a second job shared "
        "the 2-core machine for most of the run)."
    ),
}


def markdown(o: dict[str, Any]) -> str:
    m = o["machine"]
    rows = o["rows"]
    methods = ["darktable defaults", *HELD_OUT, *PER_IMAGE]

    def of(method: str, k: str) -> list[float]:
        return [r[k] for r in rows if r["method"] == method]

    lines = [
        "# darkproxy match against its peers (bench/bench_match_peers.py)",
        "",
        f"{o['date']}, {m.get('nproc')} cores ({m.get('cpu')}), torch {m.get('torch')}, darktable {o['darktable']}, "
        f"load {m.get('loadavg')}. Raws: synthetic DNGs, long side {o['size']} px, of the held-out photos "
        f"{', '.join(SOURCES)}, each with the camera's look ({LOOKS[o.get('previews', 'photo')]}) as its embedded "
        "preview: the "
        "reference. Held out: the look learnt on the three other raws (leave one out); per image: the tool reads "
        "the image's own preview. Figures: each tool's own render against the reference over the region it covers "
        f"(ΔE2000). Total {o['minutes']:.1f} min.",
        *[
            f"Re-run {p['date']} (load {p['machine'].get('loadavg')}, {p['minutes']:.1f} min): "
            f"{', '.join(p['methods'])} and darktable's defaults; the other rows are the first run's."
            for p in o.get("partial_runs", [])
        ],
        "",
        "| method | kind | ΔE2000 mean (over raws) | worst raw | p95 (mean) | seconds per MP (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for meth in methods:
        de, p95 = of(meth, "deltae_mean"), of(meth, "deltae_p95")
        if not de:
            continue
        kind = "held out" if meth in HELD_OUT else "per image" if meth in PER_IMAGE else "-"
        spm = [r["seconds"] / r["mp"] for r in rows if r["method"] == meth]
        lines.append(
            f"| {meth} | {kind} | {np.mean(de):.2f} | {max(de):.2f} | {np.mean(p95):.2f} | {np.mean(spm):.0f} |"
        )
    lines += ["", "Per raw (ΔE2000 mean / p95):", "", "| raw | " + " | ".join(methods) + " |"]
    lines.append("|" + "---|" * (len(methods) + 1))
    for name in dict.fromkeys(r["raw"] for r in rows):
        cells = []
        for meth in methods:
            r = next((r for r in rows if r["raw"] == name and r["method"] == meth), None)
            cells.append("-" if r is None else f"{r['deltae_mean']:.2f} / {r['deltae_p95']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    def cut(ours: str, peer: str) -> str:
        a, b = np.mean(of(ours, "deltae_mean")), np.mean(of(peer, "deltae_mean"))
        verdict = "met" if a <= 0.7 * b else "missed"
        return f"{ours} {a:.2f} vs {peer} {b:.2f}: {100 * (1 - a / b):.0f} % lower ({verdict})"

    lines += [
        "",
        "Goal: >= 30 % lower ΔE2000 than each peer:",
        f"- held out: {cut(HELD_OUT[1], HELD_OUT[2])}; {cut(HELD_OUT[0], HELD_OUT[2])}",
        *[f"- per image: {cut(m, RT)}" for m in PER_IMAGE[:-1] if of(m, "deltae_mean")],
        "",
        READING[o.get("previews", "photo")],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
