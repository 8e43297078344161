"""Tap-outs: a module's exact input and output, checked against known maths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkproxy.darktable.render import read_tiff
from darkproxy.darktable.tapout import PASS_THROUGH, tapout
from tests.conftest import midtone_ratio, run_cli
from tests.darktable.render_noise import assert_same_render, render_difference
from tests.tonemap import tone_mapper

LAYOUTS = [(cfa, bits) for cfa in ("RGGB", "BGGR", "GRBG", "GBRG") for bits in (12, 14)]
CLI_LAYOUTS = [("RGGB", 12), ("GBRG", 14)]  # the command on two layouts, both bit depths (suite time)


@pytest.mark.parametrize("cfa, bits", LAYOUTS)
def test_exposure_tapout_cli_every_cfa_and_depth(dt, make_raw, tmp_path: Path, cfa: str, bits: int) -> None:
    raw = make_raw(cfa=cfa, bits=bits, size=96)
    # +1 EV through the library, -1 EV through the command (one subprocess per layout: suite time)
    tp = tapout(dt, raw, "exposure", {"exposure": 1})
    assert midtone_ratio(tp.output, tp.input) == pytest.approx(2.0, abs=0.002), (cfa, bits, 1)
    if (cfa, bits) not in CLI_LAYOUTS:
        return
    out = tmp_path / "tap-1"
    r = run_cli("tapout", str(raw), "exposure", "--set", "exposure=-1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    ratio = midtone_ratio(read_tiff(out / "output.tif"), read_tiff(out / "input.tif"))
    assert ratio == pytest.approx(0.5, abs=0.0005), (cfa, bits, -1, ratio)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["module"] == "exposure" and meta["params"]["exposure"] == -1.0
    assert meta["set_params"] == {"exposure": -1.0}
    assert meta["darktable_version"] and meta["upstream_hash"]
    assert [u["operation"] for u in meta["upstream"]][:1] == ["rawprepare"]
    assert tone_mapper(dt.default_history(raw)) in meta["disabled_after"]  # filmic rgb, 5.4's sigmoid


def test_colorbalancergb_defaults_are_identity(dt, tiny_raw: Path) -> None:
    """At its defaults colorbalancergb leaves almost every pixel alone (measured on
    4.2.1: median |out - in| ~ 6e-6); it is not an exact identity because it still
    gamut-maps saturated colours (about 6 % of this photo's pixels move by > 1e-4)."""
    tp = tapout(dt, tiny_raw, "colorbalancergb", {}, max_size=128)
    d = np.abs(tp.output - tp.input).max(0)
    assert np.median(d) < 1e-5
    assert np.percentile(d, 90) < 1e-4
    sat = (tp.input.max(0) - tp.input.min(0)) / (tp.input.max(0) + 1e-6)
    assert d[sat > 0.9].mean() > d[sat < 0.5].mean()  # what moves is the saturated colours


def test_lab_module_at_identity(dt, tiny_raw: Path) -> None:
    tp = tapout(dt, tiny_raw, "sharpen", {"amount": 0.0}, max_size=128)
    assert np.abs(tp.output - tp.input).max() < 1e-3
    strong = tapout(dt, tiny_raw, "sharpen", {"amount": 2.0, "radius": 3.0}, max_size=128)
    assert np.abs(strong.output - strong.input).max() > 1e-2  # and it does something when on


# linear Rec. 2020 (D50-adapted, as darktable's working profile) -> XYZ D50, and the D50 white
REC2020_TO_XYZ_D50 = np.array(
    [[0.6734241, 0.1656411, 0.1251286], [0.2790177, 0.6753402, 0.0456377], [-0.0019300, 0.0299784, 0.7973330]]
)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)


def _lab_finv(t: np.ndarray) -> np.ndarray:
    return np.where(t**3 > 216 / 24389, t**3, (116 * t - 16) / (24389 / 27))


