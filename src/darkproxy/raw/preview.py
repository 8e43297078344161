"""The preview a camera embeds in its raw file (its own rendering of the shot, usually a JPEG), read with
LibRaw (rawpy) and turned upright as a viewer shows the raw."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from darkproxy.errors import RawError


def _upright(img: np.ndarray, flip: int) -> np.ndarray:
    """``img`` as stored -> as shown, per LibRaw's ``sizes.flip`` (dcraw's bits, from the TIFF Orientation tag:
    2 mirrors the rows, 1 the columns, then 4 transposes; 3 is half a turn, 6 and 5 the quarter turns
    clockwise and counter-clockwise)."""
    if flip & 2:
        img = img[::-1]
    if flip & 1:
        img = img[:, ::-1]
    if flip & 4:
        img = np.swapaxes(img, 0, 1)
    return np.ascontiguousarray(img)


def embedded_preview(path: str | os.PathLike[str]) -> np.ndarray:
    """The largest preview embedded in the raw at ``path`` -> uint8 ``(H, W, 3)`` display sRGB, upright:
    the raw's orientation (LibRaw's ``flip``, from the camera's Orientation tag) is applied, as darktable
    applies it to the image, whatever the preview's own EXIF says (cameras store previews as the sensor
    saw them). A raw without a preview, or one LibRaw cannot decode, raises a one-line :class:`RawError`."""
    import rawpy
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise RawError(f"{p} does not exist")
    try:
        with rawpy.imread(str(p)) as r:
            flip = int(r.sizes.flip)
            thumb = r.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        raise RawError(f"{p} has no embedded preview LibRaw can read: give a reference image") from None
    except Exception as e:  # LibRaw's many error kinds, on a file it cannot open
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RawError(f"cannot read the embedded preview of {p}: {msg}") from None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(bytes(thumb.data))) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise RawError(f"the embedded preview of {p} is not a readable JPEG: {e}") from None
    else:
        rgb = np.asarray(thumb.data)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise RawError(f"the embedded preview of {p} is a {rgb.dtype} {rgb.shape} bitmap, not 8-bit RGB")
    if not 0 <= flip <= 7:
        raise RawError(f"{p}: LibRaw reports orientation {flip}, not one of a TIFF Orientation tag's")
    return _upright(rgb, flip)
