"""Speed of proxies at full size beside darktable-cli, all measured in one run.

On a synthetic raw of ``--mp`` megapixels (scikit-image's photos, tiled 2x2 and
upsampled, through :func:`darkproxy.raw.synth.write_synthetic_dng`), seconds per
megapixel of:

* darktable-cli rendering the raw at full size through its default pipe (a JPEG,
  as a user exports; process start included), with sharpen switched on as well,
  and the exposure tap-out input darkproxy apply renders (float TIFF);
* the exposure proxy (``zoo:exposure``, pointwise) on darktable's full-size input
  of exposure: the network forward (tiled), forward + backward (a 1 MP crop,
  gradients to the params: what regression runs), and the fast path (the 3D LUT:
  bake time apart, and the LUT's error against the network on the whole image);
* a multiscale proxy (``zoo:sharpen``'s weights) forward, tiled; and in bfloat16
  autocast on a 1 MP crop (speed and error against float32); with ``--compile``,
  torch.compile on one tile (compile time apart);
* peak memory (RSS) of ``darkproxy apply`` on a 24 MP float TIFF, for the
  multiscale network (tiled) and for exposure (LUT), each in a fresh process.

Writes ``bench/results/apply.json`` and ``apply.md`` (machine, date, torch
version, load average before and after: the CPU is shared, so the quick measurements
run interleaved in ``--repeats`` rounds, best of the rounds; the tiled networks and the
24 MP runs once).

    PYTHONPATH=src .venv/bin/python bench/bench_apply.py [--mp 12] [--big-mp 24] [--repeats 2] [--quick] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EXPOSURE = {"exposure": 1.0, "black": 0.005}
SHARPEN = {"amount": 1.0}
PEAK_LIMIT_GIB = 4.0


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls of ``fn`` and its last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def synthetic_photo(mp: float) -> np.ndarray:
    """A 4:3 sRGB photo of ``mp`` megapixels: four scikit-image photos tiled 2x2, upsampled."""
    from darkproxy.raw.synth import default_source_images, resize_long_side

    imgs = default_source_images(["astronaut", "coffee", "chelsea", "rocket"])
    tiles = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        a = imgs[name]
        h, w = a.shape[:2]
        s = min(h, w * 3 // 4)  # a 4:3 crop of each
        tiles.append(resize_long_side(a[:s, : s * 4 // 3], 1024))
    grid = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
    return resize_long_side(grid, int(round((mp * 1e6 * 4 / 3) ** 0.5)))


def darktable_jpeg(dt: Any, raw: Path, sidecar: Any, out: Path) -> float:
    """Seconds of one darktable-cli process exporting ``raw`` with ``sidecar``
    to a JPEG at full size (isolated config, as darkproxy renders)."""
    assert dt.install is not None
    with tempfile.TemporaryDirectory(prefix="bench-apply-dt-") as td:
        xmp = Path(td) / "edit.xmp"
        sidecar.write(xmp)
        (Path(td) / "config").mkdir()
        cmd = [str(dt.install.cli), str(raw), str(xmp), str(out), "--hq", "true", "--apply-custom-presets", "false"]
        cmd += ["--core", "--library", ":memory:", "--configdir", str(Path(td) / "config")]
        cmd += ["--conf", "write_sidecar_files=never"]
        out.unlink(missing_ok=True)  # darktable-cli would write NAME_01.jpg beside it
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
        dt_s = time.perf_counter() - t0
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"darktable-cli failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return dt_s


def peak_rss(args: list[str]) -> dict[str, Any]:
    """``darkproxy ARGS --json -q`` in a fresh process: its result and peak RSS (GiB)."""
    # VmHWM, not getrusage's ru_maxrss: that one keeps the forked parent's peak across exec (measured: 2.9 GiB
    # for a run that /usr/bin/time puts at 0.5)
    code = (
        "import json, re, sys\n"
        "from darkproxy.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(json.dumps({'rc': rc, 'maxrss_kib': hwm}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--json", "-q"], capture_output=True, text=True, env=env, timeout=3600
    )
    seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    tail = json.loads(lines[-1]) if lines else {"rc": proc.returncode}
    if tail.get("rc") != 0:
        raise RuntimeError(f"darkproxy {' '.join(args)} failed: {proc.stderr[-800:]}")
    result = json.loads("\n".join(lines[:-1]))
    return {
        "peak_rss_gib": round(tail["maxrss_kib"] / 2**20, 3),
        "seconds": round(seconds, 2),
        "path": result["path"],
        "megapixels": result["megapixels"],
        "tiles": result["tiles"],
    }


def measure(
    work: Path,
    mp: float = 12.0,
    big_mp: float = 24.0,
    repeats: int = 2,
    quick: bool = False,
    compile_net: bool = False,
) -> dict[str, Any]:
    """Everything in the module docstring, as plain data (seconds per megapixel
    under ``*_s_per_mp``; the machine in ``machine``)."""
    import torch

    from darkproxy.colour.metrics import display_psnr, pu21_psnr
    from darkproxy.darktable.render import read_tiff, write_tiff
    from darkproxy.darktable.session import Darktable
    from darkproxy.darktable.tapout import plan_tapout
    from darkproxy.machine import machine_info
    from darkproxy.proxy import Proxy
    from darkproxy.proxy.fastpath import bake_lut
    from darkproxy.proxy.tiling import apply_image, apply_tiled
    from darkproxy.raw.synth import SynthRawSpec, write_synthetic_dng

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"machine": machine_info(), "params": {"exposure": EXPOSURE, "sharpen": SHARPEN}}
    photo = synthetic_photo(mp)
    raw = work / f"synthetic-{mp:g}mp.dng"
    if not raw.is_file():
        write_synthetic_dng(photo, raw, SynthRawSpec(size=max(photo.shape[:2]), seed=0), source="bench")
    dt = Darktable()
    base = dt.default_history(raw)

    # ------------------------------------------------- darktable and exposure, in rounds
    plan = plan_tapout(dt, base, "exposure")
    r = dt.renderer(max_size=None)
    image = read_tiff(r.render(raw, plan.input_sidecar, work / "exposure-input.tif"))
    _, H, W = image.shape
    MP = H * W / 1e6
    sharp = dt.edit(base, updates={"sharpen": SHARPEN}, enable=["sharpen"])
    torch.manual_seed(0)
    expo = Proxy.load("zoo:exposure")
    crop = torch.from_numpy(np.ascontiguousarray(image[:, :1024, :1024]))[None]

    def fwd_bwd() -> None:
        u = expo.normalize(EXPOSURE).clone().requires_grad_(True)
        y = expo(crop, u)
        (y**2).mean().backward()

    lut = bake_lut(expo, EXPOSURE)
    apply_image(expo, image[:, :1024, :1024], EXPOSURE)  # one-time imports and allocations out of the timings
    # the CPU is shared: every quick measurement once per round, interleaved, and the best of the rounds, so that
    # darktable and the proxy see the same machine
    cases: dict[str, Callable[[], Any]] = {
        "dt_pipe": lambda: darktable_jpeg(dt, raw, base, work / "default.jpg"),
        "dt_sharpen": lambda: darktable_jpeg(dt, raw, sharp, work / "sharpen.jpg"),
        "dt_input": lambda: r.render(raw, plan.input_sidecar, work / "exposure-input.tif"),
        "bake": lambda: bake_lut(expo, EXPOSURE),
        "lut": lambda: lut.apply(image),
        "e2e": lambda: apply_image(expo, image, EXPOSURE),  # bake + check + LUT, as darkproxy apply runs
        "fwd_bwd": fwd_bwd,
    }
    best = {k: float("inf") for k in cases}
    for _ in range(max(1, repeats)):
        for k, fn in cases.items():
            t, _ = best_of(fn, 1)
            best[k] = min(best[k], t)
    out["image"] = {"raw": raw.name, "shape": [H, W], "megapixels": round(MP, 2)}
    out["darktable"] = {
        "version": dt.version,
        "default_pipe_jpeg_s_per_mp": best["dt_pipe"] / MP,
        "default_pipe_with_sharpen_jpeg_s_per_mp": best["dt_sharpen"] / MP,
        "exposure_input_tiff_s_per_mp": best["dt_input"] / MP,
        "note": "one darktable-cli process per image, start included; --hq true (full-size pipe)",
    }
    t_net, net = best_of(lambda: apply_tiled(expo, image, EXPOSURE), 1)  # 10+ s: once
    fast = lut.apply(image)
    assert apply_image(expo, image, EXPOSURE).path == "lut"
    a, b = fast, net
    out["exposure"] = {
        "network_forward_s_per_mp": t_net / MP,
        "network_forward_backward_s_per_mp": best["fwd_bwd"] / (crop.shape[-1] * crop.shape[-2] / 1e6),
        "lut_s_per_mp": best["lut"] / MP,
        "lut_end_to_end_s_per_mp": best["e2e"] / MP,
        "lut_bake_s": best["bake"],
        "lut_size": lut.size,
        "lut_domain": vars(lut.domain),
        "lut_vs_network": {
            "max_abs": float(np.abs(a - b).max()),
            "psnr": float(display_psnr(a, b)),
            "pu21_psnr": float(pu21_psnr(a, b)),
            "outside_domain": float(((image < lut.domain.x_lo) | (image > lut.domain.x_hi)).any(0).mean()),
        },
        "speedup_lut_vs_network": t_net / best["lut"],
        "lut_vs_darktable_pipe": (best["lut"] / MP) / out["darktable"]["default_pipe_jpeg_s_per_mp"],
    }
    del net, fast

    # ------------------------------------------------------------ multiscale
    sharpen = Proxy.load("zoo:sharpen")
    sc = sharpen.scale_range.lo if sharpen.scale_range is not None else None
    region = image if not quick else image[:, : H // 4, : W // 4]
    rmp = region.shape[1] * region.shape[2] / 1e6
    t_ms, ms_out = best_of(lambda: apply_tiled(sharpen, region, SHARPEN, scale=sc), 1)
    with torch.no_grad():
        ref = sharpen(crop, SHARPEN, scale=sc)
        t32, _ = best_of(lambda: sharpen(crop, SHARPEN, scale=sc), repeats)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t16, y16 = best_of(lambda: sharpen(crop, SHARPEN, scale=sc), repeats)
    cmp = crop.shape[-1] * crop.shape[-2] / 1e6
    out["multiscale"] = {
        "run": "zoo:sharpen",
        "scale": sc,
        "network_forward_tiled_s_per_mp": t_ms / rmp,
        "megapixels": round(rmp, 2),
        "crop_float32_s_per_mp": t32 / cmp,
        "crop_bfloat16_s_per_mp": t16 / cmp,
        "bfloat16_max_abs_vs_float32": float((y16.float() - ref).abs().max()),
        "bfloat16_psnr_vs_float32": float(display_psnr(y16.float()[0].numpy(), ref[0].numpy())),
    }
    del ms_out
    if compile_net:  # torch.compile of the multiscale network on one tile shape (a new shape compiles again)
        tile = torch.from_numpy(np.ascontiguousarray(image[:, :608, :608]))[None]  # a 512 tile with its halo
        u = sharpen.normalize(SHARPEN)
        # a cold compile: inductor's on-disk cache (read at compile time) in a fresh folder, not the user's
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-", dir=work)
        with torch.no_grad():
            eager_t, y0 = best_of(lambda: sharpen.model(tile, u), repeats)
            compiled = torch.compile(sharpen.model, dynamic=False)
            t_first, _ = best_of(lambda: compiled(tile, u), 1)
            comp_t, y1 = best_of(lambda: compiled(tile, u), repeats)
        tmp = tile.shape[-1] * tile.shape[-2] / 1e6
        out["multiscale"]["compile"] = {
            "tile": list(tile.shape[-2:]),
            "eager_s_per_mp": eager_t / tmp,
            "compiled_s_per_mp": comp_t / tmp,
            "compile_s": t_first - comp_t,
            "max_abs_vs_eager": float((y1 - y0).abs().max()),
        }

    # ----------------------------------------------------------- peak memory
    if big_mp > 0:
        import torch.nn.functional as F

        big = work / f"input-{big_mp:g}mp.tif"
        if not big.is_file():
            s = (big_mp / MP) ** 0.5
            x = F.interpolate(torch.from_numpy(image)[None], scale_factor=s, mode="bilinear", align_corners=False)
            write_tiff(big, x[0].numpy())
            del x
        scale_args = ["--scale", str(sc)] if sc is not None else []
        out["peak_memory"] = {
            "limit_gib": PEAK_LIMIT_GIB,
            "multiscale_network": peak_rss(
                ["apply", "zoo:sharpen", str(big), "-o", str(work / "big-sharpen.tif")] + scale_args
            ),
            "exposure_lut": peak_rss(["apply", "zoo:exposure", str(big), "-o", str(work / "big-exposure.tif")]),
        }
    out["machine"]["loadavg_after"] = machine_info()["loadavg"]
    return out


def markdown(res: dict[str, Any]) -> str:
    m, d, e, ms = res["machine"], res["darktable"], res["exposure"], res["multiscale"]
    lines = [
        "# Proxies at full size beside darktable-cli",
        "",
        f"{m['date']}; {m['cpu']}, {m['nproc']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"darktable {d['version']}; load average before {m['loadavg']}, after {m.get('loadavg_after')}. "
        f"Image: {res['image']['raw']}, {res['image']['shape'][1]}x{res['image']['shape'][0]} "
        f"({res['image']['megapixels']} MP). Quick rows: best of interleaved rounds; tiled networks: one run. "
        "`bench/bench_apply.py`.",
        "",
        "| what | s / MP |",
        "|---|---:|",
        f"| darktable-cli, default pipe to JPEG (process start included) | {d['default_pipe_jpeg_s_per_mp']:.3f} |",
        f"| darktable-cli, default pipe + sharpen to JPEG | {d['default_pipe_with_sharpen_jpeg_s_per_mp']:.3f} |",
        f"| darktable-cli, exposure's input (tap-out, float TIFF) | {d['exposure_input_tiff_s_per_mp']:.3f} |",
        f"| exposure proxy, network forward (tiled) | {e['network_forward_s_per_mp']:.3f} |",
        f"| exposure proxy, network forward + backward (1 MP crop) | {e['network_forward_backward_s_per_mp']:.3f} |",
        f"| **exposure proxy, fast path (3D LUT, {e['lut_size']}^3)** | **{e['lut_s_per_mp']:.3f}** |",
        f"| exposure proxy, fast path end to end (bake, check on 65k px, LUT) | {e['lut_end_to_end_s_per_mp']:.3f} |",
        f"| multiscale proxy (zoo:sharpen), network forward (tiled) | {ms['network_forward_tiled_s_per_mp']:.3f} |",
        f"| multiscale proxy, 1 MP crop, float32 | {ms['crop_float32_s_per_mp']:.3f} |",
        f"| multiscale proxy, 1 MP crop, bfloat16 autocast | {ms['crop_bfloat16_s_per_mp']:.3f} |",
        "",
        f"LUT bake: {e['lut_bake_s']:.2f} s (once per params). LUT against the network on the whole image: "
        f"max abs {e['lut_vs_network']['max_abs']:.2g}, display PSNR {e['lut_vs_network']['psnr']:.1f} dB, "
        f"PU21 PSNR {e['lut_vs_network']['pu21_psnr']:.1f} dB. The fast path is {e['speedup_lut_vs_network']:.0f}x "
        f"the network and {e['lut_vs_darktable_pipe']:.2f}x darktable's whole pipe per megapixel.",
        "",
        f"bfloat16 (multiscale, 1 MP): {ms['crop_float32_s_per_mp'] / ms['crop_bfloat16_s_per_mp']:.2f}x the "
        f"speed of float32, max abs {ms['bfloat16_max_abs_vs_float32']:.3g} "
        f"({ms['bfloat16_psnr_vs_float32']:.1f} dB) from it.",
    ]
    if "compile" in ms:
        c = ms["compile"]
        lines += [
            "",
            f"torch.compile (multiscale, one {c['tile'][1]}x{c['tile'][0]} tile): {c['compiled_s_per_mp']:.3f} s/MP "
            f"against {c['eager_s_per_mp']:.3f} eager, after {c['compile_s']:.0f} s of compiling (cold cache; again "
            f"for each tile shape), "
            f"max abs {c['max_abs_vs_eager']:.2g} from eager.",
        ]
    if "peak_memory" in res:
        pm = res["peak_memory"]
        lines += [
            "",
            f"Peak RSS of `darkproxy apply` on a {pm['exposure_lut']['megapixels']} MP TIFF (fresh process, "
            f"limit {pm['limit_gib']} GiB):",
            "",
        ]
        lines += ["| proxy | path | tiles | peak RSS (GiB) | seconds |", "|---|---|---:|---:|---:|"]
        for name, key in (("zoo:sharpen (multiscale)", "multiscale_network"), ("zoo:exposure", "exposure_lut")):
            r = pm[key]
            lines.append(f"| {name} | {r['path']} | {r['tiles']} | {r['peak_rss_gib']:.2f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mp", type=float, default=12.0, help="megapixels of the synthetic raw (default 12)")
    ap.add_argument("--big-mp", type=float, default=24.0, help="megapixels of the peak-memory image (0: skip)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="the multiscale network on a sixteenth of the image")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the multiscale network (~1 min)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--work", help="work folder (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as td:
        res = measure(Path(args.work or td), args.mp, args.big_mp, args.repeats, args.quick, args.compile)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "apply.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "apply.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
