"""darktable XMP sidecars: read, edit and write history stacks.

A :class:`Sidecar` keeps the whole XML document (tags, masks history, ratings...)
and exposes the history as :class:`HistoryItem` records. Writing regenerates
only the ``darktable:history`` sequence and ``darktable:history_end``; every
other element and attribute is written back as it was read (but a compressed copy's masks history:
only the drawn forms darktable's pipe uses, on the first item: :meth:`Sidecar.compressed`). Params blobs keep
their original text when their bytes are unchanged, so an unedited sidecar is
rewritten byte-for-byte in every blob.
"""

from __future__ import annotations

import copy
import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from darkproxy.darktable.blendop import item_blend
from darkproxy.darktable.masks import active_forms, read_forms, write_forms
from darkproxy.darktable.params import decode_blob_text, decode_params, encode_blob_text
from darkproxy.darktable.schema import SchemaSet
from darkproxy.errors import XmpError
from darkproxy.fsutil import write_text_atomic

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "darktable": "http://darktable.sf.net/",
}
DT = "{" + NS["darktable"] + "}"
RDF = "{" + NS["rdf"] + "}"
# a module instance in darkproxy's names: "exposure" (the first), "exposure#1" (multi_priority 1)
INSTANCE_SEP = "#"


def instance_key(module: str, instance: int = 0) -> str:
    """``"exposure"`` for darktable's first instance of a module, ``"exposure#1"`` for multi_priority 1."""
    return module if instance == 0 else f"{module}{INSTANCE_SEP}{instance}"


def parse_instance_key(key: str) -> tuple[str, int]:
    """``"exposure#1"`` -> ``("exposure", 1)``; ``"exposure"`` -> ``("exposure", 0)``."""
    module, sep, inst = key.partition(INSTANCE_SEP)
    if not sep:
        return key, 0
    if not inst.isdigit():
        raise XmpError(f"{key!r}: a module instance is MODULE{INSTANCE_SEP}N (N its multi_priority, e.g. exposure#1)")
    return module, int(inst)


# darktable 4.2's iop_order.c inserts these modules (newer than some custom orders) before another one
# into a custom order list that lacks them: (before, inserted), in its order
CUSTOM_ORDER_INSERTS = (
    ("nlmeans", "negadoctor"),
    ("negadoctor", "channelmixerrgb"),
    ("negadoctor", "censorize"),
    ("rgbcurve", "colorbalancergb"),
    ("ashift", "cacorrectrgb"),
    ("graduatednd", "crop"),
    ("colorbalance", "diffuse"),
    ("nlmeans", "blurs"),
    ("filmicrgb", "sigmoid"),
)
# history attributes written for every item, in darktable's order
_ITEM_KEYS = (
    "num",
    "operation",
    "enabled",
    "modversion",
    "params",
    "multi_name",
    "multi_priority",
    "blendop_version",
    "blendop_params",
)


@dataclass
class HistoryItem:
    """One entry of darktable's history stack."""

    operation: str
    modversion: int
    params: bytes
    enabled: bool = True
    multi_name: str = ""
    multi_priority: int = 0
    blendop_version: int | None = None
    blendop_params: bytes | None = None
    extra: dict[str, str] = field(default_factory=dict)  # other darktable:* attributes, kept as is
    params_text: str | None = None  # text as read (reused while bytes are unchanged)
    blendop_text: str | None = None
    upgraded_from: int | None = None  # the params version it was written by, darktable having upgraded it (no XMP)

    @property
    def key(self) -> tuple[str, int]:
        return (self.operation, self.multi_priority)

    def params_as_text(self) -> str:
        if self.params_text is not None and decode_blob_text(self.params_text) == self.params:
            return self.params_text
        return encode_blob_text(self.params)

    def blendop_as_text(self) -> str | None:
        if self.blendop_params is None:
            return None
        if self.blendop_text is not None and decode_blob_text(self.blendop_text) == self.blendop_params:
            return self.blendop_text
        return encode_blob_text(self.blendop_params)


