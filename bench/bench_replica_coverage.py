"""The replica on a corpus of real darktable sidecars: covered or refused (why), and how close when covered.

    PYTHONPATH=src .venv/bin/python bench/bench_replica_coverage.py [--work /tmp/dp/replica-coverage]
        [--out bench/results] [--modes rgb,mosaic] [--per-op 2] [--only ID,...] [--report-only]
        [--darktable-source /tmp/dtsrc/darktable-4.2.1]

The corpus (issue 27), every sidecar written with darkproxy's own XMP tools and saved under
``OUT/replica_coverage/ID.xmp`` (the raws are made again from their recipe, below):

* ``preset-*``: darktable's built-in module presets. darktable-cli is run once with a fresh
  ``--configdir``; the ``presets`` table of the ``data.db`` it creates holds every preset its modules
  define (``init_presets``): operation, op_version, op_params, enabled, blendop_params, blendop_version.
  Of each operation, the first and last preset by name (``--per-op``), each applied as darktable applies
  a preset (one new history item: the preset's params, version and blend params, for instance 0 of the
  module) on top of darktable's default history for the raw; raws alternate coffee / chelsea.
* ``style-*``: the styles that ship in darktable's source (``tools/noise/raw linear.dtstyle``): their items
  appended to the default history (one item per module instance, as above).
* ``oldxmp-*``: sidecars written by older darktable versions (darktable's own benchmark sidecars,
  ``src/tests/benchmark/darktable-bench-*.xmp`` from 3.4, 3.6, 3.8, and ``tools/noise/profiling-shot.xmp``)
  run as they are on the held-out raws (their camera-specific mosaic params included: darktable renders
  those).
* ``legacy-*``: the default history with one item written by an older params version (exposure v2-v5 on
  the raw with an exposure bias, color balance rgb v1-v4 on coffee): the old struct from darktable
  4.2.1's ``legacy_params``, encoded by hand with the old modversion (tests/test_replica.py
  ``_old_exposure``); darktable upgrades it when it renders, the replica reads it upgraded.
* ``edit-*`` / ``default-*``: darktable's default history for each raw, and edits of our own: rotations
  (flip), a crop, a blend at 70 % opacity, a second exposure instance, white balance, several modules
  together, local proxies (lowpass, bloom), sigmoid instead of filmic rgb, haze removal before the flip.

Raws (held out: none is a zoo training photo source at this size and seed): synthetic 14-bit RGGB DNGs
made with :mod:`darkproxy.raw.synth` from scikit-image's ``coffee`` and ``chelsea`` (512 px long side,
seed 0) and ``coffee`` with an EXIF exposure bias of -0.7 EV. Each sidecar runs as a user runs it,
``darkproxy replica RAW --xmp ID.xmp -o DIR --max-size 256`` (:func:`~darkproxy.replica.run.run_replica`,
render scale 0.5: the zoo's local proxies' scale), without ``--allow-missing``; mode ``mosaic`` adds
``--from-mosaic``. Per run: covered (ran) or refused (the one-line reason), display PSNR and ΔE2000 mean /
p95 against darktable-cli's 8-bit sRGB export, seconds, and per stage its kind and psnr_alone; the dry
run's per-item coverage gives the refused modules (what to port next). A covered run below 30 dB is
*silently wrong*: a bug (listed first in the report). An exception that is not a one-line refusal is an
error (a bug too).

Resumable: runs already in ``OUT/replica_coverage.json`` are kept and skipped; each finished run is
written at once (json and md, atomically). Issue 27's goals: >= 60 % covered, median >= 45 dB, worst >=
35 dB, ΔE2000 mean <= 1; every run >= 30 dB or refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.darktable.xmp import DT, HistoryItem, Sidecar, read_xmp  # noqa: E402
from darkproxy.errors import DarkproxyError, DarktableRenderError  # noqa: E402
from darkproxy.fsutil import write_json, write_text_atomic  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402

DTSRC = Path("/tmp/dtsrc/darktable-4.2.1")  # --darktable-source's default
SIZE = 256  # --max-size: render scale 0.5 of the 512 px raws
RAWS = {  # name -> (source photo, SynthRawSpec kwargs)
    "coffee": ("coffee", {"size": 512}),
    "chelsea": ("chelsea", {"size": 512}),
    "coffee-bias": ("coffee", {"size": 512, "exposure_bias": -0.7}),
}
MODES = {"rgb": False, "mosaic": True}
FLOOR = 30.0  # a covered run below this is silently wrong
GOALS = {"covered": 0.60, "median": 45.0, "worst": 35.0, "deltae": 1.0}


# ----------------------------------------------------------------- raws and darktable's presets
def make_raws(work: Path) -> dict[str, Path]:
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    src = default_source_images(sorted({s for s, _ in RAWS.values()}))
    out = {}
    for name, (source, kw) in RAWS.items():
        p = work / "raws" / f"{name}.dng"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            write_synthetic_dng(src[source], p, SynthRawSpec(**kw))
        out[name] = p
    return out


def darktable_presets(dt: Darktable, raw: Path, work: Path) -> list[dict[str, Any]]:
    """Every row of the ``presets`` table darktable-cli writes into a fresh config directory's data.db."""
    cfg = work / "dtconfig"
    db = cfg / "data.db"
    if not db.is_file():
        cfg.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as td:
            cmd = [str(dt.install.cli), str(raw), str(Path(td) / "o.jpg"), "--width", "32", "--height", "32"]
            cmd += ["--core", "--library", ":memory:", "--configdir", str(cfg)]
            subprocess.run(cmd, capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    cols = "name, operation, op_version, op_params, enabled, blendop_params, blendop_version, multi_name, autoapply"
    rows = [dict(r) for r in con.execute(f"SELECT {cols} FROM presets ORDER BY operation, name")]
    con.close()
    return rows


# ----------------------------------------------------------------- building the corpus
def _append(side: Sidecar, it: HistoryItem) -> Sidecar:
    """``side`` with ``it`` as a new active history item (what applying a preset adds)."""
    out = side.copy()
    out.items.insert(out.history_end, it)
    out.history_end += 1
    return out


def _slug(s: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in s.lower())
    return "-".join(p for p in keep.split("-") if p)[:48]


def _old_exposure(side: Sidecar, version: int, exposure: float = 1.2, black: float = 0.001) -> Sidecar:
    from darkproxy.darktable.legacy import LEGACY

    out = side.copy()
    it = out.find("exposure")
    vals = {"mode": 0, "black": black, "exposure": exposure, "deflicker_percentile": 50.0}
    vals |= {"deflicker_target_level": -4.0, "gain": 1.0, "deflicker": 0, "deflicker_histogram_source": 0}
    leg = LEGACY[("exposure", version)]
    it.params = struct.pack(leg.fmt, *[vals[n] for n, _ in leg.fields])
    it.params_text, it.modversion = None, version
    return out


def _old_colorbalancergb(dt: Darktable, side: Sidecar, version: int) -> Sidecar:
    """The default history plus a colour balance rgb item written by params ``version``: a moderate edit
    (chroma, saturation, brilliance, vibrance, contrast where the version has them), the other fields at
    darktable 4.2.1's defaults."""
    import math

    from darkproxy.darktable.legacy import LEGACY
    from darkproxy.darktable.params import decode_params, default_blob

    sch = dt.schemas.get("colorbalancergb")
    vals = dict(decode_params(sch, default_blob(sch)))
    vals |= {"chroma_global": 0.2, "saturation_global": 0.15, "brilliance_global": 0.05, "midtones_Y": 0.05}
    vals |= {"vibrance": 0.1, "contrast": 0.1, "chroma_highlights": 0.1, "saturation_shadows": 0.1}
    if version == 1:  # v1 stored the global saturation in degrees
        vals["saturation_global"] *= 180.0 / math.pi
    leg = LEGACY[("colorbalancergb", version)]
    blob = struct.pack(leg.fmt, *[float(vals[n]) for n, _ in leg.fields])
    it = HistoryItem("colorbalancergb", version, blob, True)
    tmpl = side.find("exposure")  # darktable's no-blend params of this version
    if tmpl is not None:
        it.blendop_version, it.blendop_params = tmpl.blendop_version, tmpl.blendop_params
    return _append(side, it)


def build_corpus(
    dt: Darktable, raws: dict[str, Path], work: Path, per_op: int, dtsrc: Path = DTSRC
) -> list[dict[str, Any]]:
    """Every sidecar of the corpus: ``{id, kind, raw, what, side}`` (the styles and old sidecars from darktable's
    source tree ``dtsrc``, when it is there)."""
    from darkproxy.darktable.blendop import item_blend
    from darkproxy.darktable.styles import read_style

    corpus: list[dict[str, Any]] = []

    def add(cid: str, kind: str, raw: str, what: str, side: Sidecar) -> None:
        corpus.append({"id": cid, "kind": kind, "raw": raw, "what": what, "side": side})

    base = {n: dt.default_history(p) for n, p in raws.items()}
    for n in raws:
        add(f"default-{n}", "default", n, "darktable's default history on import", base[n])
    c, ch = base["coffee"], base["chelsea"]
    add("edit-rotate-cw", "edit", "chelsea", "flip orientation 5 (quarter turn), +1 EV",
        dt.edit(ch, {"flip": {"orientation": 5}, "exposure": {"exposure": 1.0}}))  # fmt: skip
    add("edit-rotate-180", "edit", "coffee", "flip orientation 3, sharpen 1.5",
        dt.edit(c, {"flip": {"orientation": 3}, "sharpen": {"amount": 1.5}}))  # fmt: skip
    add("edit-crop", "edit", "coffee", "+0.7 EV, crop (0.1, 0.2)-(0.7, 0.9), sharpen",
        dt.edit(c, {"exposure": {"exposure": 0.7}, "crop": {"cx": 0.1, "cy": 0.2, "cw": 0.7, "ch": 0.9},
                    "sharpen": {"amount": 1.5, "radius": 2.0}}))  # fmt: skip
    blend = dt.edit(c, {"exposure": {"exposure": 1.5}})
    it = blend.find("exposure")
    it.blendop_params, it.blendop_version, it.blendop_text = item_blend(it).uniform(70).encode(), 11, None
    add("edit-blend-opacity", "edit", "coffee", "exposure +1.5 EV blended normal at 70 % opacity", blend)
    two = c.copy()
    sch = dt.schemas.get("exposure")
    from darkproxy.darktable.params import set_params

    two.set_item("exposure", params=set_params(sch, c.find("exposure").params, {"exposure": 0.5}),
                  modversion=sch.version, multi_priority=1)  # fmt: skip
    two.find("exposure", 1).multi_name = "1"
    # darktable writes the order of every instance with a second one (iop_order.c dt_ioppr_write_iop_order)
    places = [f"{m},0" for m in dt.schemas.pipe_order(2)]
    places.insert(places.index("exposure,0") + 1, "exposure,1")
    two.description.set(DT + "iop_order_list", ",".join(places))
    add("edit-exposure-2-instances", "edit", "coffee", "a second exposure instance, +0.5 EV", two)
    add("edit-white-balance", "edit", "chelsea", "temperature red 2.3, blue 1.4",
        dt.edit(ch, {"temperature": {"red": 2.3, "blue": 1.4}}))  # fmt: skip
    add("edit-four-modules", "edit", "coffee", "exposure, colorbalancergb, filmicrgb, sharpen",
        dt.edit(c, {"exposure": {"exposure": 0.8}, "colorbalancergb": {"saturation_global": 0.2, "contrast": 0.1},
                    "filmicrgb": {"contrast": 1.3}, "sharpen": {"amount": 1.0}}))  # fmt: skip
    add("edit-colour-grading", "edit", "chelsea", "channelmixerrgb, vibrance, velvia, splittoning, colorcontrast",
        dt.edit(ch, {"vibrance": {"amount": 0.3}, "velvia": {"strength": 30.0}, "colorcontrast": {"a_steepness": 1.3},
                     "splittoning": {"compress": 20.0}}, enable=["channelmixerrgb"]))  # fmt: skip
    add("edit-sigmoid", "edit", "coffee", "sigmoid (contrast 1.8) instead of filmic rgb",
        dt.edit(c, {"sigmoid": {"middle_grey_contrast": 1.8}}, disable=["filmicrgb"]))  # fmt: skip
    add("edit-local-proxies", "edit", "chelsea", "lowpass and bloom on (zoo proxies)",
        dt.edit(ch, enable=["lowpass", "bloom"]))  # fmt: skip
    add("edit-haze-rotate", "edit", "coffee", "haze removal, then a rotation (flip after a proxy stage)",
        dt.edit(c, {"flip": {"orientation": 6}}, enable=["hazeremoval"]))  # fmt: skip
    add("edit-monochrome", "edit", "coffee", "monochrome on, darktable's defaults",
        dt.edit(c, enable=["monochrome"]))  # fmt: skip
    for v in (2, 3, 4, 5):
        add(f"legacy-exposure-v{v}", "legacy", "coffee-bias", f"exposure written by params v{v} (+1.2 EV)",
            _old_exposure(base["coffee-bias"], v))  # fmt: skip
    for v in (1, 2, 3, 4):
        add(f"legacy-colorbalancergb-v{v}", "legacy", "coffee", f"colorbalancergb written by params v{v}",
            _old_colorbalancergb(dt, c, v))  # fmt: skip
    for f in sorted((dtsrc / "tools").rglob("*.dtstyle")):
        st = read_style(f)
        side = c
        for it in st.items:
            side = _append(side, it)
        add(f"style-{_slug(st.name)}", "style", "coffee", f"style {st.name!r} ({f.relative_to(dtsrc)})", side)
    olds = sorted((dtsrc / "src/tests/benchmark").glob("*.xmp")) + sorted((dtsrc / "tools").rglob("*.xmp"))
    for i, f in enumerate(olds):
        name = "coffee" if i % 2 == 0 else "chelsea"
        add(f"oldxmp-{_slug(f.stem)}", "oldxmp", name, f"{f.relative_to(dtsrc)} as written", read_xmp(f))
    presets = darktable_presets(dt, raws["coffee"], work)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for p in presets:
        by_op.setdefault(p["operation"], []).append(p)
    i = 0
    for op, ps in sorted(by_op.items()):
        pick = ps if len(ps) <= per_op else [ps[round(k * (len(ps) - 1) / (per_op - 1))] for k in range(per_op)]
        for p in pick:
            name = "coffee" if i % 2 == 0 else "chelsea"
            i += 1
            it = HistoryItem(
                operation=op,
                modversion=int(p["op_version"]),
                params=bytes(p["op_params"]),
                enabled=bool(p["enabled"]),
                multi_name="",
                multi_priority=0,
                blendop_version=int(p["blendop_version"]) if p["blendop_params"] else None,
                blendop_params=bytes(p["blendop_params"]) if p["blendop_params"] else None,
            )
            cid = f"preset-{op}-{_slug(p['name'])}"
            add(cid, "preset", name, f"{op} preset {p['name']!r} (v{p['op_version']})", _append(base[name], it))
    return corpus


# ----------------------------------------------------------------- one run
def one_run(dt: Darktable, raw: Path, xmp: Path, out_dir: Path, from_mosaic: bool) -> dict[str, Any]:
    from darkproxy.replica.run import dry_run, run_replica

    rec: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        dr = dry_run(dt, raw, xmp=xmp, from_mosaic=from_mosaic)
        rec["dry_run"] = {
            "runnable": dr["runnable"],
            "refused": [
                {"module": c["module"], "instance": c["instance"], "detail": c["detail"]}
                for c in dr["items"]
                if c["runs"] == "refused"
            ],
            "items": [
                {"module": c["module"], "instance": c["instance"], "runs": c["runs"], "version": c["version"]}
                for c in dr["items"]
                if c["enabled"]
            ],
        }
    except DarkproxyError as e:
        rec["dry_run"] = {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # noqa: BLE001  - a crash is a finding, recorded
        rec["dry_run"] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
    try:
        s = run_replica(dt, raw, out_dir, xmp=xmp, max_size=SIZE, from_mosaic=from_mosaic)
    except DarktableRenderError as e:
        rec |= {"status": "darktable-error", "reason": str(e)}
    except DarkproxyError as e:
        msg = str(e)
        rec |= {"status": "refused", "reason": msg, "exception": type(e).__name__, "one_line": "\n" not in msg}
    except Exception as e:  # noqa: BLE001
        rec |= {"status": "error", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    else:
        rec |= {"status": "covered"}
        rec |= {k: s[k] for k in ("psnr", "deltae_mean", "deltae_p95", "render_seconds", "replica_seconds", "size")}
        rec["render_scale"] = s["render_scale"]
        rec["stages"] = [
            {k: st.get(k) for k in ("module", "kind", "psnr_vs_tapout", "psnr_alone", "version", "upgraded_from")}
            for st in s["stages"]
        ]
    rec["seconds"] = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return rec


# ----------------------------------------------------------------- summaries and report
def _f(x: Any, nd: int = 2) -> str:
    return "" if x is None else f"{x:.{nd}f}"


REASONS = (  # (words in a refusal's one-line reason, its category)
    ("no exact stage and no proxy", "no exact stage and no proxy in the zoo"),
    ("blendop version", "blend params of an older blendop version (older darktable): not upgraded"),
    ("second instance before the chain", "a second instance of a mosaic or geometry module"),
    ("is not in the sidecar's pipe order", "an instance the sidecar's pipe order (iop_order_list) does not place"),
    ("pipe order", "a pipe order darkproxy does not read (a sidecar of darktable < 3.0)"),
    ("between demosaic and colorin", "--from-mosaic: a module between demosaic and colorin other than flip, exposure"),
    ("legacy_params", "a params version without a legacy port"),
    ("blends (", "a blend the replica cannot reproduce (mask, mode, colour space)"),
    ("after another stage of the chain at render scale", "flip after a chain stage below full size"),
    ("resampling of a raw rawprepare crops", "--from-mosaic: rawprepare crops below full size"),
    ("trained", "a proxy trained at another scale or version"),
)


def reason_category(detail: str) -> str:
    """The kind of a one-line refusal (the words :data:`REASONS` looks for), else its first 80 characters."""
    return next((cat for words, cat in REASONS if words in detail), detail[:80])


def summarise(data: dict[str, Any], mode: str) -> dict[str, Any]:
    runs = [(cid, r) for cid, r in data["runs"].items() if r["mode"] == mode]
    cov = [(cid, r) for cid, r in runs if r["status"] == "covered"]
    ps = [r["psnr"] for _, r in cov]
    de = [r["deltae_mean"] for _, r in cov]
    by_mod: dict[str, dict[str, Any]] = {}
    by_reason: dict[str, dict[str, Any]] = {}
    for _cid, r in runs:
        if r["status"] != "refused":
            continue
        mods = r.get("dry_run", {}).get("refused") or []
        if not mods:  # refused by the run itself (scale, --from-mosaic checks): the message names the module
            head = r["reason"].split(" ")[0].rstrip(":")
            mods = [{"module": head if head.replace("_", "").isalnum() and head != "darktable's" else "(history)",
                     "detail": r["reason"]}]  # fmt: skip
        distinct = {m["module"]: m for m in mods}
        for m in distinct.values():
            g = by_mod.setdefault(m["module"], {"sidecars": [], "sole_blocker": [], "reasons": [], "details": []})
            g["sidecars"].append(r["id"])
            if len(distinct) == 1:  # porting this module alone would let the sidecar run
                g["sole_blocker"].append(r["id"])
            cat = reason_category(m["detail"])
            if cat not in g["reasons"]:
                g["reasons"].append(cat)
            if m["detail"] not in g["details"]:
                g["details"].append(m["detail"])
        for cat in {reason_category(m["detail"]) for m in distinct.values()}:
            g = by_reason.setdefault(cat, {"sidecars": [], "modules": []})
            g["sidecars"].append(r["id"])
            for m in distinct.values():
                if reason_category(m["detail"]) == cat and m["module"] not in g["modules"]:
                    g["modules"].append(m["module"])
    stages: dict[tuple[str, str], list[float]] = {}
    for _, r in cov:
        for st in r["stages"]:
            if st["kind"] == "passthrough":
                continue
            stages.setdefault((st["module"], st["kind"]), [])
            if st.get("psnr_alone") is not None:
                stages[(st["module"], st["kind"])].append(st["psnr_alone"])
    return {
        "runs": len(runs),
        "covered": len(cov),
        "covered_fraction": len(cov) / len(runs) if runs else None,
        "refused": sum(r["status"] == "refused" for _, r in runs),
        "errors": [r["id"] for _, r in runs if r["status"] in ("error", "darktable-error")],
        "refusals_not_one_line": [r["id"] for _, r in runs if r["status"] == "refused" and not r.get("one_line")],
        "psnr_median": statistics.median(ps) if ps else None,
        "psnr_worst": min(ps) if ps else None,
        "deltae_mean": statistics.fmean(de) if de else None,
        "deltae_worst": max(de) if de else None,
        "silently_wrong": [r["id"] for _, r in cov if r["psnr"] < FLOOR],
        "by_kind": {
            k: {"runs": sum(r["kind"] == k for _, r in runs), "covered": sum(r["kind"] == k for _, r in cov)}
            for k in dict.fromkeys(r["kind"] for _, r in runs)
        },
        "refusals_by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-len(kv[1]["sidecars"]), kv[0]))),
        "refusals_by_module": dict(sorted(by_mod.items(), key=lambda kv: (-len(kv[1]["sidecars"]), kv[0]))),
        "stages": [
            {
                "module": m,
                "kind": k,
                "n": len(v),
                "psnr_alone_median": statistics.median(v) if v else None,
                "psnr_alone_worst": min(v) if v else None,
            }  # fmt: skip
            for (m, k), v in sorted(stages.items())
        ],
    }


def write_report(out: Path, data: dict[str, Any]) -> None:
    data["summary"] = {m: summarise(data, m) for m in data["modes"]}
    write_json(out / "replica_coverage.json", data, indent=1)
    mi = data["machine"]
    modes = data["modes"]
    corpus = data["corpus"]
    done = {cid for cid in corpus if all(f"{cid}|{m}" in data["runs"] for m in modes)}
    kinds = ", ".join(f"{n} {k}" for k, n in data["kinds"].items())
    L = ["# The replica on a corpus of darktable sidecars (bench/bench_replica_coverage.py)", ""]
    L.append(
        f"{mi.get('date', '')}, {mi.get('nproc', '?')} cores ({mi.get('cpu', '')}), torch {mi.get('torch', '')}, "
        f"load {mi.get('loadavg', '')}, darktable {data['darktable']}. Corpus: {len(corpus)} sidecars ({kinds}), "
        f"{len(done)} run in every mode so far. Each: `darkproxy replica RAW --xmp ID.xmp -o DIR --max-size {SIZE}` "
        "(no --allow-missing), mode `mosaic` with `--from-mosaic`. Raws: synthetic 512 px DNGs "
        f"({', '.join(data['raws'])}); renders 256 px (scale 0.5). Reference: darktable-cli's 8-bit sRGB export of "
        "the same sidecar at the same size. Sidecars: `bench/results/replica_coverage/ID.xmp`. Total "
        f"{data.get('total_seconds', 0) / 60:.1f} min of runs."
    )
    L += ["", "## Summary", ""]
    L.append("| mode | runs | covered | median PSNR | worst PSNR | ΔE2000 mean (over runs) | worst run's ΔE mean | "
             "silently wrong (covered < 30 dB) | errors |")  # fmt: skip
    L.append("|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        s = data["summary"][m]
        frac = f"{s['covered']} ({100 * s['covered_fraction']:.0f} %)" if s["runs"] else "0"
        L.append(
            f"| {m} | {s['runs']} | {frac} | {_f(s['psnr_median'])} | {_f(s['psnr_worst'])} | "
            f"{_f(s['deltae_mean'])} | {_f(s['deltae_worst'])} | {len(s['silently_wrong'])} | {len(s['errors'])} |"
        )
    L += ["", "Covered by source: " + "; ".join(
        f"{m}: " + ", ".join(f"{k} {v['covered']}/{v['runs']}" for k, v in data["summary"][m]["by_kind"].items())
        for m in modes
    ) + "."]  # fmt: skip
    s = data["summary"].get("rgb")
    if s and s["runs"]:

        def met(ok: bool) -> str:
            return "met" if ok else "NOT met"

        L += [
            "",
            f"Issue 27's goals (mode rgb): covered >= 60 %: {met((s['covered_fraction'] or 0) >= GOALS['covered'])} "
            f"({100 * (s['covered_fraction'] or 0):.0f} %); median >= 45 dB: "
            f"{met((s['psnr_median'] or 0) >= GOALS['median'])} ({_f(s['psnr_median'])}); worst >= 35 dB: "
            f"{met((s['psnr_worst'] or 0) >= GOALS['worst'])} ({_f(s['psnr_worst'])}); ΔE2000 mean <= 1: "
            f"{met((s['deltae_mean'] or 9) <= GOALS['deltae'])} ({_f(s['deltae_mean'])}); every run >= 30 dB or "
            f"refused: {met(not s['silently_wrong'] and not s['errors'])}.",
        ]
    bugs = [(m, cid) for m in modes for cid in data["summary"][m]["silently_wrong"]]
    errs = [(m, cid) for m in modes for cid in data["summary"][m]["errors"]]
    if bugs or errs:
        L += ["", "## BUGS: covered runs below 30 dB (silently wrong) and errors", ""]
        for m, cid in bugs:
            r = data["runs"][f"{cid}|{m}"]
            low = [
                f"{st['module']} ({st['kind']}) {st['psnr_alone']:.2f}"
                for st in r["stages"]
                if st["kind"] != "passthrough" and st.get("psnr_alone") is not None and st["psnr_alone"] < 40
            ]
            worst = f"stages alone below 40 dB: {', '.join(low)}; " if low else ""
            L.append(f"- **{cid}** ({m}): {r['psnr']:.2f} dB, ΔE {r['deltae_mean']:.2f}; {worst}raw {r['raw']}, "
                     f"`bench/results/replica_coverage/{cid}.xmp`")  # fmt: skip
        for m, cid in errs:
            r = data["runs"][f"{cid}|{m}"]
            L.append(f"- **{cid}** ({m}): {r['status']}: {r['reason'][:300]}")
    else:
        L += ["", "No covered run is below 30 dB and no run ended in an error: every run reached 30 dB or was refused."]
    for m in modes:
        s = data["summary"][m]
        L += ["", f"## Refusals, mode {m} (what to port next)", ""]
        L.append(
            "By reason: the refused runs whose dry run refuses a module for it (a run counts once per reason). "
            "By module: every module the dry run refuses in a refused run; sole blocker: the refused runs in which "
            "it is the only module refused (porting it alone would run them)."
        )
        L += ["", "| reason | runs | modules |", "|---|---|---|"]
        for cat, g in s["refusals_by_reason"].items():
            mods = ", ".join(g["modules"][:20]) + (f" (+{len(g['modules']) - 20})" if len(g["modules"]) > 20 else "")
            L.append(f"| {cat.replace('|', '/')} | {len(g['sidecars'])} | {mods} |")
        L += ["", "| module | runs refusing it | sole blocker | reasons | example (first) |", "|---|---|---|---|---|"]
        rest = []
        for mod, g in s["refusals_by_module"].items():
            if len(g["sidecars"]) < 2 and not g["sole_blocker"]:
                rest.append(mod)
                continue
            ex = g["details"][0].replace("|", "\\|")[:160]
            L.append(f"| {mod} | {len(g['sidecars'])} | {len(g['sole_blocker'])} | {'; '.join(g['reasons'])} | {ex} |")
        if rest:
            L.append(f"\nRefused in one run each, never the only module refused: {', '.join(rest)}.")
        if s["refusals_not_one_line"]:
            L.append(f"\nRefusals whose message is not one line: {', '.join(s['refusals_not_one_line'])}")
    for m in modes:
        s = data["summary"][m]
        L += ["", f"## Per stage, mode {m} (covered runs; passthrough stages left out)", ""]
        L.append("| stage | kind | runs | psnr_alone median | psnr_alone worst |")
        L.append("|---|---|---|---|---|")
        for st in s["stages"]:
            L.append(f"| {st['module']} | {st['kind']} | {st['n']} | {_f(st['psnr_alone_median'])} | "
                     f"{_f(st['psnr_alone_worst'])} |")  # fmt: skip
    L += ["", "## Per sidecar", ""]
    hdr = "| sidecar | raw | what |" + "".join(f" {m}: PSNR | ΔE mean | p95 | s |" for m in modes) + " refused (why) |"
    L += [hdr, "|" + "---|" * (3 + 4 * len(modes) + 1)]
    for cid, c in corpus.items():
        row = f"| {cid} | {c['raw']} | {c['what'].replace('|', '/')} |"
        why = []
        for m in modes:
            r = data["runs"].get(f"{cid}|{m}")
            if r is None:
                row += " (not run) | | | |"
            elif r["status"] == "covered":
                flag = " **< 30**" if r["psnr"] < FLOOR else ""
                row += f" {r['psnr']:.2f}{flag} | {r['deltae_mean']:.2f} | {r['deltae_p95']:.2f} | {r['seconds']:.0f} |"
            else:
                row += f" {r['status']} | | | {r['seconds']:.0f} |"
                mods = sorted({x["module"] for x in r.get("dry_run", {}).get("refused") or []})
                why.append(f"{m}: " + (f"[{', '.join(mods)}] " if mods else "") + r["reason"][:160])
        L.append(row + " " + " / ".join(w.replace("|", "\\|") for w in why) + " |")
    L += ["", "## Stages of the covered runs (kind, psnr_alone)", ""]
    for cid in corpus:
        for m in modes:
            r = data["runs"].get(f"{cid}|{m}")
            if r and r["status"] == "covered":
                st = ", ".join(
                    f"{s['module']} {s['kind']}"
                    + (f" {s['psnr_alone']:.1f}" if s.get("psnr_alone") is not None else "")
                    + (f" (v{s['upgraded_from']}->v{s['version']})" if s.get("upgraded_from") else "")
                    for s in r["stages"]
                )
                L.append(f"- {cid} ({m}): {st}")
    write_text_atomic(out / "replica_coverage.md", "\n".join(L) + "\n")


# ----------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/dp/replica-coverage")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--modes", default="rgb,mosaic")
    ap.add_argument("--per-op", type=int, default=2, help="presets per operation (spread over their names)")
    ap.add_argument(
        "--darktable-source",
        type=Path,
        default=DTSRC,
        help="darktable 4.2.1's source tree, for its styles and old sidecars (deb-src, then "
        "`apt-get source --download-only darktable` and untar; without it they are left out of the corpus)",
    )
    ap.add_argument("--only", default="", help="comma-separated sidecar ids to run (the rest skipped)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    sdir = out / "replica_coverage"
    sdir.mkdir(parents=True, exist_ok=True)
    modes = [m for m in args.modes.split(",") if m]
    jpath = out / "replica_coverage.json"
    data = json.loads(jpath.read_text()) if jpath.is_file() else {"runs": {}}
    if args.report_only:
        write_report(out, data)
        return 0
    dt = Darktable()
    raws = make_raws(work)
    if not args.darktable_source.is_dir():
        print(f"no darktable source at {args.darktable_source}: its styles and old sidecars are left out", flush=True)
    corpus = build_corpus(dt, raws, work, args.per_op, args.darktable_source)
    for c in corpus:
        c["xmp"] = c["side"].write(sdir / f"{c['id']}.xmp")
    data.setdefault("machine", machine_info())  # the first session's; every session that ran runs: sessions
    data |= {
        "darktable": dt.version,
        "size": SIZE,
        "modes": sorted(set(data.get("modes", [])) | set(modes), key=list(MODES).index),
        "raws": {n: {"source": s, **kw} for n, (s, kw) in RAWS.items()},
        "corpus": {c["id"]: {"kind": c["kind"], "raw": c["raw"], "what": c["what"]} for c in corpus},
    }
    kinds: dict[str, int] = {}
    for c in corpus:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    data["kinds"] = kinds
    only = {s for s in args.only.split(",") if s}
    todo = [(c, m) for c in corpus for m in modes if f"{c['id']}|{m}" not in data["runs"]]
    todo = [(c, m) for c, m in todo if not only or c["id"] in only]
    print(f"{len(corpus)} sidecars, {len(todo)} runs to do ({len(data['runs'])} in {jpath})", flush=True)
    if todo:
        data.setdefault("sessions", []).append(machine_info())
    for i, (c, m) in enumerate(todo):
        rec = one_run(dt, raws[c["raw"]], Path(c["xmp"]), work / "runs" / f"{c['id']}-{m}", MODES[m])
        rec |= {"id": c["id"], "mode": m, "raw": c["raw"], "kind": c["kind"]}
        data["runs"][f"{c['id']}|{m}"] = rec
        data["total_seconds"] = data.get("total_seconds", 0.0) + rec["seconds"]
        if rec["status"] == "covered":
            fig = f"{rec['psnr']:.2f} dB, ΔE {rec['deltae_mean']:.2f}"
            fig += " SILENTLY WRONG" if rec["psnr"] < FLOOR else ""
        else:
            fig = f"{rec['status']}: {rec['reason'][:150]}"
        print(f"[{i + 1}/{len(todo)}] {c['id']} ({m}, {c['raw']}): {fig} ({rec['seconds']:.1f} s)", flush=True)
        write_report(out, data)
    write_report(out, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
