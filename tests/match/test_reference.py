"""Reading a reference: EXIF orientation, bit depth and ICC profiles judged by content.

Expected values come from elsewhere: Pillow's exif_transpose, littleCMS (through
Pillow's ImageCms) and colour-science's colour-space conversions; the profiles are
written here from published primaries (tests/match/iccwriter.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.match.iccwriter import (
    ADOBE_XY,
    P3_XY,
    SRGB_PARA,
    SRGB_XY,
    icc_profile,
    iccp_chunk,
    png_with_chunks,
    rgb_to_xyz,
)

ADOBE_GAMMA = 563 / 256  # Adobe RGB (1998)'s 2.19921875, exactly a u8Fixed8 curv entry


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A natural image, float64 sRGB ``(48, 64, 3)`` on a 16-bit grid, every channel in [0.02, 0.98]."""
    from skimage import data
    from skimage.transform import resize

    a = resize(data.astronaut() / 255.0, (48, 64), anti_aliasing=True)
    return np.round((0.02 + 0.96 * a) * 65535) / 65535


def _srgb_to(primaries, encode, img: np.ndarray) -> np.ndarray:
    """sRGB display -> another RGB space (same D65 white: the matrix alone), by colour-science."""
    import colour

    lin = colour.models.eotf_sRGB(img)
    m = np.linalg.inv(rgb_to_xyz(primaries)) @ rgb_to_xyz(SRGB_XY)
    return encode(np.clip(lin @ m.T, 0, 1))


