"""darktable 4.2.1's rgb curve (``rgbcurve``, params version 1) as an exact stage of the replica.

A port of ``src/iop/rgbcurve.c`` (``_generate_curve_lut()`` and the CPU ``process()``) with what
they inline: ``src/common/curve_tools.c`` (``CurveDataSample``: the natural cubic spline, Catmull-Rom
and monotone Hermite tangents, their evaluation), ``src/gui/draw.h`` (``dt_draw_curve_calc_values``),
``src/develop/imageop_math.h`` (``dt_iop_estimate_exp`` / ``dt_iop_eval_exp``: the power-law
extrapolation above the last node), ``src/common/iop_profile.h`` (``dt_ioppr_uncompensate_middle_grey``,
the luminance of the working profile) and ``src/common/rgb_norms.h`` (``dt_rgb_norm``).

darktable's curve per channel: the spline through the nodes is sampled at ``i / 65535`` for
``i < 65536`` (float32 arithmetic, C's double promotions where its literals are doubles), each sample
rounded to a ``uint16`` (flat before the first node and after the last), the LUT entry
``sample / 65536`` (so a node at y = 1 reads 65535 / 65536). ``process()`` reads the LUT at
``trunc(x * 65536)`` (clamped to ``[0, 65535]``: no interpolation, a step function of the image) below
``xm`` (the last node's x, as ``1 / (1 / x)`` in float32) and ``y0 * (x / x0)^g`` from there, ``g`` the
mean log-log slope of four LUT entries at 0.7, 0.8, 0.9 and 1 times the last node's x. RGB linked
channels: the red curve on each channel (``preserve_colors`` none) or on a norm of the pixel (luminance
of the working profile, max, average, sum, Euclidean norm, basic power), the pixel scaled by
``curve(norm) / norm`` (unchanged where the norm is not positive); RGB independent channels: each
channel's own curve. ``compensate_middle_grey`` maps every node's x and y from Lab L / 100 to the
working RGB (an L = 50 node lands on middle grey) before the spline.

The stage is ``(B, 3, H, W)`` linear Rec2020 -> the same (darktable's working space; values above 1
extrapolated, below 0 read the first LUT entry). Its values are darktable's (the LUT in float32, the
uint16 rounding, the truncating look-up); its gradients are those of a smooth surrogate of the same
maths (a straight-through estimate, as sigmoid's): the LUT as the unrounded float64 spline samples,
read by linear interpolation between entries, so the image gradient is the curve's slope and the node
y values (``curve_nodes[c][k].y``: a value under that name overrides the array's element) move the
curve through the spline, the extrapolation's coefficients included. The node x positions are not
differentiable (the spline's interval search and the samples' regions are discrete in them). Refused:
fewer than 2 or more than 20 nodes, x not strictly increasing (darktable's spline setup fails and keeps
an earlier LUT), unknown curve types, modes and norms.

Measured against darktable-cli's tap-outs (``tests/replica/test_curves.py``, 10 settings, 9 runs): 74.2-100 dB
display PSNR, the spread darktable's own between two renders; with darktable's approximate Lab round trip
before colorout emulated on the output, 100 dB (bit for bit up to 1e-4).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from darkproxy.replica.registry import StageContext, Values, register_exact
from darkproxy.replica.science import D50_WHITE, safe_div, safe_pow, working_profile_matrices

Tensor = torch.Tensor

MAX_NODES = 20
CUBIC_SPLINE, CATMULL_ROM, MONOTONE_HERMITE = 0, 1, 2
CURVE_TYPES = {CUBIC_SPLINE: "cubic spline", CATMULL_ROM: "centripetal spline", MONOTONE_HERMITE: "monotonic spline"}
LINKED, INDEPENDENT = 0, 1  # dt_iop_rgbcurve_autoscale_t
# dt_iop_rgb_norms_t
NORM_NONE, NORM_LUMINANCE, NORM_MAX, NORM_AVERAGE, NORM_SUM, NORM_NORM, NORM_POWER = range(7)
LUT_SIZE = 0x10000
SAMPLE_MAX = LUT_SIZE - 1  # CurveDataSample's m_outputRes - 1 and m_samplingRes - 1
# curve_tools.c: EPSILON (2 * FLT_MIN), below which a secant counts as flat
FLAT_EPS = float(2.0 * np.finfo(np.float32).tiny)

_F = np.float32
# regressable: the y of every node (the ones a curve does not use are ignored)
PARAMS = tuple(f"curve_nodes[{c}][{k}].y" for c in range(3) for k in range(MAX_NODES))


# ------------------------------------------------------------------ the nodes
# the params' names: nodes array -> (number of nodes, curve type) arrays (rgbcurve's, tonecurve's, basecurve's,
# colorzones')
_NUM = {
    "curve_nodes": "curve_num_nodes",
    "tonecurve": "tonecurve_nodes",
    "basecurve": "basecurve_nodes",
    "curve": "curve_num_nodes",
}
_TYPE = {
    "curve_nodes": "curve_type",
    "tonecurve": "tonecurve_type",
    "basecurve": "basecurve_type",
    "curve": "curve_type",
}


def num_nodes(v: Values, ch: int, nodes: str = "curve_nodes") -> int:
    return int(v[_NUM[nodes]][ch])


def node_x(v: Values, ch: int, nodes: str = "curve_nodes") -> np.ndarray:
    """The nodes' x of channel ``ch`` as darktable stores them: ``(n,)`` float32."""
    return np.array([float(v[nodes][ch][k]["x"]) for k in range(num_nodes(v, ch, nodes))], dtype=_F)


