"""``darkproxy match`` against references with known and unknown answers, on held-out raws.

    PYTHONPATH=src .venv/bin/python bench/bench_match.py [--work /tmp/match-work] [--n 6] [--size 1224]

Raws: synthetic DNGs (long side ``--size`` px: about 1 MP rendered) from held-out
photos (coffee, motorcycle, rocket, chelsea; noise seed 0). References:

* darktable-made: darktable's 8-bit sRGB export of the raw with hidden random sliders
  over exposure, colorbalancergb and filmicrgb (every slider a match fits,
  ``darkproxy.data.ranges.LOOK_FREE``, moved from darktable's default by up to a quarter
  of its zoo range), then cropped by 1-4 px and resized to 90 % (a reference is never
  pixel-aligned): known answer, slider error and ΔE;
* rawpy-made: LibRaw's own rendering (its demosaic, camera white balance, auto
  brightness, ``bright`` 1.41 and sRGB curve, 8-bit): no exact answer, ΔE only;
* a ``--pairs`` fit over rawpy references of the four raws made with one fixed rendering
  (LibRaw without its per-image auto brightness, as a camera's JPEG engine: one look to
  learn), one style for all, the last pair (by name) held out.

Baseline: darktable's defaults against each reference. Every figure is darktable's
own render of result.xmp vs the reference (ΔE2000 of sRGB images, D65), over the
region the aligned reference covers. Writes ``bench/results/match.md`` and
``match.json`` (machine and date). Goals (issue): ΔE2000 mean <= 2 (darktable-made),
<= 4 (rawpy-made), each well under the defaults; <= 60 s per 1 MP image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.data.paramspace import split_module_params  # noqa: E402
from darkproxy.data.ranges import (
    DEFAULT_RANGES,  # noqa: E402
    LOOK_FREE,  # noqa: E402
    PERIODIC,  # noqa: E402
)
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.match import DEFAULT_CHAIN, match_pairs  # noqa: E402
from darkproxy.match.auto import match_any  # noqa: E402
from darkproxy.match.fit import resolve_chain  # noqa: E402
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng  # noqa: E402
from darkproxy.replica.fit import render_export  # noqa: E402
from darkproxy.replica.references import replica_history  # noqa: E402
from darkproxy.viz.images import save_png, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("coffee", "motorcycle", "rocket", "chelsea")


def synthetic_raws(
    folder: Path, size: int, preview: int = 0, sources: tuple[str, ...] = SOURCES, preview_gain: float = 0.0
) -> list[Path]:
    """The held-out photos ``sources`` as synthetic DNGs in ``folder`` (long side ``size`` px, noise seed 0,
    an embedded preview of ``preview`` px when > 0, ``preview_gain``: :class:`SynthRawSpec`'s); a raw already
    there is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    srcs = default_source_images(list(sources))
    raws = []
    for name in sources:
        p = folder / f"{name}.dng"
        if not p.is_file():
            write_synthetic_dng(
                srcs[name], p, SynthRawSpec(size=size, seed=0, preview=preview, preview_gain=preview_gain)
            )
        raws.append(p)
    return raws


def run_record(dt: Darktable, size: int) -> dict[str, Any]:
    """What every match bench's record starts with: the machine, the date, darktable's version, the raws' size."""
    return {
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "darktable": dt.version,
        "size": size,
    }


def write_results(out: Path, stem: str, o: dict[str, Any], markdown: Any) -> None:
    """``out/STEM.json`` (the record) and ``out/STEM.md`` (``markdown(o)``), printed."""
    (out / f"{stem}.json").write_text(json.dumps(o, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(o))
    print((out / f"{stem}.md").read_text())


def hidden_edit(rng: np.random.Generator, defaults: dict[str, float]) -> dict[str, float]:
    """Random sliders over the chain, an edit a photographer would keep: each fitted
    slider moved from darktable's default by up to a quarter of its zoo range, either way; a move past an end of
    the range is reflected back into it (a slider whose default is an end, as color balance rgb's global chroma at
    0, moves every time: clipped, half the references kept it at 0), a hue wheel wraps round (0 - 20 degrees is
    340). ``defaults``: :func:`chain_defaults`'s, in its order."""
    out = {}
    for key, d in defaults.items():
        m, p = key.split(".", 1)
        lo, hi = DEFAULT_RANGES[m][p]
        v = d + rng.uniform(-0.25, 0.25) * (hi - lo)
        period = PERIODIC.get(m, {}).get(p, 0.0)
        if period > 0 and abs(hi - lo - period) < 1e-9 * period:
            out[key] = float(lo + (v - lo) % period)
            continue
        v = 2 * lo - v if v < lo else 2 * hi - v if v > hi else v
        out[key] = float(np.clip(v, lo, hi))  # a default outside the range: its nearest end
    return out


def chain_defaults(dt: Darktable, raw: Path) -> dict[str, float]:
    """darktable's default values of match's default chain's sliders for ``raw`` (its default history, the chain's
    modules on; the tone mapper the raw's own: filmic rgb up to darktable 5.0, sigmoid from 5.2)."""
    from darkproxy.darktable.params import decode_params, flatten

    modules = [m for m in resolve_chain(dt, raw, None, DEFAULT_CHAIN) if not m.startswith("-")]
    hist = replica_history(dt, raw, None, {m: {} for m in modules})
    out = {}
    for m in modules:
        it = hist.find(m)
        vals = flatten(decode_params(dt.schemas.get(m), it.params)) if it is not None else {}
        out.update({f"{m}.{p}": float(vals[p]) for p in LOOK_FREE[m]})
    return out


def off_by_a_few_px(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop 1-4 px from two sides and resize to 90 % (what another tool's export looks like)."""
    from skimage.transform import resize

    _, h, w = img.shape
    dy, dx = (int(v) for v in rng.integers(1, 5, size=2))
    cut = img[:, dy:, : w - dx]
    shape = (round(cut.shape[1] * 0.9), round(cut.shape[2] * 0.9))
    return np.stack([resize(c, shape, anti_aliasing=True) for c in cut])


def rawpy_reference(raw: Path, auto_bright: bool = True) -> np.ndarray:
    """LibRaw's rendering (camera white balance, AHD, sRGB curve, 8-bit, ``bright`` 1.41:
    half a stop over LibRaw's default); ``auto_bright``: plus its per-image brightness
    (LibRaw's default), else one fixed rendering for every shot."""
    import rawpy

    with rawpy.imread(str(raw)) as rp:
        rgb = rp.postprocess(use_camera_wb=True, output_bps=8, no_auto_bright=not auto_bright, bright=2.0**0.5)
    return np.moveaxis(rgb, -1, 0).astype(np.float32) / 255.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/match-work")
    ap.add_argument("--n", type=int, default=6, help="darktable-made references")
    ap.add_argument("--size", type=int, default=1224, help="raw long side (px); the match works at it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--chain", default=",".join(DEFAULT_CHAIN), help="the modules matched (default: match's)")
    ap.add_argument("--rawpy-only", action="store_true", help="only the LibRaw-made references, one match each")
    ap.add_argument("--name", default="match", help="the results' file stem")
    a = ap.parse_args()
    chain = a.chain.split(",")
    if a.rawpy_only:
        a.n = 0
    work = Path(a.work)
    dt = Darktable()
    raws = synthetic_raws(work, a.size)
    rng = np.random.default_rng(a.seed)
    t_all = time.perf_counter()
    dt_rows: list[dict[str, Any]] = []
    for i in range(a.n):
        raw = raws[i % len(raws)]
        truth = hidden_edit(rng, chain_defaults(dt, raw))
        ref = off_by_a_few_px(
            render_export(dt, raw, replica_history(dt, raw, None, split_module_params(truth)), a.size), rng
        )
        ref_path = work / f"dt-{i}-{raw.stem}.png"
        save_png(ref_path, to_uint8(ref))
        s = _timed(match_any, dt, raw, ref_path, work / f"dt-{i}", chain, max_size=a.size, truth=truth, log=print)
        dt_rows.append({"kind": "darktable", "raw": raw.name, **_row(s, work / f"dt-{i}")})
        print(json.dumps(dt_rows[-1]), flush=True)
    rp_rows: list[dict[str, Any]] = []
    pairs = work / "pairs"
    pairs.mkdir(exist_ok=True)
    for raw in raws:
        ref_path = work / f"rawpy-{raw.stem}.png"
        save_png(ref_path, to_uint8(rawpy_reference(raw)))
        shutil.copy(raw, pairs / raw.name)
        # one look for every pair: LibRaw without its per-image auto brightness (as a camera's JPEG engine)
        save_png(pairs / f"{raw.stem}.png", to_uint8(rawpy_reference(raw, auto_bright=False)))
        rp_out = work / f"rawpy-{raw.stem}-{'-'.join(chain)}"
        s = _timed(match_any, dt, raw, ref_path, rp_out, chain, max_size=a.size, log=print)
        rp_rows.append({"kind": "rawpy", "raw": raw.name, **_row(s, rp_out)})
        print(json.dumps(rp_rows[-1]), flush=True)
    pairs_rec = None if a.rawpy_only else _pairs(dt, pairs, work, chain, a.size)
    o = {
        **run_record(dt, a.size),
        "n": a.n,
        "seed": a.seed,
        "chain": (resolved := resolve_chain(dt, raws[0], None, chain)),  # tonemapper: the raws' own
        "free": [f"{m}.{p}" for m in resolved for p in LOOK_FREE.get(m, ())],
        "darktable_made": dt_rows,
        "rawpy_made": rp_rows,
        "pairs": pairs_rec,
        "stages": s["stages"],
        "minutes": (time.perf_counter() - t_all) / 60.0,
    }
    write_results(Path(a.out), a.name, o, markdown)


def _timed(fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    """``fn``'s summary with ``seconds`` the whole call's (``--chain auto``: its choice of the chain too, which
    the match's own timer leaves out)."""
    t0 = time.perf_counter()
    s = dict(fn(*args, **kw))
    s["seconds"] = time.perf_counter() - t0
    return s


def _pairs(dt: Darktable, pairs: Path, work: Path, chain: list[str], size: int) -> dict[str, Any]:
    """``--pairs`` over the LibRaw references without per-image brightness, the last pair held out."""
    t0 = time.perf_counter()
    ps = match_pairs(dt, pairs, work / "pairs-out", chain=chain, max_size=size, holdout=1, log=print)
    return {
        "pairs": [
            {
                "raw": Path(r["raw"]).name,
                "held_out": r["held_out"],
                "deltae_mean": r["deltae_mean"],
                "default_deltae_mean": r["default_deltae_mean"],
            }
            for r in ps["pairs"]
        ],
        "fit_deltae_mean": ps["fit_deltae_mean"],
        "fit_default_deltae_mean": ps["fit_default_deltae_mean"],
        "heldout_deltae_mean": ps["heldout_deltae_mean"],
        "heldout_default_deltae_mean": ps["heldout_default_deltae_mean"],
        "params": ps["params"],
        "seconds": time.perf_counter() - t0,
    }


def error_split(out: Path, box: list[int]) -> dict[str, float]:
    """Where a match's error is, from its ``result.png`` and ``reference.png`` (8 bit) over ``box``: ΔE2000 as
    is, and after a Gaussian blur (sigma 2 px) of both (what is left when pixel-level detail, demosaic and
    noise, which no slider moves, is taken out); and in the reference's highlights (L* > 80) and elsewhere."""
    from scipy.ndimage import gaussian_filter
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.io import imread

    t, left, b, r = box
    ref, res = (imread(out / f)[t:b, left:r, :3] / 255.0 for f in ("reference.png", "result.png"))
    lab_ref = rgb2lab(ref)
    de = deltaE_ciede2000(lab_ref, rgb2lab(res))

    def blur(x: np.ndarray) -> np.ndarray:
        return np.stack([gaussian_filter(x[..., c], 2.0) for c in range(3)], -1)

    hi = lab_ref[..., 0] > 80
    return {
        "deltae_png": float(de.mean()),
        "deltae_blur2": float(deltaE_ciede2000(rgb2lab(blur(ref)), rgb2lab(blur(res))).mean()),
        "highlights_share": float(hi.mean()),
        "deltae_highlights": float(de[hi].mean()) if hi.any() else float("nan"),
        "deltae_rest": float(de[~hi].mean()),
    }


def _row(s: dict[str, Any], out: Path) -> dict[str, Any]:
    errs = s.get("param_errors") or {}
    return {
        **error_split(out, s["alignment"]["box"]),
        "size": s["size"],
        "megapixels": s["size"][0] * s["size"][1] / 1e6,
        "chain": [*s["chain"], *(f"-{m}" for m in s.get("off", []))],
        "deltae_mean": s["deltae_mean"],
        "deltae_p95": s["deltae_p95"],
        "psnr": s["psnr"],
        "default_deltae_mean": s["default_deltae_mean"],
        "replica_psnr": s["replica_psnr"],
        "alignment_correlation": s["alignment"]["correlation"],
        "seconds": s["seconds"],
        "regress_seconds": s["regress_seconds"],
        "slider_error_median": float(np.median(list(errs.values()))) if errs else None,
        "slider_error_max": float(max(errs.values())) if errs else None,
        "param_errors": errs,
        "truth": s.get("truth"),  # the hidden sliders (darktable-made references) and what the match gave
        "matched": {n: s["params"][n] for n in s.get("free", [])} if s.get("truth") else None,
        # the demosaic match chose (darkproxy.match.demosaic) and each setting's ΔE2000
        "demosaic": next((d["label"] for d in s.get("demosaic", []) if d["chosen"]), None),
        "demosaic_tried": {d["label"]: d["deltae_mean"] for d in s.get("demosaic", [])},
    }


def _f(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _stats(rows: list[dict[str, Any]], k: str) -> tuple[float, float, float]:
    v = np.array([r[k] for r in rows], float)
    return float(v.mean()), float(np.median(v)), float(v.max())


def markdown(o: dict[str, Any]) -> str:
    m = o["machine"]
    lines = [
        "# darkproxy match (bench/bench_match.py)",
        "",
        f"{o['date']}, {m.get('nproc', '?')} cores ({m.get('cpu', '?')}), torch {m.get('torch', '?')}, darktable "
        f"{o['darktable']}, load {m.get('loadavg', '?')}. Raws: synthetic DNGs, long side {o['size']} px (held-out "
        f"photos {', '.join(SOURCES)}); the match works at that size (about {o['size'] ** 2 * 2 / 3e6:.2g} MP, 3:2). "
        f"Chain: {', '.join(o['chain'])}; "
        f"fitted sliders: {', '.join(o['free'])}. Figures: darktable's own render of result.xmp against the "
        "reference (ΔE2000, display PSNR) over the region the aligned reference covers; baseline: darktable's "
        f"defaults. Total {o['minutes']:.1f} min.",
        "",
        "## Summary",
        "",
        "| references | n | ΔE2000 mean (mean / median / worst) | defaults ΔE2000 (mean) | seconds per image "
        "(mean / worst) | MP |",
        "|---|---|---|---|---|---|",
    ]
    goals = []
    for name, rows, goal in (
        ("darktable-made (hidden sliders)", o["darktable_made"], 2.0),
        ("rawpy-made (LibRaw)", o["rawpy_made"], 4.0),
    ):
        if not rows:
            continue
        de = _stats(rows, "deltae_mean")
        base = _stats(rows, "default_deltae_mean")
        sec = _stats(rows, "seconds")
        mp = float(np.mean([r["megapixels"] for r in rows]))
        lines.append(
            f"| {name} | {len(rows)} | {de[0]:.2f} / {de[1]:.2f} / {de[2]:.2f} | {base[0]:.2f} | "
            f"{sec[0]:.1f} / {sec[2]:.1f} | {mp:.2f} |"
        )
        goals.append(
            f"- {name}: ΔE2000 mean <= {goal:g}: {'met' if de[0] <= goal else 'missed'} ({de[0]:.2f}, worst "
            f"{de[2]:.2f}; defaults {base[0]:.2f}); <= 60 s per 1 MP: "
            f"{'met' if sec[2] / max(mp, 1e-9) <= 60 else 'missed'} ({sec[0] / mp:.1f} s/MP mean, worst "
            f"{sec[2] / mp:.1f})."
        )
    p = o["pairs"]
    lines += ["", "Goals:", *goals, ""]
    if p:
        lines += _pairs_md(p)
    lines += [
        "## Per reference",
        "",
        "| kind | raw | ΔE2000 mean | p95 | PSNR | defaults ΔE2000 | replica PSNR | slider error median / max "
        "(% of range) | demosaic | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows_all = o["darktable_made"] + o["rawpy_made"]
    for r in rows_all:
        se = (
            f"{100 * r['slider_error_median']:.1f} / {100 * r['slider_error_max']:.1f}"
            if r["slider_error_median"] is not None
            else "-"
        )
        lines.append(
            f"| {r['kind']} | {r['raw']} | {r['deltae_mean']:.2f} | {r['deltae_p95']:.2f} | {r['psnr']:.2f} | "
            f"{r['default_deltae_mean']:.2f} | {r['replica_psnr']:.2f} | {se} | {r.get('demosaic') or '-'} | "
            f"{r['seconds']:.1f} |"
        )
    if o["chain"] == ["auto"]:
        lines += ["", "Chains `--chain auto` kept (seconds: the whole call, the choice and the match):", ""]
        lines += [f"- {r['kind']} {r['raw']}: {', '.join(r.get('chain', []))}" for r in rows_all]
    lines += [
        "",
        "## Where the error is",
        "",
        "From the 8-bit result.png and reference.png over the covered region: ΔE2000 as is; after a Gaussian blur "
        "(sigma 2 px) of both, which takes out pixel-level detail (each renderer's demosaic and noise: no slider "
        "moves it); in the reference's highlights (L* > 80) and elsewhere.",
        "",
        "| kind | raw | ΔE2000 (png) | after the blur | highlights: share of pixels | ΔE2000 there | elsewhere |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in o["darktable_made"] + o["rawpy_made"]:
        if "deltae_blur2" in r:
            lines.append(
                f"| {r['kind']} | {r['raw']} | {r['deltae_png']:.2f} | {r['deltae_blur2']:.2f} | "
                f"{100 * r['highlights_share']:.0f} % | {_f(r['deltae_highlights'])} | {r['deltae_rest']:.2f} |"
            )
    for kind, rows in (("darktable", o["darktable_made"]), ("rawpy", o["rawpy_made"])):
        if rows and "deltae_blur2" in rows[0]:
            lines.append(
                f"\nMean over the {kind} references: {np.mean([r['deltae_png'] for r in rows]):.2f} as is, "
                f"{np.mean([r['deltae_blur2'] for r in rows]):.2f} after the blur."
            )
    lines += [
        "",
        "Stages of the replica the match optimises through: "
        + ", ".join(f"{s['module']} ({s['kind']})" for s in o["stages"])
        + ".",
        "",
    ]
    return "\n".join(lines)


def _pairs_md(p: dict[str, Any]) -> list[str]:
    return [
        "## One style for many pairs (`--pairs`, rawpy references without per-image auto brightness)",
        "",
        f"Fitted on {sum(not r['held_out'] for r in p['pairs'])} pairs, {sum(r['held_out'] for r in p['pairs'])} "
        f"held out; {p['seconds']:.0f} s. ΔE2000 mean on the fitted pairs {_f(p['fit_deltae_mean'])} (defaults "
        f"{_f(p['fit_default_deltae_mean'])}); held out {_f(p['heldout_deltae_mean'])} (defaults "
        f"{_f(p['heldout_default_deltae_mean'])}).",
        "",
        "| pair | held out | ΔE2000 | defaults ΔE2000 |",
        "|---|---|---|---|",
        *[
            f"| {r['raw']} | {'yes' if r['held_out'] else ''} | {r['deltae_mean']:.2f} | "
            f"{r['default_deltae_mean']:.2f} |"
            for r in p["pairs"]
        ],
        "",
    ]


if __name__ == "__main__":
    main()
