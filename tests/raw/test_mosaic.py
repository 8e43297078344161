"""The packed mosaic: layout independent of the CFA, levels as darktable's rawprepare applies them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.errors import RawError
from darkproxy.raw.dng import write_dng
from darkproxy.raw.mosaic import read_packed_mosaic, read_raw_info
from darkproxy.raw.synth import SynthRawSpec, default_source_images, unprocess, write_synthetic_dng

VALUES = {"R": 1000, "G1": 2000, "G2": 2200, "B": 3000}


def _flat_dng(path: Path, cfa: str, black: int = 512, white: int = 16383) -> Path:
    """A mosaic whose R, G(red row), G(blue row), B sites hold known constants."""
    m = np.zeros((32, 48), np.uint16)
    r_row = cfa.index("R") // 2
    for k, c in enumerate(cfa):
        i, j = divmod(k, 2)
        name = c if c != "G" else ("G1" if i == r_row else "G2")
        m[i::2, j::2] = VALUES[name]
    return write_dng(m, path, cfa, black, white, as_shot_neutral=(0.5, 1.0, 0.8))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return default_source_images(["astronaut"])["astronaut"]


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_packed_order_is_independent_of_cfa(tmp_path: Path, cfa: str) -> None:
    pm = read_packed_mosaic(_flat_dng(tmp_path / f"{cfa}.dng", cfa))
    assert pm.data.shape == (4, 16, 24) and pm.data.dtype == np.float32 and pm.cfa == cfa
    expected = [(VALUES[c] - 512) / (16383 - 512) for c in ("R", "G1", "G2", "B")]
    np.testing.assert_allclose(pm.data.reshape(4, -1).mean(1), expected, rtol=1e-6)
    np.testing.assert_allclose(pm.data.reshape(4, -1).std(1), 0, atol=1e-7)


def test_white_balance_multipliers(tmp_path: Path) -> None:
    plain = read_packed_mosaic(_flat_dng(tmp_path / "a.dng", "RGGB")).data
    pm = read_packed_mosaic(tmp_path / "a.dng", white_balance=True)
    assert pm.white_balanced and pm.wb == pytest.approx((2.0, 1.0, 1.25))
    np.testing.assert_allclose(pm.data[0] / plain[0], 2.0, rtol=1e-5)  # 1 / AsShotNeutral, green = 1
    np.testing.assert_allclose(pm.data[1:3] / plain[1:3], 1.0, rtol=1e-5)
    np.testing.assert_allclose(pm.data[3] / plain[3], 1.25, rtol=1e-5)


def test_same_scene_rggb_and_gbrg_agree(tmp_path: Path, astronaut: np.ndarray) -> None:
    """One scene, constant over each 2x2 cell so both layouts sample the same
    values, written as RGGB and GBRG (different bit depths too): identical packs."""
    from skimage.transform import resize

    cells = resize(astronaut, (32, 32), anti_aliasing=True)
    scene = np.repeat(np.repeat(cells, 2, 0), 2, 1)  # (64, 64, 3), 2x2 blocks
    packs = []
    for cfa, bits in (("RGGB", 14), ("GBRG", 12)):
        p = write_synthetic_dng(
            scene, tmp_path / f"{cfa}.dng", SynthRawSpec(cfa=cfa, bits=bits, size=64, noise=0.0)
        ).path
        packs.append(read_packed_mosaic(p, white_balance=True).data)
    assert packs[0].shape == (4, 32, 32)
    np.testing.assert_allclose(packs[0], packs[1], atol=3 / (4095 - 256))  # 12-bit quantisation x WB gain
    assert np.abs(packs[0][0] - packs[0][3]).mean() > 0.01  # R and B really differ: the order matters


@pytest.mark.parametrize("cfa", ["BGGR", "GRBG"])
def test_synthetic_mosaic_matches_camera_rgb(tmp_path: Path, astronaut: np.ndarray, cfa: str) -> None:
    """The pack is the (white-unbalanced) camera RGB that was written, up to the added noise."""
    spec = SynthRawSpec(cfa=cfa, bits=14, size=96, seed=3)
    u = unprocess(astronaut, spec)
    write_synthetic_dng(astronaut, tmp_path / "x.dng", spec)
    pm = read_packed_mosaic(tmp_path / "x.dng")
    assert pm.black == (u.black,) * 4 and pm.white == u.white
    r_row, r_col = divmod(cfa.index("R"), 2)
    b_row, b_col = divmod(cfa.index("B"), 2)
    expected = np.stack(
        [
            u.camera_rgb[r_row::2, r_col::2, 0],
            u.camera_rgb[r_row::2, b_col::2, 1],
            u.camera_rgb[b_row::2, r_col::2, 1],
            u.camera_rgb[b_row::2, b_col::2, 2],
        ]
    )
    unclipped = expected < 0.95  # the sensor clips at the white level
    assert unclipped.mean() > 0.99
    resid = (pm.data - expected)[unclipped]
    sigma = np.sqrt(spec.noise * expected + (spec.noise / 4) ** 2)[unclipped]
    z = resid / sigma
    assert abs(float(z.mean())) < 0.05 and 0.9 < float(z.std()) < 1.1  # exactly the shot + read noise model
    assert float(np.abs(resid).max()) < 6 * float(sigma.max()) + 1 / (u.white - u.black)


def test_read_raw_info(tmp_path: Path) -> None:
    info = read_raw_info(_flat_dng(tmp_path / "a.dng", "GRBG", black=256, white=4095))
    assert (info.cfa, info.black, info.white, info.size) == ("GRBG", (256,) * 4, 4095, (32, 48))
    assert info.wb == pytest.approx((2.0, 1.0, 1.25))


def test_corrupt_missing_and_foreign_files(tmp_path: Path, astronaut: np.ndarray) -> None:
    good = write_synthetic_dng(astronaut, tmp_path / "good.dng", SynthRawSpec(size=64)).path
    cases = {
        "random.dng": np.random.default_rng(0).bytes(4000),
        "truncated.dng": good.read_bytes()[:5000],
        "empty.dng": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        for reader in (read_raw_info, read_packed_mosaic):
            with pytest.raises(RawError, match="cannot read raw") as e:
                reader(tmp_path / name)
            assert "\n" not in str(e.value)
    with pytest.raises(RawError, match="does not exist"):
        read_packed_mosaic(tmp_path / "none.dng")
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "photo.png", (astronaut[:32, :32] * 255).astype(np.uint8))
    with pytest.raises(RawError):
        read_raw_info(tmp_path / "photo.png")
