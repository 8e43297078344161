"""Parameter schemas read from darktable's own introspection."""

from __future__ import annotations

import json

import pytest

from darkproxy.darktable.introspect import READER_VERSION
from darkproxy.darktable.schema import load_schema_snapshot, load_schemas
from darkproxy.errors import UnknownModule, UnknownParam
from tests.conftest import run_cli


def test_covers_every_module_with_introspection(dt) -> None:
    s = dt.schemas
    assert len(s.modules) >= 80
    assert len(s.modules) + len(s.without_introspection) == len(s.module_versions)
    if dt.version == "4.2.1":
        assert len(s.modules) == 83
        assert set(s.without_introspection) == {"clahe", "overexposed", "rawoverexposed"}


def test_exposure_schema_from_darktable(dt) -> None:
    f = dt.schemas.get("exposure").field("exposure")
    assert (f.type, f.min, f.max, f.default) == ("float", -18.0, 18.0, 0.0)
    mode = dt.schemas.get("exposure").field("mode")
    assert mode.type == "enum" and mode.values == {"EXPOSURE_MODE_MANUAL": 0, "EXPOSURE_MODE_DEFLICKER": 1}


def test_every_schema_offsets_increase_within_struct(dt) -> None:
    for name, sch in dt.schemas.modules.items():
        last_end = 0
        for f in sch.fields:
            assert f.offset >= last_end, f"{name}.{f.name} overlaps the previous field"
            assert f.offset + f.size <= sch.size, f"{name}.{f.name} ends past the struct"
            if f.type == "array" and f.element is not None:
                assert f.element.size * f.count == f.size, f"{name}.{f.name} array size"
            last_end = f.offset + f.size


def test_nested_struct_and_arrays_and_strings(dt) -> None:
    tc = dt.schemas.get("tonecurve")
    curve = tc.field("tonecurve")
    assert curve.type == "array" and curve.count == 3 and curve.element.type == "array"
    assert curve.element.element.type == "struct"
    colorin = dt.schemas.get("colorin")
    assert colorin.field("filename").is_string


def test_unknown_module_and_param_hints(dt) -> None:
    with pytest.raises(UnknownModule, match="did you mean exposure"):
        dt.schemas.get("exposur")
    with pytest.raises(UnknownParam, match="no parameter 'expo'"):
        dt.schemas.get("exposure").field("expo")


def test_pipe_order_from_darktable(dt) -> None:
    order = dt.schemas.pipe_order(2)
    assert (
        order.index("rawprepare")
        < order.index("demosaic")
        < order.index("exposure")
        < order.index("colorbalancergb")
        < order.index("colorout")
    )
    assert set(dt.schemas.modules) <= set(order)


def test_snapshot_matches_live_darktable(dt) -> None:
    snap = load_schema_snapshot()
    if snap.darktable_version != dt.version:
        pytest.skip(f"shipped snapshot is for darktable {snap.darktable_version}")
    for name in ("exposure", "colorbalancergb", "sharpen", "filmicrgb"):
        assert snap.get(name).to_json()["fields"] == dt.schemas.get(name).to_json()["fields"]


def test_cache_is_written_per_version(dt, dp_home) -> None:
    dt.schemas  # noqa: B018 - loads and caches
    assert (dp_home / "cache" / "schemas" / f"darktable-{dt.version}.json").is_file()


def test_cache_of_an_older_reader_is_read_again(dt, tmp_path) -> None:
    load_schemas(dt.install, tmp_path)
    cache = tmp_path / f"darktable-{dt.version}.json"
    raw = json.loads(cache.read_text())
    assert raw["reader"] == READER_VERSION
    del raw["reader"]  # as darkproxy wrote it before it read darktable 5's pipe orders
    raw["pipe_orders"] = {"1": raw["pipe_orders"]["1"]}
    cache.write_text(json.dumps(raw))
    again = load_schemas(dt.install, tmp_path)
    assert again.source == "darktable"
    assert again.pipe_order(2) == dt.schemas.pipe_order(2)
    assert json.loads(cache.read_text())["reader"] == READER_VERSION


def test_cli_params_json_contract() -> None:
    r = run_cli("params", "exposure", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"module", "version", "size", "fields"} <= set(d)
    f = next(x for x in d["fields"] if x["name"] == "exposure")
    assert (f["min"], f["max"], f["default"]) == (-18.0, 18.0, 0.0)
    assert all({"name", "type", "offset", "size"} <= set(x) for x in d["fields"])
    mode = next(x for x in d["fields"] if x["name"] == "mode")
    assert mode["values"]["EXPOSURE_MODE_MANUAL"] == 0


def test_cli_modules_json_contract() -> None:
    r = run_cli("modules", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) >= 80
    assert all({"name", "version", "n_fields"} <= set(x) for x in rows)


def test_cli_unknown_module() -> None:
    r = run_cli("params", "nosuchmodule")
    assert r.returncode == 2 and "unknown darktable module 'nosuchmodule'" in r.stderr
