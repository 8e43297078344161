"""Blend params (darktable/blendop.py): the layout read back from darktable's own sidecars, a blob
encoded here that darktable-cli renders as intended, and `darkproxy xmp show`'s blend entry."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from darkproxy.darktable.blendop import (
    BLEND_NORMAL,
    BLEND_VERSION,
    CS_RGB_SCENE,
    MASK_PARAMETRIC,
    blend_problem,
    decode_blendop,
    item_blend,
)
from darkproxy.darktable.blendop_legacy import encode_legacy
from darkproxy.darktable.render import RenderJob, read_tiff
from darkproxy.errors import XmpError
from tests.tonemap import tone_mapper, tone_mappers


def test_darktable_default_blendop_round_trip(dt, tiny_raw: Path) -> None:
    """Every item of darktable's own default history: version 11, 420 bytes, decoded to darktable's
    defaults (blending off, normal at 100 %, the module's blend colour space), re-encoded byte for byte."""
    hist = dt.default_history(tiny_raw)
    assert len(hist.items) >= 8
    v = dt.install.version_tuple  # darktable 5.0.1 writes 13, 5.4.1 14
    written = 14 if v >= (5, 4) else 13 if v >= (5, 0) else BLEND_VERSION
    for it in hist.items:
        assert it.blendop_version == written and it.blendop_params is not None
        bp = item_blend(it)
        assert bp is not None and bp.encode() == it.blendop_params, it.operation
        assert bp.feather_version == (1 if written >= 13 else 0)  # darktable 5's feathering for new blends
        assert not bp.enabled and bp.masks == [] and bp.summary() == "off"
        assert (bp.blend_mode, bp.opacity, bp.mask_id, bp.raster_mask_source) == (BLEND_NORMAL, 100.0, 0, "")
        assert bp.feathering_guide == 5  # DEVELOP_MASK_GUIDE_IN_AFTER_BLUR: darktable's default
        assert blend_problem(it, exact_uniform=False) is None  # darktable does not blend: nothing to reproduce
    cst = {it.operation: item_blend(it).blend_cst for it in hist.items}  # type: ignore[union-attr]
    tone = tone_mapper(hist)  # darktable 5.4's default: sigmoid
    assert cst["exposure"] == cst[tone] == CS_RGB_SCENE and cst["highlights"] == 1  # raw
    # scene RGB's default boost log2(1/100) of Jz and Cz (in and out: DEVELOP_BLENDIF_Jz_in 8, Cz_in 9,
    # Jz_out 12, Cz_out 13), exactly where the layout puts them; every other channel 0
    boost = item_blend(hist.find("exposure")).blendif_boost_factors  # type: ignore[union-attr]
    assert [i for i, b in enumerate(boost) if b] == [8, 9, 12, 13]
    assert boost[8] == pytest.approx(np.log2(0.01))


def test_blendop_refuses_other_versions_and_sizes(dt, tiny_raw: Path) -> None:
    blob = dt.default_history(tiny_raw).find("exposure").blendop_params
    v1 = encode_legacy(1, (0x04, 50.0, 0))
    cases = [
        ((blob, 15), ("version 15", "versions 1 to 14")),
        ((blob, 9), ("420 bytes", "version 9 has 348")),
        ((blob[:-4], 11), ("416 bytes", "420")),
        ((v1, 1, "w", "nosuchmodule"), ("version 1 of module 'nosuchmodule'", "colour space")),
        ((v1, 1), ("version 1 of module None", "not known")),  # the upgrade takes the module's colour space
    ]
    for args, words in cases:
        with pytest.raises(XmpError) as e:
            decode_blendop(*args)
        assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_blendop_versions_12_to_14(dt, tiny_raw: Path) -> None:
    """darktable 5.0's and 5.4's blobs: version 11's 420 bytes (13's and 14's reserved[0] is feather_version, darktable
    5's feathering at 1: darktable 5.0.1's own defaults, docs/darktable-notes.md); read as they are, a feathering
    version other than 0 and 1 (both ported) refused where the mask is feathered, not elsewhere."""
    it = dt.default_history(tiny_raw).find("exposure")
    v13 = bytearray(it.blendop_params)
    v13[56:60] = (2).to_bytes(4, "little")  # reserved[0]: a feather_version darkproxy does not know
    assert decode_blendop(bytes(v13), 13).feather_version == 2
    assert decode_blendop(bytes(v13), 12).feather_version == 0  # darktable's upgrade 12 -> 13 sets 0
    assert decode_blendop(bytes(v13), 14) == decode_blendop(bytes(v13), 13)  # 5.4's: the same fields
    bp = decode_blendop(bytes(v13), 13)
    parametric = dataclasses.replace(bp, mask_mode=1 | MASK_PARAMETRIC, blendif=1 << 31)  # active, no channel
    for feather, refused in ((0.0, False), (5.0, True)):
        for version, params in ((13, parametric), (11, dataclasses.replace(parametric, feather_version=0))):
            item = dataclasses.replace(
                it, blendop_params=dataclasses.replace(params, feathering_radius=feather).encode()
            )
            item = dataclasses.replace(item, blendop_version=version)
            why = blend_problem(item, exact_uniform=True, exact_modes=True)
            assert (why is not None and "mask feathering version 2" in why) == (refused and version == 13), why


def test_darktable_renders_encoded_opacity(dt, tiny_raw: Path, expect) -> None:
    """exposure +1 EV blended uniformly at 50 % (blend params encoded here) renders, in darktable-cli's
    linear Rec2020 output (filmic rgb off: linear after exposure), as the mean of exposure off and
    exposure at 100 %: darktable reads the fields where they are written. And a blob of blendop version
    10 (darktable 3.x: the obsolete "multiply reverse" mode, a details value in its reserved[0]) renders
    as darkproxy's upgrade of it to version 11 does (darktable upgrades it when it loads the sidecar)."""
    from darkproxy.colour.metrics import display_psnr
    from tests.darktable.render_noise import assert_same_render

    default = dt.default_history(tiny_raw)  # its tone mapper off (filmic rgb; sigmoid from darktable 5.2 on)
    full = dt.edit(default, updates={"exposure": {"exposure": 1.0}}, disable=tone_mappers(default))
    off = dt.edit(full, disable=["exposure"])
    half = full.copy()
    it = half.find("exposure")
    it.blendop_params = item_blend(it).uniform(50).encode()  # type: ignore[union-attr]
    assert item_blend(it).summary() == "normal at 50 %, uniformly, in RGB (scene)"  # type: ignore[union-attr]
    old, new = half.copy(), half.copy()
    v10 = dataclasses.replace(item_blend(it), blend_mode=0x24, details=0.25, reserved=(0, 0, 0))  # type: ignore[arg-type]
    old.find("exposure").blendop_params, old.find("exposure").blendop_version = v10.encode(), 10
    up = decode_blendop(v10.encode(), 10)
    assert (up.mode_name, up.details, up.opacity) == ("multiply (reversed)", 0.25, 50.0)
    new.find("exposure").blendop_params = up.encode()
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(tiny_raw, s, Path(td) / f"{i}.tif") for i, s in enumerate((off, full, half, old, new))]
        a, b, c, d, e = (read_tiff(p) for p in dt.renderer(max_size=64).render_batch(jobs))  # type: ignore[arg-type]
    expect("blend50.psnr_vs_mean", display_psnr(c, 0.5 * a + 0.5 * b), ">", 60)
    expect("blend50.psnr_vs_full", display_psnr(c, b), "<", 30)
    assert_same_render(d, e, "blendop v10 vs its upgrade")
    expect("v10 multiply reversed vs normal: psnr", display_psnr(d, c), "<", 40)  # the mode was read


