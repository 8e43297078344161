"""A whole shoot matched image by image (``darkproxy match --batch DIR``): each raw of DIR against the camera
JPEG beside it (same stem) or, without one, the preview embedded in the raw; its sidecar written as darktable
names it (``IMG_1.CR3.xmp``), resumable, with a summary table and an HTML contact sheet."""

from __future__ import annotations

import html
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkproxy.match._common import Log, MatchError, first_line
from darkproxy.match.auto import match_any
from darkproxy.match.fit import DEFAULT_CHAIN
from darkproxy.match.reference import embedded_reference, folder_files


@dataclass(frozen=True)
class ShootImage:
    """One raw of a shoot and its reference (``None``: the preview embedded in the raw)."""

    raw: Path
    reference: Path | None


def find_shoot(folder: str | os.PathLike[str]) -> list[ShootImage]:
    """Every raw of ``folder`` (sorted by name) with the image of the same stem beside it, if any (a
    camera's JPEG); one-line :class:`MatchError` when the folder has no raw or a raw has two references."""
    from darkproxy.data.raws import RAW_EXTENSIONS

    files, refs = folder_files(folder, "--batch")
    shoot = [ShootImage(p, refs.get(p.stem)) for p in files if p.suffix.lower() in RAW_EXTENSIONS]
    if not shoot:
        raise MatchError(f"no raw files in {folder} (looked for {', '.join(sorted(RAW_EXTENSIONS))})")
    return shoot


def sidecar_of(raw: Path) -> Path:
    """The sidecar darktable reads for ``raw``: ``IMG_1.CR3`` -> ``IMG_1.CR3.xmp``."""
    return raw.with_name(raw.name + ".xmp")


def _start_xmp(raw: Path) -> Path | None:
    """The history a match of ``raw`` starts from: the photographer's sidecar kept as ``.xmp.bak`` by an earlier
    run, else the sidecar beside the raw, else none (darktable's defaults)."""
    sidecar = sidecar_of(raw)
    bak = Path(str(sidecar) + ".bak")
    return bak if bak.is_file() else sidecar if sidecar.is_file() else None


def _summary(
    folder: str | os.PathLike[str],
    out: Path,
    chain: Sequence[str],
    settings: Mapping[str, Any],
    rows: list[dict[str, Any]],
    t0: float,
    **extra: Any,
) -> dict[str, Any]:
    """The shoot's summary (``failed``: rows that failed; ΔE2000 means over the others) written with the contact
    sheet: ``out/summary.json`` and ``out/index.html``."""
    from darkproxy.fsutil import write_json

    ok = [r for r in rows if r["status"] != "failed"]
    summary: dict[str, Any] = {
        "folder": str(folder),
        "chain": list(chain),
        "settings": dict(settings),
        "images": rows,
        "failed": len(rows) - len(ok),
        "deltae_mean": _mean([r["deltae_mean"] for r in ok]),
        "default_deltae_mean": _mean([r["default_deltae_mean"] for r in ok]),
        **extra,
        "seconds": time.perf_counter() - t0,
    }
    write_json(out / "summary.json", summary)
    write_batch_report(out, summary)
    return summary


def _settings(
    chain: Sequence[str], free: Sequence[str] | None, max_size: int | None, config: Any, demosaic: bool = True
) -> dict[str, Any]:
    """What a finished image's result depends on besides its files: a rerun with other settings redoes it."""
    return {
        "chain": list(chain),
        "demosaic": "choose" if demosaic else "keep",
        "free": list(free or []),
        "max_size": max_size,
        "iters": getattr(config, "iters", None),
        "restarts": getattr(config, "restarts", None),
        "seed": getattr(config, "seed", None),
    }


