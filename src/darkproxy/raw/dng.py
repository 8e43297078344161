"""Write Bayer mosaics as DNG files (tifffile + the DNG tags darktable and rawpy need)."""

from __future__ import annotations

import os
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
) -> Path:
    """Write ``mosaic`` (uint16 (H, W), raw sensor values, even sides) as an
    uncompressed CFA DNG, atomically.

    ``cfa``: the 2x2 pattern read row by row (RGGB, BGGR, GRBG, GBRG);
    ``color_matrix``: DNG ColorMatrix1, XYZ (D65) -> camera RGB, 3x3;
    ``as_shot_neutral``: camera RGB of a neutral grey (the reciprocal of the
    white-balance multipliers)."""
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
    return path
