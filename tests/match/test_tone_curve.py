"""rgb curve (``rgbcurve``) in the match chain, with the real darktable-cli: a module the history lacks starts as
the identity through five nodes (``NEUTRAL_START``: darktable's own default is two nodes, nothing to shape), and
the nodes' y above black are fitted through the replica's exact port (its LUT, gradients of the spline)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from darkproxy.data.ranges import LOOK_FREE, NEUTRAL_START
from tests.tonemap import tone_mapper

# a camera's tone curve: shadows lifted, an S through the midtones, highlights rolled off below white
HIDDEN = {"curve_nodes[0][1].y": 0.20, "curve_nodes[0][2].y": 0.45, "curve_nodes[0][3].y": 0.80}
HIDDEN["curve_nodes[0][4].y"] = 0.97


@pytest.mark.slow
def test_match_fits_the_nodes_of_a_tone_curve(dt, make_raw, tmp_path: Path, expect) -> None:
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.darktable.params import decode_params, flatten, param_value
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.match import match
    from darkproxy.replica.fit import render_exports
    from darkproxy.replica.references import replica_history

    assert set(HIDDEN) == set(LOOK_FREE["rgbcurve"])
    raw = make_raw(source="coffee", size=128)
    start = NEUTRAL_START["rgbcurve"]
    look = {"exposure": {"exposure": 1.0}, "rgbcurve": {**start, **HIDDEN}}
    hists = [replica_history(dt, raw, None, h) for h in (look, {"rgbcurve": dict(start)})] + [dt.default_history(raw)]
    ref, neutral, plain = render_exports(dt, raw, hists, 64)  # one darktable process
    # 6 fresh runs (bench/results/test_noise.md, group match-curve; the three renders in one darktable process
    # since 2026-12-04, the figures as they were in 10 runs with three processes): every figure repeats exactly
    # (darktable's renders and the seeded fit repeat): the neutral start 73.5 dB (darktable's LUT rounds the
    # identity to uint16 steps; bound 45), ΔE2000 0.138 of darktable's render of result.xmp (bound 1.0: 7x), 0.047
    # of the defaults' 2.92 (bound 0.3: 6x)
    expect("neutral rgb curve vs defaults: PSNR (dB)", display_image_psnr(neutral, plain), ">", 45.0)

    res = match(
        dt, raw, ref, tmp_path / "curve", chain=["exposure", "rgbcurve"], max_size=64,
        config=RegressConfig(iters=100, restarts=1),
    )  # fmt: skip
    got = flatten(decode_params(dt.schemas.get("rgbcurve"), read_xmp(res["xmp"]).compressed().find("rgbcurve").params))
    assert got["curve_num_nodes"][0] == 5 and got["compensate_middle_grey"]  # result.xmp's curve, as darktable reads
    ys = [param_value(got, n) for n in LOOK_FREE["rgbcurve"]]
    assert all(b > a for a, b in pairwise(ys)), ys  # a rising tone curve
    expect("ΔE2000 with the tone curve", res["deltae_mean"], "<", 1.0)
    expect("ΔE2000: tone curve / defaults", res["deltae_mean"] / res["default_deltae_mean"], "<", 0.3)


@pytest.mark.slow
def test_a_display_referred_match_turns_filmic_off(dt, make_raw, tmp_path: Path, expect) -> None:
    """``--chain exposure,rgbcurve,-tonemapper``: a reference darktable made without a tone mapper (filmic rgb
    or sigmoid off, exposure pushed until the highlights clip at white, a tone curve: what LibRaw and camera JPEGs look
    like) is matched with filmic turned off in result.xmp and in the style, which darktable-cli applies back to
    result.xmp's image; the same chain with filmic left on cannot clip and stays far off."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.darktable.render import read_tiff
    from darkproxy.darktable.styles import read_style
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.match import match
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import replica_history

    raw = make_raw(source="coffee", size=128)
    tone = tone_mapper(dt.default_history(raw))  # filmic rgb up to darktable 5.0, sigmoid from 5.2 on
    look = {"exposure": {"exposure": 1.5}, "rgbcurve": {**NEUTRAL_START["rgbcurve"], **HIDDEN}}
    ref = render_export(dt, raw, replica_history(dt, raw, None, look, disable=[tone]), 64)
    cfg = {"max_size": 64, "demosaic": False, "config": RegressConfig(iters=100, restarts=1)}
    res = match(dt, raw, ref, tmp_path / "off", chain=["exposure", "rgbcurve", "-tonemapper"], **cfg)
    on = match(dt, raw, ref, tmp_path / "on", chain=["exposure", "rgbcurve"], **cfg)
    assert res["off"] == [tone] and not read_xmp(res["xmp"]).compressed().find(tone).enabled
    # 5 fresh runs (bench/results/test_noise.md, group match-display), each figure repeating exactly (darktable's
    # renders and the seeded fit): ΔE2000 0.455 with filmic off (bound 1.0: 2.2x), 0.079 of the 5.77 with filmic
    # left on (bound 0.2: 2.5x); the style's render equals result.xmp's (100 dB, bound 60)
    expect("ΔE2000, filmic off", res["deltae_mean"], "<", 1.0)
    expect("ΔE2000: filmic off / filmic on", res["deltae_mean"] / on["deltae_mean"], "<", 0.2)
    style = read_style(tmp_path / "off" / "result.dtstyle")
    assert [(it.operation, it.enabled) for it in style.items if it.operation == tone] == [(tone, False)]
    styled = read_tiff(
        dt.renderer(
            max_size=64, icc_type="SRGB", bpp=8, style=tmp_path / "off" / "result.dtstyle", style_overwrite=True
        ).render(raw, None, tmp_path / "styled.tif")
    )
    from_xmp = render_export(dt, raw, read_xmp(res["xmp"]), 64)
    expect("style vs result.xmp: PSNR (dB)", display_image_psnr(styled / 255.0, from_xmp), ">", 60.0)


def test_chain_entries_turned_off_are_checked_in_one_line(dt, make_raw) -> None:
    """``-MODULE`` names a darktable module and is not also matched: each mistake is one line."""
    from darkproxy.errors import UnknownModule
    from darkproxy.match import MatchError
    from darkproxy.match.fit import plan_history, split_chain

    assert split_chain(["exposure", "rgbcurve", "-filmicrgb"]) == (["exposure", "rgbcurve"], ["filmicrgb"])
    raw = make_raw(size=32)
    with pytest.raises(MatchError, match="both matched and turned off") as e:
        plan_history(dt, raw, ["exposure", "filmicrgb", "-filmicrgb"], None)
    assert "\n" not in str(e.value)
    with pytest.raises(UnknownModule, match="'nosuchmodule'"):
        plan_history(dt, raw, ["exposure", "-nosuchmodule"], None)
    with pytest.raises(MatchError, match="--chain is empty"):
        plan_history(dt, raw, ["-filmicrgb"], None)
