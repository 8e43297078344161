"""XMP sidecars: read, rewrite, and darktable renders what we write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from darkproxy.darktable.render import RenderJob
from darkproxy.darktable.xmp import Sidecar, read_xmp
from darkproxy.errors import XmpError
from tests.conftest import run_cli
from tests.darktable.render_noise import assert_same_render


@pytest.fixture(scope="module")
def darktable_xmp(dt, tiny_raw, dp_home) -> Path:
    """The sidecar darktable itself wrote on import (cached by default_history)."""
    dt.default_history(tiny_raw)
    return next((dp_home / "cache" / "histories").glob(f"{tiny_raw.stem}-*.xmp"))


def test_rewritten_xmp_keeps_every_item_and_blob(darktable_xmp: Path, tmp_path: Path) -> None:
    a = read_xmp(darktable_xmp)
    out = a.write(tmp_path / "rewritten.xmp")
    b = read_xmp(out)
    assert b.history_end == a.history_end and len(b.items) == len(a.items) >= 8
    for x, y in zip(a.items, b.items, strict=True):
        assert (x.operation, x.enabled, x.modversion, x.multi_priority, x.multi_name) == (
            y.operation,
            y.enabled,
            y.modversion,
            y.multi_priority,
            y.multi_name,
        )
        assert x.params == y.params and x.params_text == y.params_text
        assert x.blendop_params == y.blendop_params and x.blendop_version == y.blendop_version
    # attributes outside the history survive
    assert b.description.get("{http://darktable.sf.net/}auto_presets_applied") == "1"


def test_rewritten_xmp_renders_identically(dt, tiny_raw: Path, darktable_xmp: Path, tmp_path: Path) -> None:
    orig = read_xmp(darktable_xmp)
    rewritten = Sidecar.parse(orig.to_string())
    r = dt.renderer(max_size=96)
    res = r.render_batch(
        [RenderJob(tiny_raw, orig, tmp_path / "a.tif"), RenderJob(tiny_raw, rewritten, tmp_path / "b.tif")]
    )
    from darkproxy.darktable.render import read_tiff

    assert_same_render(read_tiff(res[0]), read_tiff(res[1]), "darktable's sidecar vs ours")


def test_history_end_and_effective(darktable_xmp: Path) -> None:
    s = read_xmp(darktable_xmp)
    s.history_end = 3
    eff = s.effective()
    assert [it.operation for it in eff] == [it.operation for it in s.items[:3]]


def test_malformed_and_truncated(tmp_path: Path, darktable_xmp: Path) -> None:
    bad = tmp_path / "bad.xmp"
    bad.write_text("<x:xmpmeta><rdf:RDF>")
    with pytest.raises(XmpError, match="not valid XML"):
        read_xmp(bad)
    trunc = tmp_path / "trunc.xmp"
    trunc.write_bytes(darktable_xmp.read_bytes()[:700])
    with pytest.raises(XmpError, match="malformed or truncated"):
        read_xmp(trunc)
    with pytest.raises(XmpError, match="does not exist"):
        read_xmp(tmp_path / "missing.xmp")
    empty = tmp_path / "empty.xmp"
    empty.write_text("")
    with pytest.raises(XmpError, match="empty"):
        read_xmp(empty)


def test_cli_xmp_show_json(darktable_xmp: Path, tmp_path: Path) -> None:
    # make one item come from "another version": it must stay opaque, with a reason
    s = read_xmp(darktable_xmp)
    s.find("exposure").modversion = 5
    path = s.write(tmp_path / "mixed.xmp")
    r = run_cli("xmp", "show", str(path), "--json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert all({"operation", "enabled", "modversion", "multi_priority", "params"} <= set(i) for i in items)
    exp = next(i for i in items if i["operation"] == "exposure")
    assert exp["params"] is None and "modversion 5" in exp["reason"]
    raw = next(i for i in items if i["operation"] == "rawprepare")
    assert isinstance(raw["params"]["raw_black_level_separate"], list)


def test_cli_xmp_show_malformed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xmp"
    bad.write_text("<<<")
    r = run_cli("xmp", "show", str(bad))
    assert r.returncode == 2 and "not valid XML" in r.stderr and r.stderr.count("\n") == 1


DTNS = "{http://darktable.sf.net/}"


def test_pipe_order_as_darktable_reads_it(dt, darktable_xmp: Path) -> None:
    """The order a sidecar's history runs in (common/exif.cc and iop_order.c): darktable's own sidecar the
    built-in v3.0 order (v5.0 from darktable 5.0); a custom list (iop_order_version 0) as listed, each module
    at its first instance, with the modules darktable 4.2 inserts into an older list; xmp_version 4 without
    iop_order_version the legacy order; a malformed list and a pre-3.0 per-item order refused in one line."""
    s = read_xmp(darktable_xmp)
    v30 = dt.schemas.pipe_order(2)
    assert s.xmp_version is not None and s.xmp_version >= 4
    assert s.iop_order_version == (4 if dt.install.version_tuple >= (5, 0) else 2)  # v5.0 is 5.0's raw default
    assert s.pipe_order(dt.schemas) == dt.schemas.pipe_order(s.iop_order_version)
    # a darktable 3.4 custom order: no sigmoid, colorbalancergb... and exposure moved after filmicrgb
    old = [m for m in v30 if m not in ("sigmoid", "colorbalancergb", "exposure")]
    old.insert(old.index("filmicrgb") + 1, "exposure")
    listed = [f"{m},0" for m in old]
    listed.insert(listed.index("exposure,0") + 1, "exposure,1")
    s.description.set(DTNS + "iop_order_version", "0")
    s.description.set(DTNS + "iop_order_list", ",".join(listed))
    order = Sidecar.parse(s.to_string()).pipe_order(dt.schemas)
    assert order.index("exposure") == order.index("filmicrgb") + 1 and order.count("exposure") == 1
    assert order.index("sigmoid") == order.index("filmicrgb") - 1  # inserted before filmicrgb, as darktable
    assert order.index("colorbalancergb") == order.index("rgbcurve") - 1
    s.description.attrib.pop(DTNS + "iop_order_list")
    with pytest.raises(Exception, match="pipe order 0 is not known"):
        s.pipe_order(dt.schemas)
    s.description.set(DTNS + "iop_order_list", "exposure,0,colorin")
    with pytest.raises(XmpError, match="malformed darktable:iop_order_list"):
        s.pipe_order(dt.schemas)
    s.description.attrib.pop(DTNS + "iop_order_list")
    s.description.attrib.pop(DTNS + "iop_order_version")
    assert s.iop_order_version == 1 and s.pipe_order(dt.schemas) == dt.schemas.pipe_order(1)
    s.description.set(DTNS + "xmp_version", "2")
    s.items[0].extra["iop_order"] = "12.0"
    with pytest.raises(XmpError, match="before 3.0"):
        s.pipe_order(dt.schemas)