def test_cli_xmp_show_blend(dt, tiny_raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`darkproxy xmp show`: a blend entry per item, every field in --json, one line in text."""
    side = dt.default_history(tiny_raw).copy()
    it = side.find("exposure")
    bp = item_blend(it).uniform(40)  # type: ignore[union-attr]
    it.blendop_params = dataclasses.replace(bp, mask_mode=bp.mask_mode | MASK_PARAMETRIC).encode()
    path = side.write(tmp_path / "blend.xmp")
    from darkproxy.cli import main

    assert main(["xmp", "show", str(path), "--json"]) == 0
    blends = {d["operation"]: d["blend"] for d in json.loads(capsys.readouterr().out)}
    e = blends["exposure"]
    assert (e["opacity"], e["mask_mode"], e["enabled"], e["masks"], e["mode"]) == (
        40.0,
        5,
        True,
        ["parametric mask"],
        "normal",
    )
    assert len(e["blendif_parameters"]) == 64 and len(e["blendif_boost_factors"]) == 16
    assert blends["colorin"]["enabled"] is False
    assert main(["xmp", "show", str(path)]) == 0
    text = capsys.readouterr().out
    assert "blend: normal at 40 %, parametric mask, in RGB (scene)" in text and "blend: off" in text


# a blob per old blendop version (darktable before 3.0), exposure's: opacity 60 %, a mode (obsolete ones
# included), a parametric mask on the input's gray (channel 0 of RGB (display), exposure's display-referred
# blend colour space) from version 2, refined (blur, contrast, brightness) where the version has it
_GRAY = (0.1, 0.3, 0.6, 0.9) + (0.0, 0.0, 1.0, 1.0) * 15
_GRAY_R = _GRAY[:4] + (0.2, 0.4, 0.7, 0.95) + _GRAY[8:]  # and red in (channel 1)
_ON = (1 << 31) | 1  # versions 2-5: bit 31 turns the parametric mask on
_LEGACY = {
    1: (0x24, 60.0, 0),  # multiply reverse (obsolete)
    2: (0x01, 60.0, 0, _ON, *_GRAY[:32]),  # normal bounded (obsolete)
    3: (0x14, 60.0, 0, _ON, *_GRAY),  # inverse (obsolete): bounded, reversed
    4: (0x09, 60.0, 0, _ON, 2.0, *_GRAY),  # screen, blurred
    5: (5, 0x0A, 60.0, 0, 0, _ON, 0.0, 0, 0, 0, 0, *_GRAY_R),  # overlay; version 5's bit-31 repair: channels 0-4
    6: (5, 0x0B, 60.0, 1, 0, 1, 0.0, 0, 0, 0, 0, *_GRAY),  # softlight, the mask inverted
    7: (5, 0x03, 60.0, 0, 0, 1 | 1 << 16, 0.0, 0, 0, 0, 0, *_GRAY),  # darken, the channel's polarity inverted
    8: (5, 0x04, 60.0, 0, 0, 1, 0.0, 5, 0.0, 0.3, 0.2, 0, 0, 0, 0, *_GRAY),  # multiply, contrast, brightness
    9: (5, 0x17, 60.0, 0, 0, 1, 0.0, 5, 0.0, 0.3, -0.2, 0, 0, 0, 0, *_GRAY, b"", 0, 0, 0),  # difference
}


def test_darktable_renders_legacy_blendops(dt, tiny_raw: Path, expect) -> None:
    """exposure +1 EV (filmic rgb off) blended by a blob of each blendop version 1 to 9 (:data:`_LEGACY`):
    darktable-cli renders it (darktable upgrades it when it loads the sidecar) as it renders darkproxy's
    upgrade of it encoded as version 11, all in one darktable-cli process; and each blends (it is not
    exposure unblended: darktable read it, it did not fall back to its defaults). Measured over 8 runs
    (64 px): every version's two renders bit-identical in every run (max |diff| 0, 0 % of values), so
    assert_same_render's noise bound is all the margin; PSNR against unblended exposure 14.3 (v8) to 22.6 dB
    (v3), the same in every run: the bound 40 dB is 17.4 dB above the worst. A wrong upgrade shows: Lab for
    RGB (display), the reverse bit dropped, the inversion, blur, contrast, version 5's bit-31 repair or the
    polarity dropped each broke assert_same_render (measured once each)."""
    from darkproxy.colour.metrics import display_psnr
    from tests.darktable.render_noise import assert_same_render

    default = dt.default_history(tiny_raw)  # its tone mapper off (filmic rgb; sigmoid from darktable 5.2 on)
    full = dt.edit(default, updates={"exposure": {"exposure": 1.0}}, disable=tone_mappers(default))
    sides = [full]
    for version, values in _LEGACY.items():
        old, new = full.copy(), full.copy()
        blob = encode_legacy(version, values)
        old.find("exposure").blendop_params, old.find("exposure").blendop_version = blob, version
        up = decode_blendop(blob, version, "exposure", "exposure")
        assert up.blend_cst == 3 and up.opacity == 60.0 and up.enabled, (version, up)  # RGB (display)
        assert ("parametric mask" in up.masks) == (version > 1), (version, up.masks)
        new.find("exposure").blendop_params = up.encode()
        sides += [old, new]
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(tiny_raw, s, Path(td) / f"{i}.tif") for i, s in enumerate(sides)]
        imgs = [read_tiff(p) for p in dt.renderer(max_size=64).render_batch(jobs)]  # type: ignore[arg-type]
    for k, version in enumerate(_LEGACY):
        old_img, new_img = imgs[1 + 2 * k], imgs[2 + 2 * k]
        assert_same_render(old_img, new_img, f"blendop v{version} vs its upgrade")
        expect(f"v{version} vs unblended: psnr", display_psnr(old_img, imgs[0]), "<", 40)


def test_cli_xmp_show_legacy_blend(dt, tiny_raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`darkproxy xmp show` on a sidecar with a blendop version 8 blob: shown upgraded, one line."""
    side = dt.default_history(tiny_raw).copy()
    it = side.find("exposure")
    it.blendop_params, it.blendop_version = encode_legacy(8, _LEGACY[8]), 8
    path = side.write(tmp_path / "legacy.xmp")
    from darkproxy.cli import main

    assert main(["xmp", "show", str(path)]) == 0
    assert "blend: multiply at 60 %, parametric mask, in RGB (display)" in capsys.readouterr().out