def sharpen_maths(x: np.ndarray, radius: float, amount: float, threshold: float, scale: float) -> np.ndarray:
    """darktable's sharpen (src/iop/sharpen.c) on linear Rec2020 ``(3, H, W)``:
    an unsharp mask of CIE L* with a Gaussian of sigma ``radius * scale``
    truncated at ``R = ceil(2.5 sigma)`` px, a soft threshold, and a border of
    ``R`` px left untouched; a* and b* are kept."""
    from scipy.ndimage import convolve1d

    white = REC2020_TO_XYZ_D50.sum(1)
    xyz = np.einsum("ij,jhw->ihw", REC2020_TO_XYZ_D50, x.astype(np.float64)) / white[:, None, None]
    fx, fy, fz = _lab_f(xyz)
    L = 116 * fy - 16
    sigma = radius * scale
    R = int(np.ceil(2.5 * sigma))
    t = np.arange(-R, R + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    blur = convolve1d(convolve1d(L, k / k.sum(), axis=0), k / k.sum(), axis=1)
    d = L - blur
    L2 = L + amount * np.sign(d) * np.maximum(np.abs(d) - threshold, 0)
    inner = np.zeros_like(L, bool)
    inner[R:-R, R:-R] = True
    L2 = np.where(inner, L2, L)
    fy2 = (L2 + 16) / 116
    f2 = np.stack([fy2 + (fx - fy), fy2, fy2 - (fy - fz)])
    return np.einsum("ij,jhw->ihw", np.linalg.inv(REC2020_TO_XYZ_D50), _lab_finv(f2) * white[:, None, None])


@pytest.mark.parametrize("raw_size, max_size", [(64, 64), (128, 64)])
def test_tapout_is_the_exact_module_at_the_render_scale(dt, make_raw, raw_size: int, max_size: int) -> None:
    """A tap-out is the module's own input and output at the render scale
    (darktable-cli --hq false: the pipe is scaled at demosaic), not a render
    downscaled after the module: darktable's sharpen is reproduced from its
    published maths, with its radius scaled by the render scale."""
    from darkproxy.colour.metrics import display_psnr

    raw = make_raw(source="coffee", size=raw_size)
    p = {"radius": 3.0, "amount": 1.5, "threshold": 0.5}
    tp = tapout(dt, raw, "sharpen", p, max_size=max_size)
    scale = tp.output.shape[2] / raw_size
    expect = sharpen_maths(tp.input, p["radius"], p["amount"], p["threshold"], scale).astype(np.float32)
    R = int(np.ceil(2.5 * p["radius"] * scale))
    # sharpen leaves a border of R rows untouched; darktable 4.2 is not bit-reproducible from one
    # render to the next (a few pixels move by ~1e-3, measured), so "untouched" is up to that noise
    border = np.abs(tp.output[:, :R] - tp.input[:, :R])
    assert (border == 0).mean() > 0.98 and border.max() < 1e-2, ((border > 0).mean(), border.max())
    assert np.abs(tp.output[:, R] - tp.input[:, R]).max() > 0.02
    assert display_psnr(tp.input, tp.output) < 35  # it does sharpen
    assert display_psnr(expect, tp.output) > 60, display_psnr(expect, tp.output)


def test_pass_through_modules_cannot_be_disabled(dt, tiny_raw: Path) -> None:
    """darktable ignores enabled=0 for these; tap-outs therefore leave them on."""
    base = dt.default_history(tiny_raw)
    r = dt.renderer(max_size=64)
    ref = r.render_array(tiny_raw, base)
    for op in ("colorin", "colorout", "gamma", "demosaic", "rawprepare"):
        assert op in PASS_THROUGH
        assert_same_render(r.render_array(tiny_raw, dt.edit(base, disable=[op])), ref, f"{op} disabled")
    # ...while an ordinary module does switch off: far more than the noise changes
    tone = tone_mapper(base)  # filmic rgb; darktable 5.4's default: sigmoid
    off = r.render_array(tiny_raw, dt.edit(base, disable=[tone]))
    dmax, frac = render_difference(off, ref)
    print(f"{tone} off: max {dmax:.3f}, {100 * frac:.1f} % of values differ")
    assert dmax > 0.1 and frac > 0.5, (dmax, frac)


def test_always_on_target_uses_identity_setting(dt, tiny_raw: Path) -> None:
    tp = tapout(dt, tiny_raw, "colorin", {}, max_size=64)
    assert not np.allclose(tp.input, tp.output)  # camera RGB in, Rec2020 out


def test_scale_is_shared_and_recorded(dt, tiny_raw: Path) -> None:
    tp = tapout(dt, tiny_raw, "lowpass", {"radius": 8.0}, max_size=64)
    assert tp.input.shape == tp.output.shape and max(tp.input.shape[1:]) == 64
    assert tp.meta["max_size"] == 64


def test_pre_demosaic_tapout(dt, tiny_raw: Path) -> None:
    tp = tapout(dt, tiny_raw, "temperature", {}, max_size=64)
    assert tp.meta["pre_demosaic"] and tp.meta["input_layout"] == "packed_mosaic_RG1G2B"
    c, h, w = tp.input.shape
    assert c == 4 and tp.output.shape == (3, 2 * h, 2 * w)


def test_demosaic_tapout_takes_the_mosaic(dt, tiny_raw: Path) -> None:
    """demosaic's input is the (white-balanced) mosaic, not its own RGB output: at full resolution
    darktable runs its real algorithm, which a bilinear demosaic with the best colour matrix
    approaches but does not equal."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.engines.evaluate import bilinear_baseline

    tp = tapout(dt, tiny_raw, "demosaic", {})
    c, h, w = tp.input.shape
    assert tp.meta["pre_demosaic"] and c == 4 and tp.output.shape == (3, 2 * h, 2 * w)
    assert 20 < display_psnr(bilinear_baseline(tp.input, tp.output), tp.output) < 60


@pytest.mark.parametrize(
    "args, msg",
    [
        (["nosuch"], "unknown darktable module"),
        (["exposure", "--set", "nope=1"], "has no parameter 'nope'"),
        (["exposure", "--set", "exposure=40"], "outside darktable's range"),
        (["exposure", "--set", "exposure=x"], "expects a number"),
    ],
)
def test_cli_tapout_errors(tiny_raw: Path, tmp_path: Path, args, msg) -> None:
    r = run_cli("tapout", str(tiny_raw), *args, "-o", str(tmp_path / "t"))
    assert r.returncode == 2 and msg in r.stderr and r.stderr.count("\n") == 1


def test_cli_tapout_corrupt_raw(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"garbage" * 100)
    r = run_cli("tapout", str(bad), "exposure", "-o", str(tmp_path / "t"))
    assert r.returncode == 2 and "darktable cannot open" in r.stderr and "bad.dng" in r.stderr


def test_raw_size_reads_a_rewritten_raw_again(make_raw, tmp_path) -> None:
    """raw_size is read once per file version: the same path rewritten with another raw gives the new size, a
    missing or unreadable file None."""
    import shutil

    from darkproxy.darktable.tapout import raw_size

    p = tmp_path / "r.dng"
    shutil.copyfile(make_raw(size=128), p)
    assert raw_size(p) == (128, 128) and raw_size(p) == (128, 128)
    shutil.copyfile(make_raw(size=192), p)
    assert raw_size(p) == (192, 192)
    assert raw_size(tmp_path / "missing.dng") is None
    (tmp_path / "junk.dng").write_bytes(b"not a raw")
    assert raw_size(tmp_path / "junk.dng") is None