def match_batch(
    dt: Any,
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    max_size: int | None = None,
    config: Any = None,
    write_sidecars: bool = True,
    log: Log | None = None,
    demosaic: bool = True,
) -> dict[str, Any]:
    """Match every raw of ``folder`` (:func:`find_shoot`) on its own (:func:`darkproxy.match.match`; ``demosaic``:
    its demosaic chosen against the reference, :mod:`darkproxy.match.demosaic`) into
    ``out_dir/images/RAWNAME/`` (``chain=["auto"]``: :func:`darkproxy.match.auto.match_auto`), starting from the
    raw's own sidecar when it has one (its other history is kept). With ``write_sidecars`` the result goes beside
    the raw as darktable names it (:func:`sidecar_of`); a sidecar that was there first is kept once as ``.xmp.bak``
    (and is what a rerun starts from). An image finished with the same settings is reused (a rerun resumes); one
    that fails (no preview, another scene, a darktable error) is reported in its row and the others go on. Writes
    ``out_dir/summary.json`` and ``out_dir/index.html`` (the contact sheet); returns the summary (``images``: one
    row per raw, ``failed``: their count)."""
    from darkproxy.errors import DarkproxyError
    from darkproxy.fsutil import write_json
    from darkproxy.progress import progress_bar

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    shoot = find_shoot(folder)
    out = Path(out_dir)
    settings = _settings(chain, free, max_size, config, demosaic)
    rows: list[dict[str, Any]] = []
    bar = progress_bar(len(shoot), "matching the shoot", unit="raw", disable=log is None)
    for img in shoot:
        d = out / "images" / img.raw.name
        row: dict[str, Any] = {"raw": str(img.raw), "dir": str(d.relative_to(out))}
        done = d / "summary.json"
        try:
            prev = json.loads(done.read_text()) if done.is_file() else None
            if prev is not None and prev.get("batch_settings") == settings:
                s, row["status"] = prev, "reused"
            else:
                start = _start_xmp(img.raw)
                ref = img.reference or embedded_reference(img.raw, d)
                s = match_any(
                    dt, img.raw, ref, d, chain, free=free, xmp=start, max_size=max_size, config=config,
                    demosaic=demosaic,
                )  # fmt: skip
                s["batch_settings"] = settings
                s["started_from"] = str(start) if start else None
                write_json(done, s)
                row["status"] = "matched"
            if write_sidecars:
                row["sidecar"] = str(_write_sidecar(img.raw, d / "result.xmp"))
            row.update(
                reference=s["reference"],
                deltae_mean=s["deltae_mean"],
                deltae_p95=s["deltae_p95"],
                default_deltae_mean=s["default_deltae_mean"],
                psnr=s["psnr"],
                seconds=s["seconds"],
            )
        except DarkproxyError as e:  # one image's problem: reported, the shoot goes on
            row.update(status="failed", error=first_line(e))
        rows.append(row)
        bar.update(1)
        say(_line(row))
    bar.close()
    return _summary(folder, out, chain, settings, rows, t0)


def match_batch_shared(
    dt: Any,
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    per_image: Sequence[str] = ("exposure.exposure",),
    max_size: int | None = None,
    config: Any = None,
    write_sidecars: bool = True,
    log: Log | None = None,
    demosaic: bool = True,
) -> dict[str, Any]:
    """``--batch DIR --shared``: one look for the whole shoot, each raw with its own ``per_image`` sliders
    (exposure): every raw's pixels against its reference (the JPEG beside it, else its embedded preview) pooled
    into one fit (:func:`darkproxy.match.pairs.match_pooled`, each raw through its own chain, starting from its
    sidecar); then sidecars, summary and contact sheet as :func:`match_batch`. The shoot's ``result.dtstyle`` is
    in ``out_dir/shared/``. ``demosaic``: one demosaic setting for the shoot, the closest on average
    (:func:`~darkproxy.match.pairs.match_pooled`). A raw that cannot be used (no preview, another scene) is
    reported in its row and left out of the fit; a rerun with the same settings and raws reuses the fit."""
    from darkproxy.errors import DarkproxyError
    from darkproxy.match.pairs import match_pooled

    t0 = time.perf_counter()
    shoot = find_shoot(folder)
    out = Path(out_dir)
    settings = {**_settings(chain, free, max_size, config, demosaic), "shared": list(per_image)}
    raws = [str(img.raw) for img in shoot]
    prev_path = out / "summary.json"
    prev = json.loads(prev_path.read_text()) if prev_path.is_file() else None
    if prev is not None and prev.get("settings") == settings and [r["raw"] for r in prev["images"]] == raws:
        fit, rows = prev["shared"], [{**r, "status": r["status"] if r["status"] == "failed" else "reused"}
                                     for r in prev["images"]]  # fmt: skip
    else:
        items, failed = [], {}
        for img in shoot:
            start = _start_xmp(img.raw)
            try:
                ref = img.reference or embedded_reference(img.raw, out / "images" / img.raw.name)
            except DarkproxyError as e:
                failed[str(img.raw)] = first_line(e)
                continue
            items.append((img.raw, ref, start))
        if not items:
            raise MatchError(f"no raw of {folder} has a usable reference: {next(iter(failed.values()))}")
        fit = match_pooled(
            dt, items, out / "shared", 0, chain, free, max_size, 4096, config,
            f"darkproxy match {Path(folder).name}", getattr(config, "seed", 0) or 0, per_image, str(folder), log,
            skip_failed=True, demosaic=demosaic,
        )  # fmt: skip
        failed.update({k["raw"]: k["error"] for k in fit["skipped"]})
        rows = _shared_rows(shoot, fit, failed, out)
    say = log or (lambda s: None)
    for row in rows:
        if write_sidecars and row["status"] != "failed":
            row["sidecar"] = str(_write_sidecar(Path(row["raw"]), out / row["dir"] / "result.xmp"))
        say(_line(row))
    shared = {k: v for k, v in fit.items() if k != "pairs"}
    return _summary(folder, out, chain, settings, rows, t0, shared=shared, style=str(out / "shared" / "result.dtstyle"))


