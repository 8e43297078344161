"""darktable 4.2.1's unbreak input profile (``profile_gamma``, params version 2) as an exact stage.

A port of ``src/iop/profile_gamma.c`` (``commit_params()`` and the CPU ``process()``) with what they
inline: ``src/common/math.h`` (``fastlog2``, a bit-trick approximation of log2) and
``src/develop/imageop_math.h`` (``dt_iop_estimate_exp`` / ``dt_iop_eval_exp``). Both modes, per channel:

* logarithmic (mode 0): ``t = max(x / (grey_point / 100), 2^-16)``, then
  ``max((fastlog2(t) - shadows_range) / dynamic_range, 2^-16)`` (noise floor in and out);
  ``security_factor`` is a GUI helper (it only rescales the other sliders there) and unused here.
* gamma (mode 1): ``commit_params()``'s 65536-entry float32 LUT of the curve ``c x`` below ``linear`` and
  ``(a x + b)^g`` above (the sRGB-like toe: ``g``, ``a``, ``b``, ``c`` from ``linear`` and ``gamma``
  with C's float / double promotions; identity for ``gamma == 1`` or ``linear >= 1``; ``x^gamma`` for
  ``linear == 0``), read at ``trunc(x * 65536)`` (clamped) below 1 and extrapolated above by
  ``dt_iop_eval_exp`` (the power law through the LUT entries at 0.7, 0.8, 0.9 and 1).

Values are darktable's (``fastlog2`` via torch's int32 view of the float32 bits; the LUT and its truncating
look-up in float32); gradients are those of a smooth surrogate (a straight-through estimate, as rgbcurve's):
the true log2 in the log mode, the unrounded float64 curve sampled into the LUT and read by linear
interpolation in the gamma mode (:mod:`.rgbcurve`'s ``lookup``). Regressable: ``linear``, ``gamma``,
``dynamic_range``, ``grey_point``, ``shadows_range``. Refused: any other mode.

Placement: in darktable's v3.0 pipe order (raws) the module runs before colorin, on camera RGB. The stage
then takes and returns linear Rec2020 like every stage, going back to camera RGB through colorin's matrix as
darktable's renders measure it (``ctx.camera_matrix``: ``M f(M^-1 x)``; without it the stage raises).
Where colorin comes first (the JPEG order) or ``ctx.modules`` does not place it, it runs on its input as is.

Measured against darktable-cli's tap-outs (``tests/replica/test_profile_gamma.py``, 6 settings, 6 runs): in camera
RGB 81.2-100 dB display PSNR (worst per run 81.2-82.1), in Rec2020 through colorin's measured matrix 79.9-89.8
(fit 94.3 dB); the error is darktable's run-to-run noise at a few pixels and its Lab round trip (~1e-4).
darktable's presets (16 and 8 EV, 256 px from a 512 px raw): the stage alone 81.3 and 82.6 dB, the replica
58.9 and 59.2 dB against darktable's 8-bit export (rgb and --from-mosaic alike).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.ports.rgbcurve import LUT_SIZE, curve_from_luts, lookup
from darkproxy.replica.registry import StageContext, Values, register_exact, through_camera_rgb
from darkproxy.replica.science import powf_float32, safe_div, safe_pow

Tensor = torch.Tensor

LOG, GAMMA = 0, 1
MODES = {LOG: "logarithmic", GAMMA: "gamma"}
NOISE = 2.0**-16  # powf(2.0f, -16.0f): the first non-zero 16-bit level
PARAMS = ("linear", "gamma", "dynamic_range", "grey_point", "shadows_range")
DEFAULTS = {"mode": LOG, "linear": 0.1, "gamma": 0.45, "dynamic_range": 10.0, "grey_point": 18.0}
DEFAULTS |= {"shadows_range": -5.0}

_F = np.float32
# fastlog2's float literals (math.h)
_L0, _L1, _L2, _L3 = (float(_F(c)) for c in (124.22551499, 1.498030302, 1.72587999, 0.3520887068))
_MANT_SCALE = 1.1920928955078125e-7  # 2^-23


def fastlog2(x: Tensor) -> Tensor:
    """darktable's ``fastlog2`` on a float32 tensor of positive values: the float's bits as an integer
    scaled by 2^-23 (the exponent plus a linear mantissa) corrected by a rational function of the
    mantissa in [0.5, 1); float32 arithmetic in C's order."""
    bits = x.contiguous().view(torch.int32)
    mant = ((bits & 0x007FFFFF) | 0x3F000000).view(torch.float32)
    y = bits.to(torch.float32) * _MANT_SCALE
    # a tensor numerator: torch computes ``scalar / tensor`` as a reciprocal times the scalar (two roundings)
    return y - _L0 - _L1 * mant - torch.full_like(mant, _L2) / (_L3 + mant)


