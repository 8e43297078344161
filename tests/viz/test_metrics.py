"""Metrics against known values."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000

from darkproxy.viz.metrics import PSNR_CAP, aggregate, compare, psnr, ssim


def _img(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.8, size=(3, 32, 40)).astype(np.float32)


def test_identical() -> None:
    a = _img()
    m = compare(a, a)
    assert m.psnr == PSNR_CAP and m.ssim == pytest.approx(1.0) and m.deltae_mean == 0.0


def test_psnr_of_uniform_offset_in_display_space() -> None:
    # a grey image (equal channels map to equal sRGB channels) offset by 0.01 in display space
    def lin(v: float) -> float:
        return ((v + 0.055) / 1.055) ** 2.4
    a = np.full((3, 16, 16), lin(0.5), np.float32)
    b = np.full((3, 16, 16), lin(0.51), np.float32)
    assert psnr(b, a) == pytest.approx(40.0, abs=0.05)  # 10 log10(1 / 0.01^2)


def test_ciede2000_reference_pair() -> None:
    """Sharma, Wu & Dalal (2005), test pair 1: 2.0425."""
    assert float(deltaE_ciede2000(np.array([50, 2.6772, -79.7751]), np.array([50, 0, -82.7485]))) == pytest.approx(2.0425, abs=1e-4)


def test_ordering_and_aggregate() -> None:
    a = _img()
    small = compare(a * 1.01, a)
    big = compare(a * 1.3, a)
    assert small.psnr > big.psnr and small.ssim >= big.ssim and small.deltae_mean < big.deltae_mean
    agg = aggregate([small, big])
    assert agg["n"] == 2 and agg["psnr"] == pytest.approx((small.psnr + big.psnr) / 2)
    assert 0 < ssim(a * 1.3, a) < 1
