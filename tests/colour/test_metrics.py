"""Metrics and display encoding against known values."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, lab2xyz
from skimage.color.colorconv import rgb_from_xyz

from darkproxy.colour.encodings import rec2020_to_rec709_matrix
from darkproxy.colour.metrics import (
    PSNR_CAP,
    aggregate,
    compare,
    deltae2000,
    display_psnr,
    hdrflip_mean,
    lab_of_display,
    psnr_from_mse,
    pu21_psnr,
    ssim,
    worst_case,
)
from darkproxy.errors import DarkproxyError
from darkproxy.viz.images import to_display

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation
# notes, supplementary test data, and mathematical observations", Table 1:
# (pair, Lab 1, Lab 2, ΔE00). Pair 1 is outside the sRGB gamut; the others are inside.
SHARMA = [
    (1, (50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    (17, (50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    (19, (50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    (25, (60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    (26, (63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    (27, (61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    (29, (22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    (30, (36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    (31, (90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    (32, (90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    (33, (6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
]


def _img(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.8, size=(3, 32, 40)).astype(np.float32)


def _lab_to_linear_rec2020(labs: list[tuple[float, float, float]]) -> np.ndarray:
    """CIELAB (D65) -> linear sRGB -> linear Rec2020, as a (3, 1, N) image."""
    lin_srgb = lab2xyz(np.array([labs], np.float64)) @ rgb_from_xyz.T
    assert lin_srgb.min() >= 0 and lin_srgb.max() <= 1, "test colours must be inside the sRGB gamut"
    rec2020 = lin_srgb @ np.linalg.inv(rec2020_to_rec709_matrix()).T
    return np.moveaxis(rec2020, -1, 0)


def test_rec2020_matrix_matches_bt2087() -> None:
    published = np.array([[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]])
    m = rec2020_to_rec709_matrix()
    np.testing.assert_allclose(m, published, atol=6e-5)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-12)  # D65 white stays white
    assert not m.flags.writeable


def test_to_display_known_values() -> None:
    assert (to_display(np.ones((3, 2, 2), np.float32)) == 255).all()
    assert (to_display(np.full((3, 2, 2), 0.214041140, np.float32)) == 128).all()  # sRGB^-1(128/255)
    assert (to_display(np.full((2, 2, 3), -1.0, np.float32)) == 0).all()
    assert (to_display(np.full((2, 2, 3), np.nan, np.float32)) == 0).all()
    hwc = np.random.default_rng(1).uniform(0, 1, (5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_display(hwc), to_display(np.moveaxis(hwc, -1, 0)))
    # pure Rec2020 green is outside sRGB: red and blue go negative and clip to 0
    g = to_display(np.array([0.0, 1.0, 0.0], np.float32).reshape(3, 1, 1))[0, 0]
    assert g[0] == 0 and g[2] == 0 and g[1] == 255


def test_identical_images() -> None:
    a = _img()
    m = compare(a, a)
    assert m.psnr == PSNR_CAP and m.ssim == pytest.approx(1.0, abs=1e-12)
    assert m.deltae_mean == 0.0 and m.deltae_p95 == 0.0


def test_psnr_of_uniform_offset_in_display_space() -> None:
    # grey linear values whose display encodings are exactly 0.50 and 0.51:
    # MSE = 0.01^2 -> PSNR = 10 log10(1 / 1e-4) = 40 dB
    def lin(v: float) -> float:
        return ((v + 0.055) / 1.055) ** 2.4

    a = np.full((3, 16, 16), lin(0.50), np.float64)
    b = np.full((3, 16, 16), lin(0.51), np.float64)
    assert display_psnr(b, a) == pytest.approx(40.0, abs=1e-9)
    # the same formula as scikit-image's, and as training's validation PSNR (torch)
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    from darkproxy.colour.encodings import srgb_display_rec709
    from darkproxy.colour.metrics import display_psnr_batch

    x, y = _img(1), _img(2)
    ref = peak_signal_noise_ratio(
        srgb_display_rec709(y.astype(np.float64)), srgb_display_rec709(x.astype(np.float64)), data_range=1.0
    )
    assert display_psnr(x, y) == pytest.approx(ref, abs=1e-9)
    assert float(display_psnr_batch(torch.from_numpy(x)[None], torch.from_numpy(y)[None])[0]) == pytest.approx(
        ref, abs=1e-4
    )


def test_ciede2000_reference_pair_out_of_gamut() -> None:
    _, lab1, lab2, expected = SHARMA[0]
    assert float(deltaE_ciede2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_sharma_pairs_through_the_display_path() -> None:
    """In-gamut Sharma pairs, turned into linear Rec2020 pixels, come back out of
    our display -> Lab path with the published ΔE00 (4 decimals)."""
    pairs = SHARMA[1:]
    img1 = _lab_to_linear_rec2020([p[1] for p in pairs])
    img2 = _lab_to_linear_rec2020([p[2] for p in pairs])
    np.testing.assert_allclose(lab_of_display(img1)[0], [p[1] for p in pairs], atol=1e-6)
    de = deltaE_ciede2000(lab_of_display(img1), lab_of_display(img2))[0]
    np.testing.assert_allclose(de, [p[3] for p in pairs], atol=5e-5)
    mean, p95 = deltae2000(img2, img1)
    expected = np.array([p[3] for p in pairs])
    assert mean == pytest.approx(expected.mean(), abs=1e-4)
    assert p95 == pytest.approx(np.percentile(expected, 95), abs=1e-4)


def test_ordering_shapes_and_aggregate() -> None:
    a = _img()
    small, big = compare(a * 1.01, a), compare(a * 1.3, a)
    assert small.psnr > big.psnr and small.ssim > big.ssim and small.deltae_mean < big.deltae_mean
    assert 0 < ssim(a * 1.3, a) < 1
    assert compare(np.moveaxis(a * 1.3, 0, -1), np.moveaxis(a, 0, -1)) == big  # (H, W, 3) works too
    agg = aggregate([small, big])
    # pooled: PSNR of the mean squared error, not the mean of the dB values
    assert agg["n"] == 2 and agg["psnr"] == pytest.approx(psnr_from_mse((small.mse + big.mse) / 2))
    assert agg["psnr"] < (small.psnr + big.psnr) / 2 - 3
    assert agg["psnr_min"] == big.psnr and agg["deltae_mean_max"] == big.deltae_mean
    assert agg["pu21_psnr_min"] == big.pu21_psnr and agg["hdrflip_max"] == big.hdrflip_mean
    assert aggregate([]) == {}
    with pytest.raises(DarkproxyError, match="shapes"):
        compare(a, a[:, :16])


def test_ssim_small_images() -> None:
    a = _img()[:, :5, :6]
    assert ssim(a, a) == pytest.approx(1.0) and ssim(a * 1.5, a) < 1
    with pytest.raises(ValueError):
        ssim(a[:, :2], a[:, :2])


def test_pooled_aggregate_cannot_be_flattered_by_exact_samples() -> None:
    """The graduatednd case of issue 14: identity exact on 3 samples and 5.6 dB on
    the 4th averaged to 76.4 dB as a mean of capped dB values; pooled it is the
    4th sample's MSE / 4, i.e. 5.6 + 10 log10(4) dB."""
    a = _img()
    bad = np.clip(a + 0.6, 0, 1)  # a far-off image
    m_bad = compare(bad, a)
    exact = compare(a, a)
    agg = aggregate([exact, exact, exact, m_bad])
    assert exact.psnr == PSNR_CAP
    assert agg["psnr"] == pytest.approx(m_bad.psnr + 10 * np.log10(4), abs=1e-9)
    assert agg["psnr"] < 30 and agg["psnr_min"] == m_bad.psnr
    assert agg["psnr_p05"] < agg["psnr_median"] == PSNR_CAP


