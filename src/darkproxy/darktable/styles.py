"""darktable styles (``.dtstyle``): write, read, and apply with darktable-cli.

A style is a list of history items (module, params version, params, enabled,
blend params) that darktable appends to (or, with ``--style-overwrite``, puts in
place of) an image's history. The file format is darktable's own
(``dt_styles_save_to_file`` in darktable's ``src/common/styles.c``): params in
the same text encodings as an XMP sidecar (hex or ``gz``-base64).

``darktable-cli --style NAME`` applies a style by name from the style database
of its config directory; darktable-cli cannot import one itself, so
:func:`style_import_lua` imports the file with darktable's own importer
(``darktable.styles.import``, through ``--luacmd``, in the same darktable-cli
process; darktable builds with Lua, as Debian's, support it).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from darkproxy.darktable.params import decode_blob_text
from darkproxy.darktable.xmp import HistoryItem
from darkproxy.errors import XmpError
from darkproxy.fsutil import write_text_atomic


@dataclass
class Style:
    """A darktable style: ``name``, ``description`` and its ``items`` (history items, in order)."""

    name: str
    items: list[HistoryItem] = field(default_factory=list)
    description: str = ""

    def to_string(self) -> str:
        """The ``.dtstyle`` XML darktable writes (and reads)."""
        root = ET.Element("darktable_style", version="1.0")
        info = ET.SubElement(root, "info")
        ET.SubElement(info, "name").text = self.name
        ET.SubElement(info, "description").text = self.description
        style = ET.SubElement(root, "style")
        for num, it in enumerate(self.items):
            pl = ET.SubElement(style, "plugin")
            fields = {
                "num": str(num),
                "module": str(it.modversion),
                "operation": it.operation,
                "op_params": it.params_as_text(),
                "enabled": "1" if it.enabled else "0",
                "blendop_params": it.blendop_as_text() or "",
                "blendop_version": str(it.blendop_version if it.blendop_version is not None else 0),
                "multi_priority": str(it.multi_priority),
                "multi_name": it.multi_name,
            }
            for k, v in fields.items():
                ET.SubElement(pl, k).text = v
        ET.indent(root, space=" ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically."""
        return write_text_atomic(path, self.to_string())


def style_from_items(name: str, items: Iterable[HistoryItem], description: str = "") -> Style:
    """A style of ``items`` (copied), e.g. a history's items for the modules a match changed."""
    from dataclasses import replace

    return Style(name, [replace(it, extra=dict(it.extra)) for it in items], description)


def read_style(path: str | os.PathLike[str]) -> Style:
    """Parse a ``.dtstyle``; one-line :class:`XmpError` when it is not a darktable style."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError) as e:
        raise XmpError(f"{p} is not a readable darktable style: {e}") from None
    if root.tag != "darktable_style":
        raise XmpError(f"{p} is not a darktable style (root element <{root.tag}>)")
    name = (root.findtext("info/name") or "").strip()
    if not name:
        raise XmpError(f"{p}: the style has no name")
    items = []
    for pl in root.findall("style/plugin"):

        def text(k: str, pl: ET.Element = pl) -> str:
            return (pl.findtext(k) or "").strip()

        try:
            blend = text("blendop_params")
            items.append(
                HistoryItem(
                    operation=text("operation"),
                    modversion=int(text("module")),
                    params=decode_blob_text(text("op_params")),
                    enabled=text("enabled") != "0",
                    multi_name=text("multi_name"),
                    multi_priority=int(text("multi_priority") or 0),
                    blendop_version=int(text("blendop_version") or 0) or None,
                    blendop_params=decode_blob_text(blend) if blend else None,
                )
            )
        except (ValueError, XmpError) as e:
            raise XmpError(f"{p}: plugin {text('operation') or '?'}: {e}") from None
    return Style(name, items, (root.findtext("info/description") or "").strip())


def style_import_lua(path: str | os.PathLike[str]) -> str:
    """The ``--luacmd`` that makes darktable import the style file ``path`` (its own importer)."""
    p = str(Path(path).resolve())
    if "]]" in p:
        raise XmpError(f"cannot pass {p} to darktable's Lua (the path contains ']]')")
    return f'local dt = require "darktable"; dt.styles.import([[{p}]])'
