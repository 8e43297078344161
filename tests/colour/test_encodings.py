"""Display / perceptual encodings: known values, numpy == torch, gradients, PSNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkproxy.colour import encodings as cs


def test_srgb_known_values_and_round_trip() -> None:
    x = np.array([0.0, 0.0031308, 0.18, 0.5, 1.0], np.float64)
    y = cs.srgb_encode(x)
    # IEC 61966-2-1: 1.055 * x^(1/2.4) - 0.055 above the breakpoint
    np.testing.assert_allclose(
        y, [0.0, 0.04045, 1.055 * 0.18 ** (1 / 2.4) - 0.055, 1.055 * 0.5 ** (1 / 2.4) - 0.055, 1.0], atol=2e-5
    )
    np.testing.assert_allclose(cs.srgb_decode(y), x, atol=1e-6)
    # the display encoding clips: grey keeps its value in Rec709, so -0.5 -> 0 and 3 -> 1
    grey = np.array([-0.5, 3.0]).reshape(1, 2).repeat(3, 0).reshape(3, 1, 2)
    np.testing.assert_allclose(cs.srgb_display_rec709(grey)[:, 0], [[0.0, 1.0]] * 3, atol=1e-12)


def test_numpy_and_torch_agree() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 4.0, size=(3, 8, 8)).astype(np.float32)
    for fn in (
        cs.srgb_encode,
        cs.srgb_decode,
        cs.srgb_encode_ext,
        cs.srgb_display_rec709,
        cs.mu_law,
        cs.log_encode,
        cs.log_decode,
        cs.pu21_luminance,
    ):
        np.testing.assert_allclose(fn(torch.from_numpy(a)).numpy(), fn(a), rtol=1e-5, atol=1e-4)  # PU21: 0..595
    assert cs.srgb_display_rec709(a.astype(np.float16)).dtype == np.float32


def test_loss_encodings_are_smooth_and_unclipped() -> None:
    x = torch.tensor([-0.3, 0.0, 0.002, 0.5, 1.0, 4.0], requires_grad=True)
    for kind in cs.LOSS_SPACES:
        y = cs.perceptual_loss_encode(x, kind)
        (g,) = torch.autograd.grad(y.sum(), x)
        nonzero = g[[0, 2, 3, 4, 5]]
        assert torch.all(nonzero > 0), (kind, g)  # highlights and negatives keep a gradient
        assert torch.isfinite(g).all()
    # sRGB loss encoding equals the metric encoding on [0, 1] and keeps growing above 1
    t = torch.linspace(0, 1, 101)
    torch.testing.assert_close(cs.perceptual_loss_encode(t, "srgb"), cs.srgb_encode(t))
    assert float(cs.perceptual_loss_encode(torch.tensor(4.0), "srgb")) > 1.5
    assert float(cs.mu_law(torch.tensor(1.0))) == pytest.approx(1.0)
    assert float(cs.log_encode(torch.tensor(1.0))) == pytest.approx(1.0)
    # log_decode inverts it across signs and decades (float64: asinh / sinh round-trip)
    v = torch.tensor([-3.0, -1e-3, 0.0, 1e-5, 0.02, 1.0, 64.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(cs.log_decode(cs.log_encode(v)), v, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError):
        cs.perceptual_loss_encode(x, "gamma")
