"""EXIF values of a raw that darktable's pipe depends on, read as darktable reads them.

darktable reads EXIF with exiv2 (``src/common/exif.cc``); darkproxy reads the TIFF-based
raws (DNG, NEF, CR2, ARW, PEF...) with tifffile and refuses the others in one line rather
than guess.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.errors import RawError

EXPOSURE_BIAS = 37380  # ExposureBiasValue (SRATIONAL): Exif.Photo.* in the EXIF IFD, Exif.Image.* in IFD0
BIAS_LIMIT = 5.0  # exposure.c, _get_exposure_bias: "don't trust exif tags too much"


def _rational(v: Any, where: str) -> tuple[int, int]:
    a = np.ravel(np.asarray(v))
    if a.size < 2:
        raise RawError(f"{where}: ExposureBiasValue is not a rational ({v!r})")
    return int(a[0]), int(a[1])


def read_exposure_bias(path: str | os.PathLike[str]) -> float:
    """The camera's exposure bias (EV) darktable's exposure module compensates: exif.cc
    takes ``Exif.Photo.ExposureBiasValue``, else ``Exif.Image.ExposureBiasValue``
    (exiv2's ``toFloat``: float numerator / denominator), none = 0 (the image's bias
    stays NaN), and ``_get_exposure_bias`` clamps it to [-5, 5]. Raises
    :class:`RawError` (one line) when the file cannot be parsed as TIFF or the tag is
    malformed (a zero denominator, which exiv2 versions read differently)."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            tags = tf.pages[0].tags
            exif = tags.get(34665)
            value: Any = None
            if exif is not None:
                if not isinstance(exif.value, dict):
                    raise RawError(f"cannot read the EXIF exposure bias of {p}: its EXIF IFD is unreadable")
                value = exif.value.get("ExposureBiasValue")
            if value is None and EXPOSURE_BIAS in tags:
                value = tags[EXPOSURE_BIAS].value
    except RawError:
        raise
    except Exception as e:  # not a TIFF container (CR3, RAF, ORF, RW2...) or a corrupt one
        msg = str(e).splitlines()[0] if str(e) else ""
        raise RawError(
            f"cannot read the EXIF exposure bias of {p} (darkproxy reads TIFF-based raws): {type(e).__name__}: {msg}"
        ) from None
    if value is None:
        return 0.0
    num, den = _rational(value, str(p))
    if den == 0:
        raise RawError(f"cannot read the EXIF exposure bias of {p}: ExposureBiasValue {num}/0 has a zero denominator")
    bias = float(np.float32(num) / np.float32(den))  # exiv2: float(first) / second, in float
    return min(max(bias, -BIAS_LIMIT), BIAS_LIMIT)


# makers whose maker notes darktable 5.4 reads a highlight preservation mode from (exif.cc,
# _check_highlight_preservation: Canon LightingOpt, Fujifilm dynamic range, Nikon HLG / Active D-Lighting, Olympus
# and OM gradation, Pentax dynamic range expansion; Sony's tags are read but set nothing)
HIGHLIGHT_MAKERS = ("canon", "fujifilm", "nikon", "olympus", "om digital", "pentax", "ricoh")
MAKER_NOTE, DNG_PRIVATE = 37500, 50740


def read_highlight_preservation(path: str | os.PathLike[str]) -> float:
    """The exposure (EV) a camera's highlight preservation mode took off, which darktable 5.4's exposure (v7,
    ``compensate_hilite_pres``) adds back: 0 where darktable finds none (no maker notes, or a maker whose notes
    it does not read for it). darkproxy does not decode maker notes: a raw of one of
    :data:`HIGHLIGHT_MAKERS` that carries them (``MakerNote``, or a DNG's ``DNGPrivateData``) raises
    :class:`RawError` (one line), as does a file that is not TIFF-based."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            tags = tf.pages[0].tags
            make = str(tags[271].value).strip() if 271 in tags else ""
            exif = tags.get(34665)
            notes = DNG_PRIVATE in tags or MAKER_NOTE in tags
            if exif is not None and isinstance(exif.value, dict):
                notes = notes or "MakerNote" in exif.value
    except Exception as e:  # not a TIFF container (CR3, RAF, ORF, RW2...) or a corrupt one
        msg = str(e).splitlines()[0] if str(e) else ""
        raise RawError(
            f"cannot read the maker notes of {p} (darkproxy reads TIFF-based raws): {type(e).__name__}: {msg}"
        ) from None
    if notes and make.lower().startswith(HIGHLIGHT_MAKERS):
        raise RawError(
            f"{p} has {make} maker notes, where darktable 5.4 reads a highlight preservation mode that darkproxy "
            "does not read"
        )
    return 0.0


def read_make(path: str | os.PathLike[str]) -> str:
    """The raw's EXIF maker (IFD0 ``Make``, tag 271), ``""`` when absent. Raises :class:`RawError` (one line)
    when the file cannot be parsed as TIFF."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            tag = tf.pages[0].tags.get(271)
            return str(tag.value).strip() if tag is not None else ""
    except Exception as e:  # not a TIFF container (CR3, RAF, ORF, RW2...) or a corrupt one
        msg = str(e).splitlines()[0] if str(e) else ""
        raise RawError(
            f"cannot read the EXIF maker of {p} (darkproxy reads TIFF-based raws): {type(e).__name__}: {msg}"
        ) from None
