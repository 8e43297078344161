"""The size and scale of darktable-cli's export of a whole image into a ``--width M --height M`` box
(``dt_imageio_export_with_flags``, ``src/common/imageio.c``): what the pipe runs at (``roi_out->scale``: demosaic's
resampling, sharpen's radius, a drawn mask's frame) and the size it writes.

The rule changed between darktable 4.6 and 4.8 (the export-dimension fixes of spring 2024, darktable PR 16692's
topic); both are measured against darktable here (4.2.1 and 5.0.1: ``tests/darktable/test_exportsize.py``):

* **before 4.8** (4.2.1): ``s = min(M / pw, M / ph, 1)`` (double), the output ``(int)(s * p + 0.8)``; where reading
  the output back would run past the image (``ceil(out / s) > room``, ``room`` the image's size, or behind a crop
  the crop's input less its left and top cut) darktable raises the scale by ``max((pw + 1) / pw, (ph + 1) / ph)``
  (an export of 128 x 86 px to 96 px: 0.7587, not 0.75);
* **4.8 on** (5.0.1): the same ``s``, the output ``floor(s * p)``, never corrected (a 400 x 266 image into 96 px:
  96 x 63, where 4.2.1 wrote 96 x 64).

The scale reaches the pipe as a float (``dt_dev_pixelpipe_process_no_gamma``): returned rounded to float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FLOOR_RULE_FROM = (4, 8)  # the first darktable whose export floors its size and never corrects its scale


def floors_its_size(version: Sequence[int] | None) -> bool:
    """Whether darktable ``version`` (``(major, minor, ...)``; ``None``: before 4.8) exports by the 4.8 rule."""
    return version is not None and tuple(version[:2]) >= FLOOR_RULE_FROM


def export_size(full_wh: tuple[float, float], box: int, version: Sequence[int] | None = None) -> tuple[int, int]:
    """``(width, height)`` of darktable-cli's export of a ``full_wh`` image (px at scale 1) into a ``box`` px
    square (no upscaling)."""
    pw, ph = float(full_wh[0]), float(full_wh[1])
    s = min(box / pw, box / ph, 1.0)
    if floors_its_size(version):
        return math.floor(s * pw), math.floor(s * ph)
    return int(s * pw + 0.8), int(s * ph + 0.8)


def export_scale(
    full_wh: tuple[float, float],
    out_hw: tuple[int, int],
    room_wh: tuple[float, float] | None = None,
    version: Sequence[int] | None = None,
) -> float | None:
    """The scale darktable-cli's export runs the pipe at when it writes an ``out_hw`` ``(height, width)`` image of
    a ``full_wh`` ``(width, height)`` one into a square box (the box's side: the output's long side, or one more
    where the 4.8 rule floored it a pixel short), float32; ``room_wh``: what the export checks the scaled render
    against before darktable < 4.8 corrects the scale (``None``: ``full_wh``). ``None`` when ``out_hw`` is not
    such an export of ``full_wh``."""
    pw, ph = float(full_wh[0]), float(full_wh[1])
    h, w = out_hw
    if (round(pw), round(ph)) == (w, h):
        return 1.0
    long_side = max(h, w)
    for box in (long_side, long_side + 1) if floors_its_size(version) else (long_side,):
        if export_size((pw, ph), box, version) != (w, h):
            continue
        s = min(box / pw, box / ph, 1.0)
        if not floors_its_size(version):
            rw, rh = room_wh if room_wh is not None else (pw, ph)
            if math.ceil(w / s) > rw or math.ceil(h / s) > rh:  # imageio.c: corrected (exact size)
                s *= max((pw + 1) / pw, (ph + 1) / ph)
        return float(np.float32(s))
    return None
