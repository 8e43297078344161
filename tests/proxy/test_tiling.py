"""Proxies on whole images: tiled equals untiled, the LUT fast path, ``darkproxy apply``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.models import arch_entry, build_model
from darkproxy.proxy import Proxy
from darkproxy.proxy.tiling import TileContext, apply_tiled, plan_tiles, tile_context

H, W = 1400, 1430  # 2 MP, neither side a multiple of the tile: ragged last tiles
TILE = 512  # output px: 9 tiles (the packed mosaic: 256 input px)

# tiny widths (speed); the widest context each architecture has (the largest sigma, 2 pooling levels)
ARCHS = {
    "pointwise": dict(width=8, depth=2, param_hidden=8),
    "positional": dict(width=8, depth=2, param_hidden=8),
    "multiscale": dict(width=8, depth=2, param_hidden=8, sigmas=(0.5, 2.0, 8.0, 24.0)),  # 24: a wide_blur
    "spatial": dict(width=4, levels=2, param_hidden=8, band_sigmas=(4.0,), detail_sigmas=(4.0,)),
    "demosaic": dict(width=4, depth=2, param_hidden=8),
    "demosaic-rcd": dict(width=4, depth=2, param_hidden=8, pre_hidden=4),
}


def random_proxy(arch: str, seed: int = 0, scale: float | None = None) -> Proxy:
    """A proxy of ``arch`` with every weight random: the heads start at zero (the
    identity), and a test of an identity would hold whatever the tiling did.
    ``scale``: the weights' noise (0.1 for the UNet, whose activations reach
    1e5 at 0.3: then float rounding alone is above 1e-5)."""
    scale = scale if scale is not None else (0.1 if arch == "spatial" else 0.3)
    pre = arch_entry(arch).pre_demosaic
    model = build_model(arch, 2, in_channels=4 if pre else 3, **ARCHS[arch])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    space = ParamSpace.of("test", [ParamSpec("a", "float", 0.0, 1.0, 0.5), ParamSpec("b", "float", -1.0, 1.0, 0.0)])
    info = {"module": "test", "arch": arch, "pre_demosaic": pre, "pointwise": arch_entry(arch).pointwise}
    return Proxy(model, space, info).eval().requires_grad_(False)


def _image(arch: str, h: int = H, w: int = W) -> np.ndarray:
    g = np.random.default_rng(1)
    if arch_entry(arch).pre_demosaic:
        return g.random((4, h // 2, w // 2), np.float32)
    return (g.random((3, h, w), np.float32) * 2.0 - 0.05).astype(np.float32)  # noise: every frequency, some < 0


@pytest.mark.parametrize("arch", list(ARCHS))
def test_tiled_equals_untiled_on_2mp(arch: str) -> None:
    proxy = random_proxy(arch)
    img = _image(arch)
    params = {"a": 0.3, "b": -0.4}
    with torch.no_grad():
        whole = proxy(torch.from_numpy(img)[None], params)[0].numpy()
    ctx = tile_context(proxy.model)
    tile = TILE // ctx.out_scale
    tiled = apply_tiled(proxy, img, params, tile=tile)
    assert tiled.shape == whole.shape == (3, H, W) and tiled.dtype == np.float32
    assert np.abs(whole - (img[:3] if img.shape[0] == 3 else 0)).max() > 0.05  # the random net is no identity
    assert len(plan_tiles(img.shape[1], img.shape[2], tile, ctx)) == 9
    assert float(np.abs(tiled - whole).max()) <= 1e-5


@pytest.mark.parametrize("arch", ["multiscale", "spatial", "demosaic", "demosaic-rcd"])
def test_a_short_halo_shows(arch: str) -> None:
    """The tiling test bites: with less context than the architecture needs the tiles differ."""
    proxy = random_proxy(arch)
    img = _image(arch, 160, 164)
    with torch.no_grad():
        whole = proxy(torch.from_numpy(img)[None], {"a": 0.3})[0].numpy()
    ctx = tile_context(proxy.model)
    # measured at tile 64: multiscale (sigma 16) 0.27 at halo 8 (exact from 48), spatial 0.09 at 8 (4e-6 at 20),
    # demosaic 3.5 at 0 (exact from 2)
    short = apply_tiled(proxy, img, {"a": 0.3}, tile=64, halo=ctx.halo // 6)
    assert float(np.abs(short - whole).max()) > 1e-3


def test_image_stats_tiles_read_the_whole_image() -> None:
    """A multiscale proxy with ``image_stats`` reads the whole image for each tile (its statistics): tiled equals
    untiled, where the blurs' halo alone would not."""
    model = build_model("multiscale", 2, sigmas=(0.5, 2.0), image_stats=True, width=8, depth=2, param_hidden=8)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for q in model.parameters():
            q.add_(0.3 * torch.randn(q.shape, generator=g))
    space = ParamSpace.of("test", [ParamSpec("a", "float", 0.0, 1.0, 0.5), ParamSpec("b", "float", -1.0, 1.0, 0.0)])
    proxy = Proxy(model, space, {"module": "test", "arch": "multiscale", "pointwise": False}).eval()
    img = _image("multiscale", 300, 340)
    img[:, :150] *= 0.2  # tiles with other statistics than the whole image's
    params = {"a": 0.3, "b": -0.4}
    with torch.no_grad():
        whole = proxy(torch.from_numpy(img)[None], params)[0].numpy()
    tiled = apply_tiled(proxy, img, params, tile=128)
    assert float(np.abs(tiled - whole).max()) <= 1e-5
    blurs_only = apply_tiled(proxy, img, params, tile=128, halo=8)
    assert float(np.abs(blurs_only - whole).max()) > 1e-3


