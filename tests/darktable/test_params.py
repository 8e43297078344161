"""Params codec: exact round trips of the blobs darktable writes, and validation."""

from __future__ import annotations

import struct

import pytest

from darkproxy.darktable.params import (
    decode_blob_text,
    decode_params,
    default_blob,
    encode_blob_text,
    encode_params,
    set_params,
)
from darkproxy.errors import ParamValueError, UnknownParam, XmpError


@pytest.fixture(scope="module")
def default_sidecar(dt, tiny_raw):
    return dt.default_history(tiny_raw)


def test_every_default_item_round_trips_byte_identically(dt, default_sidecar) -> None:
    seen_gz = seen_hex = 0
    for it in default_sidecar.items:
        sch = dt.schemas.get(it.operation)
        assert it.modversion == sch.version
        values = decode_params(sch, it.params)
        # re-encode onto a zeroed buffer: every byte must come back from the values
        assert encode_params(sch, values, base=bytes(sch.size)) == it.params, it.operation
        assert encode_params(sch, values, base=it.params) == it.params
        # and the text form darktable wrote (hex or gz) is reproduced exactly
        assert encode_blob_text(it.params) == it.params_text, it.operation
        seen_gz += it.params_text.startswith("gz")
        seen_hex += not it.params_text.startswith("gz")
    assert seen_gz and seen_hex  # both encodings were exercised


def test_set_exposure_changes_only_its_bytes(dt, default_sidecar) -> None:
    sch = dt.schemas.get("exposure")
    blob = default_sidecar.find("exposure").params
    new = set_params(sch, blob, {"exposure": "1.5"})
    off = sch.field("exposure").offset
    assert struct.unpack_from("<f", new, off)[0] == 1.5
    assert new[:off] == blob[:off] and new[off + 4 :] == blob[off + 4 :]


def test_enum_by_name_and_bool_strings(dt) -> None:
    sch = dt.schemas.get("exposure")
    blob = set_params(sch, default_blob(sch), {"mode": "EXPOSURE_MODE_DEFLICKER", "compensate_exposure_bias": "true"})
    v = decode_params(sch, blob)
    assert v["mode"] == 1 and v["compensate_exposure_bias"] is True


def test_nested_and_array_values(dt) -> None:
    sch = dt.schemas.get("tonecurve")
    v = decode_params(sch, default_blob(sch))
    assert len(v["tonecurve"]) == 3 and len(v["tonecurve"][0]) == sch.field("tonecurve").element.count
    v["tonecurve"][0][1]["x"] = 0.25
    blob = encode_params(sch, v, base=default_blob(sch))
    assert decode_params(sch, blob)["tonecurve"][0][1]["x"] == 0.25


def test_string_field(dt) -> None:
    sch = dt.schemas.get("colorin")
    blob = set_params(sch, default_blob(sch), {"filename": "my.icc"})
    assert decode_params(sch, blob)["filename"] == "my.icc"


@pytest.mark.parametrize(
    "updates, err, msg",
    [
        ({"exposure": "30"}, ParamValueError, r"outside darktable's range \[-18, 18\]"),
        ({"exposure": "bright"}, ParamValueError, "expects a number"),
        ({"mode": "SOMETIMES"}, ParamValueError, "expects one of"),
        ({"compensate_exposure_bias": "maybe"}, ParamValueError, "expects a boolean"),
        ({"exposur": "1"}, UnknownParam, "no parameter 'exposur'"),
    ],
)
def test_bad_values(dt, updates, err, msg) -> None:
    sch = dt.schemas.get("exposure")
    with pytest.raises(err, match=msg):
        set_params(sch, default_blob(sch), updates)


def test_clamp(dt) -> None:
    sch = dt.schemas.get("exposure")
    blob = set_params(sch, default_blob(sch), {"exposure": "30"}, clamp=True)
    assert decode_params(sch, blob)["exposure"] == 18.0


def test_truncated_and_corrupt_blobs(dt) -> None:
    sch = dt.schemas.get("exposure")
    with pytest.raises(XmpError, match=f"expects {len(default_blob(sch))}"):  # 24 bytes to v6, 28 at v7 (5.4)
        decode_params(sch, default_blob(sch)[:20])
    with pytest.raises(XmpError, match="neither hex nor gz"):
        decode_blob_text("zz12")
    with pytest.raises(XmpError, match="corrupt compressed"):
        decode_blob_text("gz12eJxjYIAACQYYOOHE")


def test_array_elements_by_name(dt) -> None:
    """An element of an array param by the name introspection gives it: set in place (the rest of the array
    and every other byte as they were), read back by param_value; a wrong index or member is refused."""
    from darkproxy.darktable.params import flatten, param_value

    sch = dt.schemas.get("rgbcurve")
    blob = default_blob(sch)
    new = set_params(sch, blob, {"curve_nodes[0][1].y": "0.3", "curve_nodes[2][0].x": 0.25})
    v = flatten(decode_params(sch, new))
    old = flatten(decode_params(sch, blob))
    assert param_value(v, "curve_nodes[0][1].y") == pytest.approx(0.3) and v["curve_nodes"][2][0]["x"] == 0.25
    v["curve_nodes"][0][1]["y"] = old["curve_nodes"][0][1]["y"]
    v["curve_nodes"][2][0]["x"] = old["curve_nodes"][2][0]["x"]
    assert v == old  # nothing else moved
    assert sum(a != b for a, b in zip(blob, new, strict=True)) <= 8  # two floats rewritten
    mix = dt.schemas.get("channelmixerrgb")
    vals = flatten(decode_params(mix, set_params(mix, default_blob(mix), {"red[1]": -0.25})))
    assert vals["red"][1] == -0.25 and param_value(vals, "red[1]") == -0.25
    for bad in ("red[4]", "temperature[0]", "red[0].x"):
        with pytest.raises(UnknownParam):
            set_params(mix, default_blob(mix), {bad: 1.0})
    with pytest.raises(KeyError):
        param_value(vals, "red[7]")
    # a default for what is absent (an out-of-range element, an unknown name), never for what is there
    assert param_value(vals, "red[7]", 0.5) == 0.5 and param_value(vals, "nothing[0]", 0.5) == 0.5
    assert param_value(vals, "red[1]", 0.5) == -0.25