def test_worst_case_percentiles() -> None:
    w = worst_case([10.0, 20.0, 30.0, 40.0, 50.0], "psnr")
    assert w == {"psnr_min": 10.0, "psnr_p05": pytest.approx(12.0), "psnr_median": 30.0}
    assert worst_case([30.0, float("nan")], "x")["x_min"] == -np.inf  # a NaN sample is the worst
    assert worst_case([], "x") == {}


def test_pu21_known_values() -> None:
    from darkproxy.colour.encodings import PU21_WHITE_NITS, pu21_encode, pu21_luminance, pu21_peak

    # Mantiuk & Azimi (2021), banding_glare: ~0 at the 0.005 cd/m^2 floor, ~256 at 100 cd/m^2
    v = pu21_encode(np.array([0.005, 100.0, 10000.0, 1e6]))
    assert v[0] == pytest.approx(0.0, abs=1e-6) and v[1] == pytest.approx(256.38, abs=0.01)
    assert v[2] == pytest.approx(pu21_peak()) and v[3] == v[2]  # clamped at 10,000 cd/m^2
    assert np.all(np.diff(pu21_encode(np.geomspace(0.005, 1e4, 50))) > 0)
    # linear 1.0 grey is PU21_WHITE_NITS; +6 EV over white is still below the clamp
    grey = np.ones((3, 2, 2))
    assert pu21_luminance(grey)[0, 0] == pytest.approx(float(pu21_encode(np.float64(PU21_WHITE_NITS))))
    assert pu21_luminance(grey * 64)[0, 0] < pu21_peak() - 10


