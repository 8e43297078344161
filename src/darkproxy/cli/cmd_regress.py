"""darkproxy regress, darkproxy regress-eval."""

from __future__ import annotations

import argparse

from darkproxy.cli._util import add_command, add_polish, emit
from darkproxy.errors import DarkproxyError
from darkproxy.progress import say

ORDER = 60


def _regress_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--params",
        metavar="A,B",
        help="free params to recover (default: all of the run's params; the others stay at their defaults)",
    )
    g.add_argument("--iters", type=int, default=300, help="Adam iterations per restart (default 300)")
    g.add_argument(
        "--restarts",
        type=int,
        default=4,
        help="starts: the defaults, then seeded random points (default 4; all run as one batch)",
    )
    g.add_argument(
        "--loss", choices=("l1", "mse", "ssim"), default="l1", help="loss on display-encoded images (default l1)"
    )
    add_polish(g, 0)
    g.add_argument("--lr", type=float, default=0.1, help="Adam learning rate on the param logits (default 0.1)")
    g.add_argument(
        "--schedule",
        choices=("cosine", "plateau"),
        default="cosine",
        help="learning-rate schedule (default cosine decay to 1%%)",
    )
    g.add_argument(
        "--max-pixels",
        type=int,
        default=2048,
        metavar="N",
        help="pointwise proxies are optimised on N random pixels (0: all; default 2048)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the random restarts (default 0)")
    g.add_argument(
        "--device", default=None, help="torch device for the proxy (default: config device; auto = cuda if available)"
    )


def register(sub, common: argparse.ArgumentParser) -> None:
    _register_regress(sub, common)
    _register_regress_eval(sub, common)


