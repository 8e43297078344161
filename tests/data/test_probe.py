"""The probe's DNGs get the raw's own colour matrix, or the probe refuses: never a made-up one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.data.probe import probe_pointwise, read_mosaic
from darkproxy.errors import RawError
from darkproxy.raw.dng import write_dng


def _mosaic() -> np.ndarray:
    return (np.random.default_rng(0).random((64, 64)) * 4000 + 100).astype(np.uint16)


def _dng_without_color_matrix(path: Path) -> Path:
    """A Bayer DNG with every tag :func:`write_dng` writes but ColorMatrix1, of a camera
    LibRaw does not know: nothing in it or in LibRaw says what its colours are."""
    import tifffile

    tags = [
        (271, "s", 0, "nocamera", True),
        (272, "s", 0, "nomatrix", True),
        (33421, "H", 2, (2, 2), True),
        (33422, "B", 4, (0, 1, 1, 2), True),
        (50706, "B", 4, (1, 4, 0, 0), True),
        (50707, "B", 4, (1, 1, 0, 0), True),
        (50708, "s", 0, "nocamera nomatrix", True),
        (50710, "B", 3, (0, 1, 2), True),
        (50711, "H", 1, 1, True),
        (50713, "H", 2, (1, 1), True),
        (50714, "I", 1, 0, True),
        (50717, "I", 1, 65535, True),
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),
    ]
    tifffile.imwrite(path, _mosaic(), photometric=32803, compression=None, subfiletype=0, extratags=tags, metadata=None)
    return path


def test_the_raws_color_matrix_is_read(tmp_path: Path) -> None:
    """A DNG's ColorMatrix1 (LibRaw reports none for it) is what the probe's DNGs get."""
    cm = np.array([[0.9, -0.3, -0.1], [-0.4, 1.3, 0.1], [-0.05, 0.15, 0.6]])
    rm = read_mosaic(write_dng(_mosaic(), tmp_path / "cm.dng", color_matrix=cm))
    np.testing.assert_allclose(rm.color_matrix, cm, atol=1e-6)
    assert rm.cfa == "RGGB" and rm.mosaic.shape == (64, 64)


def test_a_raw_without_a_color_matrix_is_refused(dt, tmp_path: Path) -> None:
    raw = _dng_without_color_matrix(tmp_path / "nocm.dng")
    for call in (lambda: read_mosaic(raw), lambda: probe_pointwise(dt, raw, "exposure", {"exposure": 1.0})):
        with pytest.raises(RawError, match="no colour matrix for this camera") as e:
            call()
        assert "\n" not in str(e.value)
