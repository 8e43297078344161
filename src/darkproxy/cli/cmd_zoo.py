"""darkproxy zoo list | train | eval."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args
from darkproxy.cli._util import add_command, emit
from darkproxy.progress import say

ORDER = 65


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "zoo",
        "the proxy zoo: a trained proxy per darktable module",
        "One proxy per darktable module over its curated sliders (darkproxy.data.ranges.ZOO_MODULES), "
        "with its fidelity on raws it never saw. The package ships a zoo trained for darktable 4.2.1; "
        "`zoo:MODULE` works wherever a run folder does (eval, sweep, regress, pipeline configs); "
        "DARKPROXY_ZOO=DIR points it at a zoo you trained.",
        "  darkproxy zoo list\n"
        "  darkproxy zoo list --json\n"
        "  darkproxy zoo train exposure sharpen --work zoo-work -o my-zoo\n"
        "  DARKPROXY_ZOO=my-zoo darkproxy eval zoo:exposure --images raws/ -n 4 -o rep/\n"
        "  darkproxy zoo eval --images raws/ -n 4 -o zoo-eval/\n",
    )
    zs = p.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND")
    fmt = argparse.RawDescriptionHelpFormatter
    ls = zs.add_parser(
        "list",
        parents=[common],
        formatter_class=fmt,
        help="the zoo's modules, sliders and held-out fidelity",
        description="List the zoo (DARKPROXY_ZOO, else the shipped one): per module the architecture, the "
        "sliders covered, the darktable version it was trained with and its held-out display PSNR. With "
        "a darktable installed, says whether its module struct is the one the proxy was trained on. --json: the "
        "list of the zoo.json records.",
    )
    ls.set_defaults(func=run_list)
    tr = zs.add_parser(
        "train",
        parents=[common],
        formatter_class=fmt,
        help="generate, train, evaluate and publish proxies (resumable)",
        description="For each MODULE (default: every module with curated ranges): generate a dataset with "
        "darktable on the plan's training raws, train, evaluate on held-out raws, and publish into the zoo "
        "folder. Every stage is recorded in the work folder: re-running the same command resumes.",
        epilog="examples:\n  darkproxy zoo train --work zoo-work -o my-zoo\n"
        "  darkproxy zoo train vignette --plan my-plan.toml --work zoo-work -o my-zoo\n"
        "  darkproxy zoo train --cluster ray://head:10001 --work zoo-work -o my-zoo\n",
    )
    tr.add_argument("modules", nargs="*", metavar="MODULE")
    tr.add_argument("--plan", help="zoo plan TOML (default: the shipped darkproxy/zoo/plan.toml)")
    tr.add_argument("--work", required=True, help="folder for raws, datasets, runs, reports, stage records")
    tr.add_argument("-o", "--output", required=True, help="the zoo folder to publish into")
    tr.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    tr.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="one Ray task per module (generate, train, eval; a GPU each where the cluster has them), results "
        "gathered here: ray (a local Ray for this run), auto, ray://HOST:PORT or HOST:PORT "
        "(pip install 'darkproxy[cluster]'; README: Running on a cluster)",
    )
    tr.set_defaults(func=run_train)
    ev = zs.add_parser(
        "eval",
        parents=[common],
        formatter_class=fmt,
        help="evaluate zoo proxies against fresh darktable renders",
        description="`darkproxy eval zoo:MODULE` for each MODULE (default: all of the zoo's) on the raws "
        "in --images; one report per module under OUT, and OUT/zoo-eval.json.",
    )
    ev.add_argument("modules", nargs="*", metavar="MODULE")
    ev.add_argument("--images", required=True, help="folder of raws")
    ev.add_argument("-n", type=int, default=4, help="samples per module (default 4)")
    ev.add_argument("-o", "--output", required=True)
    ev.set_defaults(func=run_eval)

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def run_list(args: argparse.Namespace) -> int:
    from darkproxy.proxy.compat import schema_status
    from darkproxy.proxy.locate import list_zoo, zoo_root

    rows = list_zoo()
    try:
        dt = darktable_from_args(args)
    except Exception:  # noqa: BLE001 - listing works without darktable
        dt = None
    if dt is not None:
        for r in rows:
            r["schema_status"] = schema_status(r, dt)
    lines = [f"zoo {zoo_root()}: {len(rows)} modules"]
    for r in rows:
        b = r.get("baseline_psnr", r.get("identity_psnr"))
        ident = "-" if b is None else f"{b:.1f}"
        status = f" [{r['schema_status']}]" if r.get("schema_status", "same") != "same" else ""
        lines.append(
            f"  {r['module']:16s} {r['arch']:11s} {len(r['params']):2d}/{r['float_params_in_schema']:<2d} sliders  "
            f"held out {r['heldout_psnr']:6.1f} dB (worst {r['heldout_psnr_min']:6.1f}, baseline {ident})"
            f"  darktable {r['darktable_version']}{status}"
        )
    emit(args, rows, "\n".join(lines))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from darkproxy.zoo import ZooPlan, check_modules, train_zoo

    mods = check_modules(args.modules)  # refuses uncurated modules before darktable starts
    plan = ZooPlan.load(args.plan)
    dt = darktable_from_args(args)
    recs = train_zoo(dt, mods, args.work, args.output, plan=plan, device=args.device, log=say, cluster=args.cluster)
    emit(args, {"zoo": args.output, "published": recs}, f"published {len(recs)} proxies into {args.output}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from darkproxy.fsutil import write_json
    from darkproxy.zoo import eval_zoo

    dt = darktable_from_args(args)
    rows = eval_zoo(dt, args.modules, args.images, args.output, n=args.n, log=say)
    write_json(Path(args.output) / "zoo-eval.json", rows)
    lines = []
    for r in rows:
        ident = r["identity"]["psnr"] if r["identity"] else None
        lines.append(
            f"  {r['module']:16s} {r['proxy']['psnr']:6.1f} dB (worst {r['proxy']['psnr_min']:6.1f}), "
            f"identity {'-' if ident is None else format(ident, '.1f')}"
        )
    emit(args, rows, "\n".join(lines))
    return 0
