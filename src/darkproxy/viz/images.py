"""Turning ``linear_rec2020`` images into pictures: display encoding, error
maps, labelled side-by-side panels, text in frames, PNG output; and reading a
``linear_rec2020`` float TIFF given by a user (:func:`read_image`).

Display encoding: :func:`darkproxy.colour.encodings.srgb_display_rec709` (the one
display encoding of the project: Rec709 primaries, clip, sRGB curve), in the
``(H, W, 3)`` layout pictures use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.colour.encodings import srgb_display_rec709
from darkproxy.colour.metrics import as_hwc
from darkproxy.errors import DarkproxyError
from darkproxy.fsutil import atomic_path


class ImageReadError(DarkproxyError):
    """A missing or unreadable TIFF (or one that is not a (3, H, W) image)."""


def to_display_float(img_linear_rec2020: Any) -> np.ndarray:
    """``linear_rec2020`` image -> ``srgb_display_rec709`` float64 ``(H, W, 3)``
    in ``[0, 1]`` (:func:`darkproxy.colour.encodings.srgb_display_rec709`). NaN
    becomes 0 (black) so a broken prediction shows as such in a picture."""
    a = np.nan_to_num(as_hwc(img_linear_rec2020).astype(np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
    return srgb_display_rec709(a, channel_axis=-1)


def to_display(img_linear_rec2020: Any) -> np.ndarray:
    """float ``(3, H, W)`` or ``(H, W, 3)`` ``linear_rec2020`` -> uint8 ``(H, W, 3)``
    ``srgb_display_rec709`` (see :func:`to_display_float`; rounded to nearest)."""
    return (to_display_float(img_linear_rec2020) * 255.0 + 0.5).astype(np.uint8)


def error_map(a: Any, b: Any, gain: float = 10.0, cmap: str = "inferno") -> np.ndarray:
    """Heat map of ``gain * |display(a) - display(b)|`` (max over channels,
    clipped to 1) of two ``linear_rec2020`` images of the same shape, as uint8
    ``(H, W, 3)`` through the matplotlib colormap ``cmap`` (black = no error)."""
    from matplotlib import colormaps

    da, db = to_display_float(a), to_display_float(b)
    if da.shape != db.shape:
        raise ValueError(f"error_map of images of shapes {da.shape} and {db.shape}")
    err = np.clip(np.abs(da - db).max(-1) * gain, 0.0, 1.0)
    return (colormaps[cmap](err)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def annotate(img: np.ndarray, text: str, size: int = 0) -> np.ndarray:
    """Write ``text`` (e.g. ``"exposure = 1.25 EV"``) in white on a black band
    added above a uint8 ``(H, W, 3)`` image (nothing of the image is covered).
    ``size``: font size in px (0 = about 1/28 of the width, at least 10)."""
    from PIL import Image, ImageDraw

    src = np.asarray(img)
    if src.dtype != np.uint8:
        raise TypeError(f"annotate expects a uint8 display image, got {src.dtype} (use to_display first)")
    src = as_hwc(src).astype(np.uint8)
    size = size or max(10, src.shape[1] // 28)
    font = _font(size)
    # band height from a fixed reference string (tallest ascender, deepest
    # descender), not from `text`: frames of a sweep with different labels
    # must keep the same size to be encoded into one video
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, top, _, bottom = probe.textbbox((0, 0), "ÅgjyQ|(", font=font)
    right = probe.textbbox((0, 0), text, font=font)[2]
    band = Image.new("RGB", (int(max(src.shape[1], right + 8)), int(bottom - top + 6)), (0, 0, 0))

    ImageDraw.Draw(band).text((4, 3 - top), text, fill=(255, 255, 255), font=font)
    band_a = np.asarray(band)[:, : src.shape[1]]  # text wider than the image is cut at its edge
    return np.concatenate([band_a, src], axis=0)


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, gap: int = 4) -> np.ndarray:
    """uint8 ``(H, W, 3)`` panels next to each other, separated by ``gap`` white
    columns, each labelled with :func:`annotate` when ``labels`` is given, and
    padded (black, at the bottom) to the tallest. Returns uint8 ``(H', W', 3)``."""
    if not images:
        raise ValueError("side_by_side needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    ims = [as_hwc(np.asarray(im, np.uint8)).astype(np.uint8) for im in images]
    if labels is not None:
        size = max(10, min(im.shape[1] for im in ims) // 16)
        ims = [annotate(im, lab, size) for im, lab in zip(ims, labels, strict=True)]
    h = max(im.shape[0] for im in ims)
    ims = [np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0))) for im in ims]
    out = [ims[0]]
    for im in ims[1:]:
        out += [np.full((h, gap, 3), 255, np.uint8), im]
    return np.concatenate(out, axis=1)


def save_png(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write a uint8 ``(H, W, 3)`` (or ``(H, W)``) image as PNG, atomically
    (temporary file + rename); creates the parent folder. Returns the path."""
    import imageio.v3 as iio

    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError(f"save_png expects uint8, got {a.dtype} (use to_display for linear images)")
    p = Path(path)
    with atomic_path(p, suffix=".png") as tmp:
        # zlib level 1: lossless all the same, about twice as fast to write as Pillow's default 6 on a 1 MP
        # render (0.28 -> 0.13 s), ~13 % larger
        iio.imwrite(tmp, a, compress_level=1)
    return p


