"""darktable's crop module's geometry (``src/iop/crop.c``): the rectangle it cuts at full resolution, the
``buf_in`` of every later module (vignette's centre, graduatednd's line, a drawn mask's frame) and the size the
render scale is measured on. The pixels themselves are darktable's (crop is a passthrough stage of the replica).

Two rules, by darktable version (the crop's params version, 1, did not change):

* **before 4.8** (4.2.1): ``commit_params`` clamps the params (``CLAMPF``: cx, cy to [0, 0.9], cw, ch to
  [0.1, 1]); ``modify_roi_out`` sets ``roi_out->width = roi_in->width * (cw - cx)`` in float32, truncated to
  int, with no aspect ratio (the GUI keeps it), at least 5 px. 256 x 170 px at 0.1, 0.1, 0.9, 0.9: 204 x 135
  (not 204.8 x 136: float32 0.9 - 0.1 is 0.79999995).
* **4.8 on** (5.0.1; darktable PRs 16748 and 16774, May 2024): the same clamp, then ``floorf`` of the left and
  top cut and of the width and height, and the aspect ratio kept by the pipe itself: ``ratio_d / ratio_n``
  (``ratio_n = 0``, ``|ratio_d| = 1``: the image's own, ``dt_image_get_sensor_ratio``; ``ratio_n = 0``
  otherwise: freehand; a negative ratio is turned, ``|1 / aspect|``), applied from the longer side of the cut:
  ``dy = dx / aspect`` on a landscape input (``dx * aspect`` portrait) where the cut is wider than tall, else
  ``dx = dy * aspect`` (``dy / aspect``); then at most what is left right of and below the cut. darktable's
  default ratio (-1, -1) is 1: a square. 192 x 128 px at 0.1, 0.2, 0.7, 0.9: 115 x 103 on 5.0.1 (4.2.1: 115 x 89).

``distort_transform`` moves points by ``left = buf_in.width * cx``, ``top = buf_in.height * cy`` (float32,
not floored) in both. Later releases' pixel-exact mode for small ratios (darktable PR 19332) is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

KEEPS_ASPECT_FROM = (4, 8)  # the first darktable whose crop keeps its aspect ratio in the pipe

_F = np.float32


def _clampf(v: float | None, default: float, lo: float, hi: float) -> np.float32:
    x = _F(default if v is None else v)
    return (x if x <= _F(hi) else _F(hi)) if x >= _F(lo) else _F(lo)  # CLAMPF(a, mn, mx)


def crop_aspect(ratio_d: int, ratio_n: int, sensor_ratio: float) -> float:
    """``commit_params``' ``d->aspect`` (4.8 on): 0 freehand, else width over height of a landscape crop (the
    sign: turned)."""
    if ratio_n == 0 and abs(ratio_d) == 1:  # the image's own ratio
        return float(_F(sensor_ratio if ratio_d > 0 else -sensor_ratio))
    if ratio_n == 0:
        return 0.0
    return float(_F(_F(ratio_d) / _F(ratio_n)))


def crop_frame(
    width: int,
    height: int,
    params: Mapping[str, Any],
    sensor_ratio: float | None = None,
    version: Sequence[int] | None = None,
) -> tuple[int, int, float, float]:
    """darktable ``version``'s crop (``None``: before 4.8) with ``params`` (``cx``, ``cy``, ``cw``, ``ch``,
    ``ratio_d``, ``ratio_n``; missing ones are crop's defaults: 0, 0, 1, 1, -1, -1) on a ``width`` x ``height``
    input at full resolution -> ``(out_width, out_height, left, top)``, ``left`` and ``top`` what
    ``distort_transform`` moves points by. ``sensor_ratio``: the raw's width over height (an "original image"
    aspect reads it; ``None``: ``width / height``)."""
    x0, y0 = _clampf(params.get("cx"), 0.0, 0.0, 0.9), _clampf(params.get("cy"), 0.0, 0.0, 0.9)
    x1, y1 = _clampf(params.get("cw"), 1.0, 0.1, 1.0), _clampf(params.get("ch"), 1.0, 0.1, 1.0)
    left, top = float(_F(_F(width) * x0)), float(_F(_F(height) * y0))
    if version is None or tuple(version[:2]) < KEEPS_ASPECT_FROM:
        out_w = int(_F(_F(width) * _F(x1 - x0)))  # int = float: truncation toward zero
        out_h = int(_F(_F(height) * _F(y1 - y0)))
        return max(out_w, 5), max(out_h, 5), left, top
    px, py = max(0.0, math.floor(_F(width) * x0)), max(0.0, math.floor(_F(height) * y0))
    dx = _F(math.floor(_F(width) * _F(x1 - x0)))
    dy = _F(math.floor(_F(height) * _F(y1 - y0)))
    a = crop_aspect(int(params.get("ratio_d", -1)), int(params.get("ratio_n", -1)), sensor_ratio or width / height)
    aspect = _F(abs(1.0 / a)) if a < 0 else _F(a)
    if aspect > _F(1e-5):
        landscape = width >= height
        if dx > dy:
            dy = dx / aspect if landscape else dx * aspect
        else:
            dx = dy * aspect if landscape else dy / aspect
    out_w = int(min(_F(dx), _F(width) - _F(px)))
    out_h = int(min(_F(dy), _F(height) - _F(py)))
    return max(out_w, 5), max(out_h, 5), left, top
