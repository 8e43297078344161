"""The packed Bayer mosaic of any raw darktable reads (read with rawpy).

Layout (independent of the camera's CFA): float32 ``(4, H/2, W/2)``, channels
R, G1, G2, B where G1 is the green on the red rows and G2 the green on the blue
rows. Values are black-subtracted and divided by (white - black) per CFA
channel, as darktable's rawprepare does; with ``white_balance=True`` the
camera's as-shot multipliers (normalised to green = 1) are applied as
darktable's temperature module does by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from darkproxy.errors import RawError


@dataclass
class RawInfo:
    """What rawpy reports about a raw: the 2x2 CFA pattern (e.g. "RGGB"),
    per-CFA-channel black levels (in pattern order), white level, as-shot
    white-balance multipliers (R, G, B, normalised to G = 1), visible size."""

    cfa: str
    black: tuple[int, int, int, int]
    white: int
    wb: tuple[float, float, float]
    size: tuple[int, int]


@dataclass
class PackedMosaic:
    data: np.ndarray  # float32 (4, H/2, W/2): R, G1, G2, B
    info: RawInfo
    white_balanced: bool


def _open(path: str | os.PathLike[str]):
    import rawpy

    p = Path(path)
    if not p.is_file():
        raise RawError(f"raw file {p} does not exist")
    try:
        return rawpy.imread(str(p))
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise RawError(f"cannot read raw {p}: {type(e).__name__}: {e}") from None


def _pattern(raw) -> tuple[str, np.ndarray]:
    pat = np.asarray(raw.raw_pattern)
    desc = raw.color_desc.decode()
    if pat is None or pat.shape != (2, 2):
        raise RawError("not a 2x2 Bayer raw (X-Trans and linear raws have no packed mosaic)")
    return "".join(desc[i] for i in pat.ravel()), pat


def read_raw_info(path: str | os.PathLike[str]) -> RawInfo:
    with _open(path) as raw:
        cfa, pat = _pattern(raw)
        blacks = tuple(int(raw.black_level_per_channel[i]) for i in pat.ravel())
        wb = np.asarray(raw.camera_whitebalance[:3], np.float64)
        wb = wb / wb[1] if wb[1] > 0 else np.ones(3)
        h, w = raw.raw_image_visible.shape
        return RawInfo(cfa, blacks, int(raw.white_level), tuple(float(x) for x in wb), (h, w))


def read_packed_mosaic(path: str | os.PathLike[str], white_balance: bool = False) -> PackedMosaic:
    """Packed mosaic of ``path`` (see the module docstring). Raises :class:`RawError`."""
    with _open(path) as raw:
        cfa, pat = _pattern(raw)
        img = raw.raw_image_visible.astype(np.float32)
        h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
        img = img[:h, :w]
        blacks = np.asarray(raw.black_level_per_channel, np.float32)
        white = float(raw.white_level)
        wb = np.asarray(raw.camera_whitebalance[:3], np.float64)
        wb = wb / wb[1] if wb[1] > 0 else np.ones(3)
        info = RawInfo(cfa, tuple(int(blacks[i]) for i in pat.ravel()), int(white), tuple(float(x) for x in wb), (h, w))
    planes: dict[str, np.ndarray] = {}
    greens = []
    for k in range(4):
        i, j = divmod(k, 2)
        c = cfa[k]
        ch = int(pat[i, j])
        plane = (img[i::2, j::2] - blacks[ch]) / max(white - blacks[ch], 1.0)
        if white_balance:
            plane = plane * float(wb["RGB".index(c)])
        if c == "G":
            greens.append((i, plane))
        else:
            planes[c] = plane
    r_row = next(divmod(k, 2)[0] for k in range(4) if cfa[k] == "R")
    g1 = next(p for i, p in greens if i == r_row)
    g2 = next(p for i, p in greens if i != r_row)
    data = np.stack([planes["R"], g1, g2, planes["B"]]).astype(np.float32)
    return PackedMosaic(data, info, white_balance)
