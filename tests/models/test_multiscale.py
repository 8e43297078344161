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


def _normalised_gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The direct Gaussian of ``sigma`` over the image's pixels only (zero padding, divided by the blurred ones)."""
    import torch.nn.functional as F

    r = int(round(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()

    def conv(v: torch.Tensor) -> torch.Tensor:
        c = v.shape[1]
        v = F.conv2d(F.pad(v, (r, r, 0, 0)), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(F.pad(v, (0, 0, r, r)), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    x = x.double()
    return (conv(x) / conv(torch.ones_like(x[:, :1]))).float()


def test_wide_blur_is_the_normalised_gaussian_and_tiles_exactly() -> None:
    """Above 16 px the blur runs on box-mean cells: against the direct normalised Gaussian on a smooth image
    (values 0-1) it is within 2e-3 (measured 1.7e-3 at sigma 22.6, 1.2e-4 at 256); a window with
    ``blur_radius`` of context and its ``origin`` gets the whole image's values to the bit."""
    from darkproxy.models.layers import blur_radius, wide_blur

    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 300, 340), 5, 1, 2)
    for sigma in (22.6, 90.5):
        whole = wide_blur(x, sigma)
        assert float((whole - _normalised_gaussian(x, sigma)).abs().max()) < 2e-3
        torch.testing.assert_close(gaussian_blur(x, sigma), whole)  # the dispatch above WIDE_SIGMA
        h = blur_radius(sigma)
        y0, y1, x0, x1 = 101, 170, 137, 203  # odd offsets: the window's cells are not the image's
        wy0, wx0 = max(0, y0 - h), max(0, x0 - h)
        win = x[..., wy0 : min(300, y1 + h), wx0 : min(340, x1 + h)]
        tile = wide_blur(win, sigma, torch.tensor([[wy0, wx0, 300, 340]]))
        assert torch.equal(tile[..., y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0], whole[..., y0:y1, x0:x1])
    flat = torch.full((1, 1, 50, 60), 0.25)
    torch.testing.assert_close(wide_blur(flat, 256.0), flat)  # normalised: a flat image stays flat at the borders


def test_tone_ramps_are_a_basis_whose_blurs_give_the_blur_of_a_tone_curve() -> None:
    """A blur of any piecewise-linear function of the encoded luminance with knots at ``j / n`` (bloom's
    thresholded highlights, to the knots' spacing) is the same weighted sum of the blurred ramps: the
    features ``tone_bands`` adds."""
    from darkproxy.models.multiscale import tone_ramps

    e = torch.linspace(-0.2, 1.4, 161)[None, None, None]
    r = tone_ramps(e, 8)
    torch.testing.assert_close(r.sum(1, keepdim=True) / 8, e.clamp_min(0.0))  # slope 1 above 0
    torch.manual_seed(0)
    luma = torch.rand(1, 1, 40, 48) * 1.2
    a = torch.randn(8)  # a tone curve f = sum_j a_j ramp_j
    feats = multiscale_features(luma.expand(1, 3, 40, 48) ** 2.2, sigmas=(3.0,), border_scales=(), tone_bands=8)
    ramps = feats[:, 8:16]  # after the pixel (3), its luminance (1), the bands (4 x 1 sigma)
    torch.testing.assert_close(ramps, tone_ramps(feats[:, 3:4], 8))
    blurred = feats[:, 16:24]
    torch.testing.assert_close(
        (a[None, :, None, None] * blurred).sum(1, keepdim=True),
        gaussian_blur((a[None, :, None, None] * ramps).sum(1, keepdim=True), 3.0),
        atol=1e-5,
        rtol=0,
    )


def test_roi_is_the_crop_of_the_whole_output() -> None:
    """``forward(..., roi=)`` computes a region only (each blur from the region and its own reach): the same
    values as the whole image's output cropped, near the border and inside, narrow and wide blurs, tone bands."""
    torch.manual_seed(0)
    m = build_model("multiscale", 2, sigmas=(0.5, 4.0, 24.0), tone_bands=4, width=8, depth=2, param_hidden=8)
    with torch.no_grad():
        for q in m.parameters():
            q.add_(0.3 * torch.randn(q.shape))
        x, p = torch.rand(2, 3, 150, 170), torch.rand(2, 2)
        whole = m(x, p)
        for roi in ((0, 20, 0, 33), (61, 97, 80, 170), (149, 150, 5, 6)):
            y0, y1, x0, x1 = roi
            torch.testing.assert_close(m(x, p, roi=roi), whole[..., y0:y1, x0:x1], atol=1e-5, rtol=0)


def test_image_statistics_are_torch_quantiles_of_the_encoded_planes_at_every_pixel() -> None:
    """``image_stats``: the quantiles of the encoded R, G, B, their minimum and the luminance of the whole image
    (torch.quantile's interpolation), the same at every pixel and in every region."""
    from darkproxy.colour.encodings import srgb_encode_ext
    from darkproxy.models.multiscale import LUMA_REC2020, STAT_QUANTILES, image_statistics

    torch.manual_seed(0)
    x = torch.rand(2, 3, 37, 41) * 1.5 - 0.02
    s = image_statistics(x)
    q = torch.tensor(STAT_QUANTILES)
    luma = (x * torch.tensor(LUMA_REC2020)[None, :, None, None]).sum(1)
    planes = [x[:, 0], x[:, 1], x[:, 2], x.amin(1), luma]
    want = torch.cat([torch.quantile(srgb_encode_ext(p).flatten(1), q, dim=1).T for p in planes], 1)
    torch.testing.assert_close(s, want)
    f = multiscale_features(x, sigmas=(2.0,), border_scales=(), image_stats=True)
    stats = f[:, 8:]  # after the pixel (3), its luminance (1), the bands (4 x 1 sigma)
    assert stats.shape[1] == 5 * len(STAT_QUANTILES)
    torch.testing.assert_close(stats, s[:, :, None, None].expand_as(stats))
    region = multiscale_features(x, sigmas=(2.0,), border_scales=(), image_stats=True, roi=(3, 9, 20, 41))
    torch.testing.assert_close(region, f[..., 3:9, 20:41])  # a region's statistics are the whole image's


def test_image_stats_change_the_output_with_the_rest_of_the_image() -> None:
    """With ``image_stats`` a pixel's output depends on pixels beyond every blur's reach (and is
    differentiable through the sort), without it not."""
    torch.manual_seed(0)
    for stats in (False, True):
        m = build_model("multiscale", 1, sigmas=(1.0,), image_stats=stats, width=8, depth=2, param_hidden=8)
        with torch.no_grad():
            for q in m.parameters():
                q.add_(0.3 * torch.randn(q.shape))
        x = torch.rand(1, 3, 40, 40, requires_grad=True)
        m(x, torch.tensor([[0.5]]))[0, :, 0, 0].sum().backward()
        far = x.grad[..., 20:, 20:].abs().sum()  # type: ignore[index]
        assert (far > 0) == stats
