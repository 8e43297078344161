"""The packed Bayer mosaic of any raw darktable reads (read with rawpy).

Layout (independent of the camera's CFA): float32 ``(4, H/2, W/2)``, channels
R, G1, G2, B where G1 is the green on the red rows and G2 the green on the blue
rows. Values are black-subtracted and divided by (white - black) per CFA
channel, as darktable's rawprepare does (camera RGB, not clipped: highlights
reach 1.0, noise can dip below 0). With ``white_balance=True`` the camera's
as-shot multipliers (normalised to green = 1) are applied as darktable's
temperature module does. Note: darktable's default (modern chromatic
adaptation) temperature uses the D65 "camera reference" multipliers
(``RawInfo.daylight_wb``) and leaves the rest to colour calibration; for this
project's synthetic raws both are the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.errors import RawError

PACKED_ORDER = ("R", "G1", "G2", "B")


@dataclass
class RawInfo:
    """What rawpy reports about a raw: the 2x2 CFA pattern read row by row
    (e.g. "RGGB"), per-CFA-site black levels (in pattern order), white level,
    as-shot and D65 white-balance multipliers (R, G, B, normalised to G = 1),
    visible mosaic size (H, W), cropped to even sides."""

    cfa: str
    black: tuple[int, int, int, int]
    white: int
    wb: tuple[float, float, float]
    size: tuple[int, int]
    daylight_wb: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class PackedMosaic:
    """``data``: float32 (4, H/2, W/2), channels R, G1, G2, B, camera RGB in
    units of (white - black); ``white_balanced``: whether ``info.wb`` was applied."""

    data: np.ndarray
    info: RawInfo
    white_balanced: bool

    @property
    def cfa(self) -> str:
        return self.info.cfa

    @property
    def black(self) -> tuple[int, int, int, int]:
        return self.info.black

    @property
    def white(self) -> int:
        return self.info.white

    @property
    def wb(self) -> tuple[float, float, float]:
        return self.info.wb


def _norm_wb(v: Any) -> tuple[float, float, float]:
    wb = np.asarray(v, np.float64)[:3]
    if not np.all(np.isfinite(wb)) or wb[1] <= 0 or np.any(wb <= 0):
        return (1.0, 1.0, 1.0)  # raws without usable coefficients: darktable falls back to no scaling too
    return tuple(float(x) for x in wb / wb[1])  # type: ignore[return-value]


def _bayer_pattern(raw: Any, p: Path, what: str) -> tuple[np.ndarray, str]:
    """An open rawpy raw's 2x2 colour-index pattern and its letters read row by row (e.g. "RGGB");
    one-line :class:`RawError` for anything but an R, G, G, B Bayer raw (``what`` they have no)."""
    pattern = raw.raw_pattern
    if pattern is None or np.asarray(pattern).shape != (2, 2) or raw.num_colors < 3:
        raise RawError(f"{p} is not a 2x2 Bayer raw (X-Trans, monochrome and linear raws have no {what})")
    pat = np.asarray(pattern).copy()
    desc = raw.color_desc.decode()
    cfa = "".join(desc[i] for i in pat.ravel())
    if sorted(cfa) != ["B", "G", "G", "R"]:
        raise RawError(f"{p} has an unsupported CFA {cfa!r} (need R, G, G, B)")
    return pat, cfa


def _read(path: str | os.PathLike[str], pixels: bool) -> tuple[RawInfo, np.ndarray | None, np.ndarray]:
    """(info, visible mosaic float32 (H, W) cropped to even sides or None,
    2x2 colour-index pattern). Every rawpy failure becomes a one-line RawError
    (rawpy unpacks lazily, so truncated data only fails when pixels are read)."""
    import rawpy

    p = Path(path)
    if not p.is_file():
        raise RawError(f"raw file {p} does not exist")
    try:
        with rawpy.imread(str(p)) as raw:
            pat, cfa = _bayer_pattern(raw, p, "packed mosaic")
            visible = raw.raw_image_visible  # unpacks: I/O errors surface here
            h, w = (visible.shape[0] // 2) * 2, (visible.shape[1] // 2) * 2
            img = visible[:h, :w].astype(np.float32) if pixels else None
            b0, b1, b2, b3 = (int(raw.black_level_per_channel[i]) for i in pat.ravel())  # the 2x2 CFA
            blacks = (b0, b1, b2, b3)

            info = RawInfo(
                cfa,
                blacks,
                int(raw.white_level),
                _norm_wb(raw.camera_whitebalance),
                (h, w),
                _norm_wb(raw.daylight_whitebalance),
            )
    except RawError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, IndexError) as e:
        msg = str(e).strip().strip("b'\"") or "unreadable"
        raise RawError(f"cannot read raw {p}: {type(e).__name__}: {msg}") from None
    if info.white <= max(info.black):
        raise RawError(f"{p}: white level {info.white} is not above the black level {max(info.black)}")
    return info, img, pat


def read_raw_info(path: str | os.PathLike[str]) -> RawInfo:
    """CFA pattern, levels, white balance and size of ``path`` (reads the
    pixels too, so a truncated file fails here). Raises :class:`RawError`."""
    return _read(path, pixels=False)[0]


def read_packed_mosaic(path: str | os.PathLike[str], white_balance: bool = False) -> PackedMosaic:
    """Packed mosaic of ``path``: float32 (4, H/2, W/2), R, G1, G2, B (see the
    module docstring). Raises :class:`RawError`."""
    info, img, _ = _read(path, pixels=True)
    assert img is not None
    planes: dict[str, np.ndarray] = {}
    r_row = info.cfa.index("R") // 2
    for k, c in enumerate(info.cfa):
        i, j = divmod(k, 2)
        plane = (img[i::2, j::2] - info.black[k]) / float(info.white - info.black[k])
        if white_balance:
            plane = plane * np.float32(info.wb["RGB".index(c)])
        name = c if c != "G" else ("G1" if i == r_row else "G2")
        planes[name] = plane
    data = np.stack([planes[n] for n in PACKED_ORDER]).astype(np.float32)
    return PackedMosaic(data, info, white_balance)


@dataclass
class FullMosaic:
    """The raw's whole sensor array as darktable's rawprepare reads it: ``data`` float32
    ``(H, W)`` raw sensor values (not black-subtracted, not cropped: darktable's rawprepare
    crops and scales it); ``cfa``: the colour (0 R, 1 G, 2 B) of the 2x2 sites at (0, 0),
    (0, 1), (1, 0), (1, 1) of ``data``."""

    data: np.ndarray
    cfa: tuple[int, int, int, int]


def read_full_mosaic(path: str | os.PathLike[str]) -> FullMosaic:
    """The uncropped CFA of a 2x2 Bayer raw (rawpy's ``raw_image``, LibRaw's margins
    included, as darktable's rawspeed hands it to rawprepare). Raises :class:`RawError`
    (one line) for anything rawpy cannot read or a CFA other than R, G, G, B."""
    import rawpy

    p = Path(path)
    if not p.is_file():
        raise RawError(f"raw file {p} does not exist")
    try:
        with rawpy.imread(str(p)) as raw:
            letters = _bayer_pattern(raw, p, "CFA port")[1]
            data = np.asarray(raw.raw_image, dtype=np.float32).copy()
    except RawError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, IndexError) as e:
        msg = str(e).strip().strip("b'\"") or "unreadable"
        raise RawError(f"cannot read raw {p}: {type(e).__name__}: {msg}") from None
    cfa = tuple("RGB".index(c) for c in letters)
    return FullMosaic(data, cfa)  # type: ignore[arg-type]


def photosite_histogram(path: str | os.PathLike[str], crop: tuple[int, int, int, int]) -> np.ndarray:
    """The counts of the uncropped mosaic's 16-bit values (:func:`read_full_mosaic`) inside ``crop`` = ``(left,
    top, right, bottom)`` px cut from each side, as darktable's histogram worker bins a raw (65536 bins, int64).
    Raises :class:`RawError`."""
    data = read_full_mosaic(path).data
    h, w = data.shape
    left, top, right, bottom = crop
    region = data[top : h - bottom, left : w - right]
    if region.size == 0:
        raise RawError(f"{path}: the crop {crop} leaves no photosite of its {w}x{h} mosaic")
    return np.bincount(region.astype(np.int64).ravel().clip(0, 0xFFFF), minlength=0x10000)


def read_cfa_pattern(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """The colours (0 R, 1 G, 2 B) of the 2x2 sites of the raw's uncropped CFA (see :func:`read_full_mosaic`)."""
    return read_full_mosaic(path).cfa
