"""Image metrics between linear Rec2020 images, computed the way people see them:
PSNR and SSIM on display-encoded values (clip to [0, 1], sRGB curve, data range 1)
with scikit-image; CIEDE2000 with scikit-image's ``deltaE_ciede2000`` on CIELAB of
the sRGB display image."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

PSNR_CAP = 100.0  # identical images report this instead of inf


def _enc(img: np.ndarray) -> np.ndarray:
    from darkproxy.viz.images import REC2020_TO_REC709, _hwc

    a = np.clip(_hwc(img).astype(np.float64) @ REC2020_TO_REC709.T, 0.0, 1.0)
    return np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1 / 2.4) - 0.055)


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR (dB) on display-encoded images; :data:`PSNR_CAP` when identical."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _enc(pred), _enc(target)
    if np.array_equal(a, b):
        return PSNR_CAP
    return float(min(PSNR_CAP, peak_signal_noise_ratio(b, a, data_range=1.0)))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM on display-encoded images (skimage, Gaussian window)."""
    from skimage.metrics import structural_similarity

    a, b = _enc(pred), _enc(target)
    win = min(7, (min(a.shape[:2]) // 2) * 2 - 1)
    return float(structural_similarity(b, a, data_range=1.0, channel_axis=-1, win_size=max(win, 3)))


def deltae2000(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """CIEDE2000 between the sRGB display images: (mean, 95th percentile)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    de = deltaE_ciede2000(rgb2lab(_enc(target)), rgb2lab(_enc(pred)))
    return float(de.mean()), float(np.percentile(de, 95))


@dataclass
class ImageMetrics:
    psnr: float
    ssim: float
    deltae_mean: float
    deltae_p95: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def compare(pred: np.ndarray, target: np.ndarray) -> ImageMetrics:
    """All metrics of ``pred`` against ``target`` (both (3, H, W) linear Rec2020)."""
    if np.shape(pred) != np.shape(target):
        from darkproxy.errors import DarkproxyError

        raise DarkproxyError(f"cannot compare images of shapes {np.shape(pred)} and {np.shape(target)}")
    m, p95 = deltae2000(pred, target)
    return ImageMetrics(psnr(pred, target), ssim(pred, target), m, p95)


def aggregate(items: Sequence[ImageMetrics]) -> dict[str, Any]:
    """Mean of each metric, plus median PSNR and the 95th percentile of ΔE."""
    if not items:
        return {}
    arr = {k: np.array([getattr(m, k) for m in items], np.float64) for k in ("psnr", "ssim", "deltae_mean", "deltae_p95")}
    return {
        "psnr": float(arr["psnr"].mean()), "psnr_median": float(np.median(arr["psnr"])),
        "psnr_min": float(arr["psnr"].min()), "ssim": float(arr["ssim"].mean()),
        "deltae_mean": float(arr["deltae_mean"].mean()), "deltae_p95": float(np.percentile(arr["deltae_p95"], 95)),
        "n": len(items),
    }
