"""darkproxy samples: synthetic Bayer DNGs from photos (the embedded default data)."""

from __future__ import annotations

import argparse

from darkproxy.cli._util import add_command, emit
from darkproxy.progress import say

ORDER = 20


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "samples",
        "make synthetic Bayer DNGs from photos (the embedded default data)",
        "Turn ordinary photos into realistic Bayer DNGs by inverting a camera pipeline (Brooks et al. "
        "2019): sRGB -> linear -> XYZ -> camera RGB through a real camera's colour matrix, inverse "
        "white balance, mosaic on the chosen CFA, shot and read noise, black/white levels at 12 or 14 "
        "bits. The DNG tags (CFAPattern, ColorMatrix1, AsShotNeutral, BlackLevel, WhiteLevel) match, "
        "so darktable's render looks like the photo.\n\n"
        "Default sources: the colour photos shipped with scikit-image (astronaut, chelsea, coffee, "
        "rocket, motorcycle, immunohistochemistry, retina, colorwheel), written as NAME.dng. "
        "Re-running is cheap: a file that already has the requested CFA, bit depth and size is kept. "
        "Prints one written or kept path per line (--json: the DNGs' records).",
        "  darkproxy samples raws/\n"
        "  darkproxy samples raws/ --count 4 --size 256 --cfa GBRG --bits 12\n"
        "  darkproxy samples raws/ --from holiday.jpg --from cat.png\n",
    )
    p.add_argument("out_dir", help="folder to write the .dng files into (created if missing)")
    p.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="how many DNGs (default: one per source photo; more repeat with new noise)",
    )
    p.add_argument("--size", type=int, default=512, metavar="W", help="long side in pixels (default 512)")
    p.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="IMAGE",
        help="source photo, any format imageio reads (repeatable; default: scikit-image's photos)",
    )
    p.add_argument(
        "--cfa",
        default="RGGB",
        type=str.upper,
        choices=["RGGB", "BGGR", "GRBG", "GBRG"],
        help="CFA layout (default RGGB)",
    )
    p.add_argument("--bits", type=int, default=14, choices=[12, 14, 16], help="bit depth (default 14)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0; file k uses seed + k)")
    p.add_argument("--overwrite", action="store_true", help="rewrite existing files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from darkproxy.errors import RawError
    from darkproxy.raw.synth import make_samples

    for s in args.sources or []:
        if not Path(s).is_file():
            raise RawError(f"source image {s} does not exist")
    if args.size < 16:
        raise RawError("--size must be at least 16 pixels")
    infos = make_samples(
        args.out_dir,
        count=args.count,
        size=args.size,
        sources=args.sources,
        cfa=args.cfa,
        bits=args.bits,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    from dataclasses import asdict

    n_new = sum(i.written for i in infos)
    record = {
        "out_dir": args.out_dir,
        "written": n_new,
        "kept": len(infos) - n_new,
        "files": [asdict(i) for i in infos],
    }
    emit(args, record, "\n".join(str(i.path) for i in infos))
    say(f"{n_new} written, {len(infos) - n_new} kept in {args.out_dir}")
    return 0
