"""Samplers and training ranges (no darktable needed: the shipped schema snapshot)."""

from __future__ import annotations

import numpy as np
import pytest

from darkproxy.darktable.schema import load_schema_snapshot
from darkproxy.data.ranges import build_param_space, default_free, parse_range, upstream_variety, with_periods
from darkproxy.data.sampling import grid, sample_params, sample_unit
from darkproxy.errors import ParamValueError, UnknownParam


@pytest.fixture(scope="module")
def schemas():
    return load_schema_snapshot("4.2.1")


def test_default_ranges_exposure(schemas) -> None:
    sp = build_param_space(schemas.get("exposure"))
    assert sp.names == ["exposure", "black"]
    assert (sp.spec("exposure").lo, sp.spec("exposure").hi) == (-2.0, 4.0)
    assert (sp.spec("black").lo, sp.spec("black").hi) == (-0.02, 0.05)


def test_unknown_module_default_is_all_finite_floats(schemas) -> None:
    free = default_free(schemas.get("vignette"))  # in the table
    assert free == ["brightness", "scale"]
    bilat_like = default_free(schemas.get("grain"))
    sch = schemas.get("grain")
    assert bilat_like and all(sch.field(n).type == "float" for n in bilat_like)


def test_range_fix_and_errors(schemas) -> None:
    sch = schemas.get("exposure")
    sp = build_param_space(sch, ["exposure"], fixed={"black": "0"}, ranges={"exposure": (-1.0, 1.0)})
    assert sp.names == ["exposure"] and sp.fixed == {"black": 0.0}
    assert (sp.specs[0].lo, sp.specs[0].hi) == (-1.0, 1.0)
    with pytest.raises(UnknownParam, match="nope"):
        build_param_space(sch, ["nope"])
    with pytest.raises(ParamValueError, match="empty range"):
        parse_range("exposure=2:1")
    with pytest.raises(ParamValueError, match="outside darktable"):
        build_param_space(sch, ["exposure"], ranges={"exposure": (-30.0, 1.0)})
    assert parse_range("exposure=-1:2.5") == ("exposure", (-1.0, 2.5))


def test_array_elements_are_params_and_defaults_are_darktables(schemas) -> None:
    """An array's element is a free or fixed param by the name darktable's introspection gives it, with the
    element's range; every free param's default (where a sparse draw leaves it) is darktable's: color
    calibration's mixing diagonal 1 (its init()), not introspection's 0."""
    sch = schemas.get("channelmixerrgb")
    sp = build_param_space(sch, ["red[0]", "red[1]", "saturation[2]", "gamut"], fixed={"blue[2]": "1.25"})
    assert sp.names == ["red[0]", "red[1]", "saturation[2]", "gamut"] and sp.fixed == {"blue[2]": 1.25}
    assert [(s.lo, s.hi, s.default) for s in sp.specs] == [(0.5, 1.5, 1.0), (-0.5, 0.5, 0.0), (-1, 1, 0), (0, 3, 1)]
    for bad in ("red[4]", "red", "red[0].x"):
        with pytest.raises(UnknownParam):
            build_param_space(sch, [bad])
    curve = build_param_space(schemas.get("rgbcurve"), ["curve_nodes[1][2].y"]).specs[0]
    assert (curve.name, curve.kind, curve.lo, curve.hi) == ("curve_nodes[1][2].y", "float", 0.0, 1.0)


@pytest.mark.parametrize("sampler", ["sobol", "lhs", "uniform"])
def test_continuous_samplers_cover_ranges(schemas, sampler: str) -> None:
    sp = build_param_space(schemas.get("sharpen"))
    u = sample_unit(sp, 64, sampler, seed=3)
    assert u.shape == (64, 3) and u.min() >= 0 and u.max() <= 1
    # space-filling: every axis has points in each quarter
    for j in range(3):
        assert np.histogram(u[:, j], bins=4, range=(0, 1))[0].min() >= 8
    vals = sample_params(sp, 64, sampler, seed=3)
    for j, s in enumerate(sp.specs):  # the unit samples, mapped linearly onto the training ranges
        np.testing.assert_allclose([v[s.name] for v in vals], s.lo + (s.hi - s.lo) * u[:, j], rtol=1e-6, err_msg=s.name)
    assert (sp.spec("radius").lo, sp.spec("radius").hi, sp.spec("amount").lo, sp.spec("amount").hi) == (0.5, 8, 0, 2)
    assert np.array_equal(u, sample_unit(sp, 64, sampler, seed=3))  # deterministic
    assert not np.array_equal(u, sample_unit(sp, 64, sampler, seed=4))