def _read(path: Path) -> tuple[np.ndarray, str]:
    from darkproxy.match import read_reference

    img, note = read_reference(path)
    return np.moveaxis(img, 0, -1).astype(np.float64), note


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same codes (read_reference gives float32: 6e-8 apart, a 16-bit code is 1.5e-5)."""
    return a.shape == b.shape and float(np.abs(a - b).max()) < 1e-6


def _png16(path: Path, a16: np.ndarray, chunks=()) -> Path:
    import imagecodecs

    path.write_bytes(png_with_chunks(imagecodecs.png_encode(a16), list(chunks)))
    return path


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_exif_orientation_upright(tmp_path: Path, fmt: str) -> None:
    """Every EXIF orientation (1-8) reads as Pillow's exif_transpose shows it (JPEG: Pillow's decoder; PNG: eXIf)."""
    from PIL import Image, ImageOps

    rng = np.random.default_rng(0)
    stored = (rng.integers(0, 16, (6, 10, 3)) * 16).astype(np.uint8)  # flat 16-level blocks survive JPEG well
    stored = np.repeat(np.repeat(stored, 8, 0), 8, 1)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        p = tmp_path / f"o{o}.{fmt}"
        Image.fromarray(stored).save(p, exif=exif, **({"quality": 95} if fmt == "jpeg" else {}))
        with Image.open(p) as im:
            want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float64) / 255.0
        got, note = _read(p)
        assert got.shape == want.shape and _same(got, want), o
        assert (o == 1) == ("orientation" not in note), note


def test_exif_orientation_tiff(tmp_path: Path) -> None:
    import tifffile
    from PIL import Image, ImageOps

    stored = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    for o in (3, 6, 8):
        tifffile.imwrite(tmp_path / f"o{o}.tif", stored, photometric="rgb", extratags=[(274, "H", 1, o, True)])
        exif = Image.Exif()
        exif[0x0112] = o
        im = Image.fromarray(stored)
        im.info["exif"] = exif.tobytes()
        want = np.asarray(ImageOps.exif_transpose(im), np.float64) / 255.0
        got, note = _read(tmp_path / f"o{o}.tif")
        assert _same(got, want) and f"orientation {o}" in note


def test_untagged_16bit_read_at_16bit(tmp_path: Path, photo: np.ndarray) -> None:
    """Untagged 16-bit PNG and TIFF: sRGB at full precision (Pillow and imageio read such a PNG as 8 bit)."""
    import tifffile

    a16 = np.round(photo * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", a16, photometric="rgb")
    for p in (_png16(tmp_path / "p.png", a16), tmp_path / "p.tif"):
        got, note = _read(p)
        assert _same(got, a16 / 65535.0), p
        assert note.startswith("16-bit, untagged")


def test_icc_8bit_adobe_rgb_and_p3_convert_back(tmp_path: Path, photo: np.ndarray) -> None:
    """An 8-bit sRGB image converted by littleCMS into Adobe RGB (PNG) and Display P3 (JPEG) reads back
    as the sRGB original: within 1.5 codes (the wider space's own 8-bit rounding; measured 1.05 Adobe RGB,
    0.99 P3) and within 1 code of littleCMS's own conversion back (measured 0.66, 0.63: it rounds, we do not)."""
    import io

    from PIL import Image, ImageCms

    srgb8 = np.round(photo * 255).astype(np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    for name, prim, trc, fmt in (("Adobe RGB", ADOBE_XY, ADOBE_GAMMA, "png"), ("Display P3", P3_XY, SRGB_PARA, "tif")):
        data = icc_profile(name, prim, trc)
        prof = ImageCms.ImageCmsProfile(io.BytesIO(data))
        wide = ImageCms.profileToProfile(Image.fromarray(srgb8), srgb, prof, renderingIntent=1)
        p = tmp_path / f"ref.{fmt}"
        wide.save(p, icc_profile=data)
        back = np.asarray(ImageCms.profileToProfile(wide, prof, srgb, renderingIntent=1), np.float64)
        got, note = _read(p)
        assert "converted to sRGB" in note and name in note, note
        assert np.abs(got * 255 - srgb8).max() <= 1.5, (name, np.abs(got * 255 - srgb8).max())
        assert np.abs(got * 255 - back).max() <= 1.0, (name, np.abs(got * 255 - back).max())
        # read as is (the old fallback for a profile it did not convert) it would be far off
        assert np.abs(np.asarray(wide, np.float64) - srgb8).max() > 10


def test_icc_16bit_converts_at_16bit(tmp_path: Path, photo: np.ndarray) -> None:
    """16-bit references tagged Adobe RGB (TIFF) and Display P3 (PNG), made by colour-science from the sRGB
    original: read back within 1e-4 (measured 5.5e-5 Adobe RGB, 4.0e-5 P3: 16-bit codes are 1.5e-5 apart,
    the profile's s15Fixed16 colorants ~1e-5); an 8-bit path would be off by up to 2e-3."""
    import colour
    import tifffile

    adobe = _srgb_to(ADOBE_XY, lambda x: x ** (1 / ADOBE_GAMMA), photo)
    p3 = _srgb_to(P3_XY, colour.models.eotf_inverse_sRGB, photo)
    tifffile.imwrite(
        tmp_path / "adobe.tif",
        np.round(adobe * 65535).astype(np.uint16),
        photometric="rgb",
        iccprofile=icc_profile("Adobe RGB", ADOBE_XY, ADOBE_GAMMA),
    )
    data = icc_profile("Display P3", P3_XY, SRGB_PARA)
    _png16(tmp_path / "p3.png", np.round(p3 * 65535).astype(np.uint16), [iccp_chunk(data)])
    for p in (tmp_path / "adobe.tif", tmp_path / "p3.png"):
        got, note = _read(p)
        assert note.startswith("16-bit") and "converted to sRGB" in note, note
        assert np.abs(got - photo).max() < 1e-4, (p.name, np.abs(got - photo).max())


def test_icc_judged_by_content_not_name(tmp_path: Path, photo: np.ndarray) -> None:
    """A linear profile named "sRGB linear" is converted (the sRGB curve applied: the original back), and a
    profile that is sRGB by content (a 1024-entry table of the sRGB curve) named otherwise is kept as is."""
    import colour
    import tifffile

    linear = np.round(colour.models.eotf_sRGB(photo) * 65535).astype(np.uint16)
    lin_profile = icc_profile("sRGB linear", SRGB_XY, None)
    tifffile.imwrite(tmp_path / "lin.tif", linear, photometric="rgb", iccprofile=lin_profile)
    got, note = _read(tmp_path / "lin.tif")
    assert "converted to sRGB" in note, note
    # 16-bit linear codes are up to 2e-4 apart once encoded in the shadows (12.92 / 65535): measured 9.8e-5
    assert np.abs(got - photo).max() < 2e-4, np.abs(got - photo).max()

    t = np.linspace(0, 1, 1024)
    table = np.where(t <= 0.04045, t / 12.92, ((t + 0.055) / 1.055) ** 2.4)
    a8 = np.round(photo * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(a8).save(tmp_path / "cam.png", icc_profile=icc_profile("Camera Standard", SRGB_XY, list(table)))
    got, note = _read(tmp_path / "cam.png")
    assert "sRGB by its content, kept as is" in note and _same(got, a8 / 255.0), note


def test_grey_profile_and_refusals(tmp_path: Path) -> None:
    """A 16-bit grey image with a linear grey profile reads as its sRGB-encoded neutral; transparency, a PNG
    gamma without a profile and an RGB profile on a grey image are refused in one line."""
    import colour
    from PIL import Image

    from darkproxy.match import MatchError

    v = np.linspace(0, 65535, 40 * 30).round().astype(np.uint16).reshape(30, 40)
    got, note = _read(_png16(tmp_path / "g.png", v, [iccp_chunk(icc_profile("Gray linear", None, None))]))
    want = colour.models.eotf_inverse_sRGB(v / 65535.0)
    assert "converted" in note and np.abs(got - want[..., None]).max() < 1e-6

    rgba = np.full((8, 8, 4), 200, np.uint8)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")  # alpha 200: transparent
    bad = {
        "opaque.png": "transparent",
        "gamma.png": "PNG gamma",
        "grey_rgb.png": "convert it",
    }
    _png16(tmp_path / "gamma.png", np.zeros((8, 8, 3), np.uint16), [(b"gAMA", (100000).to_bytes(4, "big"))])
    _png16(tmp_path / "grey_rgb.png", v, [iccp_chunk(icc_profile("Adobe RGB", ADOBE_XY, ADOBE_GAMMA))])
    for name, why in bad.items():
        with pytest.raises(MatchError, match=why) as e:
            _read(tmp_path / name)
        assert "\n" not in str(e.value)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert _same(_read(tmp_path / "opaque.png")[0], rgba[..., :3] / 255.0)
