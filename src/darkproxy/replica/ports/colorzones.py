"""darktable 4.2.1's color zones (``colorzones``, params version 5) as an exact stage of the replica.

A port of ``src/iop/colorzones.c`` (``commit_params()``, ``process_v3()`` and ``process_v1()``, ``lookup()``)
with the curve sampling it calls: ``src/common/splines.cpp`` (``CurveDataSampleV2`` and
``CurveDataSampleV2Periodic``: the natural / periodic smooth cubic spline, Catmull-Rom and monotone Hermite
tangents, the periodic "variant" monotone Hermite) for splines version 2, and ``src/common/curve_tools.c``'s
``CurveDataSample`` (:func:`darkproxy.replica.ports.rgbcurve.curve_samples`) for splines version 1.

A Lab module (``IOP_CS_LAB``): darktable's pipe converts the working RGB to Lab before it and back after it.
Three curves (``curve[0]`` lightness, ``curve[1]`` chroma, ``curve[2]`` hue), each node's y first moved by
the mix (``y + (y - 0.5) strength / 100``), sampled at ``i / 65535`` for ``i < 65536`` into uint16 LUTs (over
65536), all as functions of the "select by" channel (``channel``: L / 100, C / 128 or the hue in ``[0, 1)``;
periodic splines for the hue; version 1 pads each curve with a node on either side instead). ``lookup()``
interpolates the LUT linearly at ``65536 select``. Per pixel:

* "smooth" (``mode`` 0, ``process_v3``): L *= 2^(4 (m_L - 0.5)), C *= 2 lookup_C, h += m_h - 0.5, where for
  the hue channel ``m = blend / 2 + (1 - blend) lookup`` with ``blend = (1 - C / 128)^2`` (greys unchanged);
* "strong" (``mode`` 1, ``process_v1``): the same without the blend, select by LCh (``dt_Lab_2_LCH``:
  hue 1 on the positive a axis, chroma over 128 sqrt 2).

The stage is ``(B, 3, H, W)`` linear Rec2020 -> the same. Values: darktable's (the uint16 LUTs; the V2 splines
in float32 as splines.cpp computes them, its LU solve without pivoting included); gradients: the smooth surrogate's
(the unrounded float64 spline samples), in the image, the mix (``strength``) and every node's y
(``curve[c][k].y``); node x are not differentiable. Refused: unknown select channels, modes and splines
versions, unknown curve types, fewer than 2 or more than 20 nodes (18 for version 1, whose padding adds
two), node x not strictly increasing (distinct modulo 1 for the periodic hue curves), and version 1's
two-node Catmull-Rom curves (the default's type and count: ``commit_params()`` then only moves the anchors of
the curve ``init_pipe()`` made and samples a stale two-anchor curve). darktable's Lab conversions around the
module use its approximate cube root; the stage converts exactly.

Measured against darktable-cli's tap-outs (``tests/replica/test_basecurve_colorzones.py``, 13 settings, 7 runs):
worst setting per run 72.5-100 dB display PSNR, every setting 100 dB (MSE <= 1e-10) in at least one run (the
rest darktable's run-to-run noise); the V2 LUTs bit for bit against splines.cpp compiled (but 2 samples of one
of 60 random curves, 1 uint16 step); darktable's "red black white" and "HSL base setting" presets in the whole
chain (``darkproxy replica``, 256 px synthetic raw): the stage alone 100 dB against its tap-out, the chain 58.9
dB against darktable's 8-bit export.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from darkproxy.replica.ports.rgbcurve import (
    CATMULL_ROM,
    CUBIC_SPLINE,
    CURVE_TYPES,
    LUT_SIZE,
    MAX_NODES,
    SAMPLE_MAX,
    curve_samples,
    node_x,
    node_y,
    num_nodes,
)
from darkproxy.replica.registry import StageContext, Values, register_exact
from darkproxy.replica.science import (
    lab_to_working_rgb,
    safe_atan2,
    safe_div,
    safe_hypot,
    straight_through,
    working_rgb_to_lab,
)

Tensor = torch.Tensor
_F = np.float32

SEL_L, SEL_C, SEL_H = 0, 1, 2  # dt_iop_colorzones_channel_t
SMOOTH, STRONG = 0, 1  # dt_iop_colorzones_modes_t
SPLINES_V1, SPLINES_V2 = 0, 1
NODES = "curve"
PARAMS = ("strength", *(f"curve[{c}][{k}].y" for c in range(3) for k in range(MAX_NODES)))
FLT_EPSILON = float(np.finfo(np.float32).eps)  # std::numeric_limits<float>::epsilon()
TWO_PI = float(_F(2.0) * _F(math.pi))  # 2.0f * DT_M_PI_F
RES = float(_F(1.0) / _F(SAMPLE_MAX))  # CurveDataSampleV2: 1.0f / (m_samplingRes - 1)


# ------------------------------------------------------------------ the nodes
def _mixed(y: Tensor, strength: Tensor) -> Tensor:
    """commit_params()'s ``strength()``: ``y + (y - 0.5f) * (strength / 100.0f)`` in ``y``'s dtype."""
    return y + (y - 0.5) * (strength / 100.0)


def _strength(v: Values, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.as_tensor(v.get("strength", 0.0), dtype=torch.float64, device=device).reshape(-1, 1).to(dtype)


def _wrapped(xs: np.ndarray) -> np.ndarray:
    """The periodic spline's knots: ``fmod(x, 1)``, plus 1 where negative (float32)."""
    w = np.fmod(xs.astype(_F), _F(1.0))
    return np.where(w < 0, w + _F(1.0), w).astype(_F)


