"""darkproxy xmp show."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import darktable_from_args
from darkproxy.cli._util import add_command, emit

ORDER = 12


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "xmp",
        "inspect darktable XMP sidecars",
        "Inspect darktable XMP sidecars.",
        "  darkproxy xmp show photo.dng.xmp\n",
    )
    xs = p.add_subparsers(dest="xmp_command", metavar="SUBCOMMAND")
    s = xs.add_parser(
        "show",
        help="decode a sidecar's history with named params",
        parents=[common],
        description="Decode every history item of a darktable XMP sidecar into named parameter "
        "values, and its blend params (off, or mode, opacity, masks, colour space; --json: every "
        "field). Items whose modversion differs from the installed module are shown as opaque "
        "blobs with the reason; --raw RAW has darktable upgrade them first, as it does when it loads the "
        "sidecar for RAW (one 32 px export; shown vOLD->vNEW). --json: a list of the history items.",
        epilog="examples:\n  darkproxy xmp show IMG_0001.CR2.xmp\n  darkproxy xmp show result.xmp --json\n"
        "  darkproxy xmp show old-edit.xmp --raw IMG_0001.CR2\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("file", help="XMP sidecar")
    s.add_argument("--raw", help="the raw the sidecar belongs to: decode old items as darktable upgrades them")
    s.set_defaults(func=run_show)

    def usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def run_show(args: argparse.Namespace) -> int:
    from darkproxy.darktable.xmp import read_xmp

    side = read_xmp(args.file)
    dt = darktable_from_args(args)
    if args.raw:
        side = dt.upgraded(args.raw, side)
    items = side.decode(dt.schemas)
    lines = [
        f"{args.file}: {len(side.items)} history items, history_end {side.history_end}, "
        f"iop_order_version {side.iop_order_version}"
    ]
    for i, d in enumerate(items):
        it = d.item
        mark = " " if i < side.history_end else "x"
        state = "on " if it.enabled else "off"
        inst = f" #{it.multi_priority}" if it.multi_priority else ""
        version = f"v{it.upgraded_from}->v{it.modversion}" if it.upgraded_from is not None else f"v{it.modversion}"
        lines.append(f"{mark}{i:3d} {it.operation}{inst} {version} {state}")
        if d.params is None:
            lines.append(f"       (opaque: {d.reason})")
        else:
            from darkproxy.darktable.params import flatten

            flat = flatten(d.params)
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(flat.items())[:12])
            more = f", ... ({len(flat) - 12} more)" if len(flat) > 12 else ""
            lines.append(f"       {shown}{more}")
        lines.append(f"       blend: {_blend_line(it)}")
    emit(args, [d.to_json() for d in items], "\n".join(lines))
    return 0


def _blend_line(it) -> str:
    """The item's blend in one line: ``none``, ``off``, the blend, or why it cannot be read."""
    from darkproxy.darktable.blendop import item_blend
    from darkproxy.errors import XmpError

    try:
        bp = item_blend(it)
    except XmpError as e:
        return f"(opaque: {e})"
    return "off (no blend params: darktable's defaults)" if bp is None else bp.summary()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return f"[{len(v)} values]"
    return str(v)
