"""darktable's fast exp, log and pow (common/math.h) against transcriptions of its C code, and their gradients.

The transcriptions follow the C line by line in numpy float32 (each operation rounded to float32, no fused
multiply-add: darktable's x86-64 build has none in these inlines) and read bits with struct; the torch functions
must agree bit for bit. Accuracy against the true functions is darktable's own (its comments state 0.06 for the
exponentials); the polynomial ones are checked at the accuracy measured here.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

F = np.float32
I1, SLOPE = 0x3F800000, 0x402DF854 - 0x3F800000
XS = [0.0, -1e-7, -0.01, -0.5, -1.0, -3.3, -10.0, -87.0, -93.0, -150.0, -1e6]


def _bits_to_float(k: int) -> float:
    return struct.unpack("<f", struct.pack("<i", k))[0]


def _fast_expf(x: float) -> float:
    """dt_fast_expf: ``const int k0 = i1 + x * (i2 - i1)``: a float sum, truncated."""
    k0 = int(F(F(I1) + F(F(x) * F(SLOPE))))
    return _bits_to_float(max(k0, 0))


def _vector_exp(x: float) -> float:
    """dt_vector_exp / dt_fast_expf_4wide: ``i1 + (int)(x * (i2 - i1))``: the product truncated, an int sum."""
    p = float(F(x) * F(SLOPE))
    k0 = I1 + (int(p) if abs(p) < 2.0**31 else -(2**31))
    return _bits_to_float(max(k0, 0))


def _vector_log2(x: float) -> float:
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    mant = F(struct.unpack("<f", struct.pack("<I", (bits & 0x007FFFFF) | 0x3F800000))[0])
    exp = F(((bits & 0x7F800000) >> 23) - 127)
    lm = F(F(0.0596515482674574969533) * mant) - F(0.465725644288844778798)
    for c in (1.48116647521213171641, -2.52074962577807006663, 2.8882704548164776201):
        lm = F(F(lm * mant) + F(c))
    return float(F(F(lm * F(mant - F(1.0))) + exp))


def _vector_exp2(y: float) -> float:
    x = min(max(F(y), F(-126.99999)), F(129.0))
    ip = F(np.rint(F(x - F(0.5))))  # _mm_cvtps_epi32: to nearest, ties to even
    fp = F(x - ip)
    e = F(F(1.3534167e-2) * fp) + F(5.2011464e-2)
    for c in (2.4144275e-1, 6.9300383e-1, 1.0000026):
        e = F(F(e * fp) + F(c))
    k = (127 + int(ip)) << 23
    return float(F(_bits_to_float(k if k < 2**31 else k - 2**32)) * e)


def test_exponentials_bit_for_bit() -> None:
    """dt_fast_expf (bilat, monochrome) and dt_vector_exp (atrous and negadoctor on darktable 5, diffuse) against
    their transcriptions, and within darktable's stated 0.06 of ``exp`` on [-10, 0]."""
    from darkproxy.replica.dtmath import fast_expf, vector_exp

    x = torch.tensor(XS, dtype=torch.float32)
    assert fast_expf(x, exact=True).tolist() == [_fast_expf(v) for v in XS]
    assert vector_exp(x).tolist() == [_vector_exp(v) for v in XS]
    grid = torch.linspace(-10.0, 0.0, 1001)
    for fn in (lambda t: fast_expf(t, exact=True), vector_exp):
        assert float((fn(grid) - torch.exp(grid)).abs().max()) < 0.07
    # the continuous surrogate passes through the exact values where the float sum needs no rounding
    torch.testing.assert_close(
        fast_expf(grid.double(), exact=False).float(), fast_expf(grid, exact=True), atol=1e-5, rtol=0
    )


def test_log2_exp2_bit_for_bit() -> None:
    """dt_vector_log2 and dt_vector_exp2 (dt_vector_powf, dt_vector_exp10) against their float32 transcriptions:
    normal numbers, zero, the clamps of exp2 (-127 gives 0)."""
    from darkproxy.replica.dtmath import vector_exp2, vector_log2

    xs = [0.0, 1e-30, 1e-6, 0.18, 0.5, 1.0, 1.5, 2.0, 3.7, 100.0, 6.5e4]
    assert vector_log2(torch.tensor(xs, dtype=torch.float32)).tolist() == [_vector_log2(v) for v in xs]
    ys = [-200.0, -127.0, -126.6, -20.3, -1.0, -0.5, 0.0, 0.25, 0.5, 3.49, 12.0, 100.0]
    assert vector_exp2(torch.tensor(ys, dtype=torch.float32)).tolist() == [_vector_exp2(v) for v in ys]


def test_powf_accuracy_and_gradients() -> None:
    """dt_vector_powf: within its polynomials' accuracy of the power (relative 1e-4 here, measured 1.9e-5 to 7.6e-5
    for powers 0.5 to 2 over 1e-6..100) but not the power itself; 0 gives 0; powers of two at power 1 exact to
    3e-6; exp10 the same way; gradcheck (the polynomials are differentiable)."""
    from darkproxy.replica.dtmath import vector_exp10, vector_powf

    x = torch.logspace(-6, 2, 2001, dtype=torch.float64)
    for p in (0.5, 1.0, 2.0):
        rel = (vector_powf(x, torch.tensor(p, dtype=torch.float64)) / x**p - 1.0).abs()
        assert 1e-6 < float(rel.max()) < 1e-4, (p, float(rel.max()))
    assert float(vector_powf(torch.zeros(1, dtype=torch.float64), 1.0)) == 0.0
    twos = torch.tensor([0.25, 1.0, 2.0, 8.0], dtype=torch.float64)
    assert torch.allclose(vector_powf(twos, 1.0), twos, rtol=3e-6)
    e = torch.linspace(-3.0, 2.0, 101, dtype=torch.float64)
    assert float((vector_exp10(e) / 10.0**e - 1.0).abs().max()) < 1e-4
    xg = torch.linspace(0.05, 3.0, 7, dtype=torch.float64).requires_grad_(True)
    pg = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(vector_powf, (xg, pg), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("x", [-0.3, -2.0])
def test_exponential_gradients_are_exp(x: float) -> None:
    """The bit tricks' backward: the exponential they approximate."""
    from darkproxy.replica.dtmath import vector_exp

    t = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    vector_exp(t).sum().backward()
    assert t.grad is not None
    assert float(t.grad) == pytest.approx(float(np.exp(x)), rel=1e-12)