# ------------------------------------------------------------------ splines.cpp: the tangents
def _catmull(x: Tensor, y: Tensor, periodic: bool) -> Tensor:
    n = x.shape[0]
    if periodic:
        first = (y[:, 1] - y[:, n - 1]) / (x[1] - x[n - 1] + 1.0)
        last = (y[:, 0] - y[:, n - 2]) / (x[0] - x[n - 2] + 1.0)
    else:
        first = (y[:, 1] - y[:, 0]) / (x[1] - x[0])
        last = (y[:, n - 1] - y[:, n - 2]) / (x[n - 1] - x[n - 2])
    mid = [(y[:, i + 1] - y[:, i - 1]) / (x[i + 1] - x[i - 1]) for i in range(1, n - 1)]
    return torch.stack([first, *mid, last], dim=1)


def _hermite(x: Tensor, y: Tensor) -> Tensor:
    """``monotone_hermite_spline`` (non-periodic): mean secants (0 at extrema), then Fritsch-Carlson's
    circle of radius 3, node by node in order."""
    n = x.shape[0]
    delta = [(y[:, i + 1] - y[:, i]) / (x[i + 1] - x[i]) for i in range(n - 1)]
    zero = torch.zeros_like(delta[0])
    dy = [delta[0]]
    for i in range(1, n - 1):
        dy.append(torch.where(delta[i - 1] * delta[i] <= 0, zero, (delta[i - 1] + delta[i]) / 2))
    dy.append(delta[n - 2])
    for i in range(n - 1):
        flat = delta[i].abs() < FLT_EPSILON
        d = torch.where(flat, torch.ones_like(delta[i]), delta[i])
        alpha, beta = dy[i] / d, dy[i + 1] / d
        tau = alpha * alpha + beta * beta
        big = (tau > 9) & ~flat
        root = torch.sqrt(torch.where(big, tau, torch.ones_like(tau)))
        dy[i] = torch.where(flat, zero, torch.where(big, 3 * alpha * delta[i] / root, dy[i]))
        dy[i + 1] = torch.where(flat, zero, torch.where(big, 3 * beta * delta[i] / root, dy[i + 1]))
    return torch.stack(dy, dim=1)


