"""The replica on the darktable that is installed: its own default history, edited, against its own export.

    PYTHONPATH=src .venv/bin/python bench/bench_replica_darktable.py [--work DIR] [--n 8]
    bash bench/darktable_chroot.sh run ROOT python bench/bench_replica_darktable.py   # darktable 5.0.1 or 5.4.1

The same held-out raws as bench/bench_replica.py (synthetic 256 px DNGs of coffee and motorcycle, noise seeds 0
and 1). Per sample: the darktable's default history for the raw (its workflow defaults: darktable 4.2.1's
filmic rgb v6 colour science, 5.0's v7 with color calibration and the "as shot to reference" white balance,
5.4's sigmoid), then an edit of the sliders exact ports run (exposure uniform in -1..3 EV; filmic rgb's white and
black relative exposures, contrast, latitude and saturation uniform in the zoo's ranges, or sigmoid's contrast,
skew, hue preservation and primaries: SIGMOID), at 128 px. The replica
runs it where it can (exact stages, the zoo's proxies where their darktable is this one) and is compared with
darktable-cli's 8-bit sRGB export: display PSNR and ΔE2000 (median and worst over samples), each stage alone.
A sample the replica refuses is reported with its one-line reason.

Writes ``bench/results/replica_darktable_<version>.md`` and ``.json``.
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

from bench_replica import RAW_SIZE, SIZE, heldout_raws  # noqa: E402  (the same held-out raws)

from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.errors import DarkproxyError  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402
from darkproxy.replica.plan import plan_replica  # noqa: E402
from darkproxy.replica.references import render_references, replica_history  # noqa: E402
from darkproxy.replica.run import build_chain, score_replica  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILMIC = {
    "white_point_source": (2.0, 8.0),
    "black_point_source": (-12.0, -4.0),
    "contrast": (0.8, 2.0),
    "latitude": (0.01, 50.0),
    "saturation": (-50.0, 50.0),
}

SIGMOID = {  # darktable 5.2 on: sigmoid (params v3) is the default tone mapper; its sliders, primaries included
    "middle_grey_contrast": (1.0, 3.0),
    "contrast_skewness": (-0.5, 0.5),
    "hue_preservation": (0.0, 100.0),
    "red_inset": (0.0, 0.3),
    "green_inset": (0.0, 0.3),
    "blue_inset": (0.0, 0.3),
    "red_rotation": (-0.2, 0.2),
    "green_rotation": (-0.2, 0.2),
    "blue_rotation": (-0.2, 0.2),
    "purity": (0.0, 1.0),
}


def draw_edits(n: int, seed: int, tone: str = "filmicrgb") -> list[dict[str, dict[str, float]]]:
    """Edit 0: none (the darktable's defaults); then exposure and the default tone mapper's sliders (``tone``:
    filmic rgb or sigmoid), uniform."""
    rng = np.random.default_rng(seed)
    ranges = SIGMOID if tone == "sigmoid" else FILMIC
    edits: list[dict[str, dict[str, float]]] = [{}]
    for _ in range(n - 1):
        edits.append(
            {
                "exposure": {"exposure": float(rng.uniform(-1.0, 3.0))},
                tone: {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()},
            }
        )
    return edits


def default_tone_mapper(dt: Darktable, raw: Path) -> str:
    """The tone mapper the darktable's default history enables: sigmoid (5.2 on) or filmic rgb."""
    hist = dt.default_history(raw)
    return "sigmoid" if (it := hist.find("sigmoid")) is not None and it.enabled else "filmicrgb"


def one_sample(dt: Darktable, raw: Path, edit: dict[str, dict[str, float]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    hist = replica_history(dt, raw, None, edit)
    try:
        plan = plan_replica(dt, hist, raw)
    except DarkproxyError as e:
        return {"raw": raw.name, "edit": edit, "refused": str(e)}
    renders = render_references(dt, raw, plan, SIZE)
    _, fig = score_replica(build_chain(plan, renders), renders)
    kinds = {st["module"]: st["kind"] for st in fig["stages"]}
    return {
        "raw": raw.name,
        "edit": edit,
        "history": [f"{it.operation} v{it.modversion}" for it in hist.items if it.enabled],
        "filmic_science": _filmic_science(dt, hist),
        "kinds": kinds,
        "psnr": fig["psnr"],
        "deltae_mean": fig["deltae_mean"],
        "stages": fig["stages"],
        "seconds": time.perf_counter() - t0,
    }


def _filmic_science(dt: Darktable, hist: Any) -> int | None:
    from darkproxy.darktable.params import decode_params

    it = hist.find("filmicrgb")
    if it is None:
        return None
    return int(decode_params(dt.schemas.get("filmicrgb"), it.params)["version"])


def markdown(out: dict[str, Any]) -> str:
    ok = [s for s in out["samples"] if "psnr" in s]
    lines = [
        f"# The replica on darktable {out['darktable']}: its default history, edited, against its export",
        "",
        f"{out['machine'].get('date', '')}, {out['machine'].get('nproc', '?')} cores. "
        f"`bench/bench_replica_darktable.py --n {out['n']}` ({out['seconds'] / 60:.1f} min): {len(out['raws'])} "
        f"held-out raws ({RAW_SIZE} px), {SIZE} px renders; sample 0 is the darktable's defaults, the others "
        f"edit exposure and its default tone mapper, {out.get('tone_mapper', 'filmicrgb')} (module docstring). "
        "Display PSNR and ΔE2000 of the replica against darktable-cli's 8-bit sRGB export.",
        "",
    ]
    if ok:
        ps = np.array([s["psnr"] for s in ok])
        de = np.array([s["deltae_mean"] for s in ok])
        lines += [
            f"**{len(ok)} of {len(out['samples'])} run: PSNR median {np.median(ps):.2f} dB, worst {ps.min():.2f}; "
            f"ΔE2000 mean median {np.median(de):.3f}, worst {de.max():.3f}.**",
            "",
        ]
    lines += ["| # | raw | filmic science | PSNR (dB) | ΔE2000 | stages alone (dB) | edit or refusal |", "|---|" * 7]
    lines[-1] = "|---|---|---|---|---|---|---|"
    for i, s in enumerate(out["samples"]):
        edit = "; ".join(f"{m} " + ", ".join(f"{k} {v:.3g}" for k, v in p.items()) for m, p in s["edit"].items())
        if "psnr" not in s:
            lines.append(f"| {i} | {s['raw']} | - | - | - | - | refused: {s['refused']} |")
            continue
        alone = ", ".join(
            f"{st['module']} {st['kind']} {st['psnr_alone']:.1f}"
            for st in s["stages"]
            if st["kind"] != "passthrough" and st.get("psnr_alone") is not None
        )
        lines.append(
            f"| {i} | {s['raw']} | {'-' if s['filmic_science'] is None else s['filmic_science']} | {s['psnr']:.2f} | "
            f"{s['deltae_mean']:.3f} | {alone} | "
            f"{edit or 'the defaults'} |"
        )
    if ok:
        lines += ["", "History (sample 0): " + ", ".join(ok[0]["history"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/replica-darktable-work")
    ap.add_argument("--n", type=int, default=8, help="samples: the defaults, then n-1 edits")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    dt = Darktable()
    raws = heldout_raws(Path(args.work))
    t0 = time.perf_counter()
    samples = []
    tone = default_tone_mapper(dt, raws[0])
    for i, e in enumerate(draw_edits(args.n, args.seed, tone)):
        s = one_sample(dt, raws[i % len(raws)], e)
        what = f"{s['psnr']:.2f} dB" if "psnr" in s else f"refused: {s['refused']}"
        print(f"#{i} {s['raw']}: {what}", flush=True)
        samples.append(s)
    out = {
        "machine": machine_info(),
        "darktable": dt.version,
        "raws": [p.name for p in raws],
        "n": len(samples),
        "tone_mapper": tone,
        "samples": samples,
        "seconds": time.perf_counter() - t0,
    }
    res = ROOT / "bench" / "results"
    (res / f"replica_darktable_{dt.version}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    (res / f"replica_darktable_{dt.version}.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
