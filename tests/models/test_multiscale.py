"""The multiscale proxy's fixed features, checked against known maths."""

from __future__ import annotations

import torch

from darkproxy.models import build_model
from darkproxy.models.layers import gaussian_blur
from darkproxy.models.multiscale import BORDER_SCALES, DEFAULT_SIGMAS, border_distance, multiscale_features


def test_feature_count_and_flat_image_has_no_detail() -> None:
    x = torch.full((2, 3, 40, 50), 0.18)
    f = multiscale_features(x)
    assert f.shape == (2, 4 + 4 * len(DEFAULT_SIGMAS) + 2 * len(BORDER_SCALES), 40, 50)
    bands = f[:, 4 : 4 + 4 * len(DEFAULT_SIGMAS)]
    assert bands.abs().max() < 1e-5  # a flat image has no band-pass content at any scale


def test_bands_are_encoded_minus_blurred() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    f = multiscale_features(x, sigmas=(2.0,), border_scales=())
    from darkproxy.colour.encodings import srgb_encode_ext

    enc = srgb_encode_ext(x)
    torch.testing.assert_close(f[:, 5:8], enc - gaussian_blur(enc, 2.0))


def test_blur_keeps_mean_and_halves_a_step_at_the_edge() -> None:
    x = torch.zeros(1, 1, 1, 64)
    x[..., 32:] = 1.0
    y = gaussian_blur(x, 3.0)
    assert abs(float(y[0, 0, 0, 31]) + float(y[0, 0, 0, 32]) - 1.0) < 1e-5  # symmetric around the step
    assert float(y[0, 0, 0, 0]) < 1e-6 and abs(float(y[0, 0, 0, 63]) - 1.0) < 1e-6


def test_border_distance_of_a_crop_equals_the_crop_of_the_full_map() -> None:
    full = border_distance(1, 60, 80, scales=(16.0, 64.0))
    y0, x0, h, w = 10, 35, 20, 30
    crop = border_distance(1, h, w, scales=(16.0, 64.0), origin=torch.tensor([[y0, x0, 60, 80]]))
    torch.testing.assert_close(crop, full[:, :, y0 : y0 + h, x0 : x0 + w])
    # px 5 from the top edge, scale 16 -> 5/16; the centre is clipped at 1
    assert abs(float(full[0, 0, 5, 40]) - 5 / 16) < 1e-6 and float(full[0, 0, 30, 40]) == 1.0


def test_blur_bases_start_at_the_identity_and_can_output_a_blur() -> None:
    """With ``blur_bases`` the features end with the linear image blurred at each sigma, the untrained
    proxy is the identity, and a blur of the input (what lowpass and soften output) is exactly
    representable: the blend's weight 1 on one sigma, the affine transform at the identity."""
    torch.manual_seed(0)
    x, p = torch.rand(2, 3, 24, 30), torch.rand(2, 3)
    m = build_model("multiscale", 3, blur_bases=True)
    f = m.features(x)
    k = DEFAULT_SIGMAS.index(2.0)
    torch.testing.assert_close(f[:, m.n_features + 3 * k : m.n_features + 3 * k + 3], gaussian_blur(x, 2.0))
    with torch.no_grad():
        torch.testing.assert_close(m(x, p), x)
        m.to_blend.bias[k] = 1.0
        torch.testing.assert_close(m(x, p), gaussian_blur(x, 2.0))
        m.to_coef.bias[0:3] = torch.log(torch.tensor([0.5, 1.0, 2.0]))  # then a gain per channel
        torch.testing.assert_close(m(x, p), gaussian_blur(x, 2.0) * torch.tensor([0.5, 1.0, 2.0])[:, None, None])
    assert build_model("multiscale", 3, **m.hparams).hparams["blur_bases"] is True