def node_y(v: Values, ch: int, device: torch.device, nodes: str = "curve_nodes") -> Tensor:
    """The nodes' y of channel ``ch`` as a float64 ``(Bp, n)`` tensor (Bp = 1 or the batch of a
    regressed node), float32 values (``v["curve_nodes[c][k].y"]`` overrides the array's element)."""
    cols = []
    for k in range(num_nodes(v, ch, nodes)):
        key = f"{nodes}[{ch}][{k}].y"
        val = v[key] if key in v else v[nodes][ch][k]["y"]
        cols.append(torch.as_tensor(val, dtype=torch.float64, device=device).reshape(-1))
    b = max(c.shape[0] for c in cols)
    return torch.stack([c.expand(b) for c in cols], dim=1)


def _uncompensate(t: Tensor) -> Tensor:
    """``dt_ioppr_uncompensate_middle_grey``: Lab L = 100 t (a = b = 0) -> the working RGB's red, in
    ``t``'s dtype (float32: darktable's arithmetic; ``lab_f_inv`` with its float32 constants)."""
    f32 = t.dtype == torch.float32
    eps = float(_F(0.20689655172413796)) if f32 else 6.0 / 29.0
    kappa = float(_F(24389.0) / _F(27.0)) if f32 else 24389.0 / 27.0
    f = (t * 100.0 + 16.0) / 116.0
    finv = torch.where(f > eps, f * f * f, (116.0 * f - 16.0) / kappa)
    m_out = working_profile_matrices()[1]  # XYZ D50 -> RGB, float32 values
    xyz = [float(_F(w)) * finv for w in D50_WHITE]
    return float(m_out[0, 0]) * xyz[0] + float(m_out[0, 1]) * xyz[1] + float(m_out[0, 2]) * xyz[2]


# ------------------------------------------------------------------ curve_tools.c
def _d(t: Tensor, exact: bool) -> Tensor:
    """C's promotion of a float to double (exact mode); the smooth surrogate is float64 already."""
    return t.double() if exact else t


def _f(t: Tensor, exact: bool) -> Tensor:
    """C's conversion back to float (exact mode)."""
    return t.float() if exact else t


