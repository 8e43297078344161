"""darkproxy match."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from darkproxy.cli._util import add_command, add_polish, emit

ORDER = 64

DESCRIPTION = (
    "Fit the sliders of a chain of darktable modules so that darktable's render of RAW looks like REFERENCE, "
    "a display-referred image of the same shot (JPEG, PNG or TIFF, 8 or 16 bit; sRGB, or tagged with an ICC "
    "profile, which is converted to sRGB unless its content is sRGB's; read upright, as its EXIF orientation "
    "says). Without REFERENCE, the camera's own look is matched: the preview the camera embedded in RAW "
    "(read with LibRaw, turned upright as the raw's orientation says, written to DIR/preview.png). "
    "The reference may have another size and be a few pixels off: it is aligned to darktable's render "
    "(resize, zoom within 4 % per axis, translation); a reference of another scene or framing is refused. "
    "The sliders are optimised through darkproxy's differentiable replica of darktable "
    "(`darkproxy replica`), then darktable renders the result and every figure is measured on darktable's "
    "own render. White balance: put temperature in --chain (e.g. --chain temperature,exposure,colorbalancergb,"
    "tonemapper): the match then starts from the raw's mosaic (the replica's exact rawprepare, white balance, "
    "highlights and demosaic; at most 512 px unless --max-size) and fits the red and blue coefficients; "
    "result.xmp has them, the style leaves them out (white balance belongs to each raw).\n\n"
    "DIR gets result.xmp (RAW's history with the matched sliders: copy it beside the raw as RAW.xmp, or "
    "`darktable-cli RAW result.xmp out.jpg`), result.dtstyle (a darktable style of the matched modules and "
    "darktable's auto-applied exposure and tone mapper: import it in the lighttable's styles module and apply it "
    "to any raw; with darktable-cli, once imported: `darktable-cli IN OUT --style NAME --style-overwrite` "
    "(darktable-cli's default, append, would add a second exposure and tone mapper)), summary.json (deltae_mean, "
    "deltae_p95, psnr, default_deltae_mean: darktable's defaults against the reference, params, seconds), the "
    "images and index.html.\n\n"
    "`darkproxy match --pairs DIR -o OUT` fits one style to every (raw, reference) pair of DIR matched by file "
    "stem (IMG_1.dng + IMG_1.jpg: 'make darktable look like my camera'), holding the last pairs out of the fit "
    "(--holdout) to measure how the style carries to other shots; each fitted pair gives as many pixels "
    "(--pixels-per-pair) and runs through its own replica of its history.\n\n"
    "`darkproxy match --batch DIR -o OUT` matches a whole shoot, each raw on its own: against the image of the "
    "same stem beside it (the camera's JPEG) or, without one, the preview embedded in the raw; starting from "
    "the raw's own sidecar when it has one (its other history kept). Each result goes beside its raw as "
    "darktable names sidecars (IMG_1.CR3.xmp; one that was there first is kept as IMG_1.CR3.xmp.bak, and a "
    "rerun starts from it; --no-sidecars: only OUT). OUT gets images/RAWNAME/ per raw, summary.json and "
    "index.html (a contact sheet: reference beside darktable's render, ΔE2000 per image). A rerun reuses the "
    "images finished with the same settings. An image that fails is reported in its row and the others go "
    "on; the exit status is then 1.\n\n"
    "--shared (with --pairs or --batch) fits one look for all the images with some sliders left to each image "
    "(--per-image, default exposure.exposure: a shoot's look, each photo's own exposure): every image's "
    "pixels are pooled into one fit, each image with its own copy of the per-image sliders; a held-out pair "
    "(--pairs) gets the look as fitted on the others and only its own per-image sliders fitted on it. Each "
    "image's result.xmp (and --batch's sidecar) has its own values; the style has the look and the first "
    "image's per-image values. Its default chain adds color calibration and an rgb curve to the look (see "
    "--chain). White balance (temperature) runs on each raw's mosaic and cannot be pooled: --shared refuses it."
)


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "match",
        "the darktable edit (XMP and style) that reproduces a reference look: a camera JPEG, another editor's export",
        DESCRIPTION,
        "  darkproxy match IMG_0042.CR3 IMG_0042.JPG -o look/\n"
        "  darkproxy match IMG_0042.CR3 -o look/      # the camera's look, from the preview inside the raw\n"
        "  darkproxy match photo.dng export.png --chain exposure,colorbalancergb,sigmoid --max-size 1024 -o look/\n"
        "  darkproxy match photo.dng ref.jpg --free exposure.exposure,filmicrgb.contrast -o look/\n"
        "  darkproxy match photo.dng ref.jpg --chain temperature,exposure,colorbalancergb,tonemapper -o look/\n"
        "  darkproxy match --pairs camera-jpegs/ -o camera-style/\n"
        "  darkproxy match photo.dng ref.jpg --chain auto -o look/   # the stages the reference asks for\n"
        "  darkproxy match photo.dng libraw.png --chain exposure,colorbalancergb,rgbcurve,-tonemapper -o look/\n"
        "  darkproxy match --batch shoot/ -o shoot-match/   # every raw of the shoot, its sidecar beside it\n"
        "  darkproxy match --batch shoot/ --shared -o shoot-look/   # one look for the shoot, exposure per raw\n",
    )
    p.add_argument("raw", nargs="?", metavar="RAW", help="the raw file")
    p.add_argument(
        "reference",
        nargs="?",
        metavar="REFERENCE",
        help="the look to match (JPEG, PNG, TIFF; default: the preview embedded in RAW)",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--pairs", metavar="DIR", help="fit one style to every (raw, reference) pair of DIR")
    p.add_argument("--batch", metavar="DIR", help="match every raw of DIR on its own (a shoot)")
    p.add_argument(
        "--no-sidecars", action="store_true", help="--batch: leave the raws' folder alone (results only in OUT)"
    )
    p.add_argument(
        "--shared",
        action="store_true",
        help="--pairs/--batch: one look fitted to all the images, the --per-image sliders fitted per image",
    )
    p.add_argument(
        "--per-image",
        default="exposure.exposure",
        metavar="MODULE.PARAM,...",
        help="--shared: the sliders each image keeps its own value of (default: exposure.exposure)",
    )
    p.add_argument("--holdout", type=int, help="--pairs: pairs held out of the fit (default: a quarter, >= 1)")
    p.add_argument(
        "--pixels-per-pair",
        type=int,
        default=4096,
        metavar="N",
        help="--pairs: pixels drawn from each fitted pair's aligned region (0: every pixel; default 4096)",
    )
    p.add_argument(
        "--chain",
        metavar="MODULE,...",
        help="modules whose sliders are matched; one the history leaves off is turned on (channelmixerrgb, color "
        "calibration: starting as the identity with no chromatic adaptation, its channel gains and colorfulness "
        "fitted; rgbcurve: starting as the identity through five nodes at Lab L 0, 25, 50, 75, 100, the y of the "
        "four above black fitted; bilat, local contrast: starting as the identity in local laplacian mode, its "
        "detail, highlights and shadows fitted through darktable's local laplacian pyramid: a whole-image stage, "
        "it joins the fit after the other sliders (then all together on the whole region, 100 iterations); not "
        "with --pairs); temperature (white balance) starts the match from the raw's mosaic; tonemapper: the "
        "history's tone mapper (filmicrgb, darktable's default up to 5.0, or sigmoid, its default from 5.2; naming "
        "one of them turns the history's other off); -MODULE turns the history's module off (-tonemapper: no tone "
        "mapper, a display-referred edit that clips at white as LibRaw and camera JPEGs do: e.g. "
        "exposure,colorbalancergb,rgbcurve,-tonemapper); auto: exposure, then tonemapper or -tonemapper,rgbcurve "
        "(the tone mapper fitted, or off with a tone curve), colorbalancergb, temperature, channelmixerrgb and "
        "rgbcurve each kept if it lowers the ΔE2000 of a held-out half of the reference by 3 %% (the summary's "
        "chain_auto says which) (default: exposure,colorbalancergb,tonemapper; with --shared also "
        "channelmixerrgb,rgbcurve: a look pooled over a whole shoot holds them, plain --pairs over-fits them)",
    )
    p.add_argument(
        "--free",
        default="",
        metavar="MODULE.PARAM,...",
        help="the sliders to fit (default: the sliders a look is made of, per chain module)",
    )
    p.add_argument(
        "--demosaic",
        choices=("choose", "keep"),
        help="choose: after the fit darktable renders the result with each demosaic setting of the sensor's family "
        "(Bayer: the history's own, AMaZE, PPG, LMMSE with refine & medians; X-Trans: "
        "Markesteijn 1- and 3-pass, frequency domain chroma) and result.xmp keeps the one closest to the "
        "reference (a camera JPEG's smoothness and moiré are its demosaic's, not a slider's; the summary's "
        "demosaic lists each one's ΔE2000; the style leaves demosaic out: it belongs to the sensor); with --pairs "
        "and --shared one setting for all, the lowest mean ΔE2000 over the fitted pairs (held-out pairs get it "
        "unseen); keep: the history's own (default: choose)",
    )
    p.add_argument("--xmp", help="history to start from (default: darktable's defaults for the raw)")
    p.add_argument("--max-size", type=int, metavar="N", help="working size in px (default: the raw's, at most 512)")
    p.add_argument("--style-name", metavar="NAME", help="the style's name (default: 'darkproxy match STEM')")
    p.add_argument("--iters", type=int, default=300, help="optimiser iterations per restart (default 300)")
    p.add_argument("--restarts", type=int, default=4, help="restarts (default 4)")
    add_polish(p, 10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.errors import DarkproxyError
    from darkproxy.match import DEFAULT_CHAIN, SHARED_CHAIN, match_pairs
    from darkproxy.match.auto import match_any

    if args.chain is None:
        chain = list(SHARED_CHAIN if args.shared else DEFAULT_CHAIN)
    else:
        chain = [m.strip() for m in args.chain.split(",") if m.strip()]
    free = [f.strip() for f in args.free.split(",") if f.strip()] or None
    cfg = RegressConfig(iters=args.iters, restarts=args.restarts, seed=args.seed, polish=args.polish)
    cfg.check()  # a bad --iters / --restarts / --polish in one line before any render
    # messages on stderr under --json: stdout is the one JSON record
    log_to = sys.stderr if getattr(args, "json", False) else sys.stdout
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=log_to, flush=True))
    per_image = [n.strip() for n in args.per_image.split(",") if n.strip()] if args.shared else []
    if args.per_image != "exposure.exposure" and not args.shared:
        raise DarkproxyError("--per-image is for --shared")
    if args.shared and not (args.pairs or args.batch):
        raise DarkproxyError("--shared is for --pairs DIR or --batch DIR (one look for many images)")
    if args.shared and not per_image:
        raise DarkproxyError("--shared needs at least one --per-image slider (e.g. exposure.exposure)")
    if args.batch:
        return _batch(args, chain, free, cfg, per_image, say)
    if args.no_sidecars:
        raise DarkproxyError("--no-sidecars is for --batch")
    if args.pairs:
        if args.raw or args.reference:
            raise DarkproxyError("--pairs DIR takes no RAW REFERENCE (the pairs are DIR's files)")
        dt = darktable_from_args(args)
        s = match_pairs(
            dt,
            args.pairs,
            args.output,
            chain=chain,
            free=free,
            holdout=args.holdout,
            max_size=args.max_size,
            pixels_per_pair=args.pixels_per_pair or None,
            config=cfg,
            style_name=args.style_name,
            seed=args.seed,
            per_image=per_image,
            log=say,
            demosaic=args.demosaic != "keep",
        )

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        emit(
            args,
            s,
            f"one style for {len(s['pairs'])} pairs: ΔE2000 {f(s['fit_deltae_mean'])} on the fitted pairs (defaults "
            f"{f(s['fit_default_deltae_mean'])}), {f(s['heldout_deltae_mean'])} held out (defaults "
            f"{f(s['heldout_default_deltae_mean'])})\n{args.output}/result.dtstyle\n{args.output}/index.html",
        )
        return 0
    if not args.raw:
        raise DarkproxyError("expected RAW [REFERENCE] (or --pairs DIR)")
    if args.holdout is not None or args.pixels_per_pair != 4096:
        raise DarkproxyError("--holdout and --pixels-per-pair are for --pairs")
    dt = darktable_from_args(args)
    if not args.reference:
        from darkproxy.match.reference import embedded_reference

        args.reference = str(embedded_reference(args.raw, args.output))
        say(f"reference: the preview embedded in {args.raw} ({args.reference})")
    s = match_any(
        dt,
        args.raw,
        args.reference,
        args.output,
        chain,
        free=free,
        xmp=args.xmp,
        max_size=args.max_size,
        config=cfg,
        style_name=args.style_name,
        log=say,
        demosaic=args.demosaic != "keep",
    )
    emit(
        args,
        s,
        f"darktable's render of result.xmp vs the reference: ΔE2000 mean {s['deltae_mean']:.2f} (p95 "
        f"{s['deltae_p95']:.2f}), {s['psnr']:.2f} dB; darktable's defaults: ΔE2000 {s['default_deltae_mean']:.2f}; "
        f"{s['seconds']:.0f} s"
        + (f"; chain (auto): {', '.join(s['chain'])}" if "chain_auto" in s else "")
        + f"\n{args.output}/result.xmp\n{args.output}/result.dtstyle\n{args.output}/index.html",
    )
    return 0


def _batch(
    args: argparse.Namespace, chain: list[str], free: list[str] | None, cfg: Any, per_image: list[str], say: Any
) -> int:
    """--batch DIR: every raw of the shoot on its own (--shared: one look for all); exit 1 when one failed."""
    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.errors import DarkproxyError

    if args.raw or args.reference or args.pairs:
        raise DarkproxyError("--batch DIR takes no RAW REFERENCE nor --pairs (the shoot is DIR's raws)")
    from darkproxy.match.batch import match_batch, match_batch_shared

    dt = darktable_from_args(args)
    common = {"chain": chain, "free": free, "max_size": args.max_size, "config": cfg, "log": say}
    if per_image:
        b = match_batch_shared(
            dt, args.batch, args.output, per_image=per_image, write_sidecars=not args.no_sidecars,
            demosaic=args.demosaic != "keep", **common,
        )  # fmt: skip
    else:
        b = match_batch(
            dt, args.batch, args.output, write_sidecars=not args.no_sidecars, demosaic=args.demosaic != "keep",
            **common,
        )  # fmt: skip
    n_ok = len(b["images"]) - b["failed"]
    mean = "-" if b["deltae_mean"] is None else f"{b['deltae_mean']:.2f}"
    dflt = "-" if b["default_deltae_mean"] is None else f"{b['default_deltae_mean']:.2f}"
    emit(
        args,
        b,
        f"{n_ok} of {len(b['images'])} raws matched: ΔE2000 mean {mean} (darktable's defaults {dflt}); "
        f"{b['failed']} failed\n{args.output}/index.html",
    )
    return 1 if b["failed"] else 0
