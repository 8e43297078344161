"""Test helpers: ICC v2 matrix/TRC profiles built from primaries (as littleCMS's
cmsCreateRGBProfile does: Bradford-adapted to the D50 PCS), and PNG chunks added
to an encoded PNG (iCCP, gAMA, eXIf), which no writer at hand emits at 16 bit."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])  # the ICC PCS white (littleCMS's cmsD50_XYZ)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
D65_XY = (0.3127, 0.3290)
SRGB_XY = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_XY = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
P3_XY = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
# the sRGB curve as a parametric curve of type 3 (IEC 61966-2-1)
SRGB_PARA = (3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: Sequence[tuple[float, float]], white: tuple[float, float] = D65_XY) -> np.ndarray:
    """Linear RGB -> XYZ (white's Y = 1) of a colour space given by xy chromaticities."""
    m = np.stack([_xyz(p) for p in primaries], 1)
    return m * np.linalg.solve(m, _xyz(white))


def colorants_d50(primaries: Sequence[tuple[float, float]], white: tuple[float, float] = D65_XY) -> np.ndarray:
    """The profile's colorants (columns): ``rgb_to_xyz`` Bradford-adapted from ``white`` to D50."""
    w = _xyz(white)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50) / (BRADFORD @ w)) @ BRADFORD
    return adapt @ rgb_to_xyz(primaries, white)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(v: Sequence[float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(float(c)) for c in v)


def curve_tag(trc: float | Sequence[float] | tuple[int, tuple[float, ...]] | None) -> bytes:
    """None: identity (curv, 0 entries); a float: a gamma (curv, 1 entry); a sequence of
    floats: a table (curv); ``(type, params)``: a parametric curve (para)."""
    if trc is None:
        return b"curv\0\0\0\0" + struct.pack(">I", 0)
    if isinstance(trc, float | int):
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(float(trc) * 256))
    if isinstance(trc, tuple) and len(trc) == 2 and isinstance(trc[0], int):
        kind, params = trc
        return b"para\0\0\0\0" + struct.pack(">HH", kind, 0) + b"".join(_s15(p) for p in params)
    table = np.round(np.clip(np.asarray(trc, np.float64), 0, 1) * 65535).astype(">u2")
    return b"curv\0\0\0\0" + struct.pack(">I", len(table)) + table.tobytes()


def _desc_tag(text: str) -> bytes:
    a = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(a)) + a + struct.pack(">II", 0, 0) + b"\0\0\0" + b"\0" * 67


def icc_profile(
    description: str,
    primaries: Sequence[tuple[float, float]] | None = None,
    trc: float | Sequence[float] | tuple[int, tuple[float, ...]] | None = 2.2,
) -> bytes:
    """An ICC v2 display profile: RGB matrix/TRC (``primaries`` xy, D65 white) or, without
    primaries, a grey profile (one tone curve, kTRC)."""
    tags: list[tuple[bytes, bytes]] = [(b"desc", _desc_tag(description)), (b"wtpt", _xyz_tag(D50))]
    if primaries is None:
        tags.append((b"kTRC", curve_tag(trc)))
        space = b"GRAY"
    else:
        m = colorants_d50(primaries)
        tags += [(s, _xyz_tag(m[:, i])) for i, s in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))]
        tags += [(s, curve_tag(trc)) for s in (b"rTRC", b"gTRC", b"bTRC")]
        space = b"RGB "
    table, body = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntr"
        + space
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def png_with_chunks(png: bytes, chunks: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``png`` with ``chunks`` ((type, data)) inserted right after IHDR."""
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF) for k, d in chunks
    )
    return png[:ihdr_end] + extra + png[ihdr_end:]


def iccp_chunk(profile: bytes, name: bytes = b"icc") -> tuple[bytes, bytes]:
    return b"iCCP", name + b"\0\0" + zlib.compress(profile)