def read_image(path: str | os.PathLike[str], what: str = "image") -> np.ndarray:
    """Read a float TIFF as float32 ``(3, H, W)``; one-line
    :class:`ImageReadError` when missing or unreadable."""
    from darkproxy.darktable.render import read_tiff

    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{what} {p} does not exist")
    import logging

    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)  # its warnings about corrupt files would break the one-line error
    try:
        a = read_tiff(p)
    except Exception as e:  # tifffile raises many types for corrupt files
        raise ImageReadError(
            f"cannot read {what} {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    finally:
        log.setLevel(level)
    if a.ndim != 3 or a.shape[0] != 3 or min(a.shape[1:]) < 1:
        raise ImageReadError(f"cannot read {what} {p}: not an RGB image (shape {tuple(a.shape)})")
    if not np.isfinite(a).all():
        raise ImageReadError(f"{what} {p} contains NaN or infinite values")
    return a


def to_uint8(display: np.ndarray) -> np.ndarray:
    """sRGB display ``(3, H, W)`` in ``[0, 1]`` -> uint8 ``(H, W, 3)`` (rounded)."""
    return (np.moveaxis(np.clip(np.nan_to_num(display), 0, 1), 0, -1) * 255.0 + 0.5).astype(np.uint8)


def error_map_display(a: np.ndarray, b: np.ndarray, gain: float = 10.0) -> np.ndarray:
    """Heat map (inferno) of ``gain * |a - b|`` (max over channels) of two display images -> uint8 (H, W, 3)."""
    from matplotlib import colormaps

    err = np.clip(np.abs(np.asarray(a) - np.asarray(b)).max(0) * gain, 0.0, 1.0)
    return (colormaps["inferno"](err)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def read_display_image(path: str | os.PathLike[str], what: str = "target") -> np.ndarray:
    """A display-referred sRGB image (PNG, JPEG, TIFF; 8/16-bit or float in
    ``[0, 1]``) -> float32 ``(3, H, W)`` in ``[0, 1]``; one-line
    :class:`ImageReadError` when missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{what} {p} does not exist")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            a = np.asarray(tifffile.imread(str(p)))
        else:
            import imageio.v3 as iio

            a = np.asarray(iio.imread(p))
    except Exception as e:  # any decoder error: one line
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ImageReadError(f"cannot read {what} {p}: {type(e).__name__}: {msg}") from None
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise ImageReadError(f"cannot read {what} {p}: not an RGB image (shape {a.shape})")
    a = a[..., :3]
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    else:
        f = np.clip(a.astype(np.float32), 0.0, 1.0)
    return np.ascontiguousarray(np.moveaxis(f, -1, 0))
