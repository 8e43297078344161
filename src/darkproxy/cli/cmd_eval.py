"""darkproxy eval / darkproxy sweep."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args, parse_module_sets
from darkproxy.cli._util import add_command, emit
from darkproxy.progress import say

ORDER = 40


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "eval",
        "evaluate a proxy against fresh darktable renders (report + metrics)",
        "Render fresh ground truth with darktable for raws in --images and params drawn in the run's "
        "training ranges (or pinned with --set, or drawn in --range, which may reach past the training "
        "ranges to measure extrapolation), run the proxy on the same inputs, and report per sample and "
        "aggregated, next to the identity baseline (output = input): display PSNR (pooled over samples, "
        "with the worst sample psnr_min and the 5th percentile psnr_p05), PU21 PSNR and HDR-FLIP on the "
        "unclipped scene-referred images (they see highlights above 1.0), SSIM and CIEDE2000. Raws "
        "darktable cannot open are skipped with a warning. Writes metrics.json, metrics.csv and "
        "index.html.",
        "  darkproxy eval runs/exposure --images raws/ -n 8 -o reports/exposure\n"
        "  darkproxy eval runs/exposure --images raws/ --range exposure=-2:4 -o reports/extrapolation\n"
        "  darkproxy eval runs/colorbalancergb --images raws/ --set vibrance=0.3 -o rep/\n",
    )
    p.add_argument("run", help="trained proxy run folder")
    p.add_argument("--images", required=True, help="folder of raws (use ones not seen in training)")
    p.add_argument("-n", type=int, default=8, help="number of (raw, params) samples (default 8)")
    p.add_argument("--set", action="append", metavar="PARAM=VALUE", help="pin a param (repeatable)")
    p.add_argument(
        "--range",
        action="append",
        metavar="PARAM=LO:HI",
        dest="ranges",
        help="draw PARAM uniformly in [LO, HI] instead of its training range (repeatable)",
    )
    p.add_argument("--size", type=int, help="render size (default: the training size)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the param draws")
    p.add_argument(
        "--scales",
        metavar="S1,S2,...",
        help="render scales (output px per raw px) to evaluate at, each with the same -n draws; metrics.json "
        "gets per_scale (default: a scale-dependent proxy at scales in its trained range, others on whole raws)",
    )
    p.add_argument(
        "--sampler",
        default="uniform",
        choices=("uniform", "sparse"),
        help="param draws: uniform = every slider at once (default); sparse = 1-3 sliders moved from their "
        "defaults, a quarter of the draws all (how the zoo is trained and evaluated)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=run_eval)

    s = add_command(
        sub,
        common,
        "sweep",
        "sweep one param: proxy beside darktable, frames, plot, video",
        "Sample PARAM across its training range (other params at their defaults), render darktable's "
        "output for each value, and write numbered frames (proxy | darktable with the value written in), "
        "a plot of PSNR against the value, sweep.json, and with --video an mp4 (imageio-ffmpeg; the "
        "equivalent ffmpeg command is printed).",
        "  darkproxy sweep runs/exposure exposure raws/astronaut.dng --steps 50 -o sweep/ --video sweep.mp4\n"
        "  darkproxy sweep runs/exposure exposure raws/astronaut.dng --no-darktable -o sweep/\n",
    )
    s.add_argument("run", help="trained proxy run folder")
    s.add_argument("param", help="parameter to sweep")
    s.add_argument("raw", help="raw file")
    s.add_argument("--steps", type=int, default=50, help="number of values (default 50)")
    s.add_argument(
        "--range",
        metavar="LO:HI",
        dest="value_range",
        help="sweep [LO, HI] instead of the training range (past it: extrapolation)",
    )
    s.add_argument("--video", metavar="FILE.mp4", help="also encode the frames as an mp4 (relative to -o)")
    s.add_argument("--no-darktable", action="store_true", help="proxy only (no darktable renders, no PSNR)")
    s.add_argument("--size", type=int, help="render size (default: the training size)")
    s.add_argument(
        "--scale",
        type=float,
        help="render scale (output px per raw px): a --size px region of the raw at that scale "
        "(default: the whole raw, or the middle of a scale-dependent proxy's trained range)",
    )
    s.add_argument("--fps", type=int, default=10)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=run_sweep)


def _load(args):
    from darkproxy.proxy import Proxy

    return Proxy.load(args.run, device=args.device)


def run_eval(args: argparse.Namespace) -> int:
    from darkproxy.engines.evaluate import evaluate_proxy

    proxy = _load(args)
    dt = darktable_from_args(args)
    fixed = {}
    for k, v in parse_module_sets(args.set, default_module=proxy.module).get(proxy.module, {}).items():
        spec = proxy.param_space.spec(k)
        try:
            fixed[k] = (
                int(v)
                if spec.kind in ("int", "enum")
                else (v.lower() in ("1", "true") if spec.kind == "bool" else float(v))
            )
        except ValueError:
            from darkproxy.errors import ParamValueError

            raise ParamValueError(f"{k} expects a number, got {v!r}") from None
    ranges = {}
    for item in args.ranges or []:
        k, _, lohi = item.partition("=")
        ranges[k.strip()] = _lo_hi(lohi, f"--range {item}")
    res = evaluate_proxy(
        dt,
        proxy,
        args.images,
        args.output,
        n=args.n,
        fixed=fixed,
        size=args.size,
        seed=args.seed,
        ranges=ranges,
        progress=say,
        sampler=args.sampler,
        scales=_scales(args.scales),
    )
    m = res.metrics
    lines = [
        f"{label}: display {agg['psnr']:.2f} dB (worst {agg['psnr_min']:.2f}, p05 {agg['psnr_p05']:.2f}), "
        f"PU21 {agg['pu21_psnr']:.2f} dB (worst {agg['pu21_psnr_min']:.2f}), HDR-FLIP "
        f"{agg['hdrflip_mean']:.4f}, SSIM {agg['ssim']:.4f}, ΔE {agg['deltae_mean']:.3f}"
        for label, agg in (("proxy", m["proxy"]), ("identity", m["identity"]))
        if agg
    ]
    for ps in m.get("per_scale") or []:
        ident = f", identity {ps['identity_psnr']:.2f}" if ps.get("identity_psnr") is not None else ""
        lines.append(
            f"scale {ps['scale']:g}: display {ps['psnr']:.2f} dB (worst {ps['psnr_min']:.2f}), "
            f"PU21 {ps['pu21_psnr']:.2f} dB{ident}"
        )
    report = res.out_dir / "index.html"
    emit(args, {**m, "report": report}, "\n".join([*lines, f"report: {report}"]))
    return 0


def _scales(text: str | None) -> list[float] | None:
    if not text:
        return None
    from darkproxy.data.scale import parse_scales
    from darkproxy.errors import ParamValueError

    got = parse_scales(text)
    if isinstance(got, tuple) and ":" in text:
        raise ParamValueError(f"--scales {text}: eval takes a list of scales (e.g. 0.1,0.3,1), not a range")
    return list(got)


def _lo_hi(text: str, what: str) -> tuple[float, float]:
    from darkproxy.errors import ParamValueError

    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise ParamValueError(f"{what}: expected LO:HI (two numbers)") from None


def run_sweep(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from darkproxy.engines.evaluate import sweep

    proxy = _load(args)
    dt = darktable_from_args(args)
    res = sweep(
        dt,
        proxy,
        args.param,
        args.raw,
        args.output,
        steps=args.steps,
        video=args.video,
        with_darktable=not args.no_darktable,
        size=args.size,
        fps=args.fps,
        value_range=_lo_hi(args.value_range, "--range") if args.value_range else None,
        scale=args.scale,
    )
    lines = [f"{len(res.frames)} frames in {res.out_dir / 'frames'}"]
    if res.summary:
        sm = res.summary
        lines.append(
            f"display {sm['psnr']:.2f} dB (worst step {sm['psnr_min']:.2f}), PU21 {sm['pu21_psnr']:.2f} dB "
            f"(worst step {sm['pu21_psnr_min']:.2f}), HDR-FLIP {sm['hdrflip_mean']:.4f}"
        )
    if res.video:
        lines.append(f"video: {res.video}\nequivalent: {res.ffmpeg_command}")
    emit(args, asdict(res), "\n".join(lines))
    return 0
