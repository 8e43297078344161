"""darkproxy demo."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args
from darkproxy.cli._util import add_command, emit
from darkproxy.progress import say

ORDER = 0


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "demo",
        "the whole tour on built-in synthetic raws: data, proxies, regression, report",
        "Make synthetic raws, generate darktable data for exposure and colorbalancergb (and sharpen with "
        "--full), train the proxies, evaluate them on held-out raws against fresh darktable renders, run a "
        "slider regression and a pipeline regression verified by darktable, render a parameter sweep video, "
        "and write report.html and summary.json. Re-running reuses finished stages; Ctrl-C leaves "
        "nothing corrupt. --quick (the default) takes about 3 min on 2 CPU cores.",
        "  darkproxy demo\n  darkproxy demo --full -o ~/darkproxy-demo\n",
    )
    p.add_argument("-o", "--output", help="output folder (default: $DARKPROXY_HOME/demo)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", default=True, help="small and fast (default)")
    g.add_argument(
        "--full", action="store_true", help="bigger data, longer training, sharpen too (about 14 min on 2 cores)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from darkproxy.demo import run_demo

    dt = darktable_from_args(args)
    out = args.output or str(dt.config.home / ("demo" if not args.full else "demo-full"))
    s = run_demo(dt, out, quick=not args.full, device=args.device, log=say)
    lines = []
    for m, v in s["proxies"].items():
        lines.append(
            f"{m:16s} held-out {v['heldout_psnr']:.2f} dB (worst sample {v['heldout_psnr_min']:.2f}; identity "
            f"{v['identity_psnr']:.2f} dB), PU21 {v['heldout_pu21_psnr']:.2f} dB "
            f"(worst {v['heldout_pu21_psnr_min']:.2f})"
        )
    for key, label in (("slider_regression", "slider regression"), ("pipeline_regression", "pipeline regression")):
        r = s[key]
        lines.append(
            f"{label}: param error median {100 * r['param_error_median']:.2f}%, "
            f"worst {100 * r['param_error_max']:.2f}% "
            f"of range; darktable {r['darktable_psnr']:.2f} dB (PU21 {r['darktable_pu21_psnr']:.2f}), full history "
            f"{r['full_history_psnr']:.2f} dB"
        )
    sw = s["sweep"]
    lines.append(
        f"exposure sweep: {sw['psnr']:.2f} dB pooled, worst step {sw['psnr_min']:.2f} dB; PU21 worst step "
        f"{sw['pu21_psnr_min']:.2f} dB"
    )
    emit(args, s, "\n".join(lines))
    return 0
