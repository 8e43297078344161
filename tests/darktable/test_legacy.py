"""darktable's legacy_params ported (darktable/legacy.py) against darktable 4.2.1 itself.

Old-version sidecars are made by encoding the old struct (from darktable's source) into the
history item with the old darkroom modversion; darktable upgrades them when it loads the XMP.
darktable's render of each old sidecar must equal its render of darkproxy's upgrade (bit-identical
for every version below, but for darktable's run-to-run noise: a few pixels near the right edge, where
RCD reads a buffer column left by earlier work, docs/darktable-notes.md; under load one case of eight
failed a bit-identical check) and differ from the history without the edit (so darktable did load
the old item rather than drop it). darktable renders with one thread here: with more, color balance rgb's
racy gamut LUT moves saturated pixels between renders of one history (CI once: 21 % of the values, up to
2.7e-3; bench/results/render_threads.md), which is darktable's noise, not the upgrade's.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from darkproxy.darktable.legacy import LEGACY, Legacy, LegacyError, upgrade_history, upgrade_params
from darkproxy.darktable.params import decode_params, default_blob
from tests.darktable.render_noise import assert_same_render

EXPOSURE = {"black": 0.002, "exposure": 1.3, "deflicker_percentile": 37.0, "deflicker_target_level": -3.0}
CBRGB = {
    "shadows_Y": 0.1,
    "midtones_C": 0.2,
    "midtones_H": 40.0,
    "highlights_Y": -0.1,
    "global_C": 0.05,
    "global_H": 200.0,
    "shadows_weight": 1.2,
    "highlights_weight": 0.8,
    "white_fulcrum": 0.5,
    "chroma_global": 0.3,
    "saturation_global": 0.25,
    "saturation_shadows": 0.2,
    "hue_angle": 10.0,
    "brilliance_global": 0.1,
    "brilliance_shadows": -0.1,
    "mask_grey_fulcrum": 0.2,
    "vibrance": 0.2,
    "grey_fulcrum": 0.16,
    "contrast": 0.15,
}


LOWPASS = {"order": 0, "radius": 4.5, "contrast": 1.4, "brightness": -0.3, "saturation": 0.7, "unbound": 1}


def old_blob(leg: Legacy, values: dict[str, Any]) -> bytes:
    """The old struct with ``values`` (0 for the members not given)."""
    return leg.encode(values)


def with_item(hist: Any, module: str, version: int, blob: bytes) -> Any:
    """A copy of ``hist`` whose ``module`` item is ``blob`` written by params version ``version``."""
    out = hist.copy()
    it = out.find(module)
    it.params, it.params_text, it.modversion = blob, None, version
    return out


def _old_renders_as_upgrade(dt: Any, raw: Path, base: Any, cases: list[tuple[str, int, bytes]], expect: Any) -> None:
    """darktable's render of ``base`` with each old item (module, version, blob) against its render of darkproxy's
    upgrade (bit-identical but for darktable's noise), and against ``base`` (the old item was applied)."""
    from darkproxy.darktable.render import RenderJob, read_tiff

    jobs = []
    with tempfile.TemporaryDirectory() as td:
        jobs.append(RenderJob(raw, base, Path(td) / "base.tif"))
        for i, (m, v, blob) in enumerate(cases):
            old = with_item(base, m, v, blob)
            new = upgrade_history(old, dt.schemas)
            assert new.find(m).modversion == dt.schemas.get(m).version and old.find(m).modversion == v
            jobs += [RenderJob(raw, old, Path(td) / f"{i}-old.tif"), RenderJob(raw, new, Path(td) / f"{i}-new.tif")]
        res = dt.renderer(max_size=64, threads=1).render_batch(jobs)
        imgs = [read_tiff(r) for r in res]
    ref = imgs[0]
    for i, (m, v, _) in enumerate(cases):
        a, b = imgs[1 + 2 * i], imgs[2 + 2 * i]
        assert_same_render(a, b, f"{m} v{v}: the old item vs its upgrade")
        expect(f"{m}.v{v}.old_vs_unedited.mean_abs", float(np.abs(a - ref).mean()), ">", 1e-3)  # it was applied


def test_legacy_upgrades_render_as_darktable_upgrades(dt, make_raw, expect) -> None:
    raw: Path = make_raw(source="coffee", size=128)
    edits = {
        "colorbalancergb": {"saturation_global": 0.0},
        "lowpass": {"radius": 2.0, "saturation": 1.2},
        "diffuse": {"first": -0.1},
        "atrous": {"mix": 0.5},
    }
    base = dt.edit(dt.default_history(raw), updates=edits)
    # atrous v1 (no mix) with the "sharpen" preset's curves: v2 adds mix, 1
    atrous_x = [k / 5.0 for _ in range(5) for k in range(6)]
    atrous_y = [0.5 + 0.25 * k / 6.0 for k in range(6)] + [0.5] * 12 + [0.0] * 12
    diffuse_v1 = {"iterations": 2, "radius": 8, "first": 0.5, "second": 0.3, "sharpness": 0.2}  # v2 adds radius_center
    cases = [("diffuse", 1, old_blob(LEGACY[("diffuse", 1)], diffuse_v1))]
    cases.append(("atrous", 1, old_blob(LEGACY[("atrous", 1)], {"octaves": 7, "x": atrous_x, "y": atrous_y})))
    for v, vals in ((1, LOWPASS), (2, {**LOWPASS, "radius": -6.0}), (3, LOWPASS)):  # -6: the bilateral filter
        cases.append(("lowpass", v, old_blob(LEGACY[("lowpass", v)], vals)))
    for v in range(2, dt.schemas.get("exposure").version):  # darktable 5.4 (v7): 2-5 -> 6 -> 7, 6 -> 7
        cases.append(("exposure", v, old_blob(LEGACY[("exposure", v)], {**EXPOSURE, "gain": 1.0})))
    if dt.schemas.get("sigmoid").version == 3 and base.find("sigmoid"):  # 5.0 on: v1, v2 upgraded, primaries 0
        for v in (1, 2):
            vals = {"middle_grey_contrast": 2.0, "contrast_skewness": -0.2, "display_white_target": 100.0}
            vals |= {"display_black_target": 0.0152, "hue_preservation": 40.0, "red_inset": 0.3, "purity": 0.5}
            cases.append(("sigmoid", v, old_blob(LEGACY[("sigmoid", v)], vals)))
    for v in (1, 2, 3, 4):
        vals = {**CBRGB, "saturation_global": 3.0} if v == 1 else CBRGB  # v1: saturation in degrees-like units
        cases.append(("colorbalancergb", v, old_blob(LEGACY[("colorbalancergb", v)], vals)))
    _old_renders_as_upgrade(dt, raw, base, cases, expect)


# old items of the mosaic stages, each a visible edit of an over-exposed raw's default history (inpaint opposed,
# RCD, the camera's white balance, its levels)
MOSAIC_CASES = {
    ("highlights", 1): {"mode": 1, "blendL": 1.0},  # reconstruct in LCh, clip 1 (v1 has none)
    ("highlights", 2): {"mode": 0, "blendL": 1.0, "clip": 0.8},
    ("highlights", 3): {"mode": 1, "clip": 0.9, "noise_level": 0.1, "iterations": 3, "scales": 4, "combine": 3.0},
    ("rawprepare", 1): {"raw_black_level_separate": [1100, 1000, 1000, 1050], "raw_white_point": 15000},
    ("demosaic", 3): {"demosaicing_method": 1, "median_thrs": 0.1, "lmmse_refine": 1},  # PPG
    ("temperature", 2): {"temp_out": 5000.0, "coeffs": [2.4, 1.0, 1.3]},
}


def test_mosaic_legacy_upgrades_render_as_darktable_upgrades(dt, make_raw, expect) -> None:
    """highlights v1-v3, rawprepare v1, demosaic v3 and temperature v2 (as darktable 3.x wrote them) on an
    over-exposed raw (highlight modes differ only where photosites clip): darktable's render of the old item is
    its render of darkproxy's upgrade, and differs from the history without it."""
    _skip_unless_darktable_42(dt)
    raw: Path = make_raw(source="coffee", size=128, headroom=2.0)
    base = dt.default_history(raw)
    cases = [(m, v, old_blob(LEGACY[(m, v)], vals)) for (m, v), vals in MOSAIC_CASES.items()]
    _old_renders_as_upgrade(dt, raw, base, cases, expect)


def test_legacy_values_as_darktable_assigns_them(dt) -> None:
    """The upgraded values, from darktable's legacy_params: copies, the new members' fixed
    values, v1's saturation rescaled in double and stored as float, v3's deflicker flag."""
    _skip_unless_darktable_42(dt)
    exp, cb = dt.schemas.get("exposure"), dt.schemas.get("colorbalancergb")
    v3 = decode_params(exp, upgrade_params(exp, 3, old_blob(LEGACY[("exposure", 3)], {**EXPOSURE, "deflicker": 1})))
    assert v3["mode"] == 1 and v3["compensate_exposure_bias"] is False
    assert v3["deflicker_percentile"] == 37.0 and v3["exposure"] == pytest.approx(1.3, abs=1e-6)
    v2 = decode_params(exp, upgrade_params(exp, 2, old_blob(LEGACY[("exposure", 2)], {**EXPOSURE, "gain": 2.0})))
    assert v2["mode"] == 0 and v2["deflicker_percentile"] == 50.0  # from the defaults (*n = *d)
    c1 = decode_params(cb, upgrade_params(cb, 1, old_blob(LEGACY[("colorbalancergb", 1)], {"saturation_global": 3.0})))
    assert c1["saturation_global"] == float(np.float32(3.0 / (180.0 / math.pi)))
    assert c1["saturation_formula"] == 0 and c1["grey_fulcrum"] == float(np.float32(0.1845))
    assert c1["brilliance_global"] == 0.0 and c1["shadows_weight"] == 0.0  # v1 has no brilliance; weight copied
    c4 = decode_params(cb, upgrade_params(cb, 4, old_blob(LEGACY[("colorbalancergb", 4)], CBRGB)))
    assert c4["contrast"] == pytest.approx(0.15) and c4["saturation_formula"] == 0
    assert default_blob(cb) != upgrade_params(cb, 4, old_blob(LEGACY[("colorbalancergb", 4)], CBRGB))
    hl, rp, wb = dt.schemas.get("highlights"), dt.schemas.get("rawprepare"), dt.schemas.get("temperature")
    h1 = decode_params(hl, upgrade_params(hl, 1, old_blob(LEGACY[("highlights", 1)], {"mode": 2, "strength": 0.5})))
    assert h1["mode"] == 2 and h1["clip"] == 1.0 and h1["strength"] == 0.0 and h1["scales"] == 5  # blendh dropped
    r1 = decode_params(rp, upgrade_params(rp, 1, old_blob(LEGACY[("rawprepare", 1)], MOSAIC_CASES[("rawprepare", 1)])))
    assert r1["raw_black_level_separate"] == [1100, 1000, 1000, 1050] and r1["raw_white_point"] == 15000
    t2 = decode_params(
        wb, upgrade_params(wb, 2, old_blob(LEGACY[("temperature", 2)], MOSAIC_CASES[("temperature", 2)]))
    )
    assert (t2["red"], t2["green"], t2["blue"]) == (pytest.approx(2.4), 1.0, pytest.approx(1.3)) and math.isnan(
        t2["g2"]
    )


def test_legacy_refuses_in_one_line(dt) -> None:
    """A version without a port, a newer version, a blob of the wrong size: one line naming
    the module and both versions."""
    e = dt.schemas.get("exposure").version  # 6 (darktable 4.2, 5.0), 7 (5.4)
    cases = [
        ("filmicrgb", 5, bytes(100), ["filmicrgb", "version 5", "version 6"]),
        ("exposure", e + 1, bytes(24), ["exposure", f"version {e + 1}", f"version {e}", "newer"]),
        ("exposure", 1, bytes(8), ["exposure", "version 1", f"version {e}", "ported: from v2, v3, v4, v5, v6"]),
        ("exposure", 5, bytes(24), ["exposure", "version 5", "24 bytes", "20"]),
    ]
    for m, v, blob, words in cases:
        with pytest.raises(LegacyError) as e:
            upgrade_params(dt.schemas.get(m), v, blob, dt.version)
        msg = str(e.value)
        assert "\n" not in msg and all(w in msg for w in words), msg


def _skip_unless_darktable_42(dt) -> None:
    if dt.install.version_tuple[:2] != (4, 2):  # 5.0 renamed rawprepare's crop, moved temperature to v4...
        pytest.skip(f"legacy.py's hand ports write darktable 4.2's structs (darktable {dt.version} upgrades itself)")


def test_legacy_upgrade_by_darktable_release(dt) -> None:
    """color balance rgb v1's saturation: darktable 4.2.1 and 5.0.1 divide it by 180 / pi, 5.4.1 by 100 (their
    legacy_params); a release between, not measured, is refused in one line."""
    cb = dt.schemas.get("colorbalancergb")
    blob = old_blob(LEGACY[("colorbalancergb", 1)], {"saturation_global": 3.0})
    for release, want in (("4.2.1", 3.0 / (180.0 / math.pi)), ("5.0.1", 3.0 / (180.0 / math.pi)), ("5.4.1", 0.03)):
        got = decode_params(cb, upgrade_params(cb, 1, blob, release))["saturation_global"]
        assert got == pytest.approx(want, rel=1e-6), release
    with pytest.raises(LegacyError) as e:
        upgrade_params(cb, 1, blob, "5.2.0")
    assert "darktable 5.2.0" in str(e.value) and "\n" not in str(e.value), str(e.value)
