"""Fixtures for dataset tests: a folder of tiny synthetic Bayer DNGs.

Uses :mod:`darkproxy.raw.synth` when it exists; until then a minimal maker
(scikit-image photo -> linear -> RGGB mosaic -> DNG via
:func:`darkproxy.data.probe.write_mosaic_dng`) stands in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _fallback_dng(source: str, path: Path, size: int) -> Path:
    from skimage import data, transform

    from darkproxy.data.probe import write_mosaic_dng

    img = getattr(data, source)()[..., :3].astype(np.float64) / 255.0
    img = transform.resize(img, (size, size), anti_aliasing=True)
    lin = np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)
    m = np.empty((size, size))
    m[0::2, 0::2] = lin[0::2, 0::2, 0] * 0.5  # camera-like channel gains, undone by AsShotNeutral
    m[0::2, 1::2] = lin[0::2, 1::2, 1]
    m[1::2, 0::2] = lin[1::2, 0::2, 1]
    m[1::2, 1::2] = lin[1::2, 1::2, 2] * 0.7
    black, white = 512, 16383
    raw = np.clip(black + m * 0.8 * (white - black), 0, white).astype(np.uint16)
    return write_mosaic_dng(raw, path, "RGGB", black, white, np.eye(3), (0.5, 1.0, 0.7))


def make_dng(source: str, path: Path, size: int = 128) -> Path:
    try:
        from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng
    except ImportError:
        return _fallback_dng(source, path, size)
    write_synthetic_dng(default_source_images()[source], path, SynthRawSpec(size=size))
    return path


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 128 px synthetic DNGs (astronaut, coffee)."""
    d = tmp_path_factory.mktemp("gen-raws")
    make_dng("astronaut", d / "astronaut.dng")
    make_dng("coffee", d / "coffee.dng")
    return d
