"""darkproxy pipeline check | eval | regress."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args
from darkproxy.cli._util import add_command, emit

ORDER = 60


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "pipeline",
        "chain proxies into a differentiable darktable pipeline",
        "Chain trained proxies (a TOML config lists the stages in pipe order: module, run, free and "
        "fixed params) into a differentiable replica of a darktable pipeline.",
        "  darkproxy pipeline check pipe.toml\n"
        "  darkproxy pipeline eval pipe.toml --images raws/ -n 4 -o rep/\n"
        "  darkproxy pipeline regress pipe.toml --raw raws/a.dng --target target.tif -o out/\n",
    )
    ps = p.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    c = ps.add_parser(
        "check",
        parents=[common],
        formatter_class=fmt,
        help="check stage order and data spaces",
        description="Verify the stages against darktable's own pipe order (read from libdarktable) "
        "and that neighbouring proxies share a data space.",
        epilog="examples:\n  darkproxy pipeline check pipe.toml\n  darkproxy pipeline check pipe.toml --json\n",
    )
    c.add_argument("pipeline_config", metavar="CONFIG", help="pipeline TOML")
    c.set_defaults(func=run_check)

    e = ps.add_parser(
        "eval",
        parents=[common],
        formatter_class=fmt,
        help="chained proxies vs darktable, per stage and end to end",
        description="darktable renders the whole chain with random params from each raw; the chained "
        "proxies run from the first stage's input; PSNR/SSIM/ΔE per stage and end to end "
        "(metrics.json, index.html).",
        epilog="examples:\n  darkproxy pipeline eval pipe.toml --images raws/ -n 4 -o rep/\n",
    )
    e.add_argument("pipeline_config", metavar="CONFIG", help="pipeline TOML")
    e.add_argument("--images", required=True)
    e.add_argument("-n", type=int, default=4)
    e.add_argument("--size", type=int)
    e.add_argument("--seed", type=int, default=4321)
    e.add_argument("-o", "--output", required=True)
    e.set_defaults(func=run_eval)

    r = ps.add_parser(
        "regress",
        parents=[common],
        formatter_class=fmt,
        help="recover every free param of every stage jointly",
        description="Optimise all free params of all stages jointly through the chain so that the chained "
        "proxies turn the raw's first-stage input into TARGET; write result.xmp (full history darktable "
        "renders), params.json with darktable_psnr (darktable's render of the recovered params vs the "
        "target), and frames/video/plot of the optimisation.",
        epilog="examples:\n  darkproxy pipeline regress pipe.toml --raw raws/a.dng --target t.tif -o out/\n",
    )
    r.add_argument("pipeline_config", metavar="CONFIG", help="pipeline TOML")
    r.add_argument("--raw", required=True)
    r.add_argument("--target", required=True, help="float TIFF rendered from RAW (linear Rec2020)")
    r.add_argument("--iters", type=int, default=300)
    r.add_argument("--restarts", type=int, default=4)
    r.add_argument("--loss", default="l1", choices=["l1", "mse", "ssim"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-video", action="store_true")
    r.add_argument("-o", "--output", required=True)
    r.set_defaults(func=run_regress)

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def _load(args):
    from darkproxy.pipeline import PipelineConfig, ProxyPipeline, check_pipeline

    cfg = PipelineConfig.load(args.pipeline_config)
    dt = darktable_from_args(args)
    pipe = ProxyPipeline.load(cfg)
    res = check_pipeline(cfg, dt.schemas.pipe_order(2), [p.run_info for p in pipe.proxies])
    return cfg, dt, pipe, res


def run_check(args: argparse.Namespace) -> int:
    cfg, dt, pipe, res = _load(args)
    lines = [f"  {s.module:18s} {i} -> {o}   ({s.run})" for s, (i, o) in zip(cfg.stages, res.spaces, strict=True)]
    lines.append(
        "ok: order matches darktable's pipe and data spaces chain"
        if res.ok
        else "\n".join(f"problem: {p}" for p in res.problems)
    )
    record = {"ok": res.ok, "problems": res.problems, "order": res.order, "spaces": res.spaces}
    emit(args, record, "\n".join(lines))
    if not res.ok:
        from darkproxy.pipeline import PipelineError

        raise PipelineError(res.problems[0])
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from darkproxy.pipeline import PipelineError, pipeline_eval

    cfg, dt, pipe, res = _load(args)
    if not res.ok:
        raise PipelineError(res.problems[0])
    m = pipeline_eval(dt, pipe, args.images, args.output, n=args.n, size=args.size, seed=args.seed)
    lines = [
        f"  {name:18s} {s['psnr']:.2f} dB (worst {s['psnr_min']:.2f}), PU21 {s['pu21_psnr']:.2f} dB"
        for name, s in m["stages"].items()
    ]
    e = m["end_to_end"]
    lines.append(
        f"end to end {e['psnr']:.2f} dB (worst {e['psnr_min']:.2f}), PU21 {e['pu21_psnr']:.2f} dB, HDR-FLIP "
        f"{e['hdrflip_mean']:.4f} (identity {m['identity']['psnr']:.2f} dB) -> {args.output}/index.html"
    )
    emit(args, {**m, "report": f"{args.output}/index.html"}, "\n".join(lines))
    return 0


def run_regress(args: argparse.Namespace) -> int:
    from darkproxy.pipeline import PipelineError, pipeline_regress

    cfg, dt, pipe, res = _load(args)
    if not res.ok:
        raise PipelineError(res.problems[0])
    r = pipeline_regress(
        dt,
        pipe,
        args.raw,
        args.target,
        args.output,
        iters=args.iters,
        restarts=args.restarts,
        loss=args.loss,
        seed=args.seed,
        video=not args.no_video,
    )
    emit(
        args,
        r,
        f"recovered: {r['params']}\n"
        f"proxy PSNR {r['proxy_psnr']:.2f} dB, darktable PSNR {r['darktable_psnr']:.2f} dB on the chain history "
        f"(PU21 {r['darktable_pu21_psnr']:.2f} dB) -> {args.output}/result.xmp",
    )
    return 0
