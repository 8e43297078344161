"""darkproxy match against darktable-made and rawpy-made references, with the real darktable-cli.

Every figure is measured on darktable's own render of result.xmp; the style is applied by
darktable-cli itself (imported with darktable's importer) and must give the same image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.tonemap import tone_mapper

HIDDEN = {
    "exposure.exposure": 1.3,
    "colorbalancergb.saturation_global": 0.3,
    "colorbalancergb.contrast": 0.15,
}
# the tone mapper's contrast, hidden in the one darktable's default history enables (tests/tonemap.py)
TONE_CONTRAST = {"filmicrgb": {"filmicrgb.contrast": 1.5}, "sigmoid": {"sigmoid.middle_grey_contrast": 1.9}}


@pytest.fixture(scope="module")
def raw(make_raw) -> Path:
    return make_raw(source="coffee", size=256)


def _shifted_resized(img: np.ndarray, shift: tuple[int, int], width: int) -> np.ndarray:
    """A reference as a camera or another tool gives it: another size, a few px off."""
    from skimage.transform import resize

    h, w = img.shape[1:]
    dy, dx = shift
    cut = img[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    return np.stack([resize(c, (round(cut.shape[1] * width / cut.shape[2]), width)) for c in cut]).astype(np.float32)


def test_match_darktable_reference_and_style(dt, raw: Path, tmp_path: Path, expect) -> None:
    """A reference darktable made with hidden sliders, cropped 3 px and resized: the
    match recovers a look far closer than darktable's defaults, result.xmp is what
    darktable renders, and result.dtstyle applied by darktable-cli gives the same image."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.darktable.render import read_tiff
    from darkproxy.darktable.styles import read_style
    from darkproxy.data.paramspace import split_module_params
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import replica_history
    from darkproxy.viz.images import save_png, to_uint8

    tone = tone_mapper(dt.default_history(raw))
    sets = split_module_params({**HIDDEN, **TONE_CONTRAST[tone]})
    hidden_img = render_export(dt, raw, replica_history(dt, raw, None, sets), 128)
    ref = _shifted_resized(hidden_img, (2, -3), 200)
    save_png(tmp_path / "ref.png", to_uint8(ref))
    out = tmp_path / "m"
    r = run_cli(
        "match",
        str(raw),
        str(tmp_path / "ref.png"),
        "--max-size",
        "128",
        "--iters",
        "150",
        "--restarts",
        "2",
        "-o",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert set(s) >= {"deltae_mean", "deltae_p95", "psnr", "default_deltae_mean", "params", "seconds"}
    for f in ("result.xmp", "result.dtstyle", "index.html", "reference.png", "default.png", "result.png"):
        assert (out / f).is_file(), f
    # bounds: bench/results/test_noise.md, group "match" (the spread of 10 runs of this test as it is)
    expect("edge correlation", s["alignment"]["correlation"], ">", 0.85)
    # the floor: darktable's render with the hidden sliders against the same aligned reference (the resampling
    # of a 128 px image costs ΔE at edges): 1.630 on 4.2.1, 1.702 on 5.4.1
    from darkproxy.match import align_reference, region_figures

    aligned, al = align_reference(ref, render_export(dt, raw, dt.default_history(raw), 128))
    floor = region_figures(hidden_img, np.nan_to_num(aligned), al.box)["deltae_mean"]
    expect("deltae - floor", s["deltae_mean"] - floor, "<", 0.25)
    # the share of the defaults' ΔE2000 above the floor that the match leaves (bench/results/polish_*.md): 0.0001 on
    # 4.2.1 (ΔE2000 1.631, defaults 11.293), 0.0003 on 5.4.1 (1.703, 8.219); Adam alone 0.0095 / 0.0135; each the
    # same in repeated runs; bound 0.005. (ΔE2000 / defaults, 0.153 on 4.2.1 against a bound of 0.2 before the
    # polish, cannot fall below floor / defaults, 0.207 on 5.4.1)
    share = (s["deltae_mean"] - floor) / (s["default_deltae_mean"] - floor)
    expect("(deltae - floor) / (defaults - floor)", share, "<", 0.005)
    # (the sliders themselves are not unique over the 13 fitted: exposure trades with filmic's white and black)

    style = read_style(out / "result.dtstyle")
    # the chain's modules and the ones darktable's defaults enable after demosaic (color calibration on darktable 5)
    default_cc = (it := dt.default_history(raw).find("channelmixerrgb")) is not None and it.enabled
    style_modules = ["exposure", *(["channelmixerrgb"] if default_cc else []), "colorbalancergb", tone]
    assert [it.operation for it in style.items] == style_modules
    # darktable-cli applies the style (imported by darktable's own importer; --style-overwrite) on the raw
    styled = read_tiff(
        dt.renderer(max_size=128, icc_type="SRGB", bpp=8, style=out / "result.dtstyle", style_overwrite=True).render(
            raw, None, tmp_path / "styled.tif"
        )
    )
    # the style leaves demosaic to the raw: result.xmp with the history's own demosaic (the first one tried)
    own = {"demosaic": s["demosaic"][0]["params"]}
    from_xmp = render_export(dt, raw, dt.edit(replica_history(dt, raw, out / "result.xmp", None), own), 128)
    assert display_image_psnr(styled / 255.0, from_xmp) > 60


def test_match_rawpy_reference(dt, raw: Path, tmp_path: Path, expect) -> None:
    """A reference from another renderer (LibRaw through rawpy: its demosaic, white
    balance, brightness and curve): no exact answer, the match must still beat darktable's defaults."""
    import rawpy

    from darkproxy.engines.regress import RegressConfig
    from darkproxy.match import match

    with rawpy.imread(str(raw)) as rp:
        ref = rp.postprocess(use_camera_wb=True, output_bps=8).astype(np.float32) / 255.0
    cfg = RegressConfig(iters=150, restarts=2)
    s = match(dt, raw, np.moveaxis(ref, -1, 0), tmp_path / "m", max_size=128, config=cfg)
    # bounds: bench/results/test_noise.md, group "match"
    expect("deltae / defaults", s["deltae_mean"] / s["default_deltae_mean"], "<", 0.55)
    on_disk = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert on_disk["deltae_mean"] == pytest.approx(s["deltae_mean"]) and on_disk["reference_profile"] == "array: sRGB"
    assert (tmp_path / "m" / "result.xmp").is_file() and (tmp_path / "m" / "result.dtstyle").is_file()


def test_match_pairs_one_style(dt, make_raw, tmp_path: Path) -> None:
    """--pairs: one style fitted to the pairs but the held-out one, each pair rendered by darktable with it."""
    import shutil

    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import replica_history
    from darkproxy.viz.images import save_png, to_uint8

    look = {"exposure": {"exposure": 1.2}, "colorbalancergb": {"saturation_global": 0.3}}
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for src in ("coffee", "rocket"):
        raw = make_raw(source=src, size=128)
        shutil.copyfile(raw, pairs / f"{src}.dng")
        save_png(pairs / f"{src}.png", to_uint8(render_export(dt, raw, replica_history(dt, raw, None, look), 64)))
    out = tmp_path / "out"
    r = run_cli(
        "match", "--pairs", str(pairs), "--max-size", "64", "--iters", "80", "--restarts", "1", "-o", str(out),
        "--json", "--demosaic", "keep",  # the one-setting choice: tests/match/test_demosaic.py
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert [p["held_out"] for p in s["pairs"]] == [False, True]  # sorted by name: rocket is held out
    fit, held = s["pairs"]
    # Adam alone at 80 iterations had not converged (bench/results/polish_*.md: held out 0.485 of the defaults'
    # ΔE2000 on 4.2.1, steady over 20 runs in test_noise.md, 0.567 on 5.4.1); with the polish (the default): fitted
    # 0.084 (4.2.1) / 0.119 (5.4.1), held out 0.045 / 0.065, each the same in repeated runs; bounds 0.2 and 0.15
    assert fit["deltae_mean"] < 0.2 * fit["default_deltae_mean"], fit
    assert held["deltae_mean"] < 0.15 * held["default_deltae_mean"], held
    assert fit["fit_pixels"] == (fit["alignment"]["box"][2] - fit["alignment"]["box"][0]) * (
        fit["alignment"]["box"][3] - fit["alignment"]["box"][1]
    )  # the pair's whole aligned region (fewer pixels than --pixels-per-pair's default)
    for p in s["pairs"]:
        assert (out / "pairs" / Path(p["raw"]).stem / "result.xmp").is_file()
    assert (out / "result.dtstyle").is_file() and (out / "index.html").is_file()


def test_match_refuses_another_scene(dt, raw: Path, make_raw, tmp_path: Path) -> None:
    from darkproxy.match import MatchError, match
    from darkproxy.replica.fit import render_export

    other = make_raw(source="motorcycle", size=256)
    ref = render_export(dt, other, dt.default_history(other), 128)
    with pytest.raises(MatchError, match="scene|aspect") as e:
        match(dt, raw, ref, tmp_path / "m", max_size=128)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m" / "result.xmp").exists()


def test_read_reference_profiles(tmp_path: Path) -> None:
    """An untagged image is taken as sRGB; an sRGB-tagged one as is; a grey image tagged with a
    profile that is not grey (here Lab) gets a one-line error. ICC conversions, 16 bit and EXIF
    orientation: tests/match/test_reference.py."""
    from PIL import Image, ImageCms

    from darkproxy.match import MatchError, read_reference

    rgb = (np.arange(48 * 32 * 3) % 251).reshape(32, 48, 3).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    img, note = read_reference(tmp_path / "plain.png")
    assert img.shape == (3, 32, 48) and "untagged" in note
    assert np.allclose(img, np.moveaxis(rgb, -1, 0) / 255.0, atol=1e-6)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "tagged.png", icc_profile=srgb)
    img2, note2 = read_reference(tmp_path / "tagged.png")
    assert "sRGB" in note2 and np.array_equal(img, img2)
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png", icc_profile=lab)
    with pytest.raises(MatchError, match="convert it") as e:
        read_reference(tmp_path / "grey.png")
    assert "\n" not in str(e.value)


def test_match_the_cameras_own_look_from_the_raw_alone(tmp_path: Path, expect) -> None:
    """`darkproxy match RAW` without a reference matches the preview the camera embedded in the raw (here the
    photo the synthetic raw is made from, a JPEG: a renderer other than darktable), stored as the sensor saw it
    under a quarter-turn Orientation tag: it is read upright and aligned, and the match beats darktable's
    defaults. 10 runs of this exact test (bench/results/test_noise.md, group "match"): ΔE2000 0.3945 of the
    defaults' in every run (0.5772 before match chose the demosaic: the fit and darktable's renders repeat
    exactly here); the bound, 0.7, was set at 21 % above the old figure and is kept."""
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    raw = tmp_path / "cam.dng"
    spec = SynthRawSpec(size=256, preview=192, orientation=6)
    write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, spec)
    out = tmp_path / "m"
    r = run_cli("match", str(raw), "-o", str(out), "--max-size", "128", "--iters", "150", "--restarts", "2")
    assert r.returncode == 0, r.stderr
    assert "preview embedded" in r.stdout and (out / "preview.png").is_file()
    s = json.loads((out / "summary.json").read_text())
    expect("deltae / defaults", s["deltae_mean"] / s["default_deltae_mean"], "<", 0.7)
    assert (out / "result.xmp").is_file() and (out / "result.dtstyle").is_file()
    # a raw without a preview and no reference: one line, non-zero, nothing written
    bare = tmp_path / "bare.dng"
    write_synthetic_dng(default_source_images(["coffee"])["coffee"], bare, SynthRawSpec(size=64))
    r = run_cli("match", str(bare), "-o", str(tmp_path / "b"))
    assert r.returncode != 0 and "no embedded preview" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "result.xmp").exists()