def _register_regress(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "regress",
        "recover a module's slider values from an image, and check them with darktable",
        "Find the params of RUN's module that turn the module input into TARGET, by gradient descent through "
        "the proxy (params bounded by a sigmoid, a hue wheel wrapped round instead; several restarts, best kept; "
        "enums/bools optimised relaxed, then snapped). The input is --input (a TIFF, e.g. a tap-out's "
        "input.tif) or is rendered from --raw "
        "(darktable's default history upstream, at the target's size). When the raw is known (--raw, or the "
        "meta.json of a tap-out next to --input) darktable renders the recovered params and darktable_psnr "
        "compares that render with the target on the tap-out history (modules after this one disabled), "
        "with darktable_pu21_psnr and darktable_hdrflip_mean on the unclipped images beside it. When the "
        "target's params are known (the meta.json of a tap-out next to --target), darktable also renders the "
        "full history (result.xmp, every module on: what a photographer sees) and the same history with the "
        "target's params: full_history_psnr compares the two.\n\n"
        "Writes into DIR: params.json (params, normalized, proxy_psnr, darktable_psnr, seconds, iters, "
        "restarts, loss_history; with --corrections rounds and kept_round), proxy_output.tif, and with a raw: "
        "result.xmp (the raw's default history "
        "with the module set to the recovered params: open it in darktable), result_tapout.xmp (the same "
        "with every later module disabled: the history darktable_psnr is measured on) and "
        "darktable_output.tif. --video adds frames/, optimisation.mp4 and optimisation.png.",
        "  darkproxy tapout photo.dng exposure --set exposure=1.3 --max-size 128 -o tap/\n"
        "  darkproxy regress run-exposure --input tap/input.tif --target tap/output.tif -o rec/\n"
        "  darkproxy regress run-exposure --raw photo.dng --target tap/output.tif --params exposure -o rec/\n"
        "  darkproxy regress run-cb --raw photo.dng --target look.tif --loss ssim --video -o rec-cb/\n",
    )
    p.add_argument("run", help="trained proxy run folder (darkproxy train -o RUN)")
    p.add_argument("--target", required=True, help="target image: float TIFF, linear Rec2020 (module output)")
    p.add_argument("--input", help="module input: float TIFF, linear Rec2020, same size as the target")
    p.add_argument(
        "--raw",
        help="the raw the target comes from (renders the input if --input is absent; "
        "always used to verify the params with darktable)",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--video", action="store_true", help="also write the optimisation as frames, mp4 and a plot")
    p.add_argument(
        "--scale",
        type=float,
        help="render scale of the images (output px per raw px; default: from the input's meta.json or the "
        "raw's size); a scale-dependent proxy refuses one outside its trained range",
    )
    p.add_argument(
        "--corrections",
        type=int,
        default=0,
        metavar="K",
        help="after the fit, K rounds of correction by darktable (needs the raw): it renders the recovered params, "
        "the proxy's error there is taken off the target and the params fitted again (one restart each); the "
        "round whose render is closest to the target is kept (params.json's rounds has each). For a proxy whose "
        "own error misplaces sliders: each round costs a darktable render and a fit (default 0)",
    )
    _regress_options(p)
    p.set_defaults(func=run_regress)


def _register_regress_eval(sub, common: argparse.ArgumentParser) -> None:
    e = add_command(
        sub,
        common,
        "regress-eval",
        "benchmark slider regression against darktable and black-box baselines",
        "For N random (raw, params) pairs (round-robin over the readable raws of DIR; params uniform in RUN's "
        "training ranges, seeded) darktable renders the target; the proxy regression recovers the params (input "
        "render + regression + darktable verification, timed: its time is the budget unit 1x) and black boxes "
        "drive darktable directly from the defaults: CMA-ES (one darktable-cli process per population, IPOP "
        "restarts; with one free param a batched 1-D bracket search, named bracket-1d) and Nelder-Mead (one "
        "render per process). Each black box runs once per sample up to its largest budget; its result at a "
        "budget B (a multiple of 1x, --budgets) is its best-so-far within B seconds of that run. Reports per "
        "method and budget the param error (fraction of the training range), darktable's display PSNR (pooled, "
        "min, p05), PU21 PSNR, HDR-FLIP, seconds and renders, and the break-even number of images from which the "
        "proxy's one-off cost (dataset generation + training) plus its per-image time beat the baseline at equal "
        "darktable PSNR. Raws darktable cannot open are skipped with a warning and listed. Writes "
        "OUT/results.json, results.md and quality_vs_time.png. Takes about (1 + sum of each baseline's largest "
        "budget) x the proxy's time per sample (defaults: ~101 x).",
        "  darkproxy regress-eval run-exposure --images raws/ -n 8 -o eval-exposure/\n"
        "  darkproxy regress-eval run-cb --images raws/ -n 24 --budgets 1,10,50 --baselines cma,nelder-mead:10 "
        "--generate-s 95 -o eval-cb/\n"
        "  darkproxy regress-eval run-cb --images raws/ -n 4 --size 96 --budget-s 20 --budgets 1,3 -o eval-cb/\n",
    )
    e.add_argument("run", help="trained proxy run folder")
    e.add_argument("--images", required=True, metavar="DIR", help="folder of raw files")
    e.add_argument("-n", type=int, default=8, help="number of samples (default 8)")
    e.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    e.add_argument("--size", type=int, default=128, help="render size in px (max of width, height; default 128)")
    b = e.add_argument_group("baselines")
    b.add_argument(
        "--budgets", default="1,10,50", metavar="M,M,...", help="budgets as multiples of the unit (default 1,10,50)"
    )
    b.add_argument(
        "--budget-s",
        type=float,
        default=None,
        metavar="S",
        help="seconds of the unit 1x (default: what the proxy method took on the same sample)",
    )
    b.add_argument(
        "--baselines",
        default="cma,nelder-mead",
        metavar="NAME[:MAX],...",
        help="black boxes: cma, nelder-mead; NAME:MAX runs that one only up to MAX x "
        "(default cma,nelder-mead, both up to the largest budget)",
    )
    b.add_argument(
        "--sigma0",
        type=float,
        default=0.25,
        help="initial step of CMA-ES / Nelder-Mead in the normalised params (default 0.25)",
    )
    b.add_argument(
        "--popsize",
        type=int,
        default=None,
        help="CMA-ES population / bracket points per generation (default 4 + 3 ln k; 1-D: 6)",
    )
    e.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads for the proxy regression (default: 1 on the CPU, where small proxies "
        "gain little from more and lose much when other processes share the cores)",
    )
    c = e.add_argument_group("proxy one-off cost (for the break-even)")
    c.add_argument(
        "--generate-s",
        type=float,
        default=None,
        metavar="S",
        help="seconds the dataset generation took (not recorded in the dataset; default: counted as 0)",
    )
    c.add_argument(
        "--train-s",
        type=float,
        default=None,
        metavar="S",
        help="seconds the training took (default: the run's metrics.json)",
    )
    _regress_options(e)
    e.set_defaults(func=run_regress_eval)


def _config(args: argparse.Namespace):
    from darkproxy.engines.regress import RegressConfig

    names = [s.strip() for s in args.params.split(",") if s.strip()] if args.params else None
    if args.params is not None and not names:
        raise DarkproxyError("--params: give at least one name (e.g. --params exposure,black)")
    cfg = RegressConfig(
        iters=args.iters,
        restarts=args.restarts,
        loss=args.loss,
        lr=args.lr,
        schedule=args.schedule,
        seed=args.seed,
        params=names,
        max_pixels=args.max_pixels or None,
        polish=args.polish,
    )
    cfg.check()
    return cfg


def _device(args: argparse.Namespace) -> str:
    from darkproxy.cli._util import config_from_args

    dev = args.device or config_from_args(args).device or "auto"
    if dev == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def run_regress(args: argparse.Namespace) -> int:
    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.engines.regress import resolve_free
    from darkproxy.engines.regress.recover import regress_files
    from darkproxy.proxy import load_proxy
    from darkproxy.viz.images import read_image

    cfg = _config(args)
    proxy = load_proxy(args.run, device=_device(args))
    resolve_free(proxy.param_space, cfg.params)
    read_image(args.target, "target")  # fail on a bad target before starting darktable
    if args.input is None and args.raw is None:
        raise DarkproxyError("give --input (the module input TIFF) or --raw (the raw the target comes from)")
    if args.corrections < 0:
        raise DarkproxyError(f"--corrections must be >= 0, got {args.corrections}")
    if args.input is not None:
        read_image(args.input, "input")
    dt = darktable_from_args(args)
    rec = regress_files(
        proxy,
        args.target,
        args.output,
        input_path=args.input,
        raw=args.raw,
        config=cfg,
        dt=dt,
        video=args.video,
        log=say,
        scale=args.scale,
        corrections=args.corrections,
    )
    vals = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec["params"].items())
    dtp = rec["darktable_psnr"]
    emit(
        args,
        rec,
        f"{vals}  proxy {rec['proxy_psnr']:.2f} dB"
        + (
            f", darktable {dtp:.2f} dB (tap-out history; PU21 {rec['darktable_pu21_psnr']:.2f} dB)"
            if dtp is not None
            else " (no raw: darktable not checked)"
        )
        + (f", full history {rec['full_history_psnr']:.2f} dB" if rec.get("full_history_psnr") is not None else "")
        + (f", kept round {rec['kept_round']} of {len(rec['rounds'])}" if rec.get("rounds") else "")
        + f", {rec['seconds']:.1f} s -> {args.output}/params.json"
        + (f", {args.output}/result.xmp" if dtp is not None else ""),
    )
    return 0


