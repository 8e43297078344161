"""``darkproxy match``'s demosaic choice (:mod:`darkproxy.match.demosaic`): what each setting gives, and whether
the ranking on a quarter of the pixels picks what all of them would.

    PYTHONPATH=src .venv/bin/python bench/bench_demosaic_choice.py [--work /tmp/demosaic-choice]
        [--camera-size 816] [--libraw-size 1224]

References of the held-out photos (coffee, motorcycle, rocket, chelsea): the camera's look (each synthetic raw's
embedded preview, the photo itself: what ``bench_match_peers.py`` matches, at ``--camera-size``) and LibRaw's
rendering (``bench_match.py``'s, at ``--libraw-size``). Each is matched with ``--demosaic keep`` (the default
chain); then darktable renders that result.xmp with every setting ``--demosaic choose`` tries, and each render's
ΔE2000 against the reference is measured over the whole covered region and over the fixed random quarter the
choice ranks on. Writes ``bench/results/demosaic_choice.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import rawpy_reference, run_record, synthetic_raws, write_results  # noqa: E402

from darkproxy.colour.metrics import display_image_deltae2000  # noqa: E402
from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.darktable.xmp import read_xmp  # noqa: E402
from darkproxy.match import match  # noqa: E402
from darkproxy.match.demosaic import candidates, choose_demosaic  # noqa: E402
from darkproxy.match.reference import embedded_reference  # noqa: E402
from darkproxy.replica.fit import render_exports  # noqa: E402
from darkproxy.viz.images import save_png, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# settings match does not try, measured beside them to show why (enum values of darktable 4.2's introspection); a
# first run of this bench had match try LMMSE (median) instead of PPG: PPG, untried, was closest on one LibRaw
# reference (motorcycle, 2.06 against 2.26), LMMSE (median) on none
EXTRA = (
    ("LMMSE (median)", {"demosaicing_method": 6, "lmmse_refine": 1}),
    ("VNG4", {"demosaicing_method": 2}),
    ("RCD, colour smoothing x3", {"demosaicing_method": 5, "color_smoothing": 3}),
)


def measure(dt: Darktable, raw: Path, ref: Path, size: int, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    s = match(dt, raw, ref, out, max_size=size, demosaic=False)
    match_s = time.perf_counter() - t0
    hist = read_xmp(out / "result.xmp")
    box = tuple(s["alignment"]["box"])
    ref_al = _aligned(out)  # the aligned reference as match wrote it (8 bit): the same for both figures
    t0 = time.perf_counter()
    _, _, tried = choose_demosaic(dt, raw, hist, ref_al, box, size)
    choose_s = time.perf_counter() - t0
    t, left, b, r = box
    rows = []
    cands = [*candidates(dt, hist), *EXTRA]
    recs = [*tried, *({"label": lab, "deltae_mean": None, "chosen": False} for lab, _ in EXTRA)]
    imgs = render_exports(dt, raw, [dt.edit(hist, updates={"demosaic": v}) for _, v in cands], size)
    for (label, _), img, rec in zip(cands, imgs, recs, strict=True):
        assert rec["label"] == label
        full = display_image_deltae2000(img[:, t:b, left:r], ref_al[:, t:b, left:r])[0]
        rows.append({"label": label, "deltae_full": full, "deltae_sample": rec["deltae_mean"],
                     "chosen": rec["chosen"], "tried": rec["deltae_mean"] is not None})  # fmt: skip
    return {"raw": raw.name, "size": s["size"], "match_seconds": match_s, "choose_seconds": choose_s,
            "match_deltae": s["deltae_mean"], "settings": rows}  # fmt: skip


def _aligned(out: Path) -> np.ndarray:
    """The aligned reference match wrote (reference.png: 0 where it does not reach; the box excludes that)."""
    from darkproxy.match import read_reference

    return read_reference(out / "reference.png")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/demosaic-choice")
    ap.add_argument("--camera-size", type=int, default=816)
    ap.add_argument("--libraw-size", type=int, default=1224)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json")
    a = ap.parse_args()
    if a.report_only:
        o = json.loads((Path(a.out) / "demosaic_choice.json").read_text())
        (Path(a.out) / "demosaic_choice.md").write_text(markdown(o))
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    dt = Darktable()
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for raw in synthetic_raws(work / "camera", a.camera_size, preview=a.camera_size):
        ref = embedded_reference(raw, work / f"ref-{raw.stem}")
        rows.append({"kind": "camera look (embedded preview)", **measure(dt, raw, ref, a.camera_size,
                                                                          work / f"cam-{raw.stem}")})  # fmt: skip
        print(rows[-1], flush=True)
    for raw in synthetic_raws(work / "libraw", a.libraw_size):
        ref = work / f"rawpy-{raw.stem}.png"
        save_png(ref, to_uint8(rawpy_reference(raw)))
        rows.append({"kind": "LibRaw", **measure(dt, raw, ref, a.libraw_size, work / f"lr-{raw.stem}")})
        print(rows[-1], flush=True)
    o = {**run_record(dt, a.libraw_size), "rows": rows, "minutes": (time.perf_counter() - t_all) / 60.0}
    write_results(Path(a.out), "demosaic_choice", o, markdown)


def markdown(o: dict[str, Any]) -> str:
    m = o["machine"]
    labels = [s["label"] for s in o["rows"][0]["settings"]]
    lines = [
        "# darkproxy match: the demosaic chosen against the reference (bench/bench_demosaic_choice.py)",
        "",
        f"{o['date']}, {m.get('nproc', '?')} cores ({m.get('cpu', '?')}), darktable {o['darktable']}, load "
        f"{m.get('loadavg', '?')}; {o['minutes']:.1f} min. Each reference matched with `--demosaic keep` (default "
        "chain), then rendered by darktable with every setting `--demosaic choose` tries. ΔE2000 over the whole "
        "covered region (the ranking's figure on its fixed random quarter of the pixels in brackets); * the "
        "setting chosen; the last columns: settings it does not try, for comparison.",
        "",
        "| reference | raw | px | " + " | ".join(labels) + " | chosen vs the history's own | choice s |",
        "|---|---|---|" + "---|" * len(labels) + "---|---|",
    ]
    agree, worst_gap, untried_best, regret = 0, 0.0, 0, 0.0
    for r in o["rows"]:
        full = [s["deltae_full"] for s in r["settings"]]
        cells = [f"{s['deltae_full']:.2f}" + (f" ({s['deltae_sample']:.2f})" if s["tried"] else "")
                 + (" *" if s["chosen"] else "") for s in r["settings"]]  # fmt: skip
        chosen = next(i for i, s in enumerate(r["settings"]) if s["chosen"])
        tried_full = [s["deltae_full"] if s["tried"] else np.inf for s in r["settings"]]
        agree += chosen == int(np.argmin(tried_full))
        regret = max(regret, full[chosen] - min(tried_full))
        best_all = min(r["settings"], key=lambda s: s["deltae_full"])
        untried_best += not best_all["tried"]
        worst_gap = max(worst_gap, *(abs(s["deltae_full"] - s["deltae_sample"]) for s in r["settings"] if s["tried"]))
        lines.append(
            f"| {r['kind']} | {r['raw']} | {r['size'][0]}x{r['size'][1]} | " + " | ".join(cells)
            + f" | {full[0]:.2f} -> {full[chosen]:.2f} | {r['choose_seconds']:.1f} |"
        )  # fmt: skip
    lines += [""]
    for kind in dict.fromkeys(r["kind"] for r in o["rows"]):
        rs = [r for r in o["rows"] if r["kind"] == kind]
        own = np.mean([r["settings"][0]["deltae_full"] for r in rs])
        ch = np.mean([next(s["deltae_full"] for s in r["settings"] if s["chosen"]) for r in rs])
        worst = max(next(s["deltae_full"] for s in r["settings"] if s["chosen"]) for r in rs)
        lines.append(f"- {kind}: ΔE2000 mean {own:.2f} with the history's own demosaic, {ch:.2f} chosen "
                     f"(worst raw {worst:.2f}; {len(rs)} raws)")  # fmt: skip
    lines += [
        f"- the quarter's ranking picks the setting the whole region would: {agree} of {len(o['rows'])}; its "
        f"means differ from the whole region's by at most {worst_gap:.3f}; the setting it picks is at most "
        f"{regret:.4f} off the best tried",
        f"- a setting match does not try ({', '.join(lab for lab, _ in EXTRA)}; no bracket) closest of all: "
        f"{untried_best} of {len(o['rows'])}",
        f"- the choice's cost (renders of every setting in one darktable process, and their ranking): "
        f"{np.mean([r['choose_seconds'] for r in o['rows']]):.1f} s mean per image",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
