"""Image metrics between two ``linear_rec2020`` images ``(3, H, W)`` (or
``(H, W, 3)``), and their aggregates over samples. One function per metric:

* **Display PSNR** (:func:`display_psnr`) and **SSIM** on
  :func:`~darkproxy.colour.encodings.srgb_display_rec709` (what a monitor shows: clip
  to ``[0, 1]`` then the sRGB curve; data range 1). Blind above linear 1.0.
* **PU21 PSNR** (:func:`pu21_psnr`): PSNR of PU21-encoded luminance
  (:func:`~darkproxy.colour.encodings.pu21_luminance`, linear 1.0 = 100 cd/m², nothing
  clipped below 10,000 cd/m² = +6.6 EV over white; data range
  :func:`~darkproxy.colour.encodings.pu21_peak`). Sees errors in highlights.
* **HDR-FLIP** (:func:`hdrflip_mean`): NVIDIA's FLIP for HDR images
  (``flip-evaluator``, Andersson et al. 2021) on the linear Rec709 images, mean
  over pixels; 0 = identical, 1 = maximally different. Unclipped above 1.
* **CIEDE2000** (Sharma, Wu & Dalal 2005) with scikit-image on the display image.

Images that are already display-referred sRGB in ``[0, 1]`` (darktable's own
export, a reference photo, the replica's output) are compared with
:func:`display_image_psnr` and :func:`display_image_deltae2000`: the same
formulas without the encoding step.

Identical images have an infinite PSNR; per image it is reported as
:data:`PSNR_CAP` (100 dB) so JSON stays finite. Aggregates never average dB
values or caps: :func:`aggregate` pools the squared error over samples
(``psnr`` = PSNR of the mean MSE) and reports the worst case beside it
(``psnr_min``, ``psnr_p05``).

NaN in an input propagates into the metrics (a broken prediction is not
silently scored)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from darkproxy.colour.encodings import linear_rec709_from_rec2020, pu21_luminance, pu21_peak, srgb_display_rec709

PSNR_CAP = 100.0  # dB reported for identical images (true PSNR = inf)


def as_hwc(img: Any) -> np.ndarray:
    """Float ``(H, W, 3)`` view of an image given as ``(3, H, W)``, ``(H, W, 3)``,
    ``(H, W)`` / ``(1, H, W)`` (grey, repeated to 3 channels) or with a 4th
    (alpha) channel, which is dropped. A leading axis of 3 (or 4) is taken as
    channels unless the last axis is 3 (or 4) too. float64 input stays float64,
    anything else becomes float32. Accepts numpy arrays and CPU torch tensors."""
    if hasattr(img, "detach"):  # torch tensor: no torch import needed here
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    a = a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)
    if a.ndim == 2:
        a = a[..., None]
    elif a.ndim == 3 and (
        (a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4)) or (a.shape[0] == 1 and a.shape[-1] not in (1, 3, 4))
    ):
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image (3, H, W), (H, W, 3) or (H, W); got shape {a.shape}")
    a = a[..., :3]
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def mse_at_cap(data_range: float = 1.0, cap: float = PSNR_CAP) -> float:
    """The mean squared error at which :func:`psnr_from_mse` reaches ``cap``
    (an error at or below it reports ``cap``)."""
    return data_range**2 * 10.0 ** (-cap / 10.0)


def psnr_from_mse(mse: float, data_range: float = 1.0, cap: float = PSNR_CAP) -> float:
    """``10 log10(data_range² / mse)`` in dB, at most ``cap`` (``mse`` 0 gives
    ``cap``); NaN stays NaN. The one PSNR formula of the project."""
    if math.isnan(mse):
        return float("nan")
    if mse <= mse_at_cap(data_range, cap):
        return float(cap)
    return 10.0 * math.log10(data_range**2 / mse)


def _check(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_hwc(pred), as_hwc(target)
    if a.shape != b.shape:
        from darkproxy.errors import DarkproxyError

        raise DarkproxyError(f"cannot compare images of shapes {np.shape(pred)} and {np.shape(target)}")
    return a.astype(np.float64), b.astype(np.float64)


def _display(a_hwc: np.ndarray) -> np.ndarray:
    return srgb_display_rec709(a_hwc, channel_axis=-1)


def display_mse(pred: Any, target: Any) -> float:
    """Mean squared error of the ``srgb_display_rec709`` images (range 1)."""
    a, b = _check(pred, target)
    return float(np.mean((_display(a) - _display(b)) ** 2))


def display_psnr(pred: Any, target: Any, cap: float = PSNR_CAP) -> float:
    """PSNR (dB) of ``pred`` against ``target`` on ``srgb_display_rec709``
    (data range 1), at most ``cap``."""
    return psnr_from_mse(display_mse(pred, target), 1.0, cap)


def display_psnr_batch(pred: torch.Tensor, target: torch.Tensor, cap: float = PSNR_CAP) -> torch.Tensor:
    """Per-item display PSNR ``(B,)`` (dB, at most ``cap``) of ``(B, 3, H, W)``
    ``linear_rec2020`` tensors (what training validation reports)."""
    d = srgb_display_rec709(pred.double()) - srgb_display_rec709(target.double())
    mse = (d**2).flatten(1).mean(1).clamp_min(10.0 ** (-cap / 10.0))
    return (-10.0 * torch.log10(mse)).float()


def pu21_mse(pred: Any, target: Any) -> float:
    """Mean squared error of the PU21-encoded luminances (PU units)."""
    a, b = _check(pred, target)
    return float(np.mean((pu21_luminance(a, channel_axis=-1) - pu21_luminance(b, channel_axis=-1)) ** 2))


def pu21_psnr(pred: Any, target: Any, cap: float = PSNR_CAP) -> float:
    """PSNR (dB) of PU21-encoded luminance (linear 1.0 = 100 cd/m²), data range
    PU21(10,000 cd/m²); at most ``cap``. Unlike :func:`display_psnr` it sees
    errors above linear 1.0 (up to +6.6 EV over white)."""
    return psnr_from_mse(pu21_mse(pred, target), pu21_peak(), cap)


def hdrflip_mean(pred: Any, target: Any) -> float:
    """Mean HDR-FLIP error (``flip_evaluator.evaluate(target, pred, "HDR")``) of
    the linear Rec709 images, negatives (out-of-gamut) set to 0 because HDR-FLIP
    takes non-negative radiance; no upper clip. FLIP picks its exposure range
    from the target, so proxy and identity compared with the same target share
    it. 0 = identical; NaN input gives NaN."""
    import flip_evaluator

    a, b = _check(pred, target)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    ta = np.ascontiguousarray(np.maximum(linear_rec709_from_rec2020(a, channel_axis=-1), 0.0), np.float32)
    tb = np.ascontiguousarray(np.maximum(linear_rec709_from_rec2020(b, channel_axis=-1), 0.0), np.float32)
    if np.array_equal(ta, tb):
        return 0.0
    _, mean, _ = flip_evaluator.evaluate(tb, ta, "HDR", applyMagma=False, parameters=_flip_exposures(tb))
    return float(mean)


# FLIP's own exposure range maps the reference's median luminance to ~1.095 (start) and its maximum
# to ~4.1 (stop); measured from flip-evaluator 1.7's returned parameters
_FLIP_MID, _FLIP_MAX = 1.095, 4.1


def _flip_exposures(reference: np.ndarray) -> dict[str, float]:
    """``{}`` (FLIP picks the exposure range) unless FLIP would compute a start
    exposure at or above its stop one (a reference whose median luminance is 0,
    e.g. mostly black): flip-evaluator then ends the whole process. In that case
    an explicit range: FLIP's stop from the maximum, start from the median of
    the non-zero luminances, never above stop."""
    y = reference @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    y_max, y_med = float(y.max()), float(np.median(y))
    if y_med > 0 and y_max > 0 and np.log2(_FLIP_MID / y_med) < np.log2(_FLIP_MAX / y_max) - 0.25:
        return {}
    stop = float(np.log2(_FLIP_MAX / max(y_max, 1e-6)))
    pos = y[y > 0]
    start = float(np.log2(_FLIP_MID / float(np.median(pos)))) if pos.size else stop
    return {"startExposure": min(start, stop), "stopExposure": stop}


def ssim(pred: Any, target: Any) -> float:
    """Mean SSIM on ``srgb_display_rec709`` (data range 1, channels averaged) via
    ``skimage.metrics.structural_similarity`` with the settings of Wang et al.
    (2004): 11x11 Gaussian window, sigma 1.5, population covariance. Images
    smaller than 11 px on a side use the largest odd uniform window that fits
    (at least 3 px; smaller images raise ``ValueError``)."""
    from skimage.metrics import structural_similarity

    a, b = (_display(x) for x in _check(pred, target))
    side = min(a.shape[:2])
    if side >= 11:
        kw: dict[str, Any] = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    elif side >= 3:
        kw = {"win_size": side if side % 2 else side - 1}
    else:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {a.shape[:2]}")
    return float(structural_similarity(b, a, data_range=1.0, channel_axis=-1, **kw))


def lab_of_display(img_linear_rec2020: Any) -> np.ndarray:
    """CIELAB (D65, 2°) float64 ``(H, W, 3)`` of the ``srgb_display_rec709``
    image of a ``linear_rec2020`` image (the colours :func:`deltae2000` compares)."""
    from skimage.color import rgb2lab

    return rgb2lab(_display(as_hwc(img_linear_rec2020).astype(np.float64)))


def _deltae_stats(lab_pred: np.ndarray, lab_target: np.ndarray) -> tuple[float, float]:
    """CIEDE2000 per pixel: ``(mean, 95th percentile)``."""
    from skimage.color import deltaE_ciede2000

    de = deltaE_ciede2000(lab_target, lab_pred)
    return float(np.mean(de)), float(np.percentile(de, 95))


def deltae2000(pred: Any, target: Any) -> tuple[float, float]:
    """CIEDE2000 colour difference per pixel between the display images of
    ``pred`` and ``target``: ``(mean, 95th percentile)``. 0 for identical images;
    about 1 is a just-noticeable difference."""
    a, b = _check(pred, target)
    return _deltae_stats(lab_of_display(a), lab_of_display(b))


def display_image_psnr(pred: np.ndarray, target: np.ndarray, cap: float = PSNR_CAP) -> float:
    """PSNR (dB, at most ``cap``) of two display-referred sRGB images ``(3, H, W)``
    in ``[0, 1]`` (data range 1; nothing encoded or clipped: they already are)."""
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return psnr_from_mse(float(np.mean(d**2)), 1.0, cap)


def display_image_deltae2000(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """CIEDE2000 between two display-referred sRGB images ``(3, H, W)`` (clipped
    to ``[0, 1]``): ``(mean, 95th percentile)`` over the pixels."""
    from skimage.color import rgb2lab

    def lab(x: np.ndarray) -> np.ndarray:
        return rgb2lab(np.moveaxis(np.clip(x, 0, 1), 0, -1).astype(np.float64))

    return _deltae_stats(lab(pred), lab(target))


@dataclass
class ImageMetrics:
    """Metrics of one prediction against its target: ``psnr`` (display, dB, at
    most :data:`PSNR_CAP`) and its ``mse``; ``pu21_psnr`` (dB) and its
    ``pu21_mse``; ``hdrflip_mean``; ``ssim`` (<= 1); ``deltae_mean`` and
    ``deltae_p95`` (CIEDE2000 over the pixels)."""

    psnr: float
    mse: float
    pu21_psnr: float
    pu21_mse: float
    hdrflip_mean: float
    ssim: float
    deltae_mean: float
    deltae_p95: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def compare(pred: Any, target: Any) -> ImageMetrics:
    """All metrics of ``pred`` against ``target`` (both ``linear_rec2020``, same
    shape ``(3, H, W)`` or ``(H, W, 3)``); a shape mismatch raises
    :class:`~darkproxy.errors.DarkproxyError`."""
    a, b = _check(pred, target)
    mse, pmse = display_mse(a, b), pu21_mse(a, b)
    m, p95 = deltae2000(a, b)
    return ImageMetrics(
        psnr_from_mse(mse), mse, psnr_from_mse(pmse, pu21_peak()), pmse, hdrflip_mean(a, b), ssim(a, b), m, p95
    )


def worst_case(values: Sequence[float] | np.ndarray, prefix: str) -> dict[str, float]:
    """``{prefix}_min``, ``{prefix}_p05`` (5th percentile, linear interpolation)
    and ``{prefix}_median`` of per-sample values (e.g. dB over samples or sweep
    steps). NaN values count as the worst."""
    v = np.array([(-math.inf if math.isnan(x) else x) for x in values], np.float64)
    if v.size == 0:
        return {}
    with np.errstate(invalid="ignore"):  # -inf - -inf inside the interpolation
        p05 = float(np.percentile(v, 5))
    return {
        f"{prefix}_min": float(v.min()),
        f"{prefix}_p05": -math.inf if math.isnan(p05) else p05,
        f"{prefix}_median": float(np.median(v)),
    }


def aggregate(items: Sequence[ImageMetrics]) -> dict[str, Any]:
    """Summary over samples that cannot flatter:

    * ``psnr`` / ``pu21_psnr``: PSNR of the squared error pooled over samples
      (mean MSE; no per-sample cap enters it), with ``*_min``, ``*_p05`` and
      ``*_median`` of the per-sample values;
    * ``hdrflip_mean`` (mean over samples, each a mean over its pixels) and
      ``hdrflip_max``; ``ssim`` (mean) and ``ssim_min``; ``deltae_mean`` (mean)
      and ``deltae_mean_max``; ``deltae_p95``: 95th percentile over samples of
      their per-image p95; ``n``.

    Empty input gives ``{}``."""
    if not items:
        return {}

    def arr(k: str) -> np.ndarray:
        return np.array([getattr(m, k) for m in items], np.float64)

    out: dict[str, Any] = {
        "psnr": psnr_from_mse(float(arr("mse").mean())),
        **worst_case(arr("psnr"), "psnr"),
        "pu21_psnr": psnr_from_mse(float(arr("pu21_mse").mean()), pu21_peak()),
        **worst_case(arr("pu21_psnr"), "pu21_psnr"),
        "hdrflip_mean": float(arr("hdrflip_mean").mean()),
        "hdrflip_max": float(arr("hdrflip_mean").max()),
        "ssim": float(arr("ssim").mean()),
        "ssim_min": float(arr("ssim").min()),
        "deltae_mean": float(arr("deltae_mean").mean()),
        "deltae_mean_max": float(arr("deltae_mean").max()),
        "deltae_p95": float(np.percentile(arr("deltae_p95"), 95)),
        "n": len(items),
    }
    return out
