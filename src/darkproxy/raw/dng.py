"""Write Bayer mosaics as DNG files (tifffile + the DNG tags darktable and rawpy need), optionally with
an EXIF IFD carrying the camera's exposure bias (``ExposureBiasValue``, as cameras write it)."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from darkproxy.errors import RawError
from darkproxy.fsutil import atomic_path

CFA_CODES = {"R": 0, "G": 1, "B": 2}
CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


def _srat(x: float) -> tuple[int, int]:
    f = Fraction(float(x)).limit_denominator(1_000_000)
    return f.numerator, f.denominator


def write_dng(
    mosaic: np.ndarray,
    path: str | os.PathLike[str],
    cfa: str = "RGGB",
    black: int = 0,
    white: int = 65535,
    color_matrix: np.ndarray | None = None,
    as_shot_neutral: Sequence[float] = (1.0, 1.0, 1.0),
    make: str = "darkproxy",
    model: str = "synthetic",
    exposure_bias: float | tuple[int, int] | None = None,
    preview: np.ndarray | None = None,
    orientation: int = 1,
) -> Path:
    """Write ``mosaic`` (uint16 (H, W), raw sensor values, even sides) as an
    uncompressed CFA DNG, atomically.

    ``cfa``: the 2x2 pattern read row by row (RGGB, BGGR, GRBG, GBRG);
    ``color_matrix``: DNG ColorMatrix1, XYZ (D65) -> camera RGB, 3x3;
    ``as_shot_neutral``: camera RGB of a neutral grey (the reciprocal of the
    white-balance multipliers); ``exposure_bias``: the camera's exposure
    compensation in EV, written as EXIF ``ExposureBiasValue`` (an SRATIONAL in
    an EXIF IFD, where darktable reads it: exif.cc, ``Exif.Photo.ExposureBiasValue``);
    a ``(numerator, denominator)`` pair is written as is (a malformed tag, e.g.
    a zero denominator, included); ``preview``: uint8 ``(h, w, 3)`` sRGB, embedded as a
    JPEG preview (a second IFD, NewSubFileType 1, as cameras store theirs: LibRaw reads it);
    ``orientation``: the TIFF Orientation tag (1-8), which applies to the mosaic and the
    preview alike."""
    import tifffile

    mosaic = np.asarray(mosaic)
    cfa = cfa.upper()
    if cfa not in CFA_PATTERNS:
        raise RawError(f"unsupported CFA pattern {cfa!r}; use one of {', '.join(CFA_PATTERNS)}")
    if mosaic.ndim != 2 or mosaic.shape[0] % 2 or mosaic.shape[1] % 2:
        raise RawError(f"mosaic must be (H, W) with even sides, got {mosaic.shape}")
    cm = np.eye(3) if color_matrix is None else np.asarray(color_matrix, dtype=np.float64).reshape(3, 3)
    tags = [
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, tuple(CFA_CODES[c] for c in cfa), True),  # CFAPattern
        (50706, "B", 4, (1, 4, 0, 0), True),
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNG(Backward)Version
        (50708, "s", 0, f"{make} {model}", True),  # UniqueCameraModel
        (50710, "B", 3, (0, 1, 2), True),
        (50711, "H", 1, 1, True),  # CFAPlaneColor, CFALayout
        (50713, "H", 2, (1, 1), True),
        (50714, "I", 1, int(black), True),
        (50717, "I", 1, int(white), True),
        (50721, "2i", 9, tuple(v for x in cm.ravel() for v in _srat(x)), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1 = D65
        (50728, "2I", 3, tuple(v for x in as_shot_neutral for v in _srat(x)), True),  # AsShotNeutral
    ]
    if orientation != 1:  # (absent: 1, the sensor upright)
        tags.insert(1, (274, "H", 1, int(orientation), True))  # Orientation
    bias: tuple[int, int] | None = None
    if exposure_bias is not None:
        bias = tuple(exposure_bias) if isinstance(exposure_bias, tuple) else _srat(exposure_bias)  # type: ignore[assignment]
        # tifffile will not write the ExifIFD pointer: a private tag that sorts at its place, patched afterwards
        tags.append((_PLACEHOLDER, "I", 1, 0, True))
    path = Path(path)
    with atomic_path(path, suffix=".dng") as tmp:
        tifffile.imwrite(
            tmp,
            np.ascontiguousarray(mosaic.astype(np.uint16)),
            photometric=32803,
            compression=None,
            subfiletype=0,
            extratags=tags,
            metadata=None,
        )
        if bias is not None:
            _append_exif_ifd(tmp, bias)
        if preview is not None:
            _append_preview(tmp, np.asarray(preview))
    return path


def _append_preview(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Append ``rgb`` (uint8 ``(h, w, 3)``) to the DNG at ``path`` as a JPEG preview IFD (quality 95)."""
    import io

    import tifffile
    from PIL import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise RawError(f"preview must be uint8 (h, w, 3), got {rgb.dtype} {rgb.shape}")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    with tifffile.TiffWriter(path, append=True) as tw:  # pre-encoded: one strip, the JPEG stream
        tw.write(
            iter([buf.getvalue()]),
            shape=rgb.shape,
            dtype=np.uint8,
            photometric="rgb",
            compression="jpeg",
            rowsperstrip=rgb.shape[0],  # one strip whatever the size (tifffile would split a large one)
            subfiletype=1,
            metadata=None,
        )


EXIF_IFD = 34665  # ExifIFD pointer tag
_PLACEHOLDER = EXIF_IFD + 1  # no TIFF/DNG tag between the two: IFD0 stays sorted once renamed
EXPOSURE_BIAS = 37380  # ExposureBiasValue (SRATIONAL, APEX EV)


def _append_exif_ifd(path: str | os.PathLike[str], bias: tuple[int, int]) -> None:
    """Append an EXIF IFD holding ExposureBiasValue = ``bias`` to the little-endian
    classic TIFF at ``path``; IFD0's placeholder tag becomes the ExifIFD pointer to it."""
    with open(path, "r+b") as f:
        head = f.read(8)
        if head[:4] != b"II*\x00":
            raise RawError(f"{path}: expected a little-endian classic TIFF from tifffile")
        (ifd0,) = struct.unpack("<I", head[4:8])
        f.seek(ifd0)
        (n,) = struct.unpack("<H", f.read(2))
        entries = f.read(12 * n)
        slot = None
        for i in range(n):
            if struct.unpack_from("<H", entries, 12 * i)[0] == _PLACEHOLDER:
                slot = ifd0 + 2 + 12 * i
        if slot is None:
            raise RawError(f"{path}: the ExifIFD placeholder tag is missing")
        end = f.seek(0, os.SEEK_END)
        pad = (-end) % 4
        at = end + pad
        # one entry (tag, type 10 = SRATIONAL, count 1, offset of the value), no next IFD, then the value
        ifd = struct.pack("<HHHII", 1, EXPOSURE_BIAS, 10, 1, at + 18) + struct.pack("<I", 0)
        f.write(b"\x00" * pad + ifd + struct.pack("<ii", int(bias[0]), int(bias[1])))
        f.seek(slot)
        f.write(struct.pack("<HHII", EXIF_IFD, 4, 1, at))  # tag, LONG, count 1, the EXIF IFD's offset