def _hermite_variant(x: Tensor, y: Tensor) -> Tensor:
    """``monotone_hermite_spline_variant`` (periodic): Fritsch-Butland's weighted harmonic mean ``G``."""
    n = x.shape[0]
    h = [x[i + 1] - x[i] for i in range(n - 1)] + [x[0] - x[n - 1] + 1.0]
    delta = [(y[:, i + 1] - y[:, i]) / (x[i + 1] - x[i]) for i in range(n - 1)]
    delta.append((y[:, 0] - y[:, n - 1]) / (x[0] - x[n - 1] + 1.0))

    def g(s1: Tensor, s2: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        alpha = (h1 + 2 * h2) / (3 * (h1 + h2))
        ok = s1 * s2 > 0
        return safe_div(s1 * s2, alpha * s2 + (1 - alpha) * s1, ok)

    dy = [g(delta[n - 1], delta[0], h[n - 1], h[0])]
    dy += [g(delta[i - 1], delta[i], h[i - 1], h[i]) for i in range(1, n)]
    return torch.stack(dy, dim=1)


def _lu_solve(a: np.ndarray, b: list[Tensor], banded: bool) -> list[Tensor]:
    """``smooth_cubic_spline::gauss_solve``: LU without pivoting of ``a`` (numpy, float32 or float64 as the
    spline's arithmetic; tridiagonal storage when ``banded``), then the substitutions on ``b`` (``(Bp,)`` each)."""
    n = a.shape[0]
    a = a.copy()
    for i in range(n - 1):
        rows = range(i + 1, i + 2) if banded else range(i + 1, n)
        for k in rows:
            a[k, i] /= a[i, i]
            for j in range(i + 1, i + 2) if banded else range(i + 1, n):
                a[k, j] -= a[k, i] * a[i, j]
    x = list(b)
    for i in range(n):
        for k in range(i - 1, i) if banded else range(i):
            if k >= 0:
                x[i] = x[i] - float(a[i, k]) * x[k]
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, min(i + 2, n)) if banded else range(i + 1, n):
            x[i] = x[i] - float(a[i, k]) * x[k]
        x[i] = x[i] / float(a[i, i])
    return x


