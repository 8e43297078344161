"""darkproxy generate / darkproxy verify."""

from __future__ import annotations

import argparse

from darkproxy.cli._util import add_command, emit
from darkproxy.data.sampling import SAMPLERS
from darkproxy.data.scale import parse_scales

ORDER = 30


def register(sub, common: argparse.ArgumentParser) -> None:
    from darkproxy.data.ranges import defaults_help

    p = add_command(
        sub,
        common,
        "generate",
        "render a dataset of module input/output pairs (resumable)",
        "Tap MODULE out of every raw in --images with N sampled parameter settings and store the pairs "
        "(float16 linear Rec2020 .npy, see docs/dataset-format.md). Params not listed stay at darktable's "
        "default for the raw. Re-running the same command resumes a killed run; a different command on the "
        "same dataset is refused. Samples are split train/val/test by source raw. With --crops K>1 each "
        "render (at 2x --size) gives K random --size px crops. With --scales each sample is a region of the raw "
        "rendered at a render scale (output px per raw px) drawn from the given range: local modules (sharpen, "
        "lowpass, bloom...) scale their radii with it, and a proxy trained this way knows every scale in range "
        "(--scales 1 alone: full-resolution crops).\n\n"
        "Exit status: 0 when the samples are stored, also when darktable gave a few degenerate images (a "
        "constant output from a non-constant input, NaN or inf values): those samples are left out, listed in "
        "DATASET/failed.jsonl and counted in a warning; 1 when darktable itself failed (a crash or a timeout, "
        "after one retry: failed.jsonl, re-run with --retry-failed) or no usable sample was stored; 2 for a "
        "usage error (bad options, a dataset made with other settings).\n\n"
        "default free params and training ranges:\n" + defaults_help(),
        "  darkproxy generate exposure -o ds/ --images raws/ -n 64\n"
        "  darkproxy generate sharpen -o ds2/ --images raws/ -n 256 --size 256 --crops 4 --workers 2\n"
        "  darkproxy generate sharpen -o ds4/ --images raws/ -n 512 --size 128 --scales 0.1:1\n"
        "  darkproxy generate colorbalancergb -o ds3/ --images raws/ --params saturation_global,vibrance "
        "--range vibrance=-0.3:0.3 --fix contrast=0.1\n"
        "  darkproxy verify ds/\n",
    )
    p.add_argument("module", help="darktable module (operation) name, e.g. exposure")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (created or resumed)")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of raw files")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--params", metavar="A,B,...", help="free params (default: the module's defaults above)")
    p.add_argument("--fix", action="append", metavar="PARAM=VALUE", help="pin a param to a value (repeatable)")
    p.add_argument("--range", action="append", metavar="PARAM=LO:HI", help="training range of a param (repeatable)")
    p.add_argument(
        "--sampler",
        default="sobol",
        choices=SAMPLERS,
        help="design (default sobol); sparse: each sample moves 1-3 sliders from their defaults, a quarter move "
        "all; mixed: the same, half move all; edges: mixed with half the rows drawing their sliders nearer "
        "the ends of their ranges (the arcsine law)",
    )
    p.add_argument(
        "--size", type=int, default=512, metavar="PX", help="sample size in px (longest side / crop side; default 512)"
    )
    p.add_argument("--crops", type=int, default=1, metavar="K", help="crops per render (default 1: the full image)")
    p.add_argument(
        "--scales",
        metavar="LO:HI|S1,S2,...",
        help="render scales (output px per raw px, in (0, 1]): LO:HI draws log-uniformly, a list takes each in "
        "turn; each sample is a --size px region rendered at its scale (default: the whole raw at --size)",
    )
    p.add_argument("--workers", type=int, default=2, metavar="W", help="parallel darktable-cli processes (default 2)")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="render on a Ray cluster, --workers tasks at a time: ray (a local Ray for this run), auto, "
        "ray://HOST:PORT or HOST:PORT; this machine writes every file (pip install 'darkproxy[cluster]'; "
        "README: Running on a cluster)",
    )
    p.add_argument("--batch", type=int, default=12, metavar="B", help="renders per darktable-cli process (default 12)")
    p.add_argument("--seed", type=int, default=0, help="sampler / crop / split seed (default 0)")
    p.add_argument("--no-probe", action="store_true", help="skip the pointwise probe (dataset.json pointwise: null)")
    p.add_argument("--retry-failed", action="store_true", help="retry samples recorded in failed.jsonl")
    p.set_defaults(func=run)

    v = add_command(
        sub,
        common,
        "verify",
        "check a dataset's files against its manifest",
        "Check every sample: files exist, sha256, shape, dtype float16, finite values, unique ids, "
        "one split per raw. Prints a one-line summary (--json: {dataset, ok, samples, problems, summary}); "
        "exits non-zero on any problem.",
        "  darkproxy verify ds/\n",
    )
    v.add_argument("dataset", help="dataset folder")
    v.add_argument("--all", action="store_true", help="list every problem, not just the summary")
    v.set_defaults(func=run_verify)


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import asdict

    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.cli._util import parse_assignments
    from darkproxy.cluster import renderer_factory, session  # imports ray only with --cluster
    from darkproxy.data.generate import GenerateFailed, GenerateOptions, generate
    from darkproxy.data.ranges import parse_range
    from darkproxy.errors import DarktableRenderError

    params = [s.strip() for s in args.params.split(",") if s.strip()] if args.params else None
    ranges = dict(parse_range(r) for r in (args.range or []))
    fixed = parse_assignments(args.fix, "--fix")
    opts = GenerateOptions(
        module=args.module,
        n=args.n,
        params=params,
        fixed=fixed,
        ranges=ranges,
        sampler=args.sampler,
        size=args.size,
        crops=args.crops,
        scales=parse_scales(args.scales) if args.scales else None,
        workers=args.workers,
        seed=args.seed,
        batch=args.batch,
        probe=not args.no_probe,
        retry_failed=args.retry_failed,
    )
    dt = darktable_from_args(args)
    if args.cluster:  # renders as Ray tasks (connected on the first render, inside the session below)
        opts.renderer_factory = renderer_factory(args.cluster, dt, workers=args.workers)
    try:
        with session(args.cluster, dt.version, workers=args.workers, render_timeout=dt.config.render_timeout):
            res = generate(dt, args.images, args.output, opts, progress=not args.quiet)
    except DarktableRenderError as e:  # darktable failed on a whole raw (its module input): exit 1 as for samples
        raise GenerateFailed(str(e)) from None
    rate = f", {res.samples_per_s:.2f} samples/s" if res.written else ""
    emit(
        args,
        {"dataset": args.output, **asdict(res), "samples_per_s": res.samples_per_s},
        f"{args.output}: {res.total}/{res.requested} samples ({res.written} new, {res.skipped} already there), "
        f"{res.failed} failed ({res.failed_render} darktable failures, {res.failed_values} degenerate images){rate}; "
        f"{res.renders} darktable-cli runs; pointwise={res.pointwise}"
        + (f"; skipped raws: {', '.join(res.failed_raws)}" if res.failed_raws else ""),
    )
    failed = f"{args.output}/failed.jsonl"
    if res.failed_render:
        raise GenerateFailed(
            f"darktable failed (crash or timeout, retried once) on {res.failed_render} sample(s), listed in {failed}; "
            f"{res.total} stored: re-run with --retry-failed"
        )
    if not res.total:
        why = (
            f"darktable's image was degenerate for all {res.failed_values} (constant, NaN or inf; see {failed})"
            if res.failed_values
            else "none was rendered"
        )
        raise GenerateFailed(f"no usable sample stored in {args.output}: {why}")
    if res.failed_values:
        print(
            f"darkproxy: warning: {res.failed_values} sample(s) left out: darktable's image was degenerate (constant, "
            f"NaN or inf; see {failed}); {res.total} stored",
            file=sys.stderr,
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import sys

    from darkproxy.data.store import verify_dataset

    rep = verify_dataset(args.dataset)
    if args.all and not args.json:  # the JSON record lists them all
        for p in rep.problems:
            print(p, file=sys.stderr)
    record = {"dataset": args.dataset, "ok": rep.ok, "samples": rep.samples, "problems": rep.problems}
    emit(args, {**record, "summary": rep.summary()}, f"{args.dataset}: {rep.summary()}")
    return 0 if rep.ok else 1
