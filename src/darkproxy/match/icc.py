"""ICC profiles of references, judged by what they contain, never by their name.

A matrix/TRC profile (RGB: three colorants and three tone curves; grey: one tone
curve) is converted to sRGB here in float64, at whatever bit depth the image has:
device values -> tone curves -> colorants (PCS XYZ, D50) -> the inverse of littleCMS's
own sRGB profile's colorants -> the sRGB curve. That is littleCMS's relative
colorimetric transform of such profiles (no black point compensation, as
:func:`PIL.ImageCms.profileToProfile` by default). A profile is sRGB when converting
through it moves no value by half a code or more at the image's bit depth: then the
pixels are kept as they are. LUT-based profiles (``A2B0``/``A2B1`` tags, which
littleCMS prefers over a matrix) go through littleCMS itself (Pillow's ImageCms),
which converts 8-bit RGB only.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from darkproxy.match._common import MatchError

Curve = Callable[[np.ndarray], np.ndarray]
LUT_TAGS = ("A2B0", "A2B1", "A2B2")


@dataclass(frozen=True)
class IccProfile:
    """The parts of an ICC profile a conversion needs. ``color_space``: the header's data
    colour space (``RGB``, ``GRAY``, ``CMYK``, ``Lab``...); ``tags``: signature ->
    (offset, size); ``description``: littleCMS's reading of it ('' when it has none)."""

    data: bytes
    color_space: str
    pcs: str
    tags: dict[str, tuple[int, int]]
    description: str

    @property
    def lut_based(self) -> bool:
        return any(t in self.tags for t in LUT_TAGS)

    @property
    def matrix_trc(self) -> bool:
        """RGB with colorants and tone curves (and no LUT that littleCMS would use instead)."""
        need = ("rXYZ", "gXYZ", "bXYZ", "rTRC", "gTRC", "bTRC")
        return self.color_space == "RGB" and self.pcs == "XYZ" and all(t in self.tags for t in need)

    @property
    def grey_trc(self) -> bool:
        return self.color_space == "GRAY" and "kTRC" in self.tags

    def _tag(self, sig: str) -> bytes:
        off, size = self.tags[sig]
        if off + size > len(self.data) or size < 8:
            raise MatchError(f"ICC profile {self.description!r}: its {sig} tag lies outside the profile")
        return self.data[off : off + size]

    def xyz(self, sig: str) -> np.ndarray:
        b = self._tag(sig)
        if b[:4] != b"XYZ " or len(b) < 20:
            raise MatchError(f"ICC profile {self.description!r}: its {sig} tag is not an XYZ value")
        return np.array(struct.unpack(">3i", b[8:20]), np.float64) / 65536.0

    def matrix(self) -> np.ndarray:
        """Device linear RGB -> PCS XYZ (D50): the colorants as columns."""
        return np.stack([self.xyz("rXYZ"), self.xyz("gXYZ"), self.xyz("bXYZ")], 1)

    def curve(self, sig: str) -> Curve:
        return _curve(self._tag(sig), f"ICC profile {self.description!r}: its {sig} tag")


def parse_icc(data: bytes) -> IccProfile:
    """The header and tag table of an ICC profile; one-line :class:`MatchError` when malformed."""
    if len(data) < 132 or data[36:40] != b"acsp":
        raise MatchError("the embedded ICC profile is not an ICC profile (no 'acsp' signature)")
    n = struct.unpack(">I", data[128:132])[0]
    if 132 + 12 * n > len(data):
        raise MatchError("the embedded ICC profile is truncated (its tag table runs past its end)")
    tags = {}
    for i in range(n):
        sig, off, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        tags[sig.decode("latin-1")] = (off, size)
    return IccProfile(
        bytes(data),
        data[16:20].decode("latin-1").strip(),
        data[20:24].decode("latin-1").strip(),
        tags,
        _description(data),
    )


def _description(data: bytes) -> str:
    from PIL import ImageCms

    try:
        return (ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(data))) or "").strip()
    except (OSError, ImageCms.PyCMSError):
        return ""


