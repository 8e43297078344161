"""The float32 maths the ports' parameter emulations call (replica/science.py)."""

from __future__ import annotations

import numpy as np


def test_libm_float32_rounds_like_the_c_library_within_one_ulp() -> None:
    """glibc's powf and expf against the correctly rounded value (float64 rounded to float32): the
    same or one ulp away (their documented error is under 1 ulp), broadcast as numpy broadcasts."""
    from darkproxy.replica.science import libm_float32

    rng = np.random.default_rng(0)
    a = rng.uniform(0.01, 3.0, (50, 40)).astype(np.float32)
    b = rng.uniform(-3.0, 3.0, (1, 40)).astype(np.float32)
    got = libm_float32("powf", a, b)
    ref = (a.astype(np.float64) ** b.astype(np.float64)).astype(np.float32)
    assert got.shape == (50, 40) and got.dtype == np.float32
    ulps = np.abs(got.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1
    e = libm_float32("expf", a[0] - 2.0)
    ref_e = np.exp((a[0] - 2.0).astype(np.float64)).astype(np.float32)
    assert np.abs(e.view(np.int32).astype(np.int64) - ref_e.view(np.int32).astype(np.int64)).max() <= 1