def test_tile_plan_covers_the_image_once_with_aligned_windows() -> None:
    ctx = TileContext(halo=50, align=4, origin=True)
    tiles = plan_tiles(1001, 998, 301, ctx)  # 301 -> 300 (a multiple of 4); halo -> 52
    cover = np.zeros((1001, 998), np.int32)
    for t in tiles:
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.y0 % 4 == 0 and t.x0 % 4 == 0 and t.wy0 % 4 == 0 and t.wx0 % 4 == 0
        assert t.wy0 == max(0, t.y0 - 52) and t.wx1 == min(998, t.x1 + 52)
    assert (cover == 1).all()
    assert len(plan_tiles(10, 10, 512, TileContext(0, tileable=False))) == 1


def test_tiled_apply_of_a_tensor_batch_and_progress() -> None:
    proxy = random_proxy("multiscale")
    x = torch.rand(2, 3, 70, 90)
    p = torch.tensor([[0.1, 0.5], [0.9, 0.2]])
    calls: list[tuple[int, int]] = []
    with torch.no_grad():
        whole = proxy(x, p)
    tiled = apply_tiled(proxy, x, p, tile=48, progress=lambda done, total: calls.append((done, total)))
    assert isinstance(tiled, torch.Tensor) and tiled.shape == (2, 3, 70, 90)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    assert calls[-1] == (2 * 4, 2 * 4)


# ---------------------------------------------------------------------------------------------- LUT fast path


def test_lut_reproduces_an_affine_network_and_sends_outliers_to_it() -> None:
    """A pointwise network whose transform does not depend on the pixel is
    affine in it: the LUT, which stores the tangent of the network, must give
    it exactly everywhere; pixels outside its domain (or not finite) go to the
    network, never clipped."""
    from darkproxy.proxy.fastpath import bake_lut

    proxy = random_proxy("pointwise")
    with torch.no_grad():
        for m in (proxy.model.to_coef, *proxy.model.layers):  # the pixel path off: a global transform
            m.weight.zero_()
    lut = bake_lut(proxy, {"a": 0.7, "b": 0.2}, size=9)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 64, 80, generator=g) * 8 - 0.1
    x[:, 0, :5] = torch.tensor([100.0, -3.0, 1e6])[:, None]  # outside the domain
    x[1, 1, 0] = float("nan")
    out = lut.apply(x)
    with torch.no_grad():
        net = proxy(x[None], {"a": 0.7, "b": 0.2})[0].numpy()
    finite = np.isfinite(net)
    np.testing.assert_allclose(out[finite], net[finite], atol=2e-5 * max(1.0, float(np.abs(net[finite]).max())))
    assert np.isnan(out[:, 1, 0]).any()  # NaN in, NaN out (the network's answer)
    assert abs(out[0, 0, 0] - net[0, 0, 0]) < 1e-3 * abs(net[0, 0, 0])


