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
from darkproxy.darktable.render import RenderJob, read_tiff
from darkproxy.errors import XmpError


def test_darktable_default_blendop_round_trip(dt, tiny_raw: Path) -> None:
    """Every item of darktable's own default history: version 11, 420 bytes, decoded to darktable's
    defaults (blending off, normal at 100 %, the module's blend colour space), re-encoded byte for byte."""
    hist = dt.default_history(tiny_raw)
    assert len(hist.items) >= 8
    for it in hist.items:
        assert it.blendop_version == BLEND_VERSION and it.blendop_params is not None
        bp = item_blend(it)
        assert bp is not None and bp.encode() == it.blendop_params, it.operation
        assert not bp.enabled and bp.masks == [] and bp.summary() == "off"
        assert (bp.blend_mode, bp.opacity, bp.mask_id, bp.raster_mask_source) == (BLEND_NORMAL, 100.0, 0, "")
        assert bp.feathering_guide == 5  # DEVELOP_MASK_GUIDE_IN_AFTER_BLUR: darktable's default
        assert blend_problem(it, exact_uniform=False) is None  # darktable does not blend: nothing to reproduce
    cst = {it.operation: item_blend(it).blend_cst for it in hist.items}  # type: ignore[union-attr]
    assert cst["exposure"] == cst["filmicrgb"] == CS_RGB_SCENE and cst["highlights"] == 1  # raw
    # scene RGB's default boost log2(1/100) of Jz and Cz (in and out: DEVELOP_BLENDIF_Jz_in 8, Cz_in 9,
    # Jz_out 12, Cz_out 13), exactly where the layout puts them; every other channel 0
    boost = item_blend(hist.find("exposure")).blendif_boost_factors  # type: ignore[union-attr]
    assert [i for i, b in enumerate(boost) if b] == [8, 9, 12, 13]
    assert boost[8] == pytest.approx(np.log2(0.01))


def test_blendop_refuses_other_versions_and_sizes(dt, tiny_raw: Path) -> None:
    blob = dt.default_history(tiny_raw).find("exposure").blendop_params
    for args, words in (((blob, 9), ("version 9", "versions 10 and 11")), ((blob[:-4], 11), ("416 bytes", "420"))):
        with pytest.raises(XmpError) as e:
            decode_blendop(*args)
        assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_darktable_renders_encoded_opacity(dt, tiny_raw: Path, expect) -> None:
    """exposure +1 EV blended uniformly at 50 % (blend params encoded here) renders, in darktable-cli's
    linear Rec2020 output (filmic rgb off: linear after exposure), as the mean of exposure off and
    exposure at 100 %: darktable reads the fields where they are written. And a blob of blendop version
    10 (darktable 3.x: the obsolete "multiply reverse" mode, a details value in its reserved[0]) renders
    as darkproxy's upgrade of it to version 11 does (darktable upgrades it when it loads the sidecar)."""
    from darkproxy.colour.metrics import display_psnr
    from tests.darktable.render_noise import assert_same_render

    full = dt.edit(dt.default_history(tiny_raw), updates={"exposure": {"exposure": 1.0}}, disable=["filmicrgb"])
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
