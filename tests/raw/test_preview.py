"""The camera's embedded preview (raw/preview.py), against darktable's own upright render of the raw."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from darkproxy.errors import RawError
from darkproxy.raw.preview import embedded_preview
from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

# the preview JPEG's own error at 128 px (chroma subsampling, quantisation): 3.0 of 255 mean on the photo as
# it is, 1.9-2.3 relit (measured); the bound leaves 1 of 255
JPEG_ERROR = 4.0 / 255.0


def _grey(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    g = resize(np.asarray(img, np.float64).mean(-1), shape, anti_aliasing=True)
    return (g - g.mean()) / g.std()


def test_preview_is_upright_as_darktable_shows_the_raw_at_every_orientation(dt, tmp_path: Path) -> None:
    """A synthetic raw with the camera's preview (the photo it is made from, a JPEG) and each TIFF Orientation
    tag 1-8: the preview read back upright has the shape of darktable's render of the raw (which applies the
    tag in its flip module) and correlates with it (grey levels at 32 x 32: 0.987 at every orientation,
    measured) far better than any other of the 8 ways to lay it (at most 0.451 measured; bound 0.6): a wrong
    turn or mirror fails."""
    from darkproxy.darktable.render import RenderJob, read_tiff

    photo = default_source_images(["coffee"])["coffee"]
    raws = []
    for o in range(1, 9):
        raws.append(tmp_path / f"o{o}.dng")
        write_synthetic_dng(photo, raws[-1], SynthRawSpec(size=96, preview=80, orientation=o))
    with tempfile.TemporaryDirectory() as td:
        base = dt.default_history(raws[0])  # flip's default: the orientation the raw's tag says, per raw
        jobs = [RenderJob(r, base, Path(td) / f"{r.stem}.tif") for r in raws]
        renders = [np.moveaxis(read_tiff(p), 0, -1) for p in dt.renderer(max_size=96).render_batch(jobs)]
    for o, (raw, render) in enumerate(zip(raws, renders, strict=True), start=1):
        pv = embedded_preview(raw)
        assert pv.dtype == np.uint8 and pv.shape[2] == 3
        assert (pv.shape[0] > pv.shape[1]) == (render.shape[0] > render.shape[1]), (o, pv.shape, render.shape)
        ref = _grey(render, (32, 32))
        score = {}
        for k in range(4):  # every orientation of the preview as read: the 4 turns, mirrored or not
            for mirror in (False, True):
                cand = np.rot90(pv[:, ::-1] if mirror else pv, k)
                score[(k, mirror)] = float((_grey(cand, (32, 32)) * ref).mean())
        assert score[(0, False)] > 0.9, (o, score)
        assert max(v for key, v in score.items() if key != (0, False)) < 0.6, (o, score)


def test_a_raw_without_a_preview_is_refused_in_one_line(make_raw, tmp_path: Path) -> None:
    with pytest.raises(RawError, match="no embedded preview") as e:
        embedded_preview(make_raw(size=64))
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(RawError) as e:
        embedded_preview(bad)
    assert "\n" not in str(e.value)


def test_a_camera_sized_preview_is_written_whole(tmp_path: Path) -> None:
    """A preview of 800 px (tifffile splits a large image into strips by default: the one JPEG stream must stay
    one strip) reads back as the photo it was made from."""
    photo = default_source_images(["coffee"])["coffee"]
    raw = tmp_path / "big.dng"
    write_synthetic_dng(photo, raw, SynthRawSpec(size=96, preview=800))
    pv = embedded_preview(raw)
    assert max(pv.shape[:2]) == 800
    g = _grey(photo, pv.shape[:2])
    assert float(np.mean(g * _grey(pv, pv.shape[:2]))) > 0.99  # the same picture (correlation of standardised grey)


def test_a_preview_that_follows_the_exposure_is_the_photo_relit(tmp_path: Path) -> None:
    """``preview_gain``: the preview is the photo's linear light times the raw's auto exposure times the gain
    (a camera's JPEG follows the raw's exposure): two raws of one photo exposed 1 EV apart have previews 1 EV
    apart in linear light where neither clips; ``preview_gain`` 0 keeps the photo whatever the exposure."""
    from darkproxy.colour.encodings import srgb_decode, srgb_encode
    from darkproxy.raw.synth import resize_long_side, srgb_to_linear, unprocess

    photo = default_source_images(["coffee"])["coffee"]
    lin = {}
    for headroom in (0.5, 0.25):
        spec = SynthRawSpec(size=128, preview=128, headroom=headroom, preview_gain=0.6)
        raw = tmp_path / f"h{headroom}.dng"
        write_synthetic_dng(photo, raw, spec)
        pv = embedded_preview(raw).astype(np.float64) / 255.0
        exposure = unprocess(photo, spec).exposure
        want = srgb_encode(srgb_to_linear(resize_long_side(photo, 128)) * exposure * 0.6)
        assert want.shape == pv.shape and np.abs(pv - want).mean() < JPEG_ERROR
        lin[headroom] = srgb_decode(pv)
    mid = (lin[0.5] > 0.05) & (lin[0.5] < 0.8)  # neither clipped nor in the JPEG's coarse shadows
    assert abs(float(np.median(lin[0.5][mid] / lin[0.25][mid])) - 2.0) < 0.06
    raw = tmp_path / "photo.dng"
    write_synthetic_dng(photo, raw, SynthRawSpec(size=128, preview=128, headroom=0.25))
    assert np.abs(embedded_preview(raw) / 255.0 - resize_long_side(photo, 128)).mean() < JPEG_ERROR
