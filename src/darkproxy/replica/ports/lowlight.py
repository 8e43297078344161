"""darktable 4.2.1's lowlight vision (``lowlight``, params version 1) as an exact stage: ``src/iop/lowlight.c``.

A Lab module (``IOP_CS_LAB``, after colorin in every pipe order). ``commit_params()``: the transition
curve through eight anchors (the six ``transition_x`` / ``transition_y`` nodes, the first anchor at
``transition_x[4] - 1`` with ``transition_y[0]``, the last at ``transition_x[1] + 1`` with
``transition_y[5]``), a Catmull-Rom spline (``dt_draw_curve_new(0, 1, CATMULL_ROM)``) sampled by
``dt_draw_curve_calc_values`` into 65536 uint16 samples (``CurveDataSample``, the curve maths of
:mod:`darkproxy.replica.ports.rgbcurve`), the LUT ``sample / 65536``. ``process()``: per pixel, the Lab
input's XYZ (D50), the scotopic luminance ``V = clamp(0.5 Y (1.33 (1 + (Y + Z) / max(X, 0.01)) - 1.68), 0, 1)``
(X at 0.01 where X <= 0.01), the curve's weight ``w`` read by linear interpolation at ``L* / 100``
(darktable's float32 bins, its ``+ 1`` in float32 included), ``XYZ_out = w XYZ + (1 - w) V XYZ_sw`` with the
scotopic white ``XYZ_sw`` = XYZ of Lab (100, 0, -blueness), back to Lab by ``dt_XYZ_to_Lab`` (darktable's
approximate cube root, ``cbrt_5f`` and one Halley step, emulated: up to ~1e-4 relative).

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same; pointwise. Values: darktable's (float32 arithmetic,
the uint16 LUT, the approximate cube root); gradients (image, ``blueness``, the node y values
``transition_y[k]``: a value under that name overrides the array's element) those of a smooth surrogate
(straight-through, as rgb curve's): the unrounded float64 spline samples, exact cube roots. The nodes' x
are not differentiable. Refused: anchors whose x are not strictly increasing (darktable's spline setup
fails and keeps an earlier LUT), placements outside colorin..colorout.

Measured against darktable-cli's tap-outs (``tests/replica/test_monochrome_lowlight_channelmixer.py``, three of
darktable's presets and three random curves, 8 runs): 82.3-100 dB display PSNR, every setting 100 dB in some run
(the spread: darktable's run-to-run noise). The "daylight" and "twilight" presets through the replica (512 px
raws at 256 px): the stage alone 100 dB, the replica 58.9 dB against darktable's 8-bit export.
"""

from __future__ import annotations

import numpy as np
import torch

from darkproxy.colour.matrices import profile_rgb_to_xyz_d50
from darkproxy.replica.ports.monochrome import lab_placement
from darkproxy.replica.ports.rgbcurve import CATMULL_ROM, LUT_SIZE, SAMPLE_MAX, curve_samples, exact_lut
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import D50_WHITE, lab_f, lab_to_working_rgb, mix, straight_through

Tensor = torch.Tensor
_F = np.float32

BANDS = 6
PARAMS = ("blueness", *(f"transition_y[{k}]" for k in range(BANDS)))
THRESHOLD, COEF = 0.01, 0.5  # process(): the low-red threshold, the empiric coefficient


def anchors_x(v: Values) -> np.ndarray:
    """The eight anchors' x as commit_params() sets them (float32; the ends: a double sum rounded)."""
    tx = [float(_F(t)) for t in v["transition_x"]]
    return np.array([tx[BANDS - 2] - 1.0, *tx, tx[1] + 1.0], dtype=np.float64).astype(_F)


def anchors_y(v: Values, device: torch.device) -> Tensor:
    """The eight anchors' y ``(Bp, 8)`` float64 (``v["transition_y[k]"]`` overrides the array's element)."""
    cols = []
    for k in range(BANDS):
        key = f"transition_y[{k}]"
        val = v[key] if key in v else v["transition_y"][k]
        cols.append(torch.as_tensor(val, dtype=torch.float64, device=device).reshape(-1))
    b = max(c.shape[0] for c in cols)
    ys = [c.expand(b) for c in cols]
    return torch.stack([ys[0], *ys, ys[BANDS - 1]], dim=1)


def dt_lab_f(t: Tensor) -> Tensor:
    """darktable's ``lab_f`` in float32 (``colorspaces_inline_conversions.h``): ``cbrt_5f`` (the float's bits
    over 3 plus 709921077) and one Halley step above epsilon, linear below."""
    t = t.float()
    bits = t.view(torch.int32)
    a = (torch.div(bits, 3, rounding_mode="trunc") + 709921077).to(torch.int32).view(torch.float32)
    a3 = a * a * a
    big = a * (a3 + t + t) / (a3 + a3 + t)
    eps, kappa = float(_F(216.0) / _F(24389.0)), float(_F(24389.0) / _F(27.0))
    return torch.where(t > eps, big, (kappa * t + 16.0) / 116.0)