def test_lhs_is_latin(schemas) -> None:
    sp = build_param_space(schemas.get("sharpen"))
    u = sample_unit(sp, 10, "lhs", seed=0)
    for j in range(3):
        assert sorted(np.floor(u[:, j] * 10).astype(int)) == list(range(10))


def test_sobol_prefix_stable(schemas) -> None:
    sp = build_param_space(schemas.get("exposure"))
    a = sample_unit(sp, 16, "sobol", seed=1)
    b = sample_unit(sp, 8, "sobol", seed=1)
    c = sample_unit(sp, 8, "sobol", seed=1, start=8)
    assert np.array_equal(a[:8], b) and np.array_equal(a[8:], c)


def test_grid(schemas) -> None:
    sp = build_param_space(schemas.get("exposure"))
    g = grid(sp, 9)
    assert g.shape == (9, 2)
    assert sorted(set(g[:, 0])) == [0.0, 0.5, 1.0] and sorted(set(g[:, 1])) == [0.0, 0.5, 1.0]
    vals = sample_params(sp, 9, "grid")
    assert {v["exposure"] for v in vals} == {-2.0, 1.0, 4.0}


def test_enum_and_bool_sampled_over_values(schemas) -> None:
    sp = build_param_space(schemas.get("lowpass"), ["radius", "order", "lowpass_algo"])
    order_values = set(sp.spec("order").values)
    assert len(order_values) == 3
    vals = sample_params(sp, 300, "uniform", seed=0)
    counts = {v: sum(1 for x in vals if x["order"] == v) for v in order_values}
    assert all(70 <= c <= 130 for c in counts.values()), counts  # each value ~1/3
    assert {x["lowpass_algo"] for x in vals} == set(sp.spec("lowpass_algo").values)
    sp2 = build_param_space(schemas.get("vignette"), ["autoratio", "scale"])
    u = sample_unit(sp2, 64, "sobol", seed=0)
    assert set(np.unique(u[:, 0])) == {0.0, 1.0}
    got = [v["autoratio"] for v in sample_params(sp2, 64, "sobol")]
    assert set(got) == {True, False} and 24 <= sum(got) <= 40
    g = grid(sp, 12)  # 3 orders x 2 algos x 2 radius levels
    assert g.shape == (12, 3) and len({tuple(r) for r in g}) == 12


def test_parameterless_module_gets_upstream_variety(schemas) -> None:
    sp = build_param_space(schemas.get("colorin"))
    assert len(sp) == 0
    v = upstream_variety(schemas, "colorin")
    assert v is not None and v.module == "exposure" and v.space.names == ["exposure"]
    # up to demosaic the recorded input is the raw's own mosaic: varying an upstream module would
    # change darktable's input but not the recorded one; variety comes from raws and crops
    assert upstream_variety(schemas, "demosaic") is None and upstream_variety(schemas, "highlights") is None


