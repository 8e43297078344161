"""Synthetic DNGs: rawpy and darktable read them, and darktable's render looks like the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from darkproxy.raw.mosaic import read_raw_info
from darkproxy.raw.synth import SynthRawSpec, default_source_images, make_samples, resize_long_side, srgb_to_linear
from tests.conftest import run_cli

# linear Rec709/sRGB -> linear Rec2020 (ITU-R BT.2087)
REC709_TO_REC2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def _display(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("bits", [12, 14])
def test_rawpy_reads_back_pattern_and_levels(make_raw, cfa: str, bits: int) -> None:
    info = read_raw_info(make_raw(cfa=cfa, bits=bits, size=64))
    assert info.cfa == cfa
    assert info.white == 2**bits - 1 and set(info.black) == {2 ** (bits - 4)}
    assert info.size == (64, 64)
    assert info.wb[1] == 1.0 and info.wb[0] > 1.5  # as-shot neutral of the camera matrix


@pytest.mark.parametrize("source", ["astronaut", "coffee", "chelsea"])
def test_darktable_render_matches_source_photo(dt, make_raw, source: str) -> None:
    """darktable's colour pipeline (its default history with the tone mapping of the
    scene-referred workflow, filmic rgb and the +0.7 EV exposure, switched off) gives
    back the photo: PSNR >= 25 dB after one least-squares exposure gain."""
    raw = make_raw(source=source, size=192)
    side = dt.edit(dt.default_history(raw), disable=["filmicrgb", "exposure"])
    out = dt.renderer(max_size=192).render_array(raw, side)
    src = resize_long_side(default_source_images()[source], 192)
    ref = np.moveaxis(srgb_to_linear(src) @ REC709_TO_REC2020.T, -1, 0)
    assert out.shape == ref.shape
    gain = float((out * ref).sum() / (out * out).sum())
    psnr = peak_signal_noise_ratio(_display(ref), _display(out * gain), data_range=1.0)
    print(f"{source}: gain {gain:.3f}, PSNR {psnr:.2f} dB")
    assert psnr >= 25.0


def test_make_samples_is_idempotent(tmp_path: Path) -> None:
    infos = make_samples(tmp_path, count=2, size=64)
    assert [i.path.name for i in infos] == ["astronaut.dng", "chelsea.dng"]
    mtimes = [i.path.stat().st_mtime_ns for i in infos]
    make_samples(tmp_path, count=2, size=64)
    assert [i.path.stat().st_mtime_ns for i in infos] == mtimes


def test_cli_samples_from_image(tmp_path: Path) -> None:
    import imageio.v3 as iio

    img = (default_source_images()["coffee"] * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "photo.png", img)
    r = run_cli("samples", str(tmp_path / "out"), "--from", str(tmp_path / "photo.png"), "--size", "64",
                "--cfa", "GRBG", "--bits", "12")
    assert r.returncode == 0, r.stderr
    assert read_raw_info(tmp_path / "out" / "photo.dng").cfa == "GRBG"
    r = run_cli("samples", str(tmp_path / "out"), "--from", str(tmp_path / "missing.png"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_spec_validation(tmp_path: Path) -> None:
    from darkproxy.errors import RawError
    from darkproxy.raw.synth import write_synthetic_dng

    with pytest.raises(RawError, match="unsupported CFA"):
        write_synthetic_dng(np.zeros((8, 8, 3)), tmp_path / "x.dng", SynthRawSpec(cfa="RGBW"))