def _lookup(lut: Tensor, t: Tensor, exact: bool) -> Tensor:
    """lowlight.c's ``lookup()`` of ``lut`` ``(Bp, 65536)`` at ``t`` ``(B, 1, H, W)`` (L* / 100): linear
    interpolation between ``bin0 = (int)clamp(65536 t)`` and ``bin1 = (int)clamp(65536 t + 1)``. ``exact``:
    darktable's float32 arithmetic (``lut[bin1] f`` in float, the rest in double); else differentiable."""
    pos = t * float(LUT_SIZE)
    b0 = torch.trunc(torch.clamp(pos.detach(), 0.0, float(SAMPLE_MAX)))
    if exact:
        b1 = torch.trunc(torch.clamp(pos + 1.0, 0.0, float(SAMPLE_MAX)))
    else:
        b1 = torch.where((pos.detach() >= 0) & (pos.detach() < SAMPLE_MAX), b0 + 1.0, b0)
    f = pos - b0
    B = max(lut.shape[0], t.shape[0])
    lut = lut.expand(B, -1)

    def gather(k: Tensor) -> Tensor:
        k = k.long().expand(B, *k.shape[1:])
        return lut.gather(1, k.reshape(B, -1)).reshape(k.shape)

    l0, l1 = gather(b0), gather(b1)
    if exact:
        return ((l1 * f).double() + l0.double() * (1.0 - f.double())).float()
    return l1 * f + l0 * (1.0 - f)


def _lowlight(x: Tensor, v: Values, lut: Tensor, exact: bool) -> Tensor:
    """process() on ``x`` (linear Rec2020) with the LUT ``lut``: darktable's float32 values (``exact``)
    or the surrogate in ``x``'s dtype."""
    dt = torch.float32 if exact else x.dtype
    xx = x.to(dt)
    xyz = mix(profile_rgb_to_xyz_d50("lin_rec2020"), xx)
    X, Y, Z = xyz[:, 0:1], xyz[:, 1:2], xyz[:, 2:3]
    L = 116.0 * lab_f(Y) - 16.0  # the Lab module's input L* (D50 white Y = 1)
    blue = column(v.get("blueness", 0.0), xx)
    fz = blue / 200.0 + 1.0  # dt_Lab_to_XYZ of (100, 0, -blueness): f_y = 1, f_z = 1 + blueness / 200
    sw: tuple[float | Tensor, ...] = (float(_F(D50_WHITE[0])), 1.0, float(_F(D50_WHITE[2])) * (fz * fz * fz))
    thr = torch.full_like(X, THRESHOLD)
    den = torch.where(thr < X, X, thr)  # X > 0.01f
    V = torch.clamp(COEF * (Y * (1.33 * (1.0 + (Y + Z) / den) - 1.68)), 0.0, 1.0)
    w = _lookup(lut.to(dt), L / 100.0, exact)
    out = [w * c + (1.0 - w) * (V * s) for c, s in zip((X, Y, Z), sw, strict=True)]
    if not exact:  # the exact cube root: the round trip to Lab and back is the identity
        return mix(np.linalg.inv(profile_rgb_to_xyz_d50("lin_rec2020")), torch.cat(out, 1))
    fx, fy, fzz = (dt_lab_f(c / float(_F(d))) for c, d in zip(out, D50_WHITE, strict=True))
    lab = torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fzz)], 1)
    return lab_to_working_rgb(lab)


def lowlight_vision(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """lowlight on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same: darktable's values with the
    surrogate's gradients; ``smooth``: the differentiable surrogate alone (for gradient checks)."""
    xs, ys = anchors_x(v), anchors_y(v, x.device)
    grad = torch.is_grad_enabled() and (
        x.requires_grad or any(isinstance(t, Tensor) and t.requires_grad for t in v.values())
    )
    if not smooth:
        with torch.no_grad():
            out = _lowlight(x, v, exact_lut(xs, ys, CATMULL_ROM, False, x.device), exact=True).to(x.dtype)
        if not grad:
            return out
    lut_s = curve_samples(xs, ys, CATMULL_ROM, exact=False) / LUT_SIZE
    s = _lowlight(x, v, lut_s, exact=False)
    return s if smooth else straight_through(out, s)


def _lowlight_supported(v: Values, ctx: StageContext) -> str | None:
    xs = anchors_x(v)
    if not np.all(np.diff(xs) > 0):
        return "lowlight: transition x not strictly increasing with the wrapped ends (darktable keeps an earlier LUT)"
    return lab_placement("lowlight")(v, ctx)


@register_exact(
    "lowlight",
    params=PARAMS,
    versions=(1,),
    note="darktable's lowlight.c: the Catmull-Rom transition curve's uint16 LUT (wrapped ends), its linear "
    "look-up at L*, scotopic luminance and blue-shifted white in XYZ, dt_XYZ_to_Lab's approximate cube root; "
    "gradients of the unrounded spline (node y and blueness differentiable, node x not)",
    supports=_lowlight_supported,
)
def lowlight(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return lowlight_vision(x, v)