def run_regress_eval(args: argparse.Namespace) -> int:
    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.data.raws import find_raws
    from darkproxy.engines.regress.benchmark import (
        EvalConfig,
        break_even_text,
        parse_baselines,
        parse_budgets,
        regress_eval,
    )
    from darkproxy.proxy import load_proxy

    cfg = EvalConfig(
        n=args.n,
        seed=args.seed,
        size=args.size,
        budgets=parse_budgets(args.budgets),
        budget_s=args.budget_s,
        baselines=parse_baselines(args.baselines),
        sigma0=args.sigma0,
        popsize=args.popsize,
        generate_s=args.generate_s,
        train_s=args.train_s,
        threads=args.threads,
        regress=_config(args),
    )
    cfg.check()
    raws = find_raws(args.images)
    proxy = load_proxy(args.run, device=_device(args))
    dt = darktable_from_args(args)
    res = regress_eval(dt, proxy, raws, args.output, cfg, log=say)
    a = res["aggregate"]

    def line(name: str, r: dict) -> str:
        return (
            f"{name}: median param error {r['median_param_error']:.4f}, darktable PSNR "
            f"{r['darktable_psnr']:.1f} dB pooled (min {r['darktable_psnr_min']:.1f}), "
            f"median {r['median_seconds']:.1f} s, "
            f"median {r['median_renders']:.0f} renders"
        )

    lines = [line("proxy", a["proxy"])]
    for lab in res["methods"]:
        lines += [line(f"{lab} {mult}x", r) for mult, r in a[lab].items()]
    for lab in res["methods"]:
        lines.append(f"break-even vs {lab}: {break_even_text(res['break_even'][lab]['darktable_psnr'])}")
    if res["unreadable_raws"]:
        lines.append(
            f"skipped {len(res['unreadable_raws'])} unreadable raw(s): "
            + ", ".join(u["raw"] for u in res["unreadable_raws"])
        )
    lines.append(f"-> {args.output}/results.json, results.md, quality_vs_time.png")
    emit(args, res, "\n".join(lines))
    return 0