def _linear_photo(size: int = 512) -> np.ndarray:
    """A real-ish scene-referred image: scikit-image's astronaut, linearised,
    with highlights to 4x and slightly negative blacks (as tap-outs have)."""
    from darkproxy.raw.synth import default_source_images, resize_long_side, srgb_to_linear

    img = resize_long_side(default_source_images(["astronaut"])["astronaut"], size)
    lin = np.moveaxis(srgb_to_linear(img), -1, 0).astype(np.float32)
    ramp = np.linspace(0.6, 4.0, lin.shape[2], dtype=np.float32)[None, None]
    return (lin * ramp - 0.004).astype(np.float32)


@pytest.mark.parametrize("values", [{"exposure": 1.0}, {"exposure": -1.5, "black": 0.02}, {"exposure": 3.7}])
def test_exposure_lut_against_the_network(values: dict[str, float]) -> None:
    from darkproxy.proxy.fastpath import bake_lut

    proxy = Proxy.load("zoo:exposure")
    img = _linear_photo()
    lut = bake_lut(proxy, values)
    err = lut.error(img)
    assert err["pixels"] == img.shape[1] * img.shape[2] and err["outside"] == 0.0
    # measured: max abs <= 4e-5 (float rounding of values up to ~50), PSNR capped at 100 dB
    assert err["max_abs"] < 5e-4 and err["psnr"] > 80 and err["pu21_psnr"] > 80, err


def test_apply_image_takes_the_lut_for_large_images_only() -> None:
    from darkproxy.proxy.tiling import apply_image

    proxy = Proxy.load("zoo:exposure")
    img = _linear_photo(600)  # 600x600: more pixels than the bake and the check cost
    values = {"exposure": 2.0, "black": 0.01}
    res = apply_image(proxy, img, values)
    assert res.path == "lut" and res.lut_error["psnr"] > 80 and res.bake_seconds > 0
    with torch.no_grad():
        net = proxy(torch.from_numpy(img)[None], values)[0].numpy()
    assert float(np.abs(res.output - net).max()) < 5e-4
    np.testing.assert_array_equal(proxy.apply_image(img, values), res.output)
    small = apply_image(proxy, img[:, :100, :100], values)
    assert small.path == "network" and "small image" in small.note
    exact = apply_image(proxy, img, values, exact=True)
    assert exact.path == "network" and float(np.abs(exact.output - net).max()) < 1e-5


def test_apply_image_gates_the_lut_on_pu21_too() -> None:
    """On an image of highlights only (1.05-15: every value above display white), the shipped
    sigmoid proxy's LUT passes the display gate but not the PU21 one, which sees the
    scene-referred error: the network computes the image (display PSNR alone took the LUT)."""
    from darkproxy.proxy.tiling import LUT_MIN_PSNR, LUT_MIN_PU21_PSNR, apply_image

    proxy = Proxy.load("zoo:sigmoid")
    values = {"middle_grey_contrast": 1.53, "contrast_skewness": 0.112, "hue_preservation": 50.763}
    rng = np.random.default_rng(0)
    img = np.exp(rng.uniform(np.log(1.05), np.log(15.0), size=(3, 640, 640))).astype(np.float32)
    res = apply_image(proxy, img, values)
    e = res.lut_error
    # measured: 58.4 dB display, 63.2 dB PU21
    assert e["psnr"] >= LUT_MIN_PSNR and e["pu21_psnr"] < LUT_MIN_PU21_PSNR and e["outside"] == 0.0, e
    assert res.path == "network" and "PU21" in res.note
    with torch.no_grad():
        net = proxy(torch.from_numpy(img)[None], values)[0].numpy()
    assert float(np.abs(res.output - net).max()) < 1e-5
    assert apply_image(proxy, img, values, min_pu21_psnr=0.0).path == "lut"  # the display gate alone


# ------------------------------------------------------------------------------------------- darkproxy apply


