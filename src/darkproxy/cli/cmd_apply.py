"""darkproxy apply."""

from __future__ import annotations

import argparse

from darkproxy.cli._dt import parse_module_sets
from darkproxy.cli._util import add_command, emit

ORDER = 45

TIFF_SUFFIXES = (".tif", ".tiff")


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "apply",
        "run a proxy on a whole image at full size (tiled; a LUT for pointwise proxies)",
        "Run the proxy RUN (a run folder or zoo:MODULE) on INPUT at full size and write the result as a "
        "32-bit float TIFF in linear Rec2020 (written atomically).\n\n"
        "INPUT is a raw (anything darktable opens: darktable renders the module's input at full size, the "
        "raw's history up to the module, as a tap-out does; a pre-demosaic module takes the packed Bayer "
        "mosaic) or a float TIFF already in the module's input space: linear Rec2020 (3, H, W), or the "
        "packed mosaic (4 channels) for a pre-demosaic proxy, e.g. a tap-out's input.tif.\n\n"
        "A pointwise proxy (exposure, colorbalancergb, filmicrgb...) is baked at the given params into a 3D "
        "LUT and looked up (pixels outside the LUT's domain go through the network); the LUT's error against "
        "the network on a sample of the image's pixels is printed. --exact, and every other architecture, "
        "run the network tile by tile with the context each architecture needs (the result equals an "
        "untiled run; memory follows --tile, not the image).\n\n"
        "--scale is the image's render scale (output px per raw px) for a scale-dependent proxy (sharpen, "
        "lowpass...): a raw is rendered at full size, scale 1; a TIFF's scale is --scale (default 1.0). A "
        "scale outside the proxy's trained range is refused.",
        "  darkproxy apply zoo:exposure photo.dng --set exposure=1.5 -o out.tif\n"
        "  darkproxy apply runs/colorbalancergb tap/input.tif --set saturation_global=0.3 -o out.tif\n"
        "  darkproxy apply zoo:sharpen half.tif --scale 0.5 --set amount=1 -o sharp.tif --tile 256\n"
        "  darkproxy apply zoo:exposure photo.dng --set exposure=1 --exact -o net.tif   # the network\n",
    )
    p.add_argument("run", help="trained proxy: a run folder or zoo:MODULE")
    p.add_argument("input", help="raw file, or a float TIFF in the module's input space (linear Rec2020)")
    p.add_argument("-o", "--output", required=True, help="output .tif (float32 linear Rec2020)")
    p.add_argument(
        "--set", action="append", metavar="PARAM=VALUE", help="a slider value (repeatable; others: defaults)"
    )
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="render scale of a TIFF input, output px per raw px (default 1.0; a raw is rendered at 1.0)",
    )
    p.add_argument("--xmp", help="raw input: upstream history (default: darktable's defaults for the raw)")
    p.add_argument("--exact", action="store_true", help="always the network (no LUT for pointwise proxies)")
    p.add_argument("--tile", type=int, default=None, metavar="N", help="tile side in px for the network (default 512)")
    p.add_argument(
        "--device", default=None, help="torch device for the network (default: config device; auto = cuda if any)"
    )
    p.set_defaults(func=run)


def parse_values(proxy, items: list[str] | None) -> dict[str, object]:
    """``--set`` texts -> values by name, checked against the proxy: free
    params only (a param pinned in training may be given its pinned value),
    numbers (enums by value or name, bools as 0/1/true/false), inside the
    training range."""
    from darkproxy.errors import ParamValueError, UnknownParam

    space = proxy.param_space
    out: dict[str, object] = {}
    for k, text in parse_module_sets(items, default_module=proxy.module).get(proxy.module, {}).items():
        if k in space.fixed and k not in space.names:
            if str(space.fixed[k]) != text and _number(text) != space.fixed[k]:
                raise ParamValueError(f"{k} was pinned to {space.fixed[k]} when this proxy was trained; it cannot move")
            continue
        if k not in space.names:
            raise UnknownParam(
                f"{k}: not a free parameter of this {proxy.module} proxy; free: {', '.join(space.names)}"
            )
        spec = space.spec(k)
        value: object
        if spec.kind == "bool":
            if text.lower() not in ("0", "1", "true", "false"):
                raise ParamValueError(f"{k} expects true/false or 1/0, got {text!r}")
            value = text.lower() in ("1", "true")
        elif spec.kind == "enum" and text in spec.names:
            value = spec.values[spec.names.index(text)]
        else:
            num = _number(text)
            if num is None:
                raise ParamValueError(f"{k} expects a number, got {text!r}")
            value = int(num) if spec.kind in ("int", "enum") else num
        try:
            spec.check(value)
        except ParamValueError as e:
            raise ParamValueError(f"{e} (the proxy's training range; it is not trusted outside)") from None
        out[k] = value
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_input_tiff(path, pre_demosaic: bool):
    """A float TIFF -> ``(C, H, W)`` float32: 3 channels (alpha dropped), or
    the 4-channel packed mosaic for a pre-demosaic proxy."""
    import numpy as np
    import tifffile

    from darkproxy.errors import DarkproxyError

    try:
        a = tifffile.imread(str(path))
    except Exception as e:  # tifffile raises many kinds for a broken file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DarkproxyError(f"cannot read {path} as a TIFF: {first}") from None
    if not np.issubdtype(a.dtype, np.floating):
        raise DarkproxyError(
            f"{path} holds {a.dtype} pixels: apply takes a float TIFF in the module's input space "
            "(linear Rec2020, e.g. darkproxy render or tapout's input.tif)"
        )
    if a.ndim == 2:
        a = a[..., None]
    c = 4 if pre_demosaic else 3
    if a.ndim != 3 or a.shape[-1] < c:
        what = "the packed mosaic (4 channels)" if pre_demosaic else "3 channels (RGB)"
        raise DarkproxyError(f"{path}: shape {a.shape}, expected (H, W, C) with {what}")
    return np.ascontiguousarray(np.moveaxis(a[..., :c], -1, 0), dtype=np.float32)


