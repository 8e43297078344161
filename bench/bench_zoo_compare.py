"""Two trainings of the same zoo modules side by side (e.g. the plan's 7 training raws against 20).

    PYTHONPATH=src .venv/bin/python bench/bench_zoo_compare.py --a /tmp/zoo31:7-raws --b /tmp/zoo33:20-raws \
        --modules bilat,censorize [--name zoo_train_raws]

Each side is a ``darkproxy zoo train`` work folder (``runs/MODULE``: the training's history and metrics;
``stages/eval-MODULE.json``: its held-out evaluation) and a label. Writes ``bench/results/NAME.md`` and ``.json``:
per module and side, the training photos, the validation PSNR at its best step and at the last (the validation
split is whole photos generate held out: a fall after the best step is the proxy fitting its training photos), and
the held-out median / worst per render scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def side(work: Path, module: str) -> dict[str, Any]:
    run = work / "runs" / module
    vals = [
        (d["step"], d["val_psnr"])
        for d in map(json.loads, (run / "history.jsonl").read_text().splitlines())
        if d.get("val_psnr") is not None
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    ev = json.loads((work / "stages" / f"eval-{module}.json").read_text())
    ev = ev.get("result", ev)
    per = ev["per_scale"]
    manifest = [json.loads(line) for line in (work / "datasets" / module / "manifest.jsonl").read_text().splitlines()]
    photos = {s: sorted({r["raw"] for r in manifest if r.get("split") == s}) for s in ("train", "val", "test")}
    return {
        "photos": {k: len(v) for k, v in photos.items()},
        "val_photos": photos["val"],
        "val_best": metrics["best_val_psnr"],
        "best_step": metrics["best_step"],
        "val_last": vals[-1][1],
        "val_identity": metrics.get("val_identity_psnr"),
        "steps": metrics["steps"],
        "heldout_median": ev["proxy"]["psnr_median"],
        "heldout_worst": ev["proxy"]["psnr_min"],
        "identity_median": ev["identity"]["psnr_median"],
        "per_scale": [{k: p[k] for k in ("scale", "psnr_median", "psnr_min", "identity_psnr")} for p in per],
    }


def markdown(o: dict[str, Any]) -> str:
    lines = [
        f"# Zoo trainings side by side: {o['labels'][0]} and {o['labels'][1]} (bench/bench_zoo_compare.py)",
        "",
        f"{o['date']}. The same plan but the training photos; held out: the same raws and draws (coffee, motorcycle; "
        "8 fresh darktable renders per render scale). Validation: whole photos generate set aside (named below), "
        "at the best step (the weights published) and at the last.",
        "",
        "| module | trained on | train / val / test photos | val best (step) | val last | val identity | "
        "held-out median / worst | identity median | per scale 0.1, 0.3, 1: median / worst |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, sides in o["modules"].items():
        for label, s in zip(o["labels"], sides, strict=True):
            ph = s["photos"]
            per = "; ".join(f"{p['psnr_median']:.1f} / {p['psnr_min']:.1f}" for p in s["per_scale"])
            lines.append(
                f"| {m} | {label} | {ph['train']} / {ph['val']} / {ph['test']} ({', '.join(s['val_photos'])}) | "
                f"{s['val_best']:.2f} ({s['best_step']}) | {s['val_last']:.2f} | {s['val_identity']:.2f} | "
                f"{s['heldout_median']:.1f} / {s['heldout_worst']:.1f} | {s['identity_median']:.1f} | {per} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, metavar="WORK:LABEL")
    ap.add_argument("--b", required=True, metavar="WORK:LABEL")
    ap.add_argument("--modules", required=True)
    ap.add_argument("--name", default="zoo_train_raws")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    (wa, la), (wb, lb) = (x.rsplit(":", 1) for x in (a.a, a.b))
    mods = a.modules.split(",")
    o = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "labels": [la, lb],
        "works": [wa, wb],
        "modules": {m: [side(Path(wa), m), side(Path(wb), m)] for m in mods},
    }
    out = Path(a.out)
    (out / f"{a.name}.json").write_text(json.dumps(o, indent=1) + "\n")
    (out / f"{a.name}.md").write_text(markdown(o))
    print(markdown(o))


if __name__ == "__main__":
    main()
