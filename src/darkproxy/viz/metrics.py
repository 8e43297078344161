"""Image metrics between two ``linear_rec2020`` images ``(3, H, W)`` (or
``(H, W, 3)``), computed on what people see:

* PSNR and SSIM in the project's metric space ``srgb_display``
  (:func:`darkproxy.colorspace.display_encode`: clip to ``[0, 1]``, sRGB
  curve, Rec2020 primaries kept, data range 1) with scikit-image, so they match
  the validation PSNR that training reports. Identical images have an infinite
  PSNR; it is reported as :data:`PSNR_CAP` (100 dB) so that JSON stays finite
  and means stay meaningful.
* CIEDE2000 (Sharma, Wu & Dalal 2005) with scikit-image's ``rgb2lab`` (D65, 2°)
  and ``deltaE_ciede2000`` on the colorimetric sRGB display image
  (:func:`darkproxy.viz.images.to_display_float`: Rec2020 -> sRGB primaries,
  clip, sRGB curve), because ``rgb2lab`` assumes sRGB primaries.

NaN in an input propagates into the metrics (a broken prediction is not
silently scored)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from darkproxy.colorspace import display_encode
from darkproxy.viz.images import as_hwc

PSNR_CAP = 100.0  # dB reported for identical images (true PSNR = inf)


def _metric_space(img: Any) -> np.ndarray:
    """``linear_rec2020`` -> ``srgb_display`` float64 ``(H, W, 3)`` in ``[0, 1]``
    (NaN kept)."""
    return np.asarray(display_encode(as_hwc(img).astype(np.float64)))


def _check(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_hwc(pred), as_hwc(target)
    if a.shape != b.shape:
        from darkproxy.errors import DarkproxyError

        raise DarkproxyError(f"cannot compare images of shapes {np.shape(pred)} and {np.shape(target)}")
    return a, b


def psnr(pred: Any, target: Any, cap: float = PSNR_CAP) -> float:
    """PSNR (dB) of ``pred`` against ``target`` in ``srgb_display`` (data range 1),
    via ``skimage.metrics.peak_signal_noise_ratio``; at most ``cap`` (identical
    images give exactly ``cap``)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = (_metric_space(x) for x in _check(pred, target))
    mse = float(np.mean((a - b) ** 2))
    if mse <= 10.0 ** (-cap / 10.0):  # includes identical images (mse 0, PSNR inf)
        return float(cap)
    return float(peak_signal_noise_ratio(b, a, data_range=1.0))


def ssim(pred: Any, target: Any) -> float:
    """Mean SSIM in ``srgb_display`` (data range 1, channels averaged) via
    ``skimage.metrics.structural_similarity`` with the settings of Wang et al.
    (2004): 11x11 Gaussian window, sigma 1.5, population covariance. Images
    smaller than 11 px on a side use the largest odd uniform window that fits
    (at least 3 px; smaller images raise ``ValueError``)."""
    from skimage.metrics import structural_similarity

    a, b = (_metric_space(x) for x in _check(pred, target))
    side = min(a.shape[:2])
    if side >= 11:
        kw: dict[str, Any] = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    elif side >= 3:
        kw = {"win_size": side if side % 2 else side - 1}
    else:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {a.shape[:2]}")
    return float(structural_similarity(b, a, data_range=1.0, channel_axis=-1, **kw))


def lab_of_display(img_linear_rec2020: Any) -> np.ndarray:
    """CIELAB (D65, 2°) float64 ``(H, W, 3)`` of the sRGB display image of a
    ``linear_rec2020`` image (the colours :func:`deltae2000` compares)."""
    from skimage.color import rgb2lab

    from darkproxy.viz.images import to_display_float

    return rgb2lab(to_display_float(img_linear_rec2020))


def deltae2000(pred: Any, target: Any) -> tuple[float, float]:
    """CIEDE2000 colour difference per pixel between the sRGB display images of
    ``pred`` and ``target``: ``(mean, 95th percentile)``. 0 for identical images;
    about 1 is a just-noticeable difference."""
    from skimage.color import deltaE_ciede2000

    a, b = _check(pred, target)
    de = deltaE_ciede2000(lab_of_display(b), lab_of_display(a))
    return float(np.mean(de)), float(np.percentile(de, 95))


@dataclass
class ImageMetrics:
    """Metrics of one prediction against its target: ``psnr`` (dB, capped at
    :data:`PSNR_CAP`), ``ssim`` (<= 1), ``deltae_mean`` and ``deltae_p95``
    (CIEDE2000 over the pixels)."""

    psnr: float
    ssim: float
    deltae_mean: float
    deltae_p95: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def compare(pred: Any, target: Any) -> ImageMetrics:
    """All metrics of ``pred`` against ``target`` (both ``linear_rec2020``, same
    shape ``(3, H, W)`` or ``(H, W, 3)``); a shape mismatch raises
    :class:`~darkproxy.errors.DarkproxyError`."""
    _check(pred, target)
    m, p95 = deltae2000(pred, target)
    return ImageMetrics(psnr(pred, target), ssim(pred, target), m, p95)


def aggregate(items: Sequence[ImageMetrics]) -> dict[str, Any]:
    """Summary over images: ``psnr``, ``ssim``, ``deltae_mean`` are means (PSNR:
    mean of the per-image dB values); ``deltae_p95`` is the 95th percentile over
    images of their per-image p95. Also ``psnr_median``, ``psnr_min``,
    ``ssim_median``, ``ssim_min``, ``deltae_mean_median``, ``deltae_mean_max`` and
    ``n``. Empty input gives ``{}``."""
    if not items:
        return {}
    arr = {k: np.array([getattr(m, k) for m in items], np.float64) for k in ("psnr", "ssim", "deltae_mean", "deltae_p95")}
    return {
        "psnr": float(arr["psnr"].mean()), "psnr_median": float(np.median(arr["psnr"])),
        "psnr_min": float(arr["psnr"].min()),
        "ssim": float(arr["ssim"].mean()), "ssim_median": float(np.median(arr["ssim"])),
        "ssim_min": float(arr["ssim"].min()),
        "deltae_mean": float(arr["deltae_mean"].mean()), "deltae_mean_median": float(np.median(arr["deltae_mean"])),
        "deltae_mean_max": float(arr["deltae_mean"].max()),
        "deltae_p95": float(np.percentile(arr["deltae_p95"], 95)),
        "n": len(items),
    }