def _cubic_ypp(xs: Tensor, ys: Tensor) -> Tensor:
    """``spline_cubic_set`` (natural: zero second derivatives at both ends) with ``d3_np_fs``'s
    elimination without pivoting: the second derivatives ``(Bp, n)`` in ``ys``'s dtype."""
    n = xs.shape[0]
    zero = torch.zeros_like(ys[:, 0])
    if n == 2:  # both boundary rows are identity rows: d3_np_fs solves to zeros
        return torch.zeros_like(ys)
    # the D3 storage: sup[i] = A(i-1, i), diag[i] = A(i, i), sub[i] = A(i+1, i)
    diag = [torch.ones((), dtype=ys.dtype, device=ys.device)]
    sup = [torch.zeros((), dtype=ys.dtype, device=ys.device)] * n
    sub = [torch.zeros((), dtype=ys.dtype, device=ys.device)] * n
    b = [zero]
    for i in range(1, n - 1):
        b.append((ys[:, i + 1] - ys[:, i]) / (xs[i + 1] - xs[i]) - (ys[:, i] - ys[:, i - 1]) / (xs[i] - xs[i - 1]))
        sub[i - 1] = (xs[i] - xs[i - 1]) / 6.0
        diag.append((xs[i + 1] - xs[i - 1]) / 3.0)
        sup[i + 1] = (xs[i + 1] - xs[i]) / 6.0
    b.append(zero)
    sub[n - 2] = torch.zeros((), dtype=ys.dtype, device=ys.device)
    diag.append(torch.ones((), dtype=ys.dtype, device=ys.device))
    x = list(b)
    for i in range(1, n):
        xmult = sub[i - 1] / diag[i - 1]
        diag[i] = diag[i] - xmult * sup[i]
        x[i] = x[i] - xmult * x[i - 1]
    x[n - 1] = x[n - 1] / diag[n - 1]
    for i in range(n - 2, -1, -1):
        x[i] = (x[i] - sup[i + 1] * x[i + 1]) / diag[i]
    return torch.stack(x, dim=1)


def _catmull_tangents(xs: Tensor, ys: Tensor) -> Tensor:
    """``catmull_rom_set``: secants over the neighbours (one-sided at the ends), ``(Bp, n)``."""
    n = xs.shape[0]
    m = [(ys[:, 1] - ys[:, 0]) / (xs[1] - xs[0])]
    m += [(ys[:, i + 1] - ys[:, i - 1]) / (xs[i + 1] - xs[i - 1]) for i in range(1, n - 1)]
    m.append((ys[:, n - 1] - ys[:, n - 2]) / (xs[n - 1] - xs[n - 2]))
    return torch.stack(m, dim=1)


def _hermite_tangents(xs: Tensor, ys: Tensor) -> Tensor:
    """``monotone_hermite_set`` (Fritsch-Carlson): mean secants, zeroed on flat segments and scaled
    back onto the circle of radius 3 in order, node by node (the loop also visits the last node with
    the last secant, and ``m[n]``, always 0): ``(Bp, n)``."""
    n = xs.shape[0]
    delta = [(ys[:, i + 1] - ys[:, i]) / (xs[i + 1] - xs[i]) for i in range(n - 1)]
    delta.append(delta[n - 2])
    m = [delta[0]] + [(delta[i - 1] + delta[i]) * 0.5 for i in range(1, n - 1)] + [delta[n - 1]]
    m.append(torch.zeros_like(delta[0]))
    for i in range(n):
        flat = delta[i].abs() < FLAT_EPS
        dsafe = torch.where(flat, torch.ones_like(delta[i]), delta[i])
        alpha, beta = m[i] / dsafe, m[i + 1] / dsafe
        tau = alpha * alpha + beta * beta
        big = (tau > 9.0) & ~flat
        root = torch.sqrt(torch.where(big, tau, torch.ones_like(tau)))
        zero = torch.zeros_like(m[i])
        m[i] = torch.where(flat, zero, torch.where(big, 3.0 * alpha * delta[i] / root, m[i]))
        m[i + 1] = torch.where(flat, zero, torch.where(big, 3.0 * beta * delta[i] / root, m[i + 1]))
    return torch.stack(m[:n], dim=1)


