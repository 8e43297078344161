"""Display and perceptual encodings of ``linear_rec2020`` images.

Every function accepts a numpy array or a torch tensor of any shape and returns
the same kind (numpy float16/int inputs come back as float32, other float dtypes
are kept). Torch versions are differentiable.

* :func:`display_encode` is the project's **metric space** (``srgb_display``):
  clip to ``[0, 1]`` then the sRGB transfer curve. PSNR is always computed
  there with a data range of 1 (:func:`display_psnr`). Note that Rec2020
  primaries are kept (no gamut conversion): the metric only needs a perceptual
  tone scale, not a colorimetrically correct display image.
* :func:`perceptual_loss_encode` is what training losses compare. Clipping
  would zero the gradient of every highlight (> 1) and every out-of-gamut
  negative, so the loss encodings are smooth, odd-symmetric and unbounded.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T", np.ndarray, torch.Tensor)

_SRGB_T = 0.0031308  # linear breakpoint of the sRGB curve
_SRGB_T_ENC = 0.04045  # its encoded value (12.92 * _SRGB_T, rounded as in the standard)

LOSS_SPACES = ("srgb", "linear", "mu_law", "log")


def _xp(x: Any) -> Any:
    return torch if isinstance(x, torch.Tensor) else np


def _as_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.float()
    a = np.asarray(x)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)


def srgb_encode(x: T) -> T:
    """Linear ``[0, 1]`` -> sRGB-encoded ``[0, 1]`` (IEC 61966-2-1 transfer
    curve). The input is clipped to ``[0, 1]`` first."""
    x = _as_float(x)
    xp = _xp(x)
    a = xp.clip(x, 0.0, 1.0)
    # clamp inside the power so the unused branch has no NaN/inf gradient
    return xp.where(a <= _SRGB_T, 12.92 * a, 1.055 * xp.clip(a, _SRGB_T, None) ** (1 / 2.4) - 0.055)


def srgb_decode(y: T) -> T:
    """sRGB-encoded ``[0, 1]`` -> linear ``[0, 1]`` (inverse of :func:`srgb_encode`;
    the input is clipped to ``[0, 1]``)."""
    y = _as_float(y)
    xp = _xp(y)
    b = xp.clip(y, 0.0, 1.0)
    return xp.where(b <= _SRGB_T_ENC, b / 12.92, ((xp.clip(b, _SRGB_T_ENC, None) + 0.055) / 1.055) ** 2.4)


def srgb_encode_ext(x: T) -> T:
    """sRGB curve extended to all reals: odd-symmetric and continued above 1
    with the same power law (no clipping). Equals :func:`srgb_encode` on
    ``[0, 1]``; gradient 12.92 at 0, positive everywhere."""
    x = _as_float(x)
    xp = _xp(x)
    a = xp.abs(x)
    return xp.where(a <= _SRGB_T, 12.92 * x, xp.sign(x) * (1.055 * xp.clip(a, _SRGB_T, None) ** (1 / 2.4) - 0.055))


def display_encode(x: T) -> T:
    """``linear_rec2020`` (any range) -> ``srgb_display`` in ``[0, 1]``: clip to
    ``[0, 1]`` then the sRGB transfer curve. The metric space of the project."""
    return srgb_encode(x)


def mu_law(x: T, mu: float = 255.0) -> T:
    """mu-law compression ``sign(x) * log(1 + mu |x|) / log(1 + mu)``: maps
    ``[0, 1]`` onto ``[0, 1]``, log-like for bright values, no clipping."""
    x = _as_float(x)
    xp = _xp(x)
    return xp.sign(x) * xp.log1p(mu * xp.abs(x)) / math.log1p(mu)


def log_encode(x: T, eps: float = 1.0 / 256) -> T:
    """Log-like encoding ``asinh(x / eps) / asinh(1 / eps)``: linear around 0
    (handles negatives and exact zeros), logarithmic above ``eps``; ``1 -> 1``.
    A gain ``k`` becomes (approximately) an additive ``log(k) / asinh(1/eps)``."""
    x = _as_float(x)
    xp = _xp(x)
    asinh = torch.asinh if xp is torch else np.arcsinh
    return asinh(x / eps) / math.asinh(1.0 / eps)


def perceptual_loss_encode(x: T, kind: str = "srgb") -> T:
    """Encoding the training loss is computed in (differentiable, unbounded).

    ``kind``: ``"srgb"`` (default; :func:`srgb_encode_ext`, identical to the
    metric space on ``[0, 1]`` but with gradients above 1 and below 0),
    ``"linear"`` (identity), ``"mu_law"`` (:func:`mu_law`), ``"log"``
    (:func:`log_encode`)."""
    if kind == "srgb":
        return srgb_encode_ext(x)
    if kind == "linear":
        return _as_float(x)
    if kind == "mu_law":
        return mu_law(x)
    if kind == "log":
        return log_encode(x)
    raise ValueError(f"unknown loss space {kind!r}; expected one of {', '.join(LOSS_SPACES)}")


def display_psnr(pred: Any, target: Any, cap: float = 100.0) -> float:
    """PSNR (dB) of two ``linear_rec2020`` images (same shape, numpy or torch)
    after :func:`display_encode`, data range 1. Identical images give ``cap``."""
    a = display_encode(pred)
    b = display_encode(target)
    if isinstance(a, torch.Tensor):
        mse = float(((a.double() - b.double()) ** 2).mean())
    else:
        mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse <= 10.0 ** (-cap / 10.0):
        return cap
    return 10.0 * math.log10(1.0 / mse)


def display_psnr_batch(pred: torch.Tensor, target: torch.Tensor, cap: float = 100.0) -> torch.Tensor:
    """Per-item display PSNR ``(B,)`` (dB) of ``(B, C, H, W)`` linear tensors."""
    d = (display_encode(pred.float()) - display_encode(target.float())).double()
    mse = (d**2).flatten(1).mean(1).clamp_min(10.0 ** (-cap / 10.0))
    return (-10.0 * torch.log10(mse)).float()