def test_hdr_metrics_see_highlights_display_psnr_does_not() -> None:
    """Two images that differ only above linear 1.0: the display encoding clips
    both to white (display PSNR at its cap), PU21 PSNR and HDR-FLIP see it."""
    rng = np.random.default_rng(3)
    truth = rng.uniform(2.0, 8.0, size=(3, 32, 32))
    grey = truth.mean(0, keepdims=True).repeat(3, 0)  # neutral, so Rec709 clipping keeps every channel > 1
    wrong = 1.0 + (grey - 1.0) * 0.5  # highlights compressed by a factor 2, all still > 1
    assert display_psnr(wrong, grey) == PSNR_CAP
    assert pu21_psnr(wrong, grey) < 30
    assert hdrflip_mean(wrong, grey) > 0.05
    assert hdrflip_mean(grey, grey) == 0.0 and pu21_psnr(grey, grey) == PSNR_CAP
    # and both are monotone in the size of the error
    closer = 1.0 + (grey - 1.0) * 0.9
    assert pu21_psnr(closer, grey) > pu21_psnr(wrong, grey)
    assert hdrflip_mean(closer, grey) < hdrflip_mean(wrong, grey)


def test_hdrflip_survives_mostly_black_references() -> None:
    """flip-evaluator ends the whole process ("Start exposure must be smaller than stop
    exposure!") when the reference's median luminance is 0: a zoo eval of denoiseprofile died
    so. hdrflip_mean passes an explicit exposure range then, and still ranks errors."""
    from darkproxy.colour.metrics import hdrflip_mean

    ref = np.zeros((3, 32, 32), np.float32)
    ref[:, :8] = 0.5  # 3/4 black
    small, large = hdrflip_mean(ref * 1.05, ref), hdrflip_mean(ref * 1.5, ref)
    assert 0 < small < large < 1
    black = np.zeros((3, 32, 32), np.float32)
    one = black.copy()
    one[0, 0, 0] = 1.0
    assert 0 < hdrflip_mean(one, black) < 1 and hdrflip_mean(black, black) == 0.0


def test_display_referred_images_psnr_and_deltae_known_values() -> None:
    """Images already display-referred (sRGB in [0, 1], e.g. darktable's export): a uniform 0.01
    offset is 40 dB; ΔE2000 of Sharma's pairs (as sRGB) is the published value; white vs black
    (L* 100 vs 0, neutral: S_L = 1 at the mean L* 50) is 100; the cap holds for identical images."""
    from skimage.color import lab2rgb

    from darkproxy.colour.metrics import display_image_deltae2000, display_image_psnr, mse_at_cap

    a = np.full((3, 8, 8), 0.50)
    assert display_image_psnr(a + 0.01, a) == pytest.approx(40.0, abs=1e-9)
    assert display_image_psnr(a, a) == PSNR_CAP
    assert psnr_from_mse(mse_at_cap()) == PSNR_CAP and psnr_from_mse(mse_at_cap() * 1.01) < PSNR_CAP
    inside = [p for p in SHARMA if p[0] != 1]
    rgb1 = np.moveaxis(lab2rgb(np.array([[p[1] for p in inside]])), -1, 0)
    rgb2 = np.moveaxis(lab2rgb(np.array([[p[2] for p in inside]])), -1, 0)
    de, _ = display_image_deltae2000(rgb1[:, :, :1], rgb2[:, :, :1])
    assert de == pytest.approx(inside[0][3], abs=2e-3)
    mean, _ = display_image_deltae2000(rgb1, rgb2)
    assert mean == pytest.approx(np.mean([p[3] for p in inside]), abs=2e-3)
    white, black = np.ones((3, 2, 2)), np.zeros((3, 2, 2))
    assert display_image_deltae2000(white, black)[0] == pytest.approx(100.0, abs=1e-3)