def _interpolate(xs: Tensor, ys: Tensor, coef: Tensor, kind: int, xval: Tensor, exact: bool) -> Tensor:
    """``interpolate_val`` at the sample positions ``xval`` ``(S,)``: ``(Bp, S)``. ``coef``: the second
    derivatives (cubic spline) or the tangents (Hermite forms)."""
    n = xs.shape[0]
    ival = (
        torch.searchsorted(xs[1 : n - 1].contiguous(), xval, right=True)
        if n > 2
        else torch.zeros_like(xval, dtype=torch.long)
    )
    x0, x1 = xs[ival], xs[ival + 1]
    y0, y1 = ys[:, ival], ys[:, ival + 1]
    c0, c1 = coef[:, ival], coef[:, ival + 1]
    h = x1 - x0
    if kind == CUBIC_SPLINE:  # spline_cubic_val: the literals make it double after the first secant
        dt = xval - x0
        hd = _d(h, exact)
        a = _d((y1 - y0) / h, exact) - (_d(c1, exact) / 6.0 + _d(c0, exact) / 3.0) * hd
        e = 0.5 * _d(c0, exact) + _d(dt, exact) * (_d(c1 - c0, exact) / (6.0 * hd))
        return _f(_d(y0, exact) + _d(dt, exact) * (a + _d(dt, exact) * e), exact)
    # catmull_rom_val (also the monotone Hermite's): the basis in double, then float
    dx = (xval - x0) / h
    dx2 = dx * dx
    dx3 = dx * dx2
    d2, d3 = _d(dx2, exact), _d(dx3, exact)
    h00 = _f(2.0 * d3 - 3.0 * d2 + 1.0, exact)
    h10 = _f(1.0 * d3 - 2.0 * d2 + _d(dx, exact), exact)
    h01 = _f(-2.0 * d3 + 3.0 * d2, exact)
    h11 = _f(1.0 * d3 - 1.0 * d2, exact)
    return h00 * y0 + h10 * h * c0 + h01 * y1 + h11 * h * c1


def curve_at(xs: np.ndarray, ys: Tensor, kind: int, xval: Tensor, exact: bool) -> Tensor:
    """``interpolate_set`` then ``interpolate_val``: the curve of ``kind`` through nodes ``xs`` ``(n,)`` (float32,
    strictly increasing), ``ys`` ``(Bp, n)`` at ``xval`` ``(S,)`` -> ``(Bp, S)``; ``exact``: darktable's float32
    arithmetic, else the float64 surrogate."""
    dtype = torch.float32 if exact else torch.float64
    xt = torch.as_tensor(xs, dtype=dtype, device=ys.device)
    yt = ys.to(dtype)
    setup = {CUBIC_SPLINE: _cubic_ypp, CATMULL_ROM: _catmull_tangents, MONOTONE_HERMITE: _hermite_tangents}[kind]
    return _interpolate(xt, yt, setup(xt, yt), kind, xval.to(dtype), exact)


def curve_samples(xs: np.ndarray, ys: Tensor, kind: int, exact: bool, index: Tensor | None = None) -> Tensor:
    """``CurveDataSample`` with 65536 samples of the curve through nodes ``xs`` ``(n,)`` (float32,
    strictly increasing), ``ys`` ``(Bp, n)``: ``(Bp, 65536)`` float64. ``exact``: darktable's uint16
    samples (float32 arithmetic, rounded to nearest, clamped to ``[0, 65535]``); else the smooth
    surrogate (float64, unrounded, the same clamps). ``index`` ``(S,)`` (sorted sample numbers): those
    samples alone, ``(Bp, S)``, each the same value as in the whole table."""
    dtype = torch.float32 if exact else torch.float64
    dev = ys.device
    yt = ys.to(dtype)
    res = float(_F(1.0 / SAMPLE_MAX))
    i = torch.arange(LUT_SIZE, device=dev) if index is None else index
    xval = i.to(torch.float32) * res  # i * res in float32
    val = curve_at(xs, ys, kind, xval, exact) * float(SAMPLE_MAX)
    ends = yt[:, [0, -1]] * float(SAMPLE_MAX)
    if exact:  # (int)(v + 0.5): v + 0.5 in double, truncated towards zero
        val = torch.trunc(val.double() + 0.5)
        ends = torch.trunc(ends.double())
    val = val.double().clamp(0.0, float(SAMPLE_MAX))
    ends = ends.double()
    first, last = int(_F(xs[0]) * _F(SAMPLE_MAX)), int(_F(xs[-1]) * _F(SAMPLE_MAX))
    val = torch.where(i < first, ends[:, 0:1], val)
    return torch.where(i > last, ends[:, 1:2], val)


