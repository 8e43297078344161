"""The EXIF exposure bias a DNG carries (raw/dng.py writes it, raw/exif.py reads it as darktable does).

That darktable itself reads the written tag is checked end to end in tests/test_replica.py
(the exposure-bias raw: darktable's export vs the replica)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.errors import RawError
from darkproxy.raw.dng import write_dng
from darkproxy.raw.exif import read_exposure_bias


def _dng(path: Path, **kw: object) -> Path:
    m = (np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) * 7) % 4000 + 600
    return write_dng(m, path, "RGGB", 512, 16383, **kw)  # type: ignore[arg-type]


def test_exposure_bias_written_and_read(tmp_path: Path) -> None:
    import rawpy
    import tifffile

    p = _dng(tmp_path / "b.dng", exposure_bias=-0.7)
    with tifffile.TiffFile(p) as tf:
        page = tf.pages[0]
        assert page.tags[34665].value == {"ExposureBiasValue": (-7, 10)}  # an EXIF IFD, as cameras write it
        assert page.asarray().shape == (32, 48)  # the image is untouched
    with rawpy.imread(str(p)) as r:
        assert r.raw_image.shape == (32, 48)
    # exiv2's toFloat: float numerator / denominator in float32 (what darktable subtracts from exposure)
    assert read_exposure_bias(p) == float(np.float32(-7) / np.float32(10))
    assert read_exposure_bias(_dng(tmp_path / "n.dng")) == 0.0  # no tag: darktable's bias is 0
    assert read_exposure_bias(_dng(tmp_path / "c.dng", exposure_bias=(13, 2))) == 5.0  # clamped to [-5, 5]
    assert read_exposure_bias(_dng(tmp_path / "t.dng", exposure_bias=(1, 3))) == float(np.float32(1) / np.float32(3))


def test_exposure_bias_unreadable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RawError, match="zero denominator") as e:
        read_exposure_bias(_dng(tmp_path / "z.dng", exposure_bias=(-7, 0)))
    assert "\n" not in str(e.value)
    junk = tmp_path / "x.cr3"
    junk.write_bytes(b"\x00\x00\x00\x18ftypcrx " + bytes(64))  # not a TIFF container
    with pytest.raises(RawError, match="cannot read the EXIF exposure bias") as e:
        read_exposure_bias(junk)
    assert "\n" not in str(e.value)


def test_highlight_preservation_bias(tmp_path: Path) -> None:
    """darktable 5.4's exposure v7 adds back a highlight preservation bias it reads from Canon, Fujifilm, Nikon,
    Olympus and Pentax maker notes: none without maker notes (0 EV); maker notes of those makers are refused in
    one line (darkproxy does not decode them), another maker's are not read by darktable (0 EV)."""
    import tifffile

    from darkproxy.raw.exif import read_highlight_preservation

    assert read_highlight_preservation(_dng(tmp_path / "n.dng")) == 0.0
    img = np.zeros((8, 8), dtype=np.uint16)
    for make, refused in (("NIKON CORPORATION", True), ("Canon", True), ("SONY", False), ("Leica", False)):
        p = tmp_path / f"{make.split()[0]}.tif"
        tifffile.imwrite(p, img, extratags=[(271, "s", 0, make, True), (37500, "B", 4, b"Nkn\x00", True)])
        if refused:
            with pytest.raises(RawError, match="highlight preservation") as e:
                read_highlight_preservation(p)
            assert make in str(e.value) and "\n" not in str(e.value)
        else:
            assert read_highlight_preservation(p) == 0.0
    junk = tmp_path / "x.cr3"
    junk.write_bytes(b"\x00\x00\x00\x18ftypcrx " + bytes(64))
    with pytest.raises(RawError, match="cannot read the maker notes"):
        read_highlight_preservation(junk)