def test_apply_cli_on_a_full_size_raw_matches_darktable(dt, make_raw, tmp_path: Path, capsys) -> None:
    from darkproxy.cli import main
    from darkproxy.colour.metrics import compare
    from darkproxy.darktable.render import read_tiff
    from darkproxy.darktable.tapout import tapout

    raw = make_raw(source="coffee", size=720)  # 720x480: more pixels than the LUT has nodes (65^3)
    out = tmp_path / "out.tif"
    rc = main(["apply", "zoo:exposure", str(raw), "--set", "exposure=1.5", "-o", str(out), "--json", "-q"])
    rec = json.loads(capsys.readouterr().out)
    assert rc == 0 and rec["path"] == "lut" and rec["scale"] == 1.0
    got = read_tiff(out)
    assert list(got.shape) == rec["shape"] and got.shape[1:] == (480, 720)
    proxy = Proxy.load("zoo:exposure")
    ref = tapout(dt, raw, "exposure", proxy.param_space.for_darktable({"exposure": 1.5})).output
    m = compare(got, ref)
    # measured 61.5 dB (the network alone 61.5, identity 13.5; the zoo proxy: 62 dB on its 128 px validation)
    assert m.psnr > 55, m
    assert rec["lut_error"]["psnr"] > 80


def test_apply_cli_refuses_bad_input(tmp_path: Path, capsys) -> None:
    from darkproxy.cli import main
    from darkproxy.darktable.render import write_tiff

    tif = write_tiff(tmp_path / "in.tif", np.full((3, 20, 30), 0.2, np.float32))
    out = str(tmp_path / "o.tif")
    cases = [
        (["--set", "nope=1"], "nope: not a free parameter"),
        (["--set", "exposure=9"], "outside"),
        (["--set", "exposure=abc"], "expects a number"),
        (["--scale", "0"], "--scale"),
    ]
    for extra, msg in cases:
        assert main(["apply", "zoo:exposure", str(tif), "-o", out, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
    assert main(["apply", "zoo:exposure", str(tmp_path / "missing.dng"), "-o", out]) == 2
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    assert main(["apply", "zoo:exposure", str(tmp_path / "bad.tif"), "-o", out]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not Path(out).exists()


def test_apply_cli_soften_proxy_by_the_whole_images_diagonal(tmp_path: Path, capsys) -> None:
    """soften's radius follows the whole image's size: its zoo proxy takes the diagonal in output px of the whole
    image (a TIFF at --scale is taken as the whole image), refuses one it never learnt in one line and runs on
    another size than its 1024 px training raws (conditioned on the render scale, it refused it)."""
    from darkproxy.cli import main
    from darkproxy.darktable.render import write_tiff

    out = tmp_path / "o.tif"
    small = write_tiff(tmp_path / "small.tif", np.full((3, 48, 64), 0.2, np.float32))  # 128 x 96 px at 0.5
    assert main(["apply", "zoo:soften", str(small), "-o", str(out), "--scale", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diagonal is 80 output px, outside" in err, err
    assert not out.exists()
    ok = write_tiff(tmp_path / "ok.tif", np.full((3, 120, 160), 0.2, np.float32))  # 320 x 240 px at 0.5
    assert main(["apply", "zoo:soften", str(ok), "-o", str(out), "--scale", "0.5", "-q"]) == 0
    assert out.is_file()


def test_apply_cli_refuses_a_scale_outside_the_trained_range(tmp_path: Path, capsys) -> None:
    """A scale-dependent proxy trained at 0.5 refuses a TIFF said to be at full size."""
    import shutil

    from darkproxy.cli import main
    from darkproxy.darktable.render import write_tiff
    from tests.conftest import ONE_SCALE_RUN

    run = tmp_path / "run"
    shutil.copytree(ONE_SCALE_RUN, run)
    tif = write_tiff(tmp_path / "in.tif", np.full((3, 40, 40), 0.2, np.float32))
    out = tmp_path / "o.tif"
    assert main(["apply", str(run), str(tif), "-o", str(out)]) == 2
    assert "render scale 1" in capsys.readouterr().err
    assert main(["apply", str(run), str(tif), "-o", str(out), "--scale", "0.5", "--tile", "32", "-q"]) == 0
    assert out.is_file()
