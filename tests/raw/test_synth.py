"""Synthetic DNGs: rawpy and darktable read them, and darktable's render looks like the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.cli import main
from darkproxy.errors import RawError
from darkproxy.raw.mosaic import read_raw_info
from darkproxy.raw.synth import (
    CAMERA_MATRIX,
    SRGB_TO_XYZ,
    SynthRawSpec,
    default_source_images,
    gain_matched_psnr,
    make_samples,
    read_synthetic_info,
    reference_linear_rec2020,
    resize_long_side,
    srgb_to_linear,
    unprocess,
    write_synthetic_dng,
)

RENDER_SIZE = 192


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return default_source_images(["astronaut", "coffee", "chelsea", "chart"])


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("bits", [12, 14])
def test_rawpy_reads_back_pattern_and_levels(tmp_path: Path, photos, cfa: str, bits: int) -> None:
    written = write_synthetic_dng(photos["astronaut"], tmp_path / "a.dng", SynthRawSpec(cfa=cfa, bits=bits, size=64))
    info = read_raw_info(written.path)
    assert info.cfa == cfa == written.cfa
    assert info.white == written.white == 2**bits - 1
    assert info.black == (2 ** (bits - 4),) * 4 == (written.black,) * 4
    assert info.size == written.shape == (64, 64)
    np.testing.assert_allclose(info.wb, written.wb, rtol=1e-6)  # AsShotNeutral -> multipliers, G = 1
    np.testing.assert_allclose(info.daylight_wb, written.wb, rtol=1e-6)  # the default neutral is the camera's D65
    tags = read_synthetic_info(written.path)
    assert (tags.cfa, tags.bits, tags.black, tags.white, tags.shape) == (
        cfa,
        bits,
        written.black,
        written.white,
        (64, 64),
    )
    np.testing.assert_allclose(tags.color_matrix, CAMERA_MATRIX, atol=1e-6)
    np.testing.assert_allclose(tags.as_shot_neutral, written.as_shot_neutral, rtol=1e-6)


def test_unprocess_inverts_the_forward_colour_path(photos) -> None:
    """Undoing white balance, ColorMatrix1 and sRGB->XYZ (what darktable does) on
    the written camera RGB gives the linear photo times one exposure gain."""
    spec = SynthRawSpec(size=64, noise=0.0, wb=(1.8, 1.0, 2.2))
    u = unprocess(photos["coffee"], spec)
    np.testing.assert_allclose(u.as_shot_neutral, [1 / 1.8, 1.0, 1 / 2.2])
    balanced = u.camera_rgb / u.as_shot_neutral
    # ColorMatrix1 is XYZ->camera with the D65 neutral on its own scale: re-normalise it the way DNG readers do
    d65_neutral = CAMERA_MATRIX @ np.array([0.95047, 1.0, 1.08883])
    xyz = (balanced * d65_neutral / d65_neutral[1]) @ np.linalg.inv(CAMERA_MATRIX).T
    lin = xyz @ np.linalg.inv(SRGB_TO_XYZ).T
    src = srgb_to_linear(resize_long_side(photos["coffee"], 64))
    valid = (u.camera_rgb > 0).all(-1)  # negative camera responses were clipped
    assert valid.mean() > 0.95
    gain = float(np.median(lin[valid] / np.maximum(src[valid], 1e-3)))
    np.testing.assert_allclose(lin[valid], gain * src[valid], atol=1e-6)
    # the mosaic holds exactly those values, at the black and white levels
    raw = (u.mosaic.astype(np.float64) - u.black) / (u.white - u.black)
    np.testing.assert_allclose(raw[0::2, 0::2], u.camera_rgb[0::2, 0::2, 0], atol=1 / (u.white - u.black))


@pytest.mark.parametrize("source,wb", [("astronaut", None), ("coffee", (1.6, 1.0, 2.4)), ("chart", None)])
def test_darktable_render_matches_source_photo(dt, tmp_path: Path, photos, source: str, wb) -> None:
    """XMP-free darktable-cli render with ``plugins/darkroom/workflow=none`` (darktable's
    own colour pipeline: rawprepare, demosaic, white balance from AsShotNeutral, input
    matrix from ColorMatrix1; no auto-applied filmic/exposure tone mapping) gives back
    the photo: PSNR >= 25 dB in display space after one least-squares exposure gain."""
    raw = write_synthetic_dng(photos[source], tmp_path / f"{source}.dng", SynthRawSpec(size=RENDER_SIZE, wb=wb)).path
    out = dt.renderer(max_size=RENDER_SIZE, extra_conf={"plugins/darkroom/workflow": "none"}).render_array(raw, None)
    ref = reference_linear_rec2020(photos[source], RENDER_SIZE)
    assert out.shape == ref.shape
    gain, psnr = gain_matched_psnr(out, ref)
    print(f"\n{source} wb={wb}: darktable (workflow=none) gain {gain:.3f}, PSNR {psnr:.2f} dB")
    assert 0.5 < gain < 2.0  # the exposure headroom: darktable renders the raw at 0.85 / p99.9 of the photo
    assert psnr >= 25.0


def test_darktable_default_scene_referred_render(dt, tmp_path: Path, photos) -> None:
    """darktable's true default (scene-referred: +0.7 EV exposure and filmic tone
    mapping) still looks like the photo after a gain, though filmic bends the tones."""
    raw = write_synthetic_dng(photos["astronaut"], tmp_path / "a.dng", SynthRawSpec(size=RENDER_SIZE)).path
    out = dt.renderer(max_size=RENDER_SIZE).render_array(raw, None)
    gain, psnr = gain_matched_psnr(out, reference_linear_rec2020(photos["astronaut"], RENDER_SIZE))
    print(f"\nastronaut: darktable default (scene-referred, filmic) gain {gain:.3f}, PSNR {psnr:.2f} dB")
    assert psnr >= 25.0


def test_tone_chart_levels() -> None:
    """The chart's grey column holds ``values`` log-spaced linear levels from 1 down to
    1/dynamic_range; its colour tiles are fully saturated in the top half of the rows."""
    from darkproxy.raw.synth import tone_chart

    c = tone_chart(hues=6, values=5, dynamic_range=256.0, tile=4)
    assert c.shape == (2 * 5 * 4, 8 * 4, 3) and c.min() >= 0 and c.max() <= 1
    grey = srgb_to_linear(c[2::4, -2, 1])  # tile centres of the last (grey) column
    np.testing.assert_allclose(grey, np.tile(np.geomspace(1, 1 / 256, 5), 2), rtol=1e-9)
    top = c[2 : 5 * 4 : 4, 2 : 6 * 4 : 4]  # saturation-1 rows, hue columns
    assert np.allclose(top.min(-1), 0)


def test_make_samples_is_idempotent(tmp_path: Path) -> None:
    infos = make_samples(tmp_path, count=2, size=64)
    assert [i.path.name for i in infos] == ["chart.dng", "astronaut.dng"]
    assert all(i.written for i in infos) and infos[1].shape == (64, 64) and max(infos[0].shape) == 64
    mtimes = [i.path.stat().st_mtime_ns for i in infos]
    again = make_samples(tmp_path, count=2, size=64)
    assert [i.path.stat().st_mtime_ns for i in infos] == mtimes and not any(i.written for i in again)
    assert [(i.cfa, i.black, i.white, i.shape) for i in again] == [(i.cfa, i.black, i.white, i.shape) for i in infos]
    # a corrupt file and a file with other settings are rewritten; no temp files are left behind
    infos[0].path.write_bytes(infos[0].path.read_bytes()[:500])
    fixed = make_samples(tmp_path, count=2, size=64)
    assert [i.written for i in fixed] == [True, False] and read_raw_info(fixed[0].path).size == infos[0].shape
    other = make_samples(tmp_path, count=1, size=64, cfa="GBRG", bits=12)
    assert other[0].written and read_raw_info(other[0].path).cfa == "GBRG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.dng", "chart.dng"]


def test_more_samples_than_photos_repeat_with_new_names(tmp_path: Path) -> None:
    import imageio.v3 as iio
    import tifffile

    iio.imwrite(tmp_path / "p.png", (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8))
    infos = make_samples(tmp_path / "out", count=3, size=32, sources=[tmp_path / "p.png"])
    assert [i.path.name for i in infos] == ["p.dng", "p-2.dng", "p-3.dng"]
    assert infos[0].shape == (22, 32)  # aspect kept, sides even
    a, b = (tifffile.imread(i.path).astype(np.int32) for i in infos[:2])
    assert np.abs(a - b).max() > 0  # other noise seed


def test_cli_samples_from_image(tmp_path: Path, photos, capsys) -> None:
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "photo.png", (photos["coffee"] * 255).astype(np.uint8))
    rc = main(
        [
            "samples",
            str(tmp_path / "out"),
            "--from",
            str(tmp_path / "photo.png"),
            "--size",
            "64",
            "--cfa",
            "grbg",
            "--bits",
            "12",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.split() == [str(tmp_path / "out" / "photo.dng")] and "1 written" in err
    info = read_raw_info(tmp_path / "out" / "photo.dng")
    assert (info.cfa, info.white, max(info.size)) == ("GRBG", 4095, 64)
    rc = main(["samples", str(tmp_path / "out"), "--from", str(tmp_path / "missing.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert main(["samples", str(tmp_path / "out"), "--count", "0"]) == 2


def test_cli_samples_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["samples", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--cfa" in out and "darkproxy samples raws/" in out


def test_spec_validation(tmp_path: Path) -> None:
    img = np.zeros((8, 8, 3))
    for spec, match in [
        (SynthRawSpec(cfa="RGBW"), "unsupported CFA"),
        (SynthRawSpec(bits=10), "bit depth"),
        (SynthRawSpec(wb=(1.0, 0.0, 1.0)), "wb must be"),
        (SynthRawSpec(black_level=70000), "black"),
    ]:
        with pytest.raises(RawError, match=match):
            write_synthetic_dng(img, tmp_path / "x.dng", spec)
    assert not (tmp_path / "x.dng").exists()
    with pytest.raises(RawError, match="unknown sample image"):
        default_source_images(["nope"])
    with pytest.raises(RawError, match="does not exist"):
        make_samples(tmp_path, sources=[tmp_path / "none.png"])


def test_more_photos_by_name(tmp_path: Path) -> None:
    """The photos beyond the default set load offline (a grey one as three equal channels) and make raws by
    name; an unknown name is refused in one line."""
    from darkproxy.errors import RawError
    from darkproxy.raw.synth import MORE_SOURCES, default_source_images

    imgs = default_source_images(list(MORE_SOURCES))
    assert list(imgs) == list(MORE_SOURCES)
    for name, img in imgs.items():
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 172 and 0 <= img.min() <= img.max() <= 1
        assert np.ptp(img) > 0.3, name  # a photo, not a flat field
    assert np.array_equal(imgs["camera"][..., 0], imgs["camera"][..., 2])  # grey
    assert not np.array_equal(imgs["grace_hopper"][..., 0], imgs["grace_hopper"][..., 2])  # colour
    infos = make_samples(tmp_path, size=48, names=["camera", "grace_hopper"])
    assert [i.path.name for i in infos] == ["camera.dng", "grace_hopper.dng"]
    with pytest.raises(RawError, match="unknown sample image 'lena'"):
        make_samples(tmp_path, size=48, names=["lena"])