def _smooth_cubic(x: Tensor, y: Tensor, periodic: bool) -> Tensor:
    """``smooth_cubic_spline``: the second derivatives from the (natural or periodic) tridiagonal system,
    then the first derivatives at the knots."""
    n = x.shape[0]
    xn = x.cpu().numpy()  # float32 or float64: the matrix in the spline's arithmetic
    one = xn.dtype.type(1.0)
    dxn = [xn[i + 1] - xn[i] for i in range(n - 1)] + ([xn[0] - xn[n - 1] + one] if periodic else [])
    dx = [x[i + 1] - x[i] for i in range(n - 1)]
    dyy = [y[:, i + 1] - y[:, i] for i in range(n - 1)]
    if periodic:
        dx.append(x[0] - x[n - 1] + 1.0)
        dyy.append(y[:, 0] - y[:, n - 1])
    a = np.zeros((n, n), dtype=xn.dtype)
    b = [torch.zeros_like(y[:, 0]) for _ in range(n)]
    for i in range(1, n - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = dxn[i - 1] / 6, (dxn[i - 1] + dxn[i]) / 3, dxn[i] / 6
        b[i] = dyy[i] / dx[i] - dyy[i - 1] / dx[i - 1]
    if periodic:
        a[0, 0] = (dxn[n - 1] + dxn[0]) / 3
        a[n - 1, n - 1] = (dxn[n - 2] + dxn[n - 1]) / 3
        b[0] = dyy[0] / dx[0] - dyy[n - 1] / dx[n - 1]
        b[n - 1] = dyy[n - 1] / dx[n - 1] - dyy[n - 2] / dx[n - 2]
        if n > 2:
            a[0, 1], a[n - 1, n - 2] = dxn[0] / 6, dxn[n - 2] / 6
            a[0, n - 1] = a[n - 1, 0] = dxn[n - 1] / 6
        else:
            a[0, 1] = a[1, 0] = (dxn[0] + dxn[1]) / 6
    else:
        a[0, 0] = a[n - 1, n - 1] = one
    ypp = _lu_solve(a, b, banded=not periodic)
    dy = []
    c = torch.zeros_like(y[:, 0])
    for i in range(n - 1):
        c = dyy[i] / dx[i] - dx[i] / 6 * (ypp[i + 1] - ypp[i])
        dy.append(-dx[i] * ypp[i] / 2 + c)
    dy.append(dx[n - 2] * ypp[n - 1] / 2 + c if periodic else c)
    return torch.stack(dy, dim=1)


def _tangents(x: Tensor, y: Tensor, kind: int, periodic: bool) -> Tensor:
    if kind == CUBIC_SPLINE:
        return _smooth_cubic(x, y, periodic)
    if kind == CATMULL_ROM:
        return _catmull(x, y, periodic)
    return _hermite_variant(x, y) if periodic else _hermite(x, y)


# ------------------------------------------------------------------ splines.cpp: the samples
@functools.lru_cache(maxsize=64)
def _basis(xs: tuple[float, ...], periodic: bool, exact: bool) -> tuple[Tensor, ...]:
    """What the samples of a spline through knots ``xs`` (sorted) share whatever the y: each sample's interval
    ``(n0, n1)`` and its Hermite weights ``h00, h10 h, h01, h11 h`` (float32 in ``exact`` mode, as splines.cpp
    computes them; float64 else), and the sample positions (clamped onto the knots' range when not periodic)."""
    dtype = torch.float32 if exact else torch.float64
    xt = torch.tensor(xs, dtype=torch.float32).to(dtype)
    n = xt.shape[0]
    xval = (torch.arange(LUT_SIZE, dtype=torch.float32) * RES).to(dtype)  # i * res in float
    if periodic:
        xv = torch.fmod(xval, 1.0)
        xv = torch.where(xv < xt[0], xv + 1.0, xv)
        n0 = torch.searchsorted(xt, xv, right=True) - 1
        n0 = torch.where(n0 < 0, n - 1, n0)
        n1 = torch.where(n0 + 1 < n, n0 + 1, 0)
        h = torch.where(n1 > n0, xt[n1] - xt[n0], xt[n1] - (xt[n0] - 1.0))
    else:
        xv = torch.clamp(xval, float(xt[0]), float(xt[-1]))
        n0 = (torch.searchsorted(xt, xv, right=True) - 1).clamp(0, n - 2)
        n1 = n0 + 1
        h = xt[n1] - xt[n0]
    dx = (xv - xt[n0]) / h
    dx2 = dx * dx
    dx3 = dx2 * dx
    h00, h10 = 2 * dx3 - 3 * dx2 + 1, dx3 - 2 * dx2 + dx
    h01, h11 = -2 * dx3 + 3 * dx2, dx3 - dx2
    return n0, n1, h00, h10 * h, h01, h11 * h, xv


def v2_samples(xs: np.ndarray, ys: Tensor, kind: int, periodic: bool, exact: bool) -> Tensor:
    """``CurveDataSampleV2`` / ``CurveDataSampleV2Periodic`` with 65536 samples of the curve through nodes ``xs``
    ``(n,)`` (float32; strictly increasing, or distinct modulo 1 for ``periodic``), ``ys`` ``(Bp, n)``:
    ``(Bp, 65536)`` float64. ``exact``: darktable's uint16 samples (float32 arithmetic, rounded half away from
    zero; a non-periodic curve's flat ends truncated and wrapped to uint16 as C stores them); else the smooth
    surrogate (float64, unrounded)."""
    dtype = torch.float32 if exact else torch.float64
    dev = ys.device
    if periodic:
        xw = _wrapped(xs)
        order = np.argsort(xw, kind="stable")
        xs, ys = xw[order], ys[:, torch.as_tensor(order, device=dev)]
    xt = torch.as_tensor(xs, dtype=dtype, device=dev)
    yt = ys.to(dtype)
    dy = _tangents(xt, yt, kind, periodic)
    n0, n1, h00, h10h, h01, h11h, xv = (t.to(dev) for t in _basis(tuple(map(float, xs)), periodic, exact))
    val = h00 * yt[:, n0] + h10h * dy[:, n0] + h01 * yt[:, n1] + h11h * dy[:, n1]
    if not periodic:  # off the knots' range (x clamped onto an end): the end's value
        val = torch.where(xv <= xt[0], yt[:, 0:1], torch.where(xv >= xt[-1], yt[:, -1:], val))
    val = val.clamp(0.0, 1.0) * float(SAMPLE_MAX)
    if exact:  # std::round of a float >= 0, then the int clamp to [minY, maxY] = [0, 65535]
        val = torch.floor(val.double() + 0.5)
    val = val.double().clamp(0.0, float(SAMPLE_MAX))
    if periodic:
        return val
    ends = yt[:, [0, -1]] * float(SAMPLE_MAX)
    if exact:  # (int)(y * 65535) stored in a uint16 unclamped
        ends = torch.remainder(torch.trunc(ends.double()), float(LUT_SIZE))
    ends = ends.double()
    first, last = int(_F(xs[0]) * _F(SAMPLE_MAX)), int(_F(xs[-1]) * _F(SAMPLE_MAX))
    i = torch.arange(LUT_SIZE, device=dev)
    val = torch.where(i < first, ends[:, 0:1], val)
    return torch.where(i > last, ends[:, 1:2], val)


def _v1_anchors(xs: np.ndarray, ys: Tensor, select: int) -> tuple[np.ndarray, Tensor]:
    """commit_params()'s version-1 curve: a node at the second-to-last node's x - 1 and one at the second
    node's x + 1 (with the hue's wrapped y for the hue channel, else the end nodes' y) around the nodes."""
    n = xs.shape[0]
    ax = np.concatenate([[xs[n - 2] - _F(1.0)], xs, [xs[1] + _F(1.0)]]).astype(_F)
    left, right = (ys[:, n - 2 : n - 1], ys[:, 1:2]) if select == SEL_H else (ys[:, 0:1], ys[:, n - 1 : n])
    return ax, torch.cat([left, ys, right], dim=1)


def _lut(v: Values, ch: int, x: Tensor, smooth: bool) -> tuple[Tensor, Tensor | None]:
    """Curve ``ch``'s LUT ``(Bp, 65536)``: darktable's float32 values (``sample / 65536``) and the surrogate's
    float64 (``None`` when nothing is differentiated)."""
    select, version = int(v.get("channel", SEL_H)), int(v.get("splines_version", SPLINES_V2))
    kind = int(v["curve_type"][ch])
    xs, ys = node_x(v, ch, NODES), node_y(v, ch, x.device, NODES)
    strength = _strength(v, torch.float64, x.device)
    grad = torch.is_grad_enabled() and (x.requires_grad or ys.requires_grad or strength.requires_grad)

    y32 = _mixed(ys.detach().float(), strength.detach().float())
    key = (version, select, kind, tuple(map(float, xs)))
    lut_e = torch.stack([torch.from_numpy(_exact_lut(*key, tuple(r))) for r in y32.double().tolist()]).to(x.device)
    lut_s = _samples(version, select, kind, xs, _mixed(ys, strength), False) / LUT_SIZE if smooth or grad else None
    return lut_e, lut_s


def _samples(version: int, select: int, kind: int, xs: np.ndarray, y: Tensor, exact: bool) -> Tensor:
    """The samples ``(Bp, 65536)`` of the curve through nodes ``xs``, ``y`` (``(Bp, n)``, mixed) as
    commit_params() samples it at ``version`` for the ``select`` channel."""
    if version == SPLINES_V1:
        ax, ay = _v1_anchors(xs, y, select)
        return curve_samples(ax, ay, kind, exact)
    return v2_samples(xs, y, kind, select == SEL_H, exact)


@functools.lru_cache(maxsize=64)
def _exact_lut(version: int, select: int, kind: int, xs: tuple[float, ...], ys: tuple[float, ...]) -> np.ndarray:
    """darktable's float32 LUT ``(65536,)`` of one curve (float32 ``xs`` and mixed ``ys``), cached."""
    y = torch.tensor([ys], dtype=torch.float32)
    return (_samples(version, select, kind, np.array(xs, _F), y, True)[0] / LUT_SIZE).numpy().astype(_F)


def _lookup(lut_e: Tensor, lut_s: Tensor | None, sel: Tensor, smooth: bool) -> Tensor:
    """colorzones.c's ``lookup()``: the LUT at ``65536 sel``, linearly between the two entries around it (the
    index clamped to the LUT, the weight not). darktable's value with the surrogate's gradient (the uint16
    LUT's differences are too coarse a slope); ``smooth``: the surrogate alone."""
    pos = sel * float(LUT_SIZE)
    k0 = torch.clamp(torch.trunc(pos.detach()), 0.0, float(SAMPLE_MAX))
    k1 = torch.clamp(torch.trunc(pos.detach()) + 1.0, 0.0, float(SAMPLE_MAX))
    f = pos - k0

    def read(lut: Tensor) -> Tensor:
        def gather(idx: Tensor) -> Tensor:
            i = idx.long()
            if lut.shape[0] == 1:
                return lut[0][i]
            if i.shape[0] == 1:
                i = i.expand(lut.shape[0], *i.shape[1:])
            return lut.gather(1, i.reshape(i.shape[0], -1)).reshape(i.shape)

        return gather(k1) * f + gather(k0) * (1.0 - f)

    if lut_s is None:
        return read(lut_e.to(sel.dtype))
    val_s = read(lut_s.to(sel.dtype))
    if smooth:
        return val_s
    return straight_through(read(lut_e.to(sel.dtype)), val_s)


# ------------------------------------------------------------------ the stage
def _colorzones_supported(v: Values, ctx: StageContext) -> str | None:
    select, mode = int(v.get("channel", SEL_H)), int(v.get("mode", SMOOTH))
    version = int(v.get("splines_version", SPLINES_V2))
    if select not in (SEL_L, SEL_C, SEL_H):
        return f"colorzones select by {select} is not modelled"
    if mode not in (SMOOTH, STRONG):
        return f"colorzones process mode {mode} is not modelled"
    if version not in (SPLINES_V1, SPLINES_V2):
        return f"colorzones splines version {version} is not modelled"
    for ch in range(3):
        n, kind = num_nodes(v, ch, NODES), int(v["curve_type"][ch])
        top = MAX_NODES - 2 if version == SPLINES_V1 else MAX_NODES
        if not 2 <= n <= top:
            return f"colorzones curve {ch}: {n} nodes (darktable samples 2..{top} at splines version {version + 1})"
        if kind not in CURVE_TYPES:
            return f"colorzones curve {ch}: curve type {kind} is not modelled"
        if version == SPLINES_V1 and n == 2 and kind == CATMULL_ROM:
            return f"colorzones curve {ch}: splines v1 with 2 Catmull-Rom nodes (darktable samples a stale curve)"
        xs = node_x(v, ch, NODES)
        if version == SPLINES_V1:
            xs = _v1_anchors(xs, torch.zeros(1, n, dtype=torch.float64), select)[0]
        elif select == SEL_H:
            xs = np.sort(_wrapped(xs))
        if not np.all(np.diff(xs) > 0):
            return f"colorzones curve {ch}: node x not strictly increasing (distinct modulo 1 for the hue)"
    return None


def colorzones_lab(lab: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """color zones on CIE Lab ``(B, 3, H, W)`` -> the same (``process_v3`` or ``process_v1``)."""
    select, mode = int(v.get("channel", SEL_H)), int(v.get("mode", SMOOTH))
    luts = [_lut(v, ch, lab, smooth) for ch in range(3)]
    L, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    chroma = safe_hypot(a, b)
    if mode == SMOOTH:
        hue = torch.fmod(safe_atan2(b, a) + TWO_PI, TWO_PI) / TWO_PI
        blend = torch.zeros_like(L)
        if select == SEL_L:
            sel = torch.clamp_max(L / 100.0, 1.0)
        elif select == SEL_C:
            sel = torch.clamp_max(chroma / 128.0, 1.0)
        else:
            sel, blend = hue, (1.0 - chroma / 128.0) ** 2
        lm = (blend * 0.5 + (1.0 - blend) * _lookup(*luts[0], sel, smooth)) - 0.5
        hm = (blend * 0.5 + (1.0 - blend) * _lookup(*luts[2], sel, smooth)) - 0.5
        cm = 2.0 * _lookup(*luts[1], sel, smooth)
        angle = TWO_PI * (hue + hm)
        return torch.cat([L * torch.exp2(4.0 * lm), torch.cos(angle) * cm * chroma, torch.sin(angle) * cm * chroma], 1)
    # process_v1: dt_Lab_2_LCH (hue 1, not 0, on the positive a axis), select clamped to [0, 1]
    h = safe_atan2(b, a)
    hue = torch.where(h > 0.0, h / TWO_PI, 1.0 - h.abs() / TWO_PI)
    if select == SEL_L:
        sel = L * 0.01
    elif select == SEL_C:
        sel = chroma * float(_F(1.0) / (_F(128.0) * np.sqrt(_F(2.0))))
    else:
        sel = hue
    sel = sel.clamp(0.0, 1.0)
    L2 = L * torch.exp2(4.0 * (_lookup(*luts[0], sel, smooth) - 0.5))
    c2 = chroma * (2.0 * _lookup(*luts[1], sel, smooth))
    h2 = hue + (_lookup(*luts[2], sel, smooth) - 0.5)
    return torch.cat([L2, torch.cos(TWO_PI * h2) * c2, torch.sin(TWO_PI * h2) * c2], 1)


def colorzones_curve(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """color zones on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same (through darktable's Lab around the
    module). ``smooth``: the differentiable surrogate alone (what the exact stage's gradients are)."""
    return lab_to_working_rgb(colorzones_lab(working_rgb_to_lab(x), v, smooth))


@register_exact(
    "colorzones",
    params=PARAMS,
    versions=(5,),
    note="darktable's colorzones.c (smooth and strong modes, select by L, C or h) with splines.cpp's V2 splines "
    "(periodic for the hue) or curve_tools.c's V1: uint16 LUTs, linear look-ups; gradients of the unrounded "
    "splines (node y and the mix differentiable, node x not)",
    supports=_colorzones_supported,
)
def colorzones(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return colorzones_curve(x, v)