def test_sparse_moves_few_sliders_from_the_defaults(schemas) -> None:
    from darkproxy.data.ranges import ZOO_MODULES
    from darkproxy.data.sampling import DENSE_SHARE, SPARSE_MAX_MOVED

    sp = build_param_space(schemas.get("colorbalancergb"), list(ZOO_MODULES["colorbalancergb"].free))
    base = np.clip(sp.normalize(sp.defaults()), 0, 1)
    u = sample_unit(sp, 400, "sparse", seed=5)
    moved = (np.abs(u - base) > 1e-9).sum(1)
    sparse_rows = moved <= SPARSE_MAX_MOVED
    # 1-3 sliders moved in ~3/4 of the rows, (nearly) all 18 in the rest
    assert moved.min() >= 1 and abs(sparse_rows.mean() - (1 - DENSE_SHARE)) < 0.07
    assert np.median(moved[~sparse_rows]) == len(sp)
    assert set(np.unique(moved[sparse_rows])) == {1, 2, 3}
    # every slider gets moved, over its whole range
    for j in range(len(sp)):
        m = np.abs(u[:, j] - base[j]) > 1e-9
        assert m.sum() > 40 and u[m, j].min() < 0.1 and u[m, j].max() > 0.9
    # row i depends on (seed, i) only: a dataset can grow
    assert np.array_equal(u[100:110], sample_unit(sp, 10, "sparse", seed=5, start=100))
    # mixed: the same rows, half of them (not a quarter) moving every slider
    from darkproxy.data.sampling import MIXED_DENSE_SHARE

    mx = sample_unit(sp, 400, "mixed", seed=5)
    mixed_sparse = (np.abs(mx - base) > 1e-9).sum(1) <= SPARSE_MAX_MOVED
    assert abs(mixed_sparse.mean() - (1 - MIXED_DENSE_SHARE)) < 0.07 and not (mixed_sparse & ~sparse_rows).any()
    assert np.array_equal(mx[~sparse_rows], u[~sparse_rows])  # a row dense in sparse is the same row here
    assert np.array_equal(mx[100:110], sample_unit(sp, 10, "mixed", seed=5, start=100))
    # edges: mixed's rows and sliders, half the rows' values from the arcsine law (more near the ends)
    from darkproxy.data.sampling import EDGE_SHARE

    ed = sample_unit(sp, 400, "edges", seed=5)
    assert np.array_equal(np.abs(ed - base) > 1e-9, np.abs(mx - base) > 1e-9)
    arcsine_rows = (ed != mx).any(1)
    assert abs(arcsine_rows.mean() - EDGE_SHARE) < 0.07
    moved_m, moved_e = mx[np.abs(mx - base) > 1e-9], ed[np.abs(ed - base) > 1e-9]
    near = lambda v: ((v < 0.02) | (v > 0.98)).mean()  # noqa: E731
    assert near(moved_e) > 2.0 * near(moved_m)  # arcsine: 18 % within 2 % of an end, uniform 4 %
    assert np.array_equal(ed[100:110], sample_unit(sp, 10, "edges", seed=5, start=100))


def test_zoo_ranges_are_curated_and_inside_darktable(schemas) -> None:
    """Every zoo slider has a curated range inside darktable's limits, never +-FLT_MAX; a module
    left to the fallback no longer gets FLT_MAX-wide params (graduatednd's offset sampled 1.6e38)."""
    from darkproxy.data.ranges import DEFAULT_RANGES, FLT_MAX_LIKE, ZOO_MODULES

    assert len(ZOO_MODULES) >= 20
    for m, z in ZOO_MODULES.items():
        sp = build_param_space(schemas.get(m), list(z.free), fixed=dict(z.fixed))
        assert sp.names == list(z.free)
        for s in sp.specs:
            assert s.name in DEFAULT_RANGES[m], (m, s.name)
            f = schemas.get(m).scalar(s.name)
            assert f.min <= s.lo < s.hi <= f.max and abs(s.hi - s.lo) < FLT_MAX_LIKE, (m, s)
    assert "offset" not in default_free(schemas.get("graduatednd"))  # not in DEFAULT_FREE: the fallback
    sch = schemas.get("ashift")  # cl/cr/ct/cb are +-FLT_MAX in 4.2.1's introspection
    assert not {"cl", "cr", "ct", "cb"} & set(default_free(sch))


def test_angles_carry_their_period_but_files_keep_their_form(schemas) -> None:
    """Hues get their turn from data.ranges.PERIODIC when a space is built or read back; run and dataset
    files never hold it (a shipped run's param_space compares equal to a fresh one's)."""
    from darkproxy.data.paramspace import ParamSpace

    sp = build_param_space(schemas.get("colorbalancergb"), ["midtones_H", "hue_angle", "contrast"])
    assert [(s.period, s.full_turn) for s in sp.specs] == [(360.0, True), (360.0, False), (0.0, False)]
    js = sp.to_json()
    assert all("period" not in s for s in js["specs"])
    assert with_periods(ParamSpace.from_json(js)) == sp  # as the dataset and proxy loaders read it back
    cz = build_param_space(schemas.get("colorize"))
    assert cz.spec("hue").period == 1.0 and cz.spec("hue").full_turn and cz.spec("saturation").period == 0.0
