"""darkproxy render."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args, parse_module_sets
from darkproxy.cli._util import add_command, emit

ORDER = 14


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "render",
        "render a raw with darktable to a float linear Rec2020 TIFF",
        "Render INPUT through darktable-cli (isolated config, in-memory library) to a 32-bit "
        "float TIFF in linear Rec2020, unclipped. The history is the given XMP, or darktable's "
        "own default history for the raw; --set and --disable edit it (names and ranges checked "
        "against darktable's schemas).",
        "  darkproxy render photo.dng -o out.tif\n"
        "  darkproxy render photo.dng -o out.tif --set exposure.exposure=1.5 --disable filmicrgb\n"
        "  darkproxy render photo.dng -o out.tif --xmp edit.xmp --max-size 512\n",
    )
    p.add_argument("input", help="raw file (anything darktable opens)")
    p.add_argument("-o", "--output", required=True, help="output .tif")
    p.add_argument("--xmp", help="history to use (default: darktable's defaults for the raw)")
    p.add_argument("--set", action="append", metavar="MODULE.PARAM=VALUE", help="set a parameter (repeatable)")
    p.add_argument("--disable", action="append", metavar="MODULE", help="disable a module (repeatable)")
    p.add_argument("--enable", action="append", metavar="MODULE", help="enable a module (repeatable)")
    p.add_argument(
        "--clamp", action="store_true", help="clip out-of-range values to darktable's $MIN/$MAX instead of failing"
    )
    p.add_argument("--max-size", type=int, metavar="N", help="cap width and height at N pixels")
    p.add_argument(
        "--hq",
        action="store_true",
        help="with --max-size: run the pipe at full resolution and downscale at the end (darktable-cli "
        "--hq true; slower). Default: scale at demosaic, as tap-outs and datasets are rendered",
    )
    p.add_argument("--save-xmp", metavar="FILE", help="also write the edited history as an XMP sidecar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.errors import DarkproxyError, RawError

    if not Path(args.input).is_file():
        raise RawError(f"raw file {args.input} does not exist")
    if not args.output.lower().endswith((".tif", ".tiff")):
        raise DarkproxyError(f"output {args.output} must be a .tif file")
    dt = darktable_from_args(args)
    base = read_xmp(args.xmp) if args.xmp else dt.default_history(args.input)
    side = dt.edit(
        base, updates=parse_module_sets(args.set), enable=args.enable, disable=args.disable, clamp=args.clamp
    )
    if args.save_xmp:
        side.write(args.save_xmp)
    out = dt.renderer(max_size=args.max_size, high_quality=args.hq).render(args.input, side, args.output)
    emit(args, {"output": str(out), "xmp": args.save_xmp}, str(out))
    return 0