def _curve(b: bytes, what: str) -> Curve:
    """An ICC tone curve (``curv``: identity, gamma or table; ``para``: types 0-4) as a function on [0, 1]."""
    kind = b[:4]
    if kind == b"curv" and len(b) >= 12:
        n = struct.unpack(">I", b[8:12])[0]
        if len(b) < 12 + 2 * n:
            raise MatchError(f"{what} is truncated")
        if n == 0:
            return lambda x: x
        if n == 1:
            g = struct.unpack(">H", b[12:14])[0] / 256.0
            return lambda x: np.clip(x, 0.0, 1.0) ** g
        table = np.array(struct.unpack(f">{n}H", b[12 : 12 + 2 * n]), np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, grid, table)  # littleCMS interpolates tables linearly too
    if kind == b"para" and len(b) >= 12:
        t = struct.unpack(">H", b[8:10])[0]
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(t)
        if count is None or len(b) < 12 + 4 * count:
            raise MatchError(f"{what} is a parametric curve of unknown type {t}")
        p = [v / 65536.0 for v in struct.unpack(f">{count}i", b[12 : 12 + 4 * count])]
        return functools.partial(_para, t, p)
    raise MatchError(f"{what} is not a tone curve (type {kind!r})")


def _para(t: int, p: list[float], x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    g = p[0]
    if t == 0:
        return x**g
    a, b = p[1], p[2]
    pw = lambda v: np.clip(a * v + b, 0.0, None) ** g  # noqa: E731
    if t == 1:
        return np.where(x >= -b / a, pw(x), 0.0)
    if t == 2:
        return np.where(x >= -b / a, pw(x) + p[3], p[3])
    if t == 3:
        return np.where(x >= p[4], pw(x), p[3] * x)
    return np.where(x >= p[4], pw(x) + p[5], p[3] * x + p[6])


@functools.cache
def srgb_profile() -> IccProfile:
    """littleCMS's own sRGB profile (Pillow's ``createProfile("sRGB")``): the destination."""
    from PIL import ImageCms

    return parse_icc(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _encode(lin: np.ndarray) -> np.ndarray:
    from darkproxy.colour.encodings import srgb_encode_ext

    return np.asarray(srgb_encode_ext(lin), np.float64)


def matrix_to_srgb_linear(prof: IccProfile, v: np.ndarray) -> np.ndarray:
    """Device values ``(..., 3)`` (RGB) or ``(...)`` (grey) in [0, 1] -> linear sRGB ``(..., 3)``, unclipped."""
    if prof.grey_trc:  # a grey profile's value is the PCS white scaled: relative colorimetric, sRGB's neutral
        return np.repeat(prof.curve("kTRC")(v)[..., None], 3, -1)
    lin = np.stack([prof.curve(s)(v[..., i]) for i, s in enumerate(("rTRC", "gTRC", "bTRC"))], -1)
    return lin @ (np.linalg.inv(srgb_profile().matrix()) @ prof.matrix()).T


def srgb_equivalent(prof: IccProfile, levels: int) -> bool:
    """Whether converting through ``prof`` moves no value of an image with ``levels``
    codes per channel by half a code or more (then the image is sRGB as it is)."""
    ramp = np.linspace(0.0, 1.0, 257)
    if prof.grey_trc:
        v: np.ndarray = ramp
        out = _encode(matrix_to_srgb_linear(prof, v))
        ref = np.repeat(v[:, None], 3, 1)
    else:
        g = np.linspace(0.0, 1.0, 9)
        cube = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        z = np.zeros_like(ramp)
        ramps = np.concatenate([np.stack(c, -1) for c in ((ramp, z, z), (z, ramp, z), (z, z, ramp), (ramp,) * 3)])
        ref = np.concatenate([cube, ramps])
        out = _encode(matrix_to_srgb_linear(prof, ref))
    return float(np.abs(out - ref).max()) < 0.5 / (levels - 1)


def convert_matrix(prof: IccProfile, v: np.ndarray) -> tuple[np.ndarray, float]:
    """Device values (``(H, W, 3)`` RGB or ``(H, W)`` grey, float in [0, 1]) -> sRGB display
    ``(H, W, 3)`` in [0, 1] and the fraction of pixels outside sRGB's gamut (clipped)."""
    lin = matrix_to_srgb_linear(prof, np.asarray(v, np.float64))
    tol = 1e-6  # float noise of a colour on sRGB's gamut boundary
    outside = float(((lin < -tol) | (lin > 1 + tol)).any(-1).mean())
    return np.clip(_encode(lin), 0.0, 1.0), outside


def convert_lcms(prof: IccProfile, rgb8: np.ndarray) -> np.ndarray:
    """8-bit RGB ``(H, W, 3)`` -> sRGB ``(H, W, 3)`` uint8 by littleCMS (relative colorimetric)."""
    from PIL import Image, ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(prof.data))
        out = ImageCms.profileToProfile(
            Image.fromarray(rgb8, "RGB"),
            src,
            ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
    except (OSError, ImageCms.PyCMSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MatchError(f"littleCMS cannot convert from the ICC profile {prof.description!r}: {msg}") from None
    assert out is not None  # not in place: a new image
    return np.asarray(out, np.uint8)