@dataclass
class DecodedItem:
    """A history item with named params (``params`` is None when the item's
    modversion is not the installed module's; ``reason`` says why)."""

    item: HistoryItem
    params: dict[str, Any] | None
    reason: str | None = None

    @property
    def blend(self) -> dict[str, Any] | str | None:
        """The item's blend params decoded (:mod:`darkproxy.darktable.blendop`), ``None`` when it has
        none, or the one-line reason they cannot be read."""
        try:
            bp = item_blend(self.item)
        except XmpError as e:
            return str(e)
        return bp.to_json() if bp is not None else None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "operation": self.item.operation,
            "enabled": self.item.enabled,
            "modversion": self.item.modversion,
            "multi_priority": self.item.multi_priority,
            "multi_name": self.item.multi_name,
            "params": self.params,
            "blend": self.blend,
        }
        if self.item.upgraded_from is not None:
            d["upgraded_from"] = self.item.upgraded_from
        if self.reason:
            d["reason"] = self.reason
            d["params_blob"] = self.item.params_as_text()
        return d


def _get(li: ET.Element, key: str) -> str | None:
    """A history field, written either as attribute or as child element."""
    v = li.get(DT + key)
    if v is not None:
        return v
    child = li.find(DT + key)
    if child is not None:
        return (child.text or "").strip()
    return None


def _int(v: str | None, what: str, default: int | None = None) -> int:
    if v is None:
        if default is None:
            raise XmpError(f"history item lacks darktable:{what}")
        return default
    try:
        return int(v)
    except ValueError:
        raise XmpError(f"history item has a non-integer darktable:{what}={v!r}") from None


