"""Encodings of ``linear_rec2020`` images, one function and one name each.

Every function accepts a numpy array or a torch tensor and returns the same kind
(numpy float16/int inputs come back as float32, other float dtypes are kept).
Torch versions are differentiable. Images carry their channels on axis -3
(``(3, H, W)`` or ``(B, 3, H, W)``) unless a function says otherwise.

* :func:`srgb_display_rec709` is **the display encoding** of the project: what a
  monitor shows, and what display PSNR, SSIM, CIEDE2000, reports and videos use.
  Linear Rec2020 -> linear Rec709/sRGB primaries (colour-science's matrix), clip
  to ``[0, 1]`` (highlights and out-of-gamut colours clip as on a monitor), sRGB
  transfer curve (IEC 61966-2-1).
* :func:`pu21_luminance` is the **scene-referred metric encoding**: BT.2020
  luminance in cd/m² (linear 1.0 = :data:`PU21_WHITE_NITS`), clamped to PU21's
  ``[0.005, 10000]`` cd/m² and PU21-encoded (Mantiuk & Azimi 2021, the
  ``banding_glare`` fit). Nothing clips below 100x white (+6.6 EV), so errors in
  highlights stay visible where the display encoding hides them.
* :func:`perceptual_loss_encode` is what training and regression losses compare.
  Clipping would zero the gradient of every highlight (> 1) and every
  out-of-gamut negative, so the loss encodings are smooth, odd-symmetric and
  unbounded.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

from darkproxy.colour.matrices import rec2020_to_rec709_matrix, y_rec2020

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


# The sRGB curve stays hand-written. Torch: it must be differentiable. Numpy: colour-science's
# eotf_inverse_sRGB / eotf_sRGB give the same values (float64: encode identical, decode within 2.3e-9 as its
# breakpoint is 0.040449936, not the standard's 0.04045) but were 2-10x slower on 3x512x512 (measured: 59 vs
# 22 ms float64, 107 vs 11 ms float32) and return float64 for float32 input.
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


def _mix(x: Any, m: np.ndarray, channel_axis: int) -> Any:
    """Apply a 3x3 matrix to the channel axis of ``x`` (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        mt = torch.tensor(np.array(m), dtype=x.dtype, device=x.device)
        return torch.movedim(torch.movedim(x, channel_axis, -1) @ mt.T, -1, channel_axis)
    return np.moveaxis(np.moveaxis(x, channel_axis, -1) @ m.T.astype(x.dtype), -1, channel_axis)


def linear_rec709_from_rec2020(x: T, channel_axis: int = -3) -> T:
    """``linear_rec2020`` -> ``linear_rec709`` (same white, no clipping: colours
    outside Rec709's gamut get negative components)."""
    return _mix(_as_float(x), rec2020_to_rec709_matrix(), channel_axis)


def srgb_display_rec709(x: T, channel_axis: int = -3) -> T:
    """``linear_rec2020`` (any range) -> ``srgb_display_rec709`` in ``[0, 1]``:
    Rec709 primaries, clip to ``[0, 1]``, sRGB transfer curve. The display
    encoding of the project (see the module docstring). NaN stays NaN."""
    return srgb_encode(linear_rec709_from_rec2020(x, channel_axis))


PU21_WHITE_NITS = 100.0  # cd/m² that linear 1.0 stands for in PU21 metrics (a typical SDR display's white)
PU21_L_MIN, PU21_L_MAX = 0.005, 10000.0  # cd/m², the range PU21 is fitted on
_PU21_BANDING_GLARE = (
    0.353487901,
    0.3734658629,
    8.277049286e-05,
    0.9062562627,
    0.09150303166,
    0.9099517204,
    596.3148142,
)


def luminance_rec2020(x: T, channel_axis: int = -3) -> T:
    """Relative luminance ``Y`` of ``linear_rec2020`` (channel axis removed)."""
    x = _as_float(x)
    r, g, b = (
        x.select(channel_axis, i) if isinstance(x, torch.Tensor) else np.take(x, i, axis=channel_axis) for i in range(3)
    )
    wr, wg, wb = y_rec2020()
    return wr * r + wg * g + wb * b


def pu21_encode(nits: T) -> T:
    """PU21 (Mantiuk & Azimi, PCS 2021; ``banding_glare`` parameters) of absolute
    luminance in cd/m², clamped to ``[0.005, 10000]``: about 0 at 0.005 cd/m²,
    256.4 at 100 cd/m² and 595.4 at 10,000 cd/m² (perceptually uniform
    steps, like sRGB code values for an SDR display's range)."""
    y = _as_float(nits)
    xp = _xp(y)
    p = _PU21_BANDING_GLARE
    lp = xp.clip(y, PU21_L_MIN, PU21_L_MAX) ** p[3]
    return p[6] * (((p[0] + p[1] * lp) / (1.0 + p[2] * lp)) ** p[4] - p[5])


def pu21_peak() -> float:
    """PU21 value of the brightest luminance it encodes (10,000 cd/m²): the data
    range of PU21 PSNR."""
    return float(pu21_encode(np.float64(PU21_L_MAX)))


def pu21_luminance(x: T, white_nits: float = PU21_WHITE_NITS, channel_axis: int = -3) -> T:
    """``linear_rec2020`` -> PU21-encoded luminance (channel axis removed), linear
    1.0 taken as ``white_nits`` cd/m². Nothing clips below
    ``10000 / white_nits`` (100x, +6.6 EV over white at the default)."""
    return pu21_encode(luminance_rec2020(x, channel_axis) * white_nits)


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
    return xp.arcsinh(x / eps) / math.asinh(1.0 / eps)  # torch.arcsinh is torch.asinh


def log_decode(e: T, eps: float = 1.0 / 256) -> T:
    """The inverse of :func:`log_encode`: ``eps * sinh(e * asinh(1 / eps))`` (same ``eps``)."""
    e = _as_float(e)
    xp = _xp(e)
    return eps * xp.sinh(e * math.asinh(1.0 / eps))


def perceptual_loss_encode(x: T, kind: str = "srgb") -> T:
    """Encoding the training loss is computed in (differentiable, unbounded).

    ``kind``: ``"srgb"`` (default; :func:`srgb_encode_ext`, identical to the
    sRGB transfer curve on ``[0, 1]`` but with gradients above 1 and below 0),
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
