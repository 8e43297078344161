"""darktable styles (.dtstyle): written as darktable reads them, read back, malformed ones refused.

That darktable-cli applies a written style is checked in tests/test_match.py (a real render)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tonemap import tone_mapper


def test_style_roundtrip_and_malformed(dt, tiny_raw: Path, tmp_path: Path) -> None:
    from darkproxy.darktable.styles import read_style, style_from_items, style_import_lua
    from darkproxy.errors import XmpError

    hist = dt.edit(dt.default_history(tiny_raw), {"exposure": {"exposure": 1.5}})
    items = [hist.find("exposure"), hist.find(tone_mapper(hist))]  # filmic rgb; darktable 5.4's default: sigmoid
    path = style_from_items("my look", items, "a test").write(tmp_path / "look.dtstyle")
    back = read_style(path)
    assert back.name == "my look" and back.description == "a test"
    assert [(i.operation, i.modversion, i.params, i.enabled) for i in back.items] == [
        (i.operation, i.modversion, i.params, i.enabled) for i in items
    ]
    assert back.items[0].blendop_params == items[0].blendop_params
    assert str(path.resolve()) in style_import_lua(path)

    (tmp_path / "bad.dtstyle").write_text("<darktable_style><info><name>x</name></info><style><plugin>")
    with pytest.raises(XmpError, match="not a readable darktable style") as e:
        read_style(tmp_path / "bad.dtstyle")
    assert "\n" not in str(e.value)
    (tmp_path / "other.xml").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    with pytest.raises(XmpError, match="not a darktable style"):
        read_style(tmp_path / "other.xml")
