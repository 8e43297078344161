"""The packed mosaic: layout independent of the CFA, levels as darktable applies them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.errors import RawError
from darkproxy.raw.dng import write_dng
from darkproxy.raw.mosaic import read_packed_mosaic

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


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_packed_order_is_independent_of_cfa(tmp_path: Path, cfa: str) -> None:
    pm = read_packed_mosaic(_flat_dng(tmp_path / f"{cfa}.dng", cfa))
    assert pm.data.shape == (4, 16, 24) and pm.data.dtype == np.float32
    expected = [(VALUES[c] - 512) / (16383 - 512) for c in ("R", "G1", "G2", "B")]
    np.testing.assert_allclose(pm.data.reshape(4, -1).mean(1), expected, rtol=1e-6)
    np.testing.assert_allclose(pm.data.reshape(4, -1).std(1), 0, atol=1e-7)


def test_white_balance_multipliers(tmp_path: Path) -> None:
    plain = read_packed_mosaic(_flat_dng(tmp_path / "a.dng", "RGGB")).data
    wb = read_packed_mosaic(tmp_path / "a.dng", white_balance=True).data
    np.testing.assert_allclose(wb[0] / plain[0], 2.0, rtol=1e-5)  # 1 / AsShotNeutral, green = 1
    np.testing.assert_allclose(wb[1] / plain[1], 1.0, rtol=1e-5)
    np.testing.assert_allclose(wb[3] / plain[3], 1.25, rtol=1e-5)


def test_synthetic_mosaic_matches_what_was_written(make_raw) -> None:
    from darkproxy.raw.synth import CAMERA_MATRIX, SRGB_TO_XYZ, SynthRawSpec, default_source_images, unprocess

    spec = SynthRawSpec(cfa="GBRG", bits=14, size=64, noise=0.0)
    raw, black, white, _ = unprocess(default_source_images()["astronaut"], spec)
    from darkproxy.raw.dng import write_dng as w

    import tempfile

    with tempfile.TemporaryDirectory() as td:
        p = w(raw, Path(td) / "x.dng", "GBRG", black, white, CAMERA_MATRIX)
        pm = read_packed_mosaic(p).data
    # GBRG: R sits at (1, 0), G1 (red row) at (1, 1), G2 at (0, 0), B at (0, 1)
    expected_r = (raw[1::2, 0::2].astype(np.float32) - black) / (white - black)
    np.testing.assert_allclose(pm[0], expected_r, atol=1e-6)
    np.testing.assert_allclose(pm[1], (raw[1::2, 1::2].astype(np.float32) - black) / (white - black), atol=1e-6)


def test_corrupt_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"\x00\x01" * 500)
    with pytest.raises(RawError, match="cannot read raw"):
        read_packed_mosaic(bad)
    with pytest.raises(RawError, match="does not exist"):
        read_packed_mosaic(tmp_path / "none.dng")
