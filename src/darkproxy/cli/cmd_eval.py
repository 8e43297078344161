"""darkproxy eval / darkproxy sweep."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args, parse_module_sets
from darkproxy.cli._util import add_command

ORDER = 40


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "eval", "evaluate a proxy against fresh darktable renders (report + metrics)",
                    "Render fresh ground truth with darktable for raws in --images and params drawn in the run's "
                    "training ranges (or pinned with --set), run the proxy on the same inputs, and report PSNR, "
                    "SSIM and CIEDE2000 (mean, 95th percentile) per sample and aggregated, next to the identity "
                    "baseline (output = input). Writes metrics.json, metrics.csv and index.html.",
                    "  darkproxy eval runs/exposure --images raws/ -n 8 -o reports/exposure\n"
                    "  darkproxy eval runs/colorbalancergb --images raws/ --set vibrance=0.3 -o rep/\n")
    p.add_argument("run", help="trained proxy run folder")
    p.add_argument("--images", required=True, help="folder of raws (use ones not seen in training)")
    p.add_argument("-n", type=int, default=8, help="number of (raw, params) samples (default 8)")
    p.add_argument("--set", action="append", metavar="PARAM=VALUE", help="pin a param (repeatable)")
    p.add_argument("--size", type=int, help="render size (default: the training size)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the param draws")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=run_eval)

    s = add_command(sub, common, "sweep", "sweep one param: proxy beside darktable, frames, plot, video",
                    "Sample PARAM across its training range (other params at their defaults), render darktable's "
                    "output for each value, and write numbered frames (proxy | darktable with the value written in), "
                    "a plot of PSNR against the value, sweep.json, and with --video an mp4 (imageio-ffmpeg; the "
                    "equivalent ffmpeg command is printed).",
                    "  darkproxy sweep runs/exposure exposure raws/astronaut.dng --steps 50 -o sweep/ --video sweep.mp4\n"
                    "  darkproxy sweep runs/exposure exposure raws/astronaut.dng --no-darktable -o sweep/\n")
    s.add_argument("run", help="trained proxy run folder")
    s.add_argument("param", help="parameter to sweep")
    s.add_argument("raw", help="raw file")
    s.add_argument("--steps", type=int, default=50, help="number of values (default 50)")
    s.add_argument("--video", metavar="FILE.mp4", help="also encode the frames as an mp4 (relative to -o)")
    s.add_argument("--no-darktable", action="store_true", help="proxy only (no darktable renders, no PSNR)")
    s.add_argument("--size", type=int, help="render size (default: the training size)")
    s.add_argument("--fps", type=int, default=10)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=run_sweep)


def _load(args):
    from darkproxy.proxy import Proxy

    return Proxy.load(args.run, device=args.device)


def run_eval(args: argparse.Namespace) -> int:
    from darkproxy.evaluate import evaluate

    proxy = _load(args)
    dt = darktable_from_args(args)
    fixed = {}
    for k, v in parse_module_sets(args.set, default_module=proxy.module).get(proxy.module, {}).items():
        spec = proxy.param_space.spec(k)
        try:
            fixed[k] = int(v) if spec.kind in ("int", "enum") else (v.lower() in ("1", "true") if spec.kind == "bool" else float(v))
        except ValueError:
            from darkproxy.errors import ParamValueError

            raise ParamValueError(f"{k} expects a number, got {v!r}") from None
    res = evaluate(dt, proxy, args.images, args.output, n=args.n, fixed=fixed, size=args.size, seed=args.seed,
                   progress=print)
    m = res.metrics
    ident = m["identity"]["psnr"] if m["identity"] else float("nan")
    print(f"proxy {m['proxy']['psnr']:.2f} dB (SSIM {m['proxy']['ssim']:.4f}, ΔE {m['proxy']['deltae_mean']:.3f}); "
          f"identity {ident:.2f} dB  ->  {res.out_dir / 'index.html'}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from darkproxy.evaluate import sweep

    proxy = _load(args)
    dt = darktable_from_args(args)
    res = sweep(dt, proxy, args.param, args.raw, args.output, steps=args.steps, video=args.video,
                with_darktable=not args.no_darktable, size=args.size, fps=args.fps)
    print(f"{len(res.frames)} frames in {res.out_dir / 'frames'}")
    if res.video:
        print(f"video: {res.video}\nequivalent: {res.ffmpeg_command}")
    return 0
