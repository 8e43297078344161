"""The exact profiled denoise at every ISO of a camera's shipped noise profiles, against darktable.

    PYTHONPATH=src .venv/bin/python bench/bench_denoise_profiles.py [--camera "NIKON D750"] [--sources coffee,chelsea]
        [--size 256] [--scales 1,0.5] [--out bench/results]

For each noise profile darktable ships for the camera (``noiseprofiles.json``: one per ISO), denoiseprofile is set
to that profile (``a``, ``b`` written in the history, as darktable's GUI writes a chosen profile) in its default
wavelets auto mode (strength 1; ``preserve shadows`` and ``bias correction`` inferred from the profile), on
darktable's default history of held-out synthetic raws (``--size`` px, the photo's own noise is the synthetic
raw's). darktable renders the module's input and output in camera RGB (colorin passing camera RGB through, the
later modules off); the port runs on darktable's input. Figures: display PSNR of the port against darktable's
output, and how far darktable moved the image (its input against its output), per profile and render scale.
Writes ``bench/results/denoise_profiles.md`` and ``.json``. Goal (issue 30): >= 40 dB median at every noise
profile strength darktable ships.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match import synthetic_raws  # noqa: E402

from darkproxy.colour.metrics import display_psnr  # noqa: E402
from darkproxy.darktable.defaults import INIT_DEFAULTS  # noqa: E402
from darkproxy.darktable.render import RenderJob, read_tiff  # noqa: E402
from darkproxy.darktable.session import Darktable  # noqa: E402
from darkproxy.darktable.tapout import IDENTITY_SETTINGS, plan_tapout  # noqa: E402
from darkproxy.machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def camera_profiles(dt: Darktable, camera: str) -> list[dict[str, Any]]:
    """The shipped profiles (name, iso, a, b) of ``camera`` ("MAKER MODEL" as the profiles name it)."""
    data = dt.install.datadir
    if data is None:
        raise SystemExit("darktable's data folder (noiseprofiles.json) was not found")
    profiles = json.loads((data / "noiseprofiles.json").read_text())["noiseprofiles"]
    found = [
        p
        for maker in profiles
        for model in maker["models"]
        for p in model["profiles"]
        if f"{maker['maker']} {model['model']}".lower() == camera.lower()
        or p["name"].lower().startswith(camera.lower())
    ]
    if not found:
        raise SystemExit(f"no noise profile named {camera!r} in {data / 'noiseprofiles.json'}")
    return sorted(found, key=lambda p: p["iso"])


def one_raw(dt: Darktable, raw: Path, profiles: list[dict[str, Any]], size: int, scale: float) -> list[dict[str, Any]]:
    import torch

    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.ports.denoiseprofile import wavelets
    from darkproxy.replica.references import replica_history
    from darkproxy.replica.registry import StageContext

    base = dt.edit(dt.default_history(raw), updates=dict(IDENTITY_SETTINGS))
    edits = [
        {**INIT_DEFAULTS["denoiseprofile"].values, "mode": 4, "strength": 1.0}
        | {f"a[{k}]": p["a"][k] for k in range(3)}
        | {f"b[{k}]": p["b"][k] for k in range(3)}
        for p in profiles
    ]
    plans = [plan_tapout(dt, base, "denoiseprofile", e) for e in edits]
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(raw, plans[0].input_sidecar, Path(td) / "in.tif")]
        jobs += [RenderJob(raw, p.output_sidecar, Path(td) / f"{i}.tif") for i, p in enumerate(plans)]
        imgs = [read_tiff(r) for r in dt.renderer(max_size=int(round(size * scale))).render_batch(jobs)]
    plan = plan_replica(dt, replica_history(dt, raw, None, {"denoiseprofile": edits[0]}), raw)
    values = next(st.values for st in plan.stages if st.module == "denoiseprofile")
    h, w = imgs[0].shape[1:]
    full = (float(size), float(size) * h / w) if w >= h else (float(size) * w / h, float(size))
    ctx = StageContext(scale=w / full[0], full_size=full, wb_coeffs=plan.context.wb_coeffs)
    x = torch.from_numpy(imgs[0])[None]
    rows = []
    for p, e, out in zip(profiles, edits, imgs[1:], strict=True):
        got = wavelets(x, {**values, **e}, ctx)[0].numpy()
        rows.append(
            {
                "raw": raw.name,
                "profile": p["name"],
                "iso": p["iso"],
                "scale": scale,
                "psnr": display_psnr(got, out),
                "moved": display_psnr(imgs[0], out),
            }
        )
        print(f"{raw.name} {p['name']} scale {scale}: {rows[-1]['psnr']:.2f} dB", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camera", default="NIKON D750")
    ap.add_argument("--sources", default="coffee,chelsea")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scales", default="1,0.5")
    ap.add_argument("--work", default="/tmp/denoise-profiles")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    t0 = time.time()
    dt = Darktable()
    profiles = camera_profiles(dt, a.camera)
    raws = synthetic_raws(Path(a.work), a.size, sources=tuple(a.sources.split(",")))
    rows = [r for raw in raws for s in map(float, a.scales.split(",")) for r in one_raw(dt, raw, profiles, a.size, s)]
    write(rows, a, dt, time.time() - t0, Path(a.out))


def write(rows: list[dict[str, Any]], a: argparse.Namespace, dt: Darktable, seconds: float, out: Path) -> None:
    mi = machine_info()
    lines = [
        "# The exact profiled denoise at every shipped noise profile of a camera (bench/bench_denoise_profiles.py)",
        "",
        f"{mi['date']}, {mi['nproc']} cores ({mi['cpu']}), darktable {dt.version}. Camera: {a.camera}, "
        f"{len({r['profile'] for r in rows})} profiles (darktable's noiseprofiles.json, one per ISO), each set in "
        "the history in the default wavelets auto mode (strength 1). Raws: synthetic DNGs of the held-out photos "
        f"{a.sources.replace(',', ', ')} ({a.size} px), render scales {a.scales.replace(',', ', ')}. The port on "
        "darktable's camera-RGB input against darktable's output (display PSNR, dB); *moved*: darktable's input "
        f"against its output. {seconds / 60:.1f} min.",
        "",
        "| ISO | profile | port: median / worst (over raws and scales) | darktable moved the image: median |",
        "|---|---|---|---|",
    ]
    by: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["iso"], []).append(r)
    for iso, rs in sorted(by.items()):
        ps = [r["psnr"] for r in rs]
        lines.append(
            f"| {iso} | {rs[0]['profile']} | {statistics.median(ps):.1f} / {min(ps):.1f} | "
            f"{statistics.median(r['moved'] for r in rs):.1f} |"
        )
    meds = [statistics.median(r["psnr"] for r in rs) for rs in by.values()]
    lines += [
        "",
        f"Goal (>= 40 dB median at every noise profile strength): {'met' if min(meds) >= 40 else 'missed'} "
        f"(lowest median {min(meds):.1f} dB, worst single render {min(r['psnr'] for r in rows):.1f}).",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "denoise_profiles.md").write_text("\n".join(lines))
    (out / "denoise_profiles.json").write_text(json.dumps({"meta": mi, "camera": a.camera, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