@dataclass
class Sidecar:
    """A darktable XMP sidecar (see module docstring)."""

    tree: ET.ElementTree
    items: list[HistoryItem]
    history_end: int
    path: Path | None = None

    # ------------------------------------------------------------------ reading
    @classmethod
    def parse(cls, text: str | bytes, path: Path | None = None) -> Sidecar:
        where = str(path) if path else "XMP"
        data = text.encode() if isinstance(text, str) else text
        try:
            for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
                if prefix and prefix not in ("ns0",):
                    ET.register_namespace(prefix, uri)
            tree = ET.ElementTree(ET.fromstring(data))
        except ET.ParseError as e:
            raise XmpError(f"{where} is not valid XML (malformed or truncated): {e}") from None
        desc = cls._description(tree, where)
        items: list[HistoryItem] = []
        hist = desc.find(DT + "history")
        if hist is not None:
            seq = hist.find(RDF + "Seq")
            for li in seq.findall(RDF + "li") if seq is not None else []:
                op = _get(li, "operation")
                if not op:
                    raise XmpError(f"{where}: history item without darktable:operation")
                ptext = _get(li, "params")
                if ptext is None:
                    raise XmpError(f"{where}: history item {op} has no darktable:params")
                btext = _get(li, "blendop_params")
                extra = {
                    k[len(DT) :]: v for k, v in li.attrib.items() if k.startswith(DT) and k[len(DT) :] not in _ITEM_KEYS
                }
                try:
                    params = decode_blob_text(ptext)
                    blend = decode_blob_text(btext) if btext else None
                except XmpError as e:
                    raise XmpError(f"{where}: history item {op}: {e}") from None
                bv = _get(li, "blendop_version")
                items.append(
                    HistoryItem(
                        operation=op,
                        modversion=_int(_get(li, "modversion"), "modversion"),
                        params=params,
                        enabled=_int(_get(li, "enabled"), "enabled", 1) != 0,
                        multi_name=_get(li, "multi_name") or "",
                        multi_priority=_int(_get(li, "multi_priority"), "multi_priority", 0),
                        blendop_version=int(bv) if bv not in (None, "") else None,
                        blendop_params=blend,
                        extra=extra,
                        params_text=ptext,
                        blendop_text=btext,
                    )
                )
        end_text = desc.get(DT + "history_end")
        history_end = _int(end_text, "history_end", len(items)) if end_text is not None else len(items)
        history_end = max(0, min(history_end, len(items)))
        return cls(tree=tree, items=items, history_end=history_end, path=path)

    @staticmethod
    def _description(tree: ET.ElementTree | ET.Element, where: str) -> ET.Element:
        root = tree.getroot() if isinstance(tree, ET.ElementTree) else tree
        assert root is not None  # a parsed document has a root
        descs = root.findall(".//" + RDF + "Description")
        for d in descs:
            if d.find(DT + "history") is not None or d.get(DT + "xmp_version") is not None:
                return d
        if descs:
            return descs[0]
        raise XmpError(f"{where} has no rdf:Description: not a darktable XMP sidecar")

    @property
    def description(self) -> ET.Element:
        return self._description(self.tree, str(self.path or "XMP"))

    @property
    def xmp_version(self) -> int | None:
        v = self.description.get(DT + "xmp_version")
        return int(v) if v and v.isdigit() else None

    @property
    def iop_order_version(self) -> int:
        """darktable's pipe order of this sidecar as darktable reads it (``common/exif.cc``,
        ``dt_exif_xmp_read_data``): ``xmp_version`` 4 and 5 the attribute (legacy, 1, when absent),
        3 legacy below 3 else v3.0 (2), older legacy. A sidecar without ``xmp_version`` (one darkproxy
        made from scratch) reads as v3.0, darktable's default for raws."""
        xv = self.xmp_version
        v = self.description.get(DT + "iop_order_version")
        n = int(v) if v and v.isdigit() else None
        if xv is None:
            return 2 if n is None else n
        if xv >= 4:
            return 1 if n is None else n
        if xv == 3:
            return 1 if n is None or n < 3 else 2
        return 1

    def pipe_order(self, schemas: SchemaSet) -> list[str]:
        """The module order darktable runs this sidecar's history in (each module at its first
        instance's place): see :meth:`instance_order`."""
        return list(dict.fromkeys(op for op, _ in self.instance_order(schemas)))

    def instance_order(self, schemas: SchemaSet) -> list[tuple[str, int]]:
        """The ``(module, instance)`` order darktable runs this sidecar's history in: its
        ``iop_order_list`` (a custom order, or any history with a second instance), with the modules
        darktable 4.2 inserts into an older custom list, else darktable's built-in order
        :attr:`iop_order_version` (first instances only). Raises :class:`XmpError` for an order
        darkproxy cannot read as darktable does (a sidecar of darktable < 3.0, whose history items
        carry their own order)."""
        xv = self.xmp_version
        if xv is not None and xv < 4 and any("iop_order" in it.extra for it in self.items):
            raise XmpError(
                f"{self.path or 'XMP'}: written by darktable before 3.0 (xmp_version {xv}): its history items carry "
                "their own pipe order, which darkproxy does not read"
            )
        text = self.description.get(DT + "iop_order_list") if xv is None or xv >= 4 else None
        if not text:
            return [(op, 0) for op in schemas.pipe_order(self.iop_order_version)]
        parts = [p.strip() for p in text.split(",")]
        if len(parts) % 2 or not all(p.isdigit() for p in parts[1::2]):
            raise XmpError(f"{self.path or 'XMP'}: malformed darktable:iop_order_list")
        order = list(dict.fromkeys(zip(parts[0::2], map(int, parts[1::2]), strict=True)))
        for before, new in CUSTOM_ORDER_INSERTS:  # iop_order.c dt_ioppr_get_iop_order_list, custom lists
            ops = [op for op, _ in order]
            if new not in ops and before in ops:
                order.insert(ops.index(before), (new, 0))
        return order

    # ------------------------------------------------------------------ queries
    def active_items(self) -> list[HistoryItem]:
        """Items below history_end (what darktable applies)."""
        return self.items[: self.history_end]

    def effective(self) -> list[HistoryItem]:
        """One item per (operation, instance): the last one below history_end,
        in order of first appearance (darktable's 'compress history')."""
        last: dict[tuple[str, int], HistoryItem] = {}
        order: list[tuple[str, int]] = []
        for it in self.active_items():
            if it.key not in last:
                order.append(it.key)
            last[it.key] = it
        return [last[k] for k in order]

    def find(self, operation: str, multi_priority: int = 0) -> HistoryItem | None:
        for it in reversed(self.active_items()):
            if it.key == (operation, multi_priority):
                return it
        return None

    def decode(self, schemas: SchemaSet) -> list[DecodedItem]:
        """Every history item with named params where the installed module
        version matches; other items stay opaque with a reason."""
        out = []
        for it in self.items:
            sch = schemas.modules.get(it.operation)
            if sch is None:
                reason = schemas.without_introspection.get(it.operation) or "module unknown to the installed darktable"
                out.append(DecodedItem(it, None, f"{it.operation}: {reason}"))
            elif sch.version != it.modversion:
                out.append(
                    DecodedItem(
                        it,
                        None,
                        f"modversion {it.modversion} differs from installed {it.operation} version {sch.version}; "
                        "kept as an opaque blob",
                    )
                )
            else:
                try:
                    out.append(DecodedItem(it, decode_params(sch, it.params)))
                except XmpError as e:
                    out.append(DecodedItem(it, None, str(e)))
        return out

    # ------------------------------------------------------------------ editing
    def compressed(self) -> Sidecar:
        """A copy whose history is :meth:`effective` (history_end = its length), its masks history the forms
        darktable's pipe uses (:func:`darkproxy.darktable.masks.active_forms`), attached to the first item."""
        items = [replace(it, extra=dict(it.extra)) for it in self.effective()]
        out = Sidecar(tree=copy.deepcopy(self.tree), items=items, history_end=len(items), path=None)
        if forms := read_forms(self.description):  # the drawn forms the pipe uses, on the first item (masks.py)
            write_forms(out.description, [replace(f, num=0) for f in active_forms(forms, self.history_end).values()])
        return out

    def copy(self) -> Sidecar:
        return Sidecar(
            tree=copy.deepcopy(self.tree),
            items=[replace(it, extra=dict(it.extra)) for it in self.items],
            history_end=self.history_end,
            path=None,
        )

    def set_item(
        self,
        operation: str,
        *,
        params: bytes | None = None,
        enabled: bool | None = None,
        modversion: int | None = None,
        multi_priority: int = 0,
    ) -> HistoryItem:
        """Set a module's state in a compressed history: edit its effective item in
        place, or append a new one (params and modversion required then; blend
        params are copied from an item darktable wrote that does not blend, else left out:
        darktable's defaults, no blending)."""
        it = self.find(operation, multi_priority)
        if it is None:
            if params is None or modversion is None:
                raise XmpError(f"{operation} is not in the history; params and modversion are needed to add it")
            template = next((x for x in self.items if _blends_not(x)), None)
            it = HistoryItem(
                operation=operation,
                modversion=modversion,
                params=params,
                enabled=True if enabled is None else enabled,
                multi_priority=multi_priority,
                blendop_version=template.blendop_version if template else None,
                blendop_params=template.blendop_params if template else None,
                blendop_text=template.blendop_text if template else None,
            )
            # insert at history_end so that it is active
            self.items.insert(self.history_end, it)
            self.history_end += 1
            return it
        if params is not None:
            it.params = params
        if modversion is not None:
            it.modversion = modversion
        if enabled is not None:
            it.enabled = enabled
        return it

    # ------------------------------------------------------------------ writing
    def to_string(self) -> str:
        tree = copy.deepcopy(self.tree)
        desc = self._description(tree, "XMP")
        desc.set(DT + "history_end", str(self.history_end))
        hist = desc.find(DT + "history")
        if hist is None:
            hist = ET.SubElement(desc, DT + "history")
        for child in list(hist):
            hist.remove(child)
        seq = ET.SubElement(hist, RDF + "Seq")
        for i, it in enumerate(self.items):
            li = ET.SubElement(seq, RDF + "li")
            attrs: list[tuple[str, str | None]] = [
                ("num", str(i)),
                ("operation", it.operation),
                ("enabled", "1" if it.enabled else "0"),
                ("modversion", str(it.modversion)),
                ("params", it.params_as_text()),
                ("multi_name", it.multi_name),
                ("multi_priority", str(it.multi_priority)),
                ("blendop_version", str(it.blendop_version) if it.blendop_version is not None else None),
                ("blendop_params", it.blendop_as_text()),
            ]
            for k, v in attrs:
                if v is not None:
                    li.set(DT + k, v)
            for k, v in it.extra.items():
                li.set(DT + k, v)
        ET.indent(tree, space=" ")
        root = tree.getroot()
        assert root is not None  # a parsed document has a root
        body = ET.tostring(root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file + rename)."""
        return write_text_atomic(path, self.to_string())


def _blends_not(it: HistoryItem) -> bool:
    """Has ``it`` blend params that darktable reads as no blending (a template for a new item)?"""
    try:
        bp = item_blend(it)
    except XmpError:
        return False
    return bp is not None and not bp.enabled


def read_xmp(path: str | os.PathLike[str]) -> Sidecar:
    """Read a darktable XMP sidecar. Raises :class:`XmpError` if missing or malformed."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise XmpError(f"XMP file {p} does not exist") from None
    except OSError as e:
        raise XmpError(f"cannot read XMP file {p}: {e.strerror}") from None
    if not data.strip():
        raise XmpError(f"XMP file {p} is empty")
    return Sidecar.parse(data, path=p)


def history_summary(items: Iterable[HistoryItem]) -> list[dict[str, Any]]:
    """Compact record of a history (for manifests and meta.json)."""
    return [
        {
            "operation": it.operation,
            "multi_priority": it.multi_priority,
            "enabled": it.enabled,
            "modversion": it.modversion,
            "params": it.params_as_text(),
        }
        for it in items
    ]
