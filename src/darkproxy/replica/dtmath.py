"""darktable's fast approximations of exp, log and pow (``src/common/math.h``) as torch functions.

darktable computes parts of several modules through these bit tricks and polynomials instead of libm, and darktable 5
through more of them than 4.2 (its vectorised ``dt_vector_*`` replaced SSE code and ``expf``/``log10f``/``powf``
calls). The ports reproduce their values; gradients are those of the function each approximates
(:func:`~darkproxy.replica.science.straight_through`) or of the polynomial itself. Inputs are read as float32
where darktable reads a float's bits.

Shapes: any; values as stated per function.
"""

from __future__ import annotations

import torch

from darkproxy.replica.science import straight_through

Tensor = torch.Tensor

# dt_fast_expf and dt_vector_exp: i1 = 0x3f800000 (1.0f), i2 - i1 = 0x402DF854 - 0x3f800000 (e's bits - 1's bits)
EXP_I1 = 0x3F800000
EXP_SLOPE = 0x402DF854 - 0x3F800000
# math.h's LOG_POLY_DEGREE 5 (log2(m) / (m - 1) on the mantissa m in [1, 2)) and EXP_POLY_DEGREE 4 (2^f on
# [-0.5, 0.5)), Horner's order as darktable writes them
_LOG2_POLY = (0.0596515482674574969533, -0.465725644288844778798, 1.48116647521213171641, -2.52074962577807006663)
_LOG2_LAST = 2.8882704548164776201
_EXP2_POLY = (1.3534167e-2, 5.2011464e-2, 2.4144275e-1, 6.9300383e-1)
_EXP2_LAST = 1.0000026
LOG2_10 = 3.3219280948873626  # dt_vector_exp10's factor (a float literal there)


def fast_expf(x: Tensor, exact: bool) -> Tensor:
    """``dt_fast_expf`` on ``x <= 0``: ``i1 + x (i2 - i1)`` summed in float32, truncated to an int (negatives 0),
    read as a float's bits. ``exact``: those float32 values; else the continuous function they round, in ``x``'s
    dtype (``2^(e - 127) (1 + m)`` of the unrounded ``k``, ``e`` and ``m`` its exponent and mantissa fields),
    differentiable."""
    if exact:
        k = torch.trunc(x.float() * float(EXP_SLOPE) + float(EXP_I1)).clamp_min(0.0)
        return k.to(torch.int32).view(torch.float32)
    kk = (float(EXP_I1) + x * float(EXP_SLOPE)) / float(2**23)
    e = torch.floor(kk.detach())
    return torch.exp2(e - 127.0) * (1.0 + kk - e)


def vector_exp(x: Tensor) -> Tensor:
    """``dt_vector_exp`` (darktable 5) and ``dt_fast_expf_4wide`` (diffuse) on float32 ``x <= 0``: the bits
    ``i1 + (int)(x (i2 - i1))`` (the product truncated to an int, then an integer sum; a product out of an int's range
    is INT_MIN on x86), negatives 0, read as a float. Gradient: the true ``exp``'s."""
    x32 = x.detach().to(torch.float32)
    p = (x32 * torch.tensor(float(EXP_SLOPE), dtype=torch.float32)).clamp(-(2.0**31), 2.0**31 - 128)
    k = (torch.trunc(p).to(torch.int64) + EXP_I1).clamp_min(0).to(torch.int32)
    return straight_through(k.view(torch.float32).to(x.dtype), torch.exp(x))


def vector_log2(x: Tensor) -> Tensor:
    """``dt_vector_log2`` for ``x >= 0``: ``e + (m - 1) poly(m)``, ``x = m 2^e`` with ``m`` in [1, 2) (0 gives
    -127, the float's exponent field less 127; subnormals are read with their true exponent, not darktable's -127).
    Differentiable (the polynomial's gradient)."""
    e = torch.frexp(x.detach())[1].to(x.dtype) - 1.0
    m = x * torch.exp2(-e)
    poly = _LOG2_POLY[0] * m + _LOG2_POLY[1]
    for c in (*_LOG2_POLY[2:], _LOG2_LAST):
        poly = poly * m + c
    return torch.where(x == 0.0, torch.full_like(x, -127.0), poly * (m - 1.0) + e)


def vector_exp2(y: Tensor) -> Tensor:
    """``dt_vector_exp2``: ``y`` clamped to [-126.99999, 129], ``2^i poly(f)`` with ``i = round(y - 0.5)`` (ties to
    even, as ``_mm_cvtps_epi32``) and ``f = y - i``; ``2^i`` is built from the exponent bits ``127 + i``, so
    ``i = -127`` gives 0. Differentiable (the polynomial's gradient)."""
    y = torch.clamp(y, -126.99999, 129.0)
    ip = torch.round(y.detach() - 0.5)
    f = y - ip
    ex = _EXP2_POLY[0] * f + _EXP2_POLY[1]
    for c in (*_EXP2_POLY[2:], _EXP2_LAST):
        ex = ex * f + c
    return torch.where(ip <= -127.0, torch.zeros_like(ex), torch.exp2(ip) * ex)


def vector_powf(x: Tensor, p: Tensor | float) -> Tensor:
    """``dt_vector_powf`` for ``x >= 0``: ``dt_vector_exp2(p dt_vector_log2(x))``."""
    return vector_exp2(vector_log2(x) * p)


def vector_exp10(x: Tensor) -> Tensor:
    """``dt_vector_exp10``: ``dt_vector_exp2(3.3219280948873626f x)``."""
    return vector_exp2(float(torch.tensor(LOG2_10, dtype=torch.float32)) * x)