def render_input(args: argparse.Namespace, proxy):
    """darktable's full-size render of the module's input for a raw (the
    packed mosaic before demosaic)."""
    import tempfile
    from pathlib import Path

    from darkproxy.cli._dt import darktable_from_args
    from darkproxy.darktable.render import read_tiff
    from darkproxy.darktable.tapout import packed_input, plan_tapout
    from darkproxy.darktable.xmp import read_xmp

    dt = darktable_from_args(args)
    base = read_xmp(args.xmp) if args.xmp else dt.default_history(args.input)
    plan = plan_tapout(dt, base, proxy.module)
    if plan.pre_demosaic:
        return packed_input(Path(args.input), proxy.module)
    with tempfile.TemporaryDirectory(prefix="darkproxy-apply-") as td:
        out = dt.renderer(max_size=None).render(args.input, plan.input_sidecar, Path(td) / "input.tif")
        return read_tiff(out)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from darkproxy.darktable.render import write_tiff
    from darkproxy.darktable.tapout import full_size
    from darkproxy.data.scale import FULL_SIZE_RADIUS
    from darkproxy.errors import DarkproxyError, RawError
    from darkproxy.progress import is_quiet, say
    from darkproxy.proxy import Proxy
    from darkproxy.proxy.tiling import DEFAULT_TILE, apply_image

    src = Path(args.input)
    if not src.is_file():
        raise RawError(f"input {src} does not exist")
    if not args.output.lower().endswith(TIFF_SUFFIXES):
        raise DarkproxyError(f"output {args.output} must be a .tif file")
    if args.tile is not None and args.tile < 16:
        raise DarkproxyError(f"--tile {args.tile}: at least 16 px")
    if args.scale is not None and not args.scale > 0:
        raise DarkproxyError(f"--scale {args.scale}: a render scale is positive (output px per raw px)")
    is_tiff = src.suffix.lower() in TIFF_SUFFIXES
    if not is_tiff and args.scale not in (None, 1.0):
        raise DarkproxyError("--scale is for a TIFF input: a raw is rendered at full size (scale 1)")
    proxy = Proxy.load(args.run, device=_device(args))
    values = parse_values(proxy, args.set)
    scale = 1.0 if args.scale is None else float(args.scale)
    # before darktable's render: a refusal costs nothing (soften's radius follows the whole image's size)
    if proxy.module not in FULL_SIZE_RADIUS:
        proxy.check_scale(scale)
    elif not is_tiff:
        proxy.scale_for(scale, full_size((), scale, src))
    t0 = time.perf_counter()
    if is_tiff:
        image = read_input_tiff(src, proxy.pre_demosaic)
    else:
        say(f"darktable renders {proxy.module}'s input of {src.name} at full size")
        image = render_input(args, proxy)
    t_input = time.perf_counter() - t0
    # the network's scale: soften's is the whole image's diagonal (a TIFF taken as the whole image at --scale)
    net_scale = proxy.scale_for(scale, full_size(image.shape if is_tiff else (), scale, None if is_tiff else src))
    res = apply_image(
        proxy, image, values, scale=net_scale, exact=args.exact, tile=args.tile or DEFAULT_TILE, progress=not is_quiet()
    )
    t1 = time.perf_counter()
    out = write_tiff(args.output, res.output)
    t_write = time.perf_counter() - t1
    _, h, w = res.output.shape
    record = {
        "output": str(out),
        "module": proxy.module,
        "run": args.run,
        "params": proxy.param_space.for_darktable(values),
        "scale": scale,
        "input": str(src),
        "input_kind": "tiff" if is_tiff else "raw",
        "input_seconds": round(t_input, 3),
        "write_seconds": round(t_write, 3),
        "megapixels": round(h * w / 1e6, 3),
        "seconds_per_mp": round(res.seconds / (h * w / 1e6), 4),
        **res.record(),
    }
    how = f"LUT (baked in {res.bake_seconds:.2f} s)" if res.path == "lut" else f"network, {res.tiles} tile(s)"
    lines = [f"{proxy.module} on {src.name}: {w}x{h} ({h * w / 1e6:.1f} MP) in {res.seconds:.2f} s via {how}"]
    if res.lut_error:
        e = res.lut_error
        lines.append(
            f"LUT vs network on {e['pixels']} pixels: max abs {e['max_abs']:.2g}, display PSNR {e['psnr']:.1f} dB, "
            f"PU21 PSNR {e['pu21_psnr']:.1f} dB ({100 * e['outside']:.2f} % outside its domain: network)"
        )
    if res.note:
        lines.append(res.note)
    lines.append(f"wrote {out}")
    emit(args, record, "\n".join(lines))
    return 0


def _device(args: argparse.Namespace) -> str:
    from darkproxy.cli._util import config_from_args

    dev = args.device or config_from_args(args).device or "auto"
    if dev == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev
