"""darktable's own defaults where introspection's are not them (``darkproxy.darktable.defaults``): checked
against the params darktable itself writes and against its renders."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from darkproxy.darktable.defaults import INIT_DEFAULTS
from darkproxy.darktable.params import decode_params, default_blob, introspection_blob, set_params
from darkproxy.errors import ParamValueError


def _preset(dt, module: str, name: str) -> tuple[int, bytes]:
    """A built-in preset's (op_version, op_params) from the data.db darktable-cli writes (init_presets)."""
    from darkproxy.darktable.render import config_template

    cfg = config_template(dt.install)
    assert cfg is not None
    con = sqlite3.connect(cfg / "data.db")
    try:
        # darktable 5.x names its built-in presets "_builtin_NAME" in data.db (4.2: NAME)
        row = con.execute(
            "SELECT op_version, op_params FROM presets WHERE operation = ? AND name IN (?, ?)",
            (module, name, f"_builtin_{name}"),
        ).fetchone()
    finally:
        con.close()
    assert row is not None, f"darktable {dt.version} has no preset {name!r} of {module}"
    return int(row[0]), bytes(row[1])


def test_denoiseprofile_defaults_are_the_params_darktable_writes(dt) -> None:
    """darktable's preset "wavelets: chroma only" (init_presets: every field set from scratch, the bands' x as
    init() sets them, a[0] = -1 "autodetect profile") is, byte for byte, darkproxy's default blob with the
    preset's own changes (strength, shadows, bias, the luma bands' y); introspection's defaults alone are not."""
    sch = dt.schemas.get("denoiseprofile")
    version, blob = _preset(dt, "denoiseprofile", "wavelets: chroma only")
    assert version == sch.version and INIT_DEFAULTS["denoiseprofile"].values_at(version) is not None
    changes = {"strength": 1.2, "shadows": 0.0, "bias": 0.0, **{f"y[4][{k}]": 0.0 for k in range(7)}}
    assert set_params(sch, default_blob(sch), changes) == blob
    plain = decode_params(sch, introspection_blob(sch))
    assert plain["a"] == [0.0, 0.0, 0.0] and plain["x"][0] == [0.0] * 7  # what rendered black


# added at darktable's defaults these are no edit at all; denoiseprofile and color calibration change the image a
# little (denoise on a noisy raw; color calibration's default gamut compression)
IDENTITY = ("rgbcurve", "tonecurve", "basecurve", "colorzones", "equalizer", "atrous", "channelmixer", "levels")
IDENTITY += ("rgblevels",)
NEAR = ("denoiseprofile", "channelmixerrgb")


def test_modules_start_from_darktables_defaults_not_black(dt, make_raw, tmp_path, expect) -> None:
    """Added to a history that lacks them, the modules of ``INIT_DEFAULTS`` render an image close to the history
    without them, where introspection's defaults render black, NaN or far off (one darktable-cli process)."""
    from darkproxy.darktable.render import RenderJob, read_tiff

    raw = make_raw("coffee", size=160)
    base = dt.default_history(raw)
    jobs = [RenderJob(raw, base, tmp_path / "base.tif")]
    for module in (*NEAR, *IDENTITY):
        sch = dt.schemas.get(module)
        plain = base.compressed()
        plain.set_item(module, params=introspection_blob(sch), modversion=sch.version, enabled=True)
        jobs += [
            RenderJob(raw, dt.edit(base, {module: {}}), tmp_path / f"{module}.tif"),
            RenderJob(raw, plain, tmp_path / f"{module}-introspection.tif"),
        ]
    ref, *imgs = [read_tiff(p) for p in dt.renderer(max_size=96).render_batch(jobs)]
    for i, module in enumerate((*NEAR, *IDENTITY)):
        ours, theirs = imgs[2 * i], imgs[2 * i + 1]
        rms = float(np.sqrt(np.mean((ours - ref) ** 2)))
        far = float(np.sqrt(np.mean((theirs - ref) ** 2)))  # NaN where darktable wrote NaN
        print(f"{module}: rms {rms:.5f} from the history without it, introspection's {far:.4f} (mean {ref.mean():.3f})")
        # 10 fresh runs (coffee, 96 px; test_noise.md, group defaults), each figure the same in every run: denoise
        # 0.0119, color calibration 0.0005 (bound 4x the larger), the others 5e-9 (atrous) to 2e-5 (tonecurve;
        # bound 10x: a LUT's uint16 steps)
        expect(f"{module}: rms from the history without it", rms, "<", 0.05 if module in NEAR else 2e-4)
        # introspection's: a constant black (denoise, color calibration, channelmixer), NaN (the curves' failed
        # spline setup: rgbcurve, tonecurve, levels, rgblevels) or 0.11-0.24 rms off (the rest; bound half the least)
        assert not far < 0.05, (module, far)
        if module in NEAR:
            assert float(np.ptp(theirs.reshape(3, -1), axis=1).max()) < 1e-9 and float(theirs.max()) < 1e-3, module


def test_another_params_version_is_refused(dt) -> None:
    import dataclasses

    sch = dataclasses.replace(dt.schemas.get("denoiseprofile"), version=13)  # 11: 4.2, 5.0; 12: 5.4
    with pytest.raises(
        ParamValueError, match="denoiseprofile params version 13: darkproxy knows .* version 11, 12 only"
    ):
        default_blob(sch)


def test_every_entry_names_fields_darktable_has(dt) -> None:
    """Each entry's names are fields of darktable's struct (set_params refuses any other) and land as written."""
    from darkproxy.darktable.params import flatten, param_value

    for module, init in INIT_DEFAULTS.items():
        sch = dt.schemas.get(module)
        vals = flatten(decode_params(sch, default_blob(sch)))
        for name, v in init.values.items():
            assert param_value(vals, name) == pytest.approx(v, rel=1e-7), (module, name)