# ------------------------------------------------------------------ the LUT and its extrapolation
def exp_entries(xm: float) -> list[int]:
    """The four LUT entries ``dt_iop_estimate_exp`` reads: at 0.7, 0.8, 0.9 and 1 times ``xm``."""
    return [min(max(int(_F(_F(c) * _F(xm)) * _F(LUT_SIZE)), 0), SAMPLE_MAX) for c in (0.7, 0.8, 0.9, 1.0)]


def estimate_exp(xm: float, table: Tensor, exact: bool, index: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``dt_iop_estimate_exp`` on the LUT entries at 0.7, 0.8, 0.9 and 1 times the last node's x
    ``xm``: ``(1 / x0, y0, g)`` as ``(Bp,)`` tensors (float32 in exact mode). ``index``: the sample numbers
    of ``table``'s columns when it holds some entries only (:func:`sparse_index`)."""
    xl = [float(_F(c) * _F(xm)) for c in (0.7, 0.8, 0.9, 1.0)]
    idx = exp_entries(xm)
    if index is not None:
        idx = torch.searchsorted(index, torch.tensor(idx, device=index.device)).tolist()
    ys = [table[:, k] for k in idx]
    x0, y0 = xl[3], ys[3]
    g = torch.zeros_like(y0)
    cnt = torch.zeros_like(y0)
    for k in range(3):
        xx = float(_F(xl[k]) / _F(x0)) if exact else xl[k] / x0
        yy = ys[k] / y0
        ok = yy > 0.0 if xx > 0.0 else torch.zeros_like(yy, dtype=torch.bool)
        gg = torch.log(torch.where(ok, yy, torch.ones_like(yy))) / float(np.log(_F(xx)) if exact else np.log(xx))
        g = g + torch.where(ok, gg, torch.zeros_like(gg))
        cnt = cnt + ok.to(cnt.dtype)
    inv = torch.where(cnt > 0, 1.0 / cnt.clamp_min(1.0), torch.ones_like(cnt))
    if exact:
        inv = inv.float()
    g = torch.where(cnt > 0, g * inv, torch.ones_like(g))
    one_over = float(_F(1.0) / _F(x0)) if exact else 1.0 / x0
    return torch.full_like(y0, one_over), y0, g


@functools.lru_cache(maxsize=32)
def _cached_exact(xs: tuple[float, ...], ys: tuple[float, ...], kind: int) -> np.ndarray:
    """The float32 LUT of one curve given by floats (the history's), cached: ``(65536,)``."""
    s = curve_samples(np.array(xs, _F), torch.tensor([ys], dtype=torch.float64), kind, exact=True)
    return (s[0].numpy() / LUT_SIZE).astype(_F)


def exact_lut(
    xs: np.ndarray, ys: Tensor, kind: int, comp: bool, device: torch.device, index: Tensor | None = None
) -> Tensor:
    """darktable's float32 LUT ``(Bp, 65536)`` of the curve through ``xs`` (already compensated) and
    ``ys`` ``(Bp, n)`` (rounded to float32 and compensated in float32 as darktable does), one cached
    row per curve; ``index`` (:func:`sparse_index`): those entries alone, ``(Bp, S)``, not cached."""
    ys32 = ys.detach().float()
    ys32 = _uncompensate(ys32) if comp else ys32
    if index is not None:
        return (curve_samples(xs, ys32, kind, exact=True, index=index) / LUT_SIZE).float().to(device)
    rows = [torch.from_numpy(_cached_exact(tuple(map(float, xs)), tuple(r), kind)) for r in ys32.double().tolist()]
    return torch.stack(rows).to(device)


def sparse_index(t: Tensor, xm_node: float) -> Tensor | None:
    """The sorted LUT entries :func:`lookup` reads at ``t`` and ``dt_iop_estimate_exp`` reads for a curve ending
    at ``xm_node``, when they are few (a fit on sampled pixels: a LUT of 65536 entries per step would cost more
    than the image); ``None`` when a whole table is as cheap."""
    if t.numel() * 2 >= LUT_SIZE // 4:
        return None
    k = torch.clamp(torch.trunc(t.detach() * float(LUT_SIZE)), 0.0, float(SAMPLE_MAX)).long().reshape(-1)
    extra = torch.tensor(exp_entries(xm_node), device=t.device)
    return torch.unique(torch.cat([k, (k + 1).clamp_max(SAMPLE_MAX), extra]))


def curve_from_luts(
    lut_e: Tensor, lut_s: Tensor | None, xm_node: float, x: Tensor, smooth: bool, index: Tensor | None = None
) -> dict[str, Any]:
    """A curve as :func:`lookup` reads it, from darktable's float32 LUT ``lut_e`` and the surrogate's
    float64 ``lut_s`` (``(Bp, 65536)``; ``None`` when nothing is differentiated): ``lut`` (``lut_e``;
    ``smooth``: ``lut_s``), ``smooth`` (``lut_s``), the extrapolation's ``coeffs`` ``(1 / x0, y0, g)`` as
    ``(Bp, 1, 1, 1)`` (darktable's values with the surrogate's gradients; ``smooth``: the surrogate's)
    and ``xm``, where the extrapolation takes over (``1 / (1 / x)`` of the last node's x ``xm_node`` in
    float32), all in ``x``'s dtype; ``index``: the LUTs' sample numbers when they hold some entries only
    (:func:`sparse_index`)."""
    xm = float(_F(1.0) / (_F(1.0) / _F(xm_node)))
    c_e = estimate_exp(xm_node, lut_e, exact=True, index=index)
    cs: Sequence[Tensor]
    if lut_s is None:  # nothing to differentiate: the surrogate would only ever carry gradients
        lut, surrogate, cs = lut_e, lut_e, c_e
    elif smooth:
        lut, surrogate, cs = lut_s, lut_s, estimate_exp(xm_node, lut_s, exact=False, index=index)
    else:  # darktable's values with the surrogate's gradients
        c_s = estimate_exp(xm_node, lut_s, exact=False, index=index)
        lut, surrogate, cs = lut_e, lut_s, [ce.double() + (c - c.detach()) for ce, c in zip(c_e, c_s, strict=True)]
    coeffs = [c.to(x.dtype).reshape(-1, 1, 1, 1) for c in cs]
    return {"lut": lut.to(x.dtype), "smooth": surrogate.to(x.dtype), "coeffs": coeffs, "xm": xm, "index": index}


def needs_surrogate(x: Tensor, ys: Tensor, smooth: bool) -> bool:
    """Whether the surrogate LUT is needed: the surrogate itself, or a gradient to carry."""
    return smooth or (torch.is_grad_enabled() and (x.requires_grad or ys.requires_grad))


def node_luts(v: Values, ch: int, x: Tensor, smooth: bool, nodes: str = "curve_nodes") -> tuple[Any, ...]:
    """Channel ``ch``'s nodes and LUTs: ``(xs, ys, lut_e, lut_s)`` (see :func:`curve_from_luts`), the
    samples over 65536 (no middle-grey compensation); ``nodes``: the params' name prefix."""
    xs, ys = node_x(v, ch, nodes), node_y(v, ch, x.device, nodes)
    kind = int(v[_TYPE[nodes]][ch])
    lut_e = exact_lut(xs, ys, kind, False, x.device)
    lut_s = curve_samples(xs, ys, kind, exact=False) / LUT_SIZE if needs_surrogate(x, ys, smooth) else None
    return xs, ys, lut_e, lut_s


def _curve(v: Values, ch: int, x: Tensor, smooth: bool, at: Tensor) -> dict[str, Any]:
    """Channel ``ch``'s curve for :func:`lookup` at ``at`` (:func:`curve_from_luts`), middle-grey compensated;
    the LUT entries ``at`` reads alone where they are few and the curve changes (a fit), else whole tables."""
    xs = node_x(v, ch)
    ys = node_y(v, ch, x.device)
    kind = int(v["curve_type"][ch])
    comp = bool(v.get("compensate_middle_grey", False))
    if comp:  # the nodes' x are fixed: darktable's float32 values alone
        xs = _uncompensate(torch.as_tensor(xs)).numpy().astype(_F)
    surrogate = needs_surrogate(x, ys, smooth)
    index = sparse_index(at, float(xs[-1])) if surrogate and ys.requires_grad else None
    lut_e = exact_lut(xs, ys, kind, comp, x.device, index)
    lut_s = None
    if surrogate:
        lut_s = curve_samples(xs, _uncompensate(ys) if comp else ys, kind, exact=False, index=index) / LUT_SIZE
    return curve_from_luts(lut_e, lut_s, float(xs[-1]), x, smooth, index)


def lookup(c: dict[str, Any], t: Tensor, smooth: bool) -> Tensor:
    """The curve at ``t`` ``(B, k, H, W)`` as ``process()`` reads it: the LUT at ``trunc(t * 65536)``
    (clamped) below ``xm``, ``y0 * powf(t / x0, g)`` from there. ``smooth``: the surrogate alone (its
    LUT interpolated linearly between entries); else darktable's values with the surrogate's gradient."""
    pos = t * float(LUT_SIZE)
    k = torch.clamp(torch.trunc(pos.detach()), 0.0, float(SAMPLE_MAX)).long()
    k1 = (k + 1).clamp_max(SAMPLE_MAX)
    inside = (pos >= 0.0) & (pos < float(SAMPLE_MAX))
    frac = torch.where(inside, pos - k.to(t.dtype), torch.zeros_like(pos))

    def gather(lut: Tensor, idx: Tensor) -> Tensor:
        if lut.shape[0] == 1:
            return lut[0][idx]
        if idx.shape[0] == 1:  # one image, a batch of curves
            idx = idx.expand(lut.shape[0], *idx.shape[1:])
        return lut.gather(1, idx.reshape(idx.shape[0], -1)).reshape(idx.shape)

    if c.get("index") is not None:  # the LUTs hold the entries at c["index"] alone
        k, k1 = torch.searchsorted(c["index"], k), torch.searchsorted(c["index"], k1)
    s0 = gather(c["smooth"], k)
    lin = s0 + (gather(c["smooth"], k1) - s0) * frac
    if not smooth:
        lin = gather(c["lut"], k) + (lin - lin.detach())
    inv_x0, y0, g = c["coeffs"]
    above = t >= c["xm"]
    extra = y0 * safe_pow(torch.where(above, t * inv_x0, torch.ones_like(t)), g)
    return torch.where(above, extra, lin)


def rgb_norm(x: Tensor, norm: int, lum: tuple[float, float, float] | None = None) -> Tensor:
    """``dt_rgb_norm`` of the RGB pixels ``(B, 3, H, W)`` -> ``(B, 1, H, W)``; ``lum``: the profile's
    RGB -> Y row (``None``: the working profile's, linear Rec2020)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if norm == NORM_LUMINANCE:  # the profile's matrix_in row Y (linear: no TRC)
        m = working_profile_matrices()[0]
        lr, lg, lb = lum if lum is not None else (float(m[1, 0]), float(m[1, 1]), float(m[1, 2]))
        return lr * r + lg * g + lb * b
    if norm == NORM_MAX:
        return torch.maximum(r, torch.maximum(g, b))
    if norm == NORM_SUM:
        return r + g + b
    if norm == NORM_NORM:
        s = r * r + g * g + b * b
        return torch.sqrt(torch.where(s > 0, s, torch.ones_like(s))) * (s > 0).to(x.dtype)
    if norm == NORM_POWER:
        rr, gg, bb = r * r, g * g, b * b
        den = rr + gg + bb
        return safe_div(r * rr + g * gg + b * bb, den, den != 0, float("nan"))
    return (r + g + b) / 3.0  # NORM_AVERAGE


def curve_problem(what: str, n: int, kind: int, xs: Callable[[], np.ndarray]) -> str | None:
    """Why darktable would not sample a curve of ``n`` nodes of type ``kind`` as the ports do (``what`` names
    it in the one-line reason; ``xs``: its nodes' x as the spline sees them, read only for a valid count):
    outside 2..20 nodes or x not strictly increasing darktable's spline setup fails and keeps an earlier LUT."""
    if not 2 <= n <= MAX_NODES:
        return f"{what}: {n} nodes (darktable keeps an earlier LUT outside 2..{MAX_NODES})"
    if kind not in CURVE_TYPES:
        return f"{what}: curve type {kind} is not modelled"
    x = xs()
    if not np.all(np.diff(x) > 0) or x[-1] <= 0:
        return f"{what}: node x not strictly increasing (darktable keeps an earlier LUT)"
    return None


# ------------------------------------------------------------------ the stage
def _rgbcurve_supported(v: Values, ctx: StageContext) -> str | None:
    auto, norm = int(v.get("curve_autoscale", LINKED)), int(v.get("preserve_colors", NORM_LUMINANCE))
    if auto not in (LINKED, INDEPENDENT):
        return f"rgbcurve mode {auto} is not modelled"
    if auto == LINKED and not 0 <= norm <= NORM_POWER:
        return f"rgbcurve preserve colors {norm} is not modelled"
    comp = bool(v.get("compensate_middle_grey", False))
    for ch in (0,) if auto == LINKED else (0, 1, 2):

        def xs(ch: int = ch) -> np.ndarray:
            return _uncompensate(torch.as_tensor(node_x(v, ch))).numpy() if comp else node_x(v, ch)

        why = curve_problem(f"rgbcurve channel {ch}", num_nodes(v, ch), int(v["curve_type"][ch]), xs)
        if why:
            return why
    return None


def rgbcurve_curve(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """rgb curve on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same. ``smooth``: the differentiable
    surrogate alone (what the exact stage's gradients are; for gradient checks)."""
    auto = int(v.get("curve_autoscale", LINKED))
    if auto == INDEPENDENT:
        chans = [lookup(_curve(v, ch, x, smooth, x[:, ch : ch + 1]), x[:, ch : ch + 1], smooth) for ch in range(3)]
        return torch.cat(chans, 1)
    norm = int(v.get("preserve_colors", NORM_LUMINANCE))
    if norm == NORM_NONE:
        return lookup(_curve(v, 0, x, smooth, x), x, smooth)
    lum = rgb_norm(x, norm)
    ok = lum > 0.0  # NaN (basic power of black) and non-positive norms: the pixel as it is
    lum_safe = torch.where(ok, lum, torch.ones_like(lum))
    red = _curve(v, 0, x, smooth, lum_safe)
    ratio = torch.where(ok, lookup(red, lum_safe, smooth) / lum_safe, torch.ones_like(lum))
    return ratio * x


@register_exact(
    "rgbcurve",
    params=PARAMS,
    versions=(1,),
    note="darktable's rgbcurve.c and curve_tools.c: the spline's uint16 LUT (float32), its truncating look-up, "
    "the power-law extrapolation, linked (every norm) and independent channels, middle-grey compensation; "
    "gradients of the unrounded, linearly interpolated spline (node y differentiable, node x not)",
    supports=_rgbcurve_supported,
)
def rgbcurve(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return rgbcurve_curve(x, v)
