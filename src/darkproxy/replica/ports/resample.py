"""darktable's resampling of the demosaiced image to the output size (``dt_iop_clip_and_zoom_roi``,
``src/common/interpolation.c``), as demosaic runs it in darktable-cli's export below full size.

darktable-cli exports with the ``plugins/lighttable/export/pixel_interpolator`` preference,
``lanczos3`` by default (darkproxy's renders use a fresh config). The resampling is separable:
one plan per axis (``prepare_resampling_plan``: for each output sample the taps of
``lanczos(3, t)`` with darktable's fast sine, normalised to sum 1, indices clamped to the
image: ``BORDER_REPLICATE``), applied to rows then columns: here two fixed ``(out, in)``
matrices, ``out = max(Kv @ x @ Kh^T, 0)`` (darktable clips lanczos' undershoot),
differentiable in ``x``. The plan is built in float32 as
darktable's SSE path builds it (``lanczos_sse2``: ``t`` rounded to nearest for the sign).
The scale is darktable-cli's export scale (``dt_imageio_export_with_flags``:
:mod:`darkproxy.darktable.exportsize`, which depends on darktable's version).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

WIDTH = 3  # lanczos3
EPS = np.float32(1e-9)  # DT_LANCZOS_EPSILON
PI = np.float32(math.pi)
PI2 = np.float32(math.pi * math.pi)
A = np.float32(4.0 / (math.pi * math.pi))
P = np.float32(0.225)


def export_scale(
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    room: tuple[float, float] | None = None,
    version: Sequence[int] | None = None,
) -> float:
    """The float scale darktable ``version``'s export (:mod:`darkproxy.darktable.exportsize`) runs the pipe at
    for an ``in_hw`` image exported in a square box that gives ``out_hw``. ``room`` ``(height, width)``: what the
    export checks the scaled render against (``pipe->iheight - origin[1]``, ``iwidth - origin[0]``: larger than
    ``in_hw`` behind a crop, :attr:`StageContext.export_room`); ``None``: ``in_hw``. Raises ``ValueError`` when
    ``out_hw`` is not such an export."""
    from darkproxy.darktable.exportsize import export_scale as scale_of

    s = scale_of((in_hw[1], in_hw[0]), out_hw, (room[1], room[0]) if room is not None else None, version)
    if s is None:
        raise ValueError(
            f"the {out_hw[1]}x{out_hw[0]} image is not darktable-cli's export of the {in_hw[1]}x{in_hw[0]} "
            "full-size image"
        )
    return s


def export_frame(
    full_size: tuple[float, float] | None,
    scale: float,
    h: int,
    w: int,
    room: tuple[float, float] | None = None,
    version: Sequence[int] | None = None,
) -> tuple[int, int, float]:
    """``(bw, bh, s)`` of a module that depends on the pixel's place, in an ``(h, w)`` render of the whole
    image: ``piece->buf_in``'s width and height (``full_size``, the chain's :attr:`StageContext.full_size`,
    turned when a flip before the module turned the image: the render's aspect tells) and ``roi_out->scale``
    (darktable ``version``'s export scale, :func:`export_scale`). ``full_size`` ``None`` is a render at scale 1
    (``scale`` must be 1); raises ``ValueError`` when ``(h, w)`` is not darktable-cli's export of that size.
    ``room``: the ``(width, height)`` darktable's export checks the scale against
    (:attr:`StageContext.export_room`; ``None``: ``full_size``)."""
    if full_size is None:
        if abs(scale - 1.0) > 1e-6:
            raise ValueError(f"render scale {scale:g}: the image's full-resolution size is not known")
        return w, h, 1.0
    bw, bh = (int(round(float(d))) for d in full_size)
    rw, rh = (float(room[0]), float(room[1])) if room is not None else (float(bw), float(bh))
    if (bw > bh) != (w > h) and bw != bh:  # a flip before the module turned the raw: buf_in is the turned image
        bw, bh, rw, rh = bh, bw, rh, rw
    return bw, bh, export_scale((bh, bw), (h, w), (rh, rw), version)


def _sinf_fast(t: np.ndarray) -> np.ndarray:
    """darktable's ``sinf_fast_sse`` (float32, valid on [-pi, pi])."""
    m4 = A * (t * (PI - np.abs(t)))
    return P * (m4 * np.abs(m4) - m4) + m4


def _lanczos(t: np.ndarray) -> np.ndarray:
    """``lanczos_sse2(3, t)`` in float32."""
    w = np.float32(WIDTH)
    a = np.rint(t).astype(np.int32)  # _mm_cvtps_epi32: round to nearest even
    r = (t - a.astype(np.float32)).astype(np.float32)
    sign = np.where(a & 1, np.float32(-1.0), np.float32(1.0)).astype(np.float32)
    num = ((w * sign) * _sinf_fast(PI * r)) * _sinf_fast((PI * t) / w)
    return ((EPS + num) / (EPS + PI2 * (t * t))).astype(np.float32)


def _ceil_fast(x: np.float32) -> np.float32:
    return np.float32(int(x)) if x <= 0 else np.float32(-np.float32(int(-x)) + np.float32(1.0))


def plan_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """``prepare_resampling_plan`` for a downscale as an ``(n_out, n_in)`` float32 matrix."""
    s = np.float32(scale)
    w = np.float32(WIDTH)
    k = np.zeros((n_out, n_in), np.float32)
    for xo in range(n_out):  # one output sample per row of the plan: n_out small loops, not per pixel
        xin = _ceil_fast(np.float32((np.float32(xo) - w) / s))
        first = int(xin)
        t = np.float32(xin * s - np.float32(xo))
        taps = int(np.float32((w - t) / s))
        tt = (np.float32(t) + s * np.arange(taps, dtype=np.float32)).astype(np.float32)
        ker = _lanczos(tt)
        norm = np.float32(0.0)
        for v in ker:  # darktable sums the taps in order
            norm = np.float32(norm + v)
        ker = (ker * np.float32(np.float32(1.0) / norm)).astype(np.float32)
        idx = np.clip(first + np.arange(taps), 0, n_in - 1)
        np.add.at(k[xo], idx, ker)
    return k


def _scale_of(in_hw: tuple[int, int], size: tuple[int, int], version: Sequence[int] | None) -> float:
    from darkproxy.errors import DarkproxyError

    try:
        return export_scale(in_hw, size, version=version)
    except ValueError:  # not darktable's export of this image
        raise DarkproxyError(
            f"demosaic: darktable's {size[1]}x{size[0]} output is not its export size for the {in_hw[1]}x{in_hw[0]} "
            "mosaic (the raw's sensor array as rawpy reads it differs from darktable's?)"
        ) from None


def demosaic_roi(
    in_hw: tuple[int, int], size: tuple[int, int], version: Sequence[int] | None = None
) -> tuple[int, int]:
    """``(height, width)`` of the top-left region of an ``in_hw`` mosaic (rawprepare's output, the whole image)
    that darktable ``version``'s demosaic reads (and every mosaic stage before it processes) for its ``size``
    ``(h, w)`` export: its ``modify_roi_in`` takes ``(int)(roi_out / scale)`` (float32), at least 8. darktable
    4.2.1 then set the whole image wherever that fell within ``max(ceil(1 / scale), 10)`` px of it; 5.0.1 and
    5.4.1 do not (4.8's floored export size, :func:`~darkproxy.darktable.exportsize.floors_its_size`, is taken as
    the boundary; 4.4 and 4.6 are not measured): a 98 x 66 mosaic exported to 63 x 43 at scale 64 / 98
    demosaics its 96 x 65 corner, whose last rows and columns then border the resampling."""
    from darkproxy.darktable.exportsize import floors_its_size

    if tuple(size) == tuple(in_hw) or not floors_its_size(version):
        return in_hw
    s = np.float32(_scale_of(in_hw, size, version))
    h, w = (max(8, int(np.float32(n) / s)) for n in size)
    return min(h, in_hw[0]), min(w, in_hw[1])


def clip_and_zoom(
    x: torch.Tensor,
    size: tuple[int, int],
    version: Sequence[int] | None = None,
    whole: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``x (B, 3, H, W)`` (any linear colour space) -> ``(B, 3, h, w)``, ``size = (h, w)``, as darktable
    ``version`` resamples the demosaiced image (lanczos3, darktable-cli's export scale of the ``whole`` ``(H, W)``
    image; ``None``: ``x``'s, which is then the whole image, else its :func:`demosaic_roi`)."""
    h_in, w_in = x.shape[-2:]
    scale = _scale_of(whole if whole is not None else (h_in, w_in), size, version)
    kv = torch.from_numpy(plan_matrix(h_in, size[0], scale)).to(x.device, x.dtype)
    kh = torch.from_numpy(plan_matrix(w_in, size[1], scale)).to(x.device, x.dtype)
    # interpolation.c clips the negative values of lanczos' undershoot ("light is positive")
    return torch.einsum("oh,bchw,pw->bcop", kv, x, kh).clamp_min(0.0)
