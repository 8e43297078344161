"""A reference image read as a viewer shows it: upright (EXIF orientation), at its own
bit depth (8 or 16 bit, or float), in sRGB (an embedded ICC profile converted by its
content: :mod:`darkproxy.match.icc`)."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from darkproxy.match import icc
from darkproxy.match._common import MatchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def folder_files(folder: str | os.PathLike[str], flag: str) -> tuple[list[Path], dict[str, Path]]:
    """The files of ``folder`` (sorted by name) and its references (images, :data:`IMAGE_SUFFIXES`) by file stem,
    for ``--pairs`` and ``--batch`` (``flag``, named in the one-line :class:`MatchError` for a missing folder or a
    stem with two references)."""
    d = Path(folder)
    if not d.is_dir():
        raise MatchError(f"{flag} {d} is not a folder")
    files = sorted(p for p in d.iterdir() if p.is_file())
    refs: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in refs:
                raise MatchError(f"{flag}: two references for {p.stem} ({refs[p.stem].name}, {p.name}): keep one")
            refs[p.stem] = p
    return files, refs


PNG_SRGB_GAMMA = 45455  # a PNG gAMA of 1/2.2 (x 100000): browsers show it as sRGB


@dataclass
class Decoded:
    """Pixels as stored ``(H, W, C)`` (C: 1 grey, 3 RGB; alpha already checked and dropped),
    ``levels`` codes per channel (256, 65536; 0 for float), the embedded ICC profile, the
    EXIF orientation (1-8) and a note on a colour tag that is not an ICC profile."""

    pixels: np.ndarray
    levels: int
    icc: bytes | None
    orientation: int
    tag_note: str = ""


def read_reference(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """A display-referred reference -> (float32 ``(3, H, W)`` sRGB display values in
    ``[0, 1]``, upright, a note on how it was read). JPEG, PNG (8/16 bit) and TIFF
    (8/16 bit, float). Untagged: taken as sRGB. An embedded ICC profile is converted to
    sRGB unless its content is sRGB's (:mod:`darkproxy.match.icc`). Anything that cannot
    be read faithfully (transparency, CMYK, a LUT profile on a 16-bit image...) raises a
    one-line :class:`MatchError`."""
    p = Path(path)
    if not p.is_file():
        raise MatchError(f"reference {p} does not exist")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            d = _read_tiff(p)
        elif head == b"\x89PNG\r\n\x1a\n":
            d = _read_png(p)
        else:
            d = _read_pil(p)
    except MatchError:
        raise
    except Exception as e:  # any decoder error: one line
        msg = str(e).splitlines()[0] if str(e) else ""
        raise MatchError(f"cannot read the reference {p}: {type(e).__name__}: {msg}") from None
    img, note = _to_srgb(d, p)
    if d.orientation not in range(1, 9):  # 0 (unset) or garbage: viewers (and exif_transpose) ignore it
        note += f"; EXIF orientation {d.orientation} ignored (not 1-8)"
    elif d.orientation != 1:
        img = orient(img, d.orientation)
        note += f"; EXIF orientation {d.orientation} applied"
    return np.ascontiguousarray(np.moveaxis(img, -1, 0), np.float32), note


# ----------------------------------------------------------------- decoders
def _drop_alpha(a: np.ndarray, p: Path) -> np.ndarray:
    """``(H, W, C)`` with an alpha channel (C 2 or 4) -> without it; refused unless opaque."""
    if a.shape[-1] in (2, 4):
        top = 1.0 if a.dtype.kind == "f" else np.iinfo(a.dtype).max
        if not bool((a[..., -1] >= top).all()):
            raise MatchError(f"reference {p} has transparent pixels: flatten it onto its background first")
        a = a[..., :-1]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise MatchError(f"reference {p}: {a.shape[-1]} samples per pixel is neither RGB nor grey (with alpha)")
    return a


def _levels(a: np.ndarray, p: Path) -> int:
    if a.dtype == np.uint8:
        return 256
    if a.dtype == np.uint16:
        return 65536
    if a.dtype.kind == "f":
        return 0
    raise MatchError(f"reference {p}: {a.dtype} samples are not an image darkproxy reads (8/16-bit or float)")


def _read_tiff(p: Path) -> Decoded:
    import tifffile

    with tifffile.TiffFile(str(p)) as tf:
        page = tf.pages[0]
        photometric = int(page.photometric)
        tags = page.tags
        icc_tag = tags.get(34675)  # InterColorProfile
        icc_data = bytes(icc_tag.value) if icc_tag is not None else None
        o_tag = tags.get(274)  # Orientation
        orientation = int(o_tag.value) if o_tag is not None else 1
        a = np.asarray(page.asarray())
        separate = int(page.planarconfig) == 2 and page.samplesperpixel > 1
    if photometric not in (1, 2):  # MINISBLACK, RGB
        raise MatchError(f"reference {p} is a TIFF of photometric {photometric} (not RGB or grey): convert it to RGB")
    if separate:
        a = np.moveaxis(a, 0, -1)
    a = a[..., None] if a.ndim == 2 else a
    return Decoded(_drop_alpha(a, p), _levels(a, p), icc_data, orientation)


def _png_chunks(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    i = 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[i : i + 8])
        name = kind.decode("latin-1")
        if name != "IDAT":
            out.setdefault(name, data[i + 8 : i + 8 + n])
        i += 12 + n
    return out


def _read_png(p: Path) -> Decoded:
    import imagecodecs  # libpng: 16-bit RGB (Pillow and imageio read it as 8 bit)

    data = p.read_bytes()
    a = np.asarray(imagecodecs.png_decode(data))
    a = a[..., None] if a.ndim == 2 else a
    ch = _png_chunks(data)
    icc_data, note = None, ""
    if "iCCP" in ch:  # name, NUL, compression method (0: zlib), profile
        body = ch["iCCP"]
        icc_data = zlib.decompress(body[body.index(b"\x00") + 2 :])
    elif "sRGB" in ch:
        note = "PNG sRGB chunk"
    elif "gAMA" in ch:
        g = struct.unpack(">I", ch["gAMA"][:4])[0]
        if abs(g - PNG_SRGB_GAMMA) > 10 or "cHRM" in ch:
            raise MatchError(
                f"reference {p} is tagged with a PNG gamma of {100000 / max(g, 1):.3g} "
                f"{'and chromaticities ' if 'cHRM' in ch else ''}but no ICC profile: darkproxy converts ICC "
                "profiles only: save it with an ICC profile or as sRGB"
            )
        note = "PNG gAMA 1/2.2: taken as sRGB, as browsers do"
    return Decoded(_drop_alpha(a, p), _levels(a, p), icc_data, _exif_orientation(ch.get("eXIf")), note)


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    from PIL import Image

    e = Image.Exif()
    e.load(exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif)
    return int(e.get(0x0112, 1) or 1)


def _read_pil(p: Path) -> Decoded:
    from PIL import Image

    with Image.open(p) as im:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
        icc_data = im.info.get("icc_profile")
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA")
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            raise MatchError(f"reference {p} is a {mode} image: convert it to 8-bit RGB or grey (sRGB) first")
        a = np.asarray(im)
    a = a[..., None] if a.ndim == 2 else a
    return Decoded(_drop_alpha(a, p), _levels(a, p), bytes(icc_data) if icc_data else None, orientation)


# ----------------------------------------------------------------- colour and orientation
def _to_srgb(d: Decoded, p: Path) -> tuple[np.ndarray, str]:
    """Decoded pixels -> ``(H, W, 3)`` float64 sRGB display in [0, 1], and the note."""
    a = d.pixels
    grey = a.shape[-1] == 1
    v = a.astype(np.float64) / (d.levels - 1) if d.levels else np.clip(a.astype(np.float64), 0.0, 1.0)
    depth = {256: "8-bit", 65536: "16-bit", 0: "float"}[d.levels]
    if d.icc is None:
        out = np.repeat(v, 3, -1) if grey else v
        return out, f"{depth}, {d.tag_note or 'untagged'}: taken as sRGB"
    prof = icc.parse_icc(d.icc)
    name = prof.description or "unnamed"
    if (prof.color_space == "GRAY") != grey or prof.color_space not in ("RGB", "GRAY"):
        raise MatchError(
            f"reference {p} is tagged {name!r} ({prof.color_space}) in a {'grey' if grey else 'RGB'} image: "
            "convert it to RGB or to sRGB first"
        )
    levels = d.levels or 65536  # float: judged at 16-bit precision
    if (prof.matrix_trc or prof.grey_trc) and not prof.lut_based:
        if icc.srgb_equivalent(prof, levels):
            out = np.repeat(v, 3, -1) if grey else v
            return out, f"{depth}, ICC profile {name!r}: sRGB by its content, kept as is"
        out, outside = icc.convert_matrix(prof, v[..., 0] if grey else v)
        clip = f"; {100 * outside:.1f} % of pixels outside sRGB clipped" if outside else ""
        return out, f"{depth}, ICC profile {name!r}: converted to sRGB (matrix/TRC, relative colorimetric){clip}"
    if grey or d.levels != 256:
        raise MatchError(
            f"reference {p} is a {depth} {'grey' if grey else 'RGB'} image tagged with the LUT-based ICC profile "
            f"{name!r}: darkproxy converts those through littleCMS at 8-bit RGB only: convert it to sRGB first"
        )
    out8 = icc.convert_lcms(prof, np.ascontiguousarray(a))
    return out8.astype(np.float64) / 255.0, f"8-bit, ICC profile {name!r}: converted to sRGB by littleCMS"


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W, C)`` as stored -> upright for EXIF ``orientation`` 1-8 (what
    :func:`PIL.ImageOps.exif_transpose` does to an image)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # 180
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # 90 clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),  # 90 counter-clockwise
    }
    if orientation not in ops:
        raise MatchError(f"EXIF orientation {orientation} is not one of 1-8")
    return ops[orientation](img)


def embedded_reference(raw: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """The camera's own look as the reference: ``raw``'s embedded preview (upright, 8-bit sRGB:
    :func:`darkproxy.raw.preview.embedded_preview`) written losslessly to ``out_dir/preview.png``, whose
    path is returned (it is read back as any reference; alignment finds its size and crop on darktable's
    render). A raw without a readable preview raises a one-line :class:`MatchError`."""
    from PIL import Image

    from darkproxy.errors import RawError
    from darkproxy.fsutil import atomic_path
    from darkproxy.raw.preview import embedded_preview

    try:
        rgb = embedded_preview(raw)
    except RawError as e:
        raise MatchError(str(e)) from None
    out = Path(out_dir) / "preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, "PNG")
    return out