def _param(v: Values, name: str) -> Any:
    return v.get(name, DEFAULTS[name])


def _col(val: Any, x: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(val, dtype=dtype, device=x.device).reshape(-1, 1, 1, 1)


def _log_mode(x: Tensor, v: Values, smooth: bool) -> Tensor:
    grey_pt, shadows, dr = (_param(v, n) for n in ("grey_point", "shadows_range", "dynamic_range"))
    # the surrogate: log2 itself, with darktable's clamps (gradient 0 where a noise floor holds)
    grey_s = _col(grey_pt, x, x.dtype) / 100.0
    t_s = torch.clamp_min(x / grey_s, NOISE)
    out_s = (torch.log2(t_s) - _col(shadows, x, x.dtype)) / _col(dr, x, x.dtype)
    if smooth:
        return torch.where(out_s < NOISE, torch.full_like(out_s, NOISE), out_s)
    with torch.no_grad():  # darktable's float32 values
        f32 = torch.float32
        grey = _col(grey_pt, x, f32).detach() / 100.0
        t = torch.clamp_min(x.detach().to(f32) / grey, NOISE)
        out = (fastlog2(t) - _col(shadows, x, f32).detach()) / _col(dr, x, f32).detach()
        floor = out < NOISE
        exact = torch.where(floor, torch.full_like(out, NOISE), out).to(x.dtype)
    return exact + torch.where(floor, torch.zeros_like(out_s), out_s - out_s.detach())


@functools.lru_cache(maxsize=32)
def exact_table(linear: float, gamma: float) -> np.ndarray:
    """``commit_params()``'s LUT for float32 ``linear`` and ``gamma``: ``(65536,)`` float32, C's
    promotions (``1.0``, a double literal, makes double of some of the parameters' arithmetic)."""
    lin, gam = _F(linear), _F(gamma)
    k = np.arange(LUT_SIZE)
    if float(gam) == 1.0:
        return (k / float(LUT_SIZE)).astype(_F)
    if float(lin) == 0.0:
        return np.asarray(powf_float32((k / float(LUT_SIZE)).astype(_F), gam), dtype=_F)
    if float(lin) < 1.0:
        g = _F(float(gam) * (1.0 - float(lin)) / (1.0 - float(gam * lin)))
        a = _F(1.0 / (1.0 + float(lin * (g - _F(1.0)))))
        b = lin * (g - _F(1.0)) * a
        c = _F(powf_float32(a * lin + b, g)) / lin
    else:
        a, b, g, c = _F(0.0), _F(0.0), _F(0.0), _F(1.0)
    kf = k.astype(_F)
    below = kf < _F(LUT_SIZE) * lin
    with np.errstate(invalid="ignore", divide="ignore"):
        up = np.asarray(powf_float32(a * kf / _F(LUT_SIZE) + b, g), dtype=_F)
    return np.where(below, c * kf / _F(LUT_SIZE), up).astype(_F)


def smooth_table(linear: Tensor, gamma: Tensor) -> Tensor:
    """The surrogate of :func:`exact_table`: the same curve in float64, unrounded, differentiable in
    ``linear`` and ``gamma`` ``(Bp, 1)``: ``(Bp, 65536)``. ``linear == 0`` is the toe's formula at 0
    (``x^gamma``: the pure power is its limit, so the gradient in ``linear`` there is the one-sided one
    into the slider's range); ``gamma == 1`` the toe's too (the identity, as darktable's special case)."""
    xs = torch.arange(LUT_SIZE, dtype=torch.float64, device=linear.device) / LUT_SIZE
    lin, gam = linear.to(torch.float64), gamma.to(torch.float64)
    toe_on = lin < 1.0
    lin_s = torch.where(toe_on, lin, torch.full_like(lin, 0.5))  # finite gradients in the unused branch
    g = gam * (1.0 - lin_s) / (1.0 - gam * lin_s)
    a = 1.0 / (1.0 + lin_s * (g - 1.0))
    b = lin_s * (g - 1.0) * a
    c = safe_div(safe_pow(torch.clamp_min(a * lin_s + b, 0.0), g), lin_s, lin_s > 0.0)  # unused at 0
    toe = torch.where(xs < lin_s, c * xs, safe_pow(torch.clamp_min(a * xs + b, 0.0), g))
    return torch.where(toe_on, toe, xs.expand(lin.shape[0], -1))  # linear >= 1: the identity


def _gamma_mode(x: Tensor, v: Values, smooth: bool) -> Tensor:
    lin_v, gam_v = _param(v, "linear"), _param(v, "gamma")
    lin = torch.as_tensor(lin_v, dtype=torch.float64, device=x.device).reshape(-1, 1)
    gam = torch.as_tensor(gam_v, dtype=torch.float64, device=x.device).reshape(-1, 1)
    b = max(lin.shape[0], gam.shape[0])
    lin, gam = lin.expand(b, 1), gam.expand(b, 1)
    need = smooth or (torch.is_grad_enabled() and (x.requires_grad or lin.requires_grad or gam.requires_grad))
    lut_s = smooth_table(lin, gam) if need else None
    if smooth and lut_s is not None:  # the surrogate alone: darktable's LUT is not read
        return lookup(curve_from_luts(lut_s.float(), lut_s, 1.0, x, smooth), x, smooth)
    pairs = zip(lin.detach().float().reshape(-1).tolist(), gam.detach().float().reshape(-1).tolist(), strict=True)
    lut_e = torch.stack([torch.from_numpy(exact_table(p, q)) for p, q in pairs]).to(x.device)
    return lookup(curve_from_luts(lut_e, lut_s, 1.0, x, smooth), x, smooth)


def profile_gamma_curve(x: Tensor, v: Values, smooth: bool = False) -> Tensor:
    """The module on ``x`` ``(B, 3, H, W)`` in its own input space (camera RGB before colorin) -> the
    same. ``smooth``: the differentiable surrogate alone (what the stage's gradients are)."""
    if int(v.get("mode", LOG)) == GAMMA:
        return _gamma_mode(x, v, smooth)
    return _log_mode(x, v, smooth)


def _supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", LOG))
    if mode not in MODES:
        return f"profile_gamma mode {mode} is not modelled (logarithmic and gamma are)"
    return None


@register_exact(
    "profile_gamma",
    params=PARAMS,
    versions=(2,),
    note="darktable's profile_gamma.c: the log mode with fastlog2 and its noise floors, the gamma mode's float32 "
    "LUT and power-law extrapolation; before colorin through colorin's measured matrix; gradients of log2 and "
    "of the unrounded curve",
    supports=_supported,
)
def profile_gamma(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    try:
        return through_camera_rgb(x, ctx, "profile_gamma", lambda cam: profile_gamma_curve(cam, v))
    except ValueError as e:
        raise DarkproxyError(str(e)) from None