def _shared_rows(
    shoot: Sequence[ShootImage], fit: Mapping[str, Any], failed: Mapping[str, str], out: Path
) -> list[dict[str, Any]]:
    """One batch row per raw of the shoot from a pooled fit's summary (its pairs) and the raws left out."""
    recs = {r["raw"]: r for r in fit["pairs"]}
    rows: list[dict[str, Any]] = []
    for img in shoot:
        key = str(img.raw)
        if key not in recs:
            rows.append({"raw": key, "status": "failed", "error": failed.get(key, "left out of the fit")})
            continue
        r = recs[key]
        d = (out / "shared" / "pairs" / img.raw.stem).relative_to(out)
        rows.append(
            {"raw": key, "dir": str(d), "status": "matched", "reference": r["reference"],
             "deltae_mean": r["deltae_mean"], "deltae_p95": r["deltae_p95"],
             "default_deltae_mean": r["default_deltae_mean"], "psnr": r["psnr"], "per_image": r.get("per_image", {})}
        )  # fmt: skip
    return rows


def _write_sidecar(raw: Path, result: Path) -> Path:
    """``result`` beside ``raw`` as darktable names its sidecar; a sidecar that was there before darkproxy's
    first one is kept as ``.xmp.bak`` (never overwritten by a later run)."""
    from darkproxy.fsutil import atomic_path

    side = sidecar_of(raw)
    bak = Path(str(side) + ".bak")
    if side.is_file() and not bak.exists():
        shutil.copy2(side, bak)
    with atomic_path(side, suffix=".xmp") as tmp:
        shutil.copyfile(result, tmp)
    return side


def _mean(v: Sequence[float]) -> float | None:
    return float(sum(v) / len(v)) if v else None


def _line(r: Mapping[str, Any]) -> str:
    name = Path(str(r["raw"])).name
    if r["status"] == "failed":
        return f"{name}: failed: {r['error']}"
    return f"{name}: ΔE2000 {r['deltae_mean']:.2f} (defaults {r['default_deltae_mean']:.2f}) [{r['status']}]"


def write_batch_report(out: Path, summary: Mapping[str, Any]) -> Path:
    """``index.html``: the shoot's table and a contact sheet (reference, darktable's render of result.xmp)."""
    from darkproxy.viz.report import HtmlReport

    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rep = HtmlReport(f"darkproxy match --batch: {Path(str(summary['folder'])).name}")
    how = (
        f"one look fitted to all, {', '.join(summary['settings']['shared'])} per raw"
        if summary.get("shared")
        else "each matched on its own"
    )
    rep.add_text(
        f"{len(summary['images'])} raws, {how} ({', '.join(summary['chain'])}): ΔE2000 mean "
        f"{fmt(summary['deltae_mean'])} (darktable's defaults {fmt(summary['default_deltae_mean'])}), "
        f"{summary['failed']} failed. Figures: darktable's render of each result.xmp against its reference."
    )
    rep.add_table(
        [
            {
                "raw": Path(str(r["raw"])).name,
                "status": r["status"],
                "ΔE2000": r.get("deltae_mean"),
                "defaults ΔE2000": r.get("default_deltae_mean"),
                "reference": Path(str(r["reference"])).name if r.get("reference") else "-",
                "error": r.get("error", ""),
            }
            for r in summary["images"]
        ]
    )
    for r in summary["images"]:
        if r["status"] == "failed":
            continue
        name, d = html.escape(Path(str(r["raw"])).name), html.escape(str(r["dir"]))
        figs = "".join(
            f'<figure style="display:inline-block;margin:4px"><img src="{d}/{f}" style="width:256px">'
            f"<figcaption>{name}: {c}</figcaption></figure>"
            for f, c in (("reference.png", "reference"), ("result.png", f"darktable, ΔE2000 {r['deltae_mean']:.2f}"))
        )
        rep.add_html(f"<div>{figs}</div>")
    rep.add_json_block(dict(summary), "summary.json")
    return rep.write(out / "index.html")
