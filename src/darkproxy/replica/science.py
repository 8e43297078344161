"""The colour science and safe maths the replica's ports share (one of each).

Channel tensors are ``(B, C, H, W)``; the safe helpers return darktable's value where
it is defined and keep gradients finite where the unused branch of a ``where``
would divide by zero or take a root of zero.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

import numpy as np
import torch

from darkproxy.colour.matrices import profile_rgb_to_xyz_d50

Tensor = torch.Tensor
Vec3 = tuple[Tensor, Tensor, Tensor]

# CIE L*a*b* (common/colorspaces_inline_conversions.h: lab_f / lab_f_inv)
LAB_EPS = 216.0 / 24389.0
LAB_KAPPA = 24389.0 / 27.0


def lab_f(t: Tensor) -> Tensor:
    """CIE Lab's ``f``: cube root above ``LAB_EPS``, linear below."""
    return torch.where(t > LAB_EPS, t.clamp_min(LAB_EPS) ** (1.0 / 3.0), (LAB_KAPPA * t + 16.0) / 116.0)


def lab_finv(f: Tensor) -> Tensor:
    """The inverse of :func:`lab_f`."""
    return torch.where(f**3 > LAB_EPS, f**3, (116.0 * f - 16.0) / LAB_KAPPA)


def mix(m: np.ndarray, x: Tensor) -> Tensor:
    """``m @ rgb`` per pixel of a ``(B, 3, H, W)`` tensor (``m``: ``(k, 3)``) -> ``(B, k, H, W)``,
    one einsum in ``x``'s dtype."""
    mt = torch.tensor(np.array(m), dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", mt, x)


def mix3(m: np.ndarray, v: Vec3) -> Vec3:
    """``dot_product``: ``m (3, 3) @ v`` on three separate ``(B, 1, H, W)`` channels, as
    darktable writes it (each row a sum of three products with Python-float
    coefficients: not :func:`mix`'s einsum, whose rounding differs)."""
    a, b, c = v
    return (
        float(m[0, 0]) * a + float(m[0, 1]) * b + float(m[0, 2]) * c,
        float(m[1, 0]) * a + float(m[1, 1]) * b + float(m[1, 2]) * c,
        float(m[2, 0]) * a + float(m[2, 1]) * b + float(m[2, 2]) * c,
    )


def straight_through(value: Tensor, smooth: Tensor) -> Tensor:
    """``value``'s numbers with ``smooth``'s gradient: darktable's fast approximation (bit tricks, LUTs, float32
    polynomials) is what the replica computes, the function it approximates is what it differentiates. ``value``
    is taken as it is (no gradient of its own: compute it from detached inputs); ``smooth`` of the same shape."""
    return value.detach() + (smooth - smooth.detach())


def _broadcasts_into(small: torch.Size, big: torch.Size) -> bool:
    """``torch.broadcast_shapes(small, big) == big`` without its cost (~70 us a call, thousands per fit)."""
    return len(small) <= len(big) and all(d in (1, e) for d, e in zip(reversed(small), reversed(big), strict=False))


def safe_div(a: Tensor, b: Tensor, ok: Tensor, other: Tensor | float = 0.0) -> Tensor:
    """``ok ? a / b : other`` without NaN/inf gradients where ``b`` is 0 (the unused branch)."""
    if not (isinstance(other, Tensor) and other.requires_grad) and bool(ok.all()):
        # the usual case, ``ok`` everywhere: the same values and gradients without two ``where``s (slow on CPU)
        q = a / b
        other_t = other if isinstance(other, Tensor) else None
        if _broadcasts_into(ok.shape, q.shape) and (
            other_t is None or (_broadcasts_into(other_t.shape, q.shape) and torch.result_type(q, other_t) == q.dtype)
        ):
            return q
    return torch.where(ok, a / torch.where(ok, b, 1.0), other)


def safe_pow(x: Tensor, p: Tensor | float) -> Tensor:
    """``powf(x, p)`` for ``x >= 0`` and ``p > 0`` (0 at 0, finite gradients there);
    ``p == 0`` gives 1 everywhere, as powf(0, 0)."""
    pos = x > 0
    y = torch.where(pos, x, torch.ones_like(x)) ** p
    zero_val = (torch.as_tensor(p, dtype=x.dtype, device=x.device) == 0).to(x.dtype)
    return torch.where(pos, y, zero_val)


def powf_float32(a: Any, b: Any) -> Any:
    """``powf`` correctly rounded, on numpy values via float64: the float32 emulation of a
    parameter computation (not :func:`safe_pow`, a torch op). glibc's own ``powf`` differs
    from it in the last bit for a few arguments in 10,000 (:func:`libm_float32` calls it)."""
    return (np.asarray(a, np.float64) ** np.asarray(b, np.float64)).astype(np.float32)


@functools.cache
def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def libm_float32(fn: str, *args: Any) -> np.ndarray:
    """The C maths library's float32 function ``fn`` (``"expf"``, ``"powf"``, ...) applied
    elementwise to numpy arrays (broadcast), rounded as that library rounds: the very calls
    darktable's build makes in a parameter computation, where a last-bit difference matters
    (a finite difference). Without a loadable C maths library: float64, correctly rounded
    to float32 (glibc's agrees but for a few arguments in 10,000). Returns float32."""
    xs = np.broadcast_arrays(*(np.asarray(a, np.float32) for a in args))
    lib = _libm()
    if lib is None:
        f64 = {"expf": np.exp, "logf": np.log, "powf": np.power}[fn]
        return np.asarray(f64(*(x.astype(np.float64) for x in xs)), np.float64).astype(np.float32)
    c_fn = getattr(lib, fn)
    c_fn.restype = ctypes.c_float
    c_fn.argtypes = [ctypes.c_float] * len(xs)
    flat = [x.ravel() for x in xs]
    out = np.array([c_fn(*(float(v[i]) for v in flat)) for i in range(flat[0].size)], np.float32)
    return out.reshape(xs[0].shape)


def safe_hypot(x: Tensor, y: Tensor) -> Tensor:
    """``hypotf``, with a finite gradient (0) at the origin."""
    s = x * x + y * y
    return torch.where(s > 0, torch.sqrt(torch.where(s > 0, s, torch.ones_like(s))), torch.zeros_like(s))


def safe_atan2(y: Tensor, x: Tensor) -> Tensor:
    """``atan2f`` (0 at the origin), with a finite gradient there."""
    zero = (x == 0) & (y == 0)
    return torch.atan2(torch.where(zero, torch.zeros_like(y), y), torch.where(zero, torch.ones_like(x), x))


# JzAzBz (common/colorspaces_inline_conversions.h: dt_XYZ_2_JzAzBz), darktable's float constants
JZ_B, JZ_G = 1.15, 0.66
JZ_C1, JZ_C2, JZ_C3 = 0.8359375, 18.8515625, 18.6875
JZ_N, JZ_P = 0.159301758, 134.034375
JZ_D, JZ_D0 = -0.56, 1.6295499532821566e-11
JZ_M = np.array(
    [[0.41478972, 0.579999, 0.0146480], [-0.2015100, 1.120649, 0.0531008], [-0.0166008, 0.264800, 0.6684799]],
    dtype=np.float32,
)
JZ_A = np.array([[0.5, 0.5, 0.0], [3.524000, -4.066708, 0.542708], [0.199076, 1.096799, -1.295875]], dtype=np.float32)


def xyz_d65_to_jzazbz(xyz: Vec3) -> Vec3:
    """dt_XYZ_2_JzAzBz: XYZ D65 (darktable's scale: Y 1 for the pipe's white; it divides by
    10000 nits) as three ``(B, 1, H, W)`` channels -> Jz, az, bz."""
    X, Y, Z = xyz
    xp = JZ_B * X - (JZ_B - 1.0) * Z
    yp = JZ_G * Y - (JZ_G - 1.0) * X
    lms = mix3(JZ_M, (xp, yp, Z))
    out = []
    for v in lms:
        v = safe_pow(torch.clamp_min(v / 10000.0, 0.0), JZ_N)
        out.append(((JZ_C1 + JZ_C2 * v) / (1.0 + JZ_C3 * v)) ** JZ_P)
    iz, az, bz = mix3(JZ_A, (out[0], out[1], out[2]))
    jz = torch.clamp_min(((1.0 + JZ_D) * iz) / (1.0 + JZ_D * iz) - JZ_D0, 0.0)
    return jz, az, bz


# darktable's pipe between the working profile and Lab (an ``IOP_CS_LAB`` module's input and output):
# the profile's matrix to XYZ D50, then dt_XYZ_to_Lab with darktable's D50 white
# (common/colorspaces_inline_conversions.h: d50 = {0.9642, 1, 0.8249})
D50_WHITE = (0.9642, 1.0, 0.8249)


@functools.cache
def working_profile_matrices() -> tuple[np.ndarray, np.ndarray]:
    """darktable's linear Rec2020 working profile as a module's ``process()`` reads it:
    ``matrix_in`` (RGB -> XYZ D50, lcms's build stored as floats) and ``matrix_out`` (its
    inverse, ``mat3SSEinv``, stored as floats): float32 values in read-only float64 ``(3, 3)`` arrays."""
    m_in = profile_rgb_to_xyz_d50("lin_rec2020").astype(np.float32).astype(np.float64)
    m_out = np.linalg.inv(m_in).astype(np.float32).astype(np.float64)
    m_in.setflags(write=False)
    m_out.setflags(write=False)
    return m_in, m_out


def working_rgb_to_lab(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` linear Rec2020 (darktable's working profile, D50-adapted) -> CIE Lab D50
    ``(B, 3, H, W)`` (L in ``[0, 100]`` for ``[0, 1]`` RGB), as darktable converts for a Lab module."""
    white = torch.as_tensor(D50_WHITE, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    f = lab_f(mix(profile_rgb_to_xyz_d50("lin_rec2020"), x) / white)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def lab_to_working_rgb(lab: Tensor) -> Tensor:
    """The inverse of :func:`working_rgb_to_lab`: CIE Lab D50 ``(B, 3, H, W)`` -> linear Rec2020."""
    white = torch.as_tensor(D50_WHITE, dtype=lab.dtype, device=lab.device).reshape(1, 3, 1, 1)
    fy = (lab[:, 0:1] + 16.0) / 116.0
    f = torch.cat([lab[:, 1:2] / 500.0 + fy, fy, fy - lab[:, 2:3] / 200.0], 1)
    return mix(np.linalg.inv(profile_rgb_to_xyz_d50("lin_rec2020")), lab_finv(f) * white)


HSL_DEN_MIN = 1.52587890625e-05  # rgb2hsl's floor of the saturation's denominator (2^-16)


def rgb_to_hsl(r: Tensor, g: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """darktable's ``rgb2hsl`` (``common/colorspaces.c``) on three channels; h = s = 0 where max = min."""
    pmax = torch.maximum(r, torch.maximum(g, b))
    pmin = torch.minimum(r, torch.minimum(g, b))
    delta = pmax - pmin
    lv = (pmin + pmax) / 2.0
    nz = delta != 0.0
    den = torch.where(lv < 0.5, pmax + pmin, 2.0 - pmax - pmin).clamp_min(HSL_DEN_MIN)
    sv = torch.where(nz, delta / den, torch.zeros_like(delta))
    hr = safe_div(g - b, delta, nz)
    hg = 2.0 + safe_div(b - r, delta, nz)
    hb = 4.0 + safe_div(r - g, delta, nz)
    hv = torch.where(pmax == r, hr, torch.where(pmax == g, hg, torch.where(pmax == b, hb, torch.zeros_like(hr))))
    hv = hv / 6.0
    hv = torch.where(hv < 0.0, hv + 1.0, torch.where(hv > 1.0, hv - 1.0, hv))
    return torch.where(nz, hv, torch.zeros_like(hv)), sv, lv


def hsl_to_rgb(h: Tensor, s: Tensor, lightness: Tensor) -> Vec3:
    """darktable's ``hsl2rgb`` (common/colorspaces.c) on broadcastable tensors: hue ``h`` in ``[0, 1]``,
    saturation ``s`` and lightness in ``[0, 1]`` -> three channels (piecewise linear in ``h``)."""
    m2 = torch.where(lightness < 0.5, lightness * (1.0 + s), lightness + s - lightness * s)
    m1 = 2.0 * lightness - m2
    h6 = h * 6.0

    def channel(hue: Tensor) -> Tensor:
        rise = m1 + (m2 - m1) * hue
        fall = m1 + (m2 - m1) * (4.0 - hue)
        return torch.where(hue < 1.0, rise, torch.where(hue < 3.0, m2, torch.where(hue < 4.0, fall, m1)))

    return (
        channel(torch.where(h6 < 4.0, h6 + 2.0, h6 - 4.0)),
        channel(h6),
        channel(torch.where(h6 > 2.0, h6 - 2.0, h6 + 4.0)),
    )
