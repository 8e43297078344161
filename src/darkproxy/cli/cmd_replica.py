"""darkproxy replica [regress]."""

from __future__ import annotations

import argparse
import sys

from darkproxy.cli._util import add_command, add_polish, emit

ORDER = 62


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "replica",
        "the whole darktable pipe, raw to display, differentiable, beside darktable's own export",
        "Run the history darktable would apply to RAW (its defaults on import, or --xmp, plus --set; a --set "
        "on a module the history leaves off turns it on) through darkproxy's replica, raw to display sRGB: "
        "the mosaic stages (rawprepare, temperature, highlights, demosaic) are darktable's own render "
        "(passthrough: the replica starts from the demosaiced image; with --from-mosaic they run as exact "
        "ports from the raw's CFA, colorin's camera matrix measured from darktable's renders), then every "
        "enabled module runs as an exact torch implementation of darktable's closed form where there is one "
        "(exposure, color calibration, color balance rgb, filmic rgb, sigmoid, the curves, colorout to the sRGB "
        "display, ...) or as the zoo's proxy where the proxy was trained (the item's version, its sliders in the "
        "trained ranges, the other params as trained) and reproduces the module (its worst held-out render >= 30 "
        "dB; --prefer-proxy for a weaker one). A module with neither is refused in one line "
        "(--allow-missing: darktable's tap-out there, reported). DIR gets replica.png, darktable.png "
        "(darktable-cli's 8-bit sRGB export of the same history at the same size), error.png, history.xmp, "
        "summary.json (psnr, deltae_mean, deltae_p95, seconds, stages: [{module, kind, psnr_vs_tapout, "
        "psnr_alone}]) and index.html.\n\n"
        "A history item the replica cannot read faithfully is refused in one line: items of an older params "
        "version are upgraded by darktable itself (its legacy_params, read back from a 32 px export of the "
        "sidecar), a version darktable cannot read is refused naming both versions, as is a proxy trained on "
        "another version; exposure's compensation of the camera's exposure bias reads the raw's EXIF. "
        "A second instance of a module (darktable's multi_priority N, in the order the sidecar's "
        "iop_order_list gives it) is a stage of its own, named MODULE#N: --set exposure#1.exposure=0.5, "
        "--free exposure#1.exposure. "
        "--dry-run lists every history item (module, instance, on/off, params version) with what would run it "
        "(exact and the versions it implements, proxy zoo:MODULE, darktable's render, or refused and why) "
        "without rendering (but darktable's upgrade of old items); --json for the same as JSON.\n\n"
        "`darkproxy replica regress RAW --target IMG --free module.param,...` recovers the freed sliders of "
        "the whole chain from a display-referred sRGB target (PNG, JPEG, TIFF) rendered from RAW at the "
        "same size, writes result.xmp (the full history), renders it with darktable and reports display "
        "PSNR and ΔE2000 against the target.\n\n"
        "The zoo's local proxies (for what no port covers: censorize's pixelation, ...) are trained over render "
        "scales 0.1-1: without "
        "--max-size the size is the largest the chain's proxies accept (the raw's long side times the top of "
        "the narrowest trained range), else the raw's long side capped at 512 px; a scale outside a proxy's "
        "range is refused in one line.",
        "  darkproxy replica photo.dng -o rep/\n"
        "  darkproxy replica photo.dng --set exposure.exposure=1 --set sharpen.amount=1.2 --max-size 128 -o rep/\n"
        "  darkproxy replica photo.dng --xmp edit.xmp --allow-missing -o rep/\n"
        "  darkproxy replica photo.dng --xmp edit.xmp --dry-run\n"
        "  darkproxy replica regress photo.dng --target look.png --free exposure.exposure,filmicrgb.contrast "
        "-o fit/\n",
    )
    p.add_argument("args", nargs="+", metavar="[regress] RAW", help="raw file; `regress RAW` to recover sliders")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (required unless --dry-run)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list every history item with what would run it (exact, proxy, darktable's render, refused: why); "
        "render nothing",
    )
    p.add_argument("--xmp", help="history to start from (default: darktable's defaults for the raw)")
    p.add_argument("--set", action="append", metavar="MODULE.PARAM=VALUE", help="edit the history (repeatable)")
    p.add_argument("--max-size", type=int, metavar="N", help="render size (default: what the chain's proxies accept)")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="run a module with neither an exact stage nor a proxy as darktable's tap-out (said in the summary)",
    )
    p.add_argument(
        "--prefer-proxy",
        metavar="MODULE,...",
        default="",
        help="run these modules through their zoo proxy even where an exact stage exists (to compare), or where "
        "the proxy's worst held-out render is below 30 dB (its fidelity is in the summary)",
    )
    p.add_argument(
        "--from-mosaic",
        action="store_true",
        help="start from the raw's CFA: rawprepare, temperature, highlights and demosaic (RCD) run as exact ports "
        "(white balance regressable: --free temperature.red,temperature.blue); refused in one line naming a "
        "mosaic stage without a port at the history's settings",
    )
    p.add_argument("--proxy", action="append", metavar="MODULE=RUN", help="a proxy run for a module (default: zoo)")
    g = p.add_argument_group("regress")
    g.add_argument("--target", help="display-referred sRGB target (PNG/JPEG/TIFF) rendered from RAW")
    g.add_argument(
        "--free",
        default="",
        metavar="MODULE.PARAM,...",
        help="sliders to recover (default: the usual sliders of every chain module that has them)",
    )
    g.add_argument("--iters", type=int, default=200, help="optimiser iterations per restart (default 200)")
    g.add_argument("--restarts", type=int, default=4, help="restarts (default 4)")
    add_polish(g, 10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--corrections",
        type=int,
        default=0,
        metavar="K",
        help="after the fit, K rounds of correction by darktable: it renders the recovered sliders, the replica's "
        "error there is taken off the target and the sliders fitted again (one restart each); the round whose "
        "render is closest to the target is kept. For replicas with proxies (--prefer-proxy), whose own error "
        "misplaces sliders: each round costs a darktable render and a fit (default 0)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from darkproxy.cli._dt import darktable_from_args, parse_module_sets
    from darkproxy.cli._util import parse_assignments
    from darkproxy.errors import DarkproxyError

    pos = list(args.args)
    mode = "run"
    if pos[0] == "regress":
        mode, pos = "regress", pos[1:]
    if len(pos) != 1:
        raise DarkproxyError("expected one RAW (`darkproxy replica RAW` or `darkproxy replica regress RAW`)")
    raw = pos[0]
    dt = darktable_from_args(args)
    # messages on stderr under --json: stdout is the one JSON record
    log_to = sys.stderr if getattr(args, "json", False) else sys.stdout
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=log_to, flush=True))
    sets = parse_module_sets(args.set)
    prefer = [m for m in args.prefer_proxy.split(",") if m.strip()]
    runs = parse_assignments(args.proxy, "--proxy")
    if args.dry_run:
        if mode != "run":
            raise DarkproxyError("--dry-run lists what `darkproxy replica RAW` would run; not with regress")
        from darkproxy.replica.run import dry_run, format_dry_run

        rep = dry_run(
            dt,
            raw,
            xmp=args.xmp,
            sets=sets,
            allow_missing=args.allow_missing,
            prefer_proxy=prefer,
            runs=runs,
            from_mosaic=args.from_mosaic,
        )
        emit(args, rep, format_dry_run(rep))
        return 0
    if not args.output:
        raise DarkproxyError("-o/--output DIR is required (or --dry-run to list what would run)")
    if mode == "run":
        if args.target:
            raise DarkproxyError("--target is for `darkproxy replica regress RAW --target IMG`")
        from darkproxy.replica.run import run_replica

        s = run_replica(
            dt,
            raw,
            args.output,
            xmp=args.xmp,
            sets=sets,
            max_size=args.max_size,
            allow_missing=args.allow_missing,
            prefer_proxy=prefer,
            runs=runs,
            log=say,
            from_mosaic=args.from_mosaic,
        )
        emit(
            args,
            s,
            f"replica vs darktable's export: {s['psnr']:.2f} dB, ΔE2000 mean {s['deltae_mean']:.2f} "
            f"(p95 {s['deltae_p95']:.2f}), {s['seconds']:.1f} s; "
            + ", ".join(f"{st['module']} {st['kind']}" for st in s["stages"])
            + f"\n{args.output}/index.html",
        )
        return 0
    if not args.target:
        raise DarkproxyError("replica regress needs --target IMG (a display-referred sRGB image rendered from RAW)")
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.replica.fit import replica_regress

    free = [f.strip() for f in args.free.split(",") if f.strip()] or None
    cfg = RegressConfig(iters=args.iters, restarts=args.restarts, seed=args.seed, polish=args.polish)
    cfg.check()  # a bad --iters / --restarts / --polish in one line before any render
    r = replica_regress(
        dt,
        raw,
        args.target,
        args.output,
        free=free,
        xmp=args.xmp,
        sets=sets,
        allow_missing=args.allow_missing,
        prefer_proxy=prefer,
        runs=runs,
        config=cfg,
        log=say,
        from_mosaic=args.from_mosaic,
        corrections=args.corrections,
    )
    emit(
        args,
        r,
        f"recovered {', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in r['params'].items())}"
        f"\nreplica vs target {r['replica_psnr']:.2f} dB; darktable's render of result.xmp vs target "
        f"{r['darktable_psnr']:.2f} dB, ΔE2000 mean {r['darktable_deltae_mean']:.2f}\n{args.output}/result.xmp",
    )
    return 0
