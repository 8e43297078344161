"""darkproxy tapout."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args, parse_module_sets
from darkproxy.cli._util import add_command, emit

ORDER = 22


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "tapout",
        "render one module's exact input and output for a raw",
        "Write MODULE's input and output as darktable computes them: two renders of the raw's "
        "history with every later module disabled, the target off (input.tif) and on with the "
        "given params (output.tif), float32 linear Rec2020. Pre-demosaic modules get the packed "
        "Bayer mosaic (R, G1, G2, B at half resolution) as input. meta.json records the module, "
        "its params, the enabled upstream modules, the darktable version and the render scale "
        "(output px per raw px). --scale S renders a --max-size px region of the raw at scale S "
        "(darktable's crop module cuts it; S = 1 is a full-resolution crop), centred.",
        "  darkproxy tapout photo.dng exposure --set exposure=1 -o tap/\n"
        "  darkproxy tapout photo.dng colorbalancergb --set saturation_global=0.3 --max-size 512 -o tap2/\n"
        "  darkproxy tapout photo.dng temperature -o tap3/\n"
        "  darkproxy tapout photo.dng sharpen --set radius=3 --scale 1 --max-size 256 -o tap4/\n",
    )
    p.add_argument("raw", help="raw file")
    p.add_argument("module", help="darktable module (operation) name")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--set", action="append", metavar="PARAM=VALUE", help="set a parameter of MODULE (repeatable)")
    p.add_argument("--xmp", help="upstream history (default: darktable's defaults for the raw)")
    p.add_argument("--max-size", type=int, metavar="N", help="cap width/height (ignored for pre-demosaic modules)")
    p.add_argument(
        "--scale",
        type=float,
        help="render a --max-size px region (default 512) at this render scale, in (0, 1], instead of the whole raw",
    )
    p.add_argument("--clamp", action="store_true", help="clip out-of-range values instead of failing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from darkproxy.darktable.tapout import tapout
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.errors import RawError

    if not Path(args.raw).is_file():
        raise RawError(f"raw file {args.raw} does not exist")
    dt = darktable_from_args(args)
    dt.schemas.get(args.module)
    params = parse_module_sets(args.set, default_module=args.module).get(args.module, {})
    base = read_xmp(args.xmp) if args.xmp else None
    region = None
    if args.scale is not None:
        from darkproxy.darktable.tapout import raw_size, region_for_scale
        from darkproxy.errors import ParamValueError

        wh = raw_size(args.raw)
        if not 0 < args.scale <= 1:
            raise ParamValueError(f"--scale {args.scale}: render scales are output px per raw px, in (0, 1]")
        if wh is None:
            raise RawError(f"{args.raw}: rawpy cannot read its size, which --scale needs")
        region = region_for_scale(wh, args.max_size or 512, args.scale)
    tp = tapout(dt, args.raw, args.module, params, max_size=args.max_size, base=base, clamp=args.clamp, region=region)
    d = tp.save(args.output)
    record = {
        "input": str(d / "input.tif"),
        "input_shape": list(tp.input.shape),
        "output": str(d / "output.tif"),
        "output_shape": list(tp.output.shape),
        "meta": tp.meta,
    }
    emit(args, record, f"{d}/input.tif {tuple(tp.input.shape)}  {d}/output.tif {tuple(tp.output.shape)}  {d}/meta.json")
    return 0
