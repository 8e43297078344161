"""Typed parameter schemas of darktable modules, read from darktable itself.

:func:`load_schemas` returns ``{module_name: ModuleSchema}`` for every module
that has introspection. Schemas are cached as JSON per darktable version in
``<home>/cache/schemas/darktable-<version>.json``; a snapshot for darktable
4.2.1 ships with the package so that a machine without darktable's plugin
libraries can still decode and encode params (see :func:`load_schema_snapshot`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from darkproxy.darktable.introspect import READER_VERSION, extract_schemas
from darkproxy.darktable.locate import DarktableInstall
from darkproxy.errors import DarktableNotFound, UnknownModule, UnknownParam
from darkproxy.fsutil import write_json

SCALAR_TYPES = (
    "float",
    "double",
    "char",
    "int8",
    "uint8",
    "short",
    "ushort",
    "int",
    "uint",
    "long",
    "ulong",
    "bool",
    "enum",
)
# an element of an array param: the array's (dotted) name, its indices, then a member path (``curve_nodes[0][1].y``)
_ELEMENT_NAME = re.compile(r"^([^\[\]]+)((?:\[\d+\])+)(?:\.(.+))?$")


def element_path(name: str) -> tuple[str, list[int], list[str]] | None:
    """``"curve_nodes[0][1].y"`` -> ``("curve_nodes", [0, 1], ["y"])``; ``None`` for a plain name."""
    m = _ELEMENT_NAME.match(name)
    if m is None:
        return None
    members = m.group(3).split(".") if m.group(3) else []
    return m.group(1), [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))], members


NUMERIC_TYPES = ("float", "double", "int8", "uint8", "short", "ushort", "int", "uint", "long", "ulong")


@dataclass(frozen=True)
class FieldSchema:
    """One field of a module's params struct.

    ``name`` is dotted for nested struct members (``"black.x"``), with ``[i]``
    for array elements inside deeper names. ``type`` is one of darktable's
    introspection types (float, int, bool, enum, array, struct, char...).
    Arrays of ``char`` are strings (``is_string``).
    """

    name: str
    type: str
    offset: int
    size: int
    type_name: str = ""
    description: str = ""
    min: float | int | None = None
    max: float | int | None = None
    default: Any = None
    values: dict[str, int] | None = None  # enum: NAME -> value
    value_descriptions: dict[str, str] | None = None
    count: int | None = None  # array length
    element: FieldSchema | None = None  # array element
    fields: tuple[FieldSchema, ...] = ()  # struct / union members

    @property
    def is_scalar(self) -> bool:
        return self.type in SCALAR_TYPES

    @property
    def is_string(self) -> bool:
        return self.type == "array" and self.element is not None and self.element.type == "char"

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def enum_name(self, value: int) -> str | None:
        for k, v in (self.values or {}).items():
            if v == value:
                return k
        return None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "offset": self.offset,
            "size": self.size,
            "type_name": self.type_name,
        }
        if self.description:
            d["description"] = self.description
        for k in ("min", "max", "default"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.values is not None:
            d["values"] = dict(self.values)
        if self.count is not None:
            d["count"] = self.count
            d["element_type"] = self.element.type if self.element else None
            if self.is_string:
                d["string"] = True
        if self.type in ("struct", "union"):
            d["fields"] = [f.name for f in self.fields]
        return d

    @classmethod
    def from_raw(cls, raw: dict[str, Any], prefix: str = "", base: int = 0) -> FieldSchema:
        """Build from the introspection JSON. Names are re-derived from the tree so
        array elements are named relative to their array."""
        fname = raw.get("field_name") or ""
        name = f"{prefix}.{fname}" if prefix and fname else (fname or prefix)
        t = raw["type"]
        element = None
        members: tuple[FieldSchema, ...] = ()
        if t == "array" and raw.get("element"):
            el = dict(raw["element"])
            el["field_name"] = ""
            element = cls.from_raw(el, "", 0)
            element = _rebase(element, -el.get("offset", 0))
        if t in ("struct", "union"):
            members = tuple(cls.from_raw(m, name, base) for m in raw.get("fields", []))
        return cls(
            name=name,
            type=t,
            offset=int(raw.get("offset", 0)),
            size=int(raw.get("size", 0)),
            type_name=raw.get("type_name", ""),
            description=raw.get("description", ""),
            min=raw.get("min"),
            max=raw.get("max"),
            default=raw.get("default"),
            values=raw.get("values"),
            value_descriptions=raw.get("value_descriptions"),
            count=raw.get("count"),
            element=element,
            fields=members,
        )


def _rebase(f: FieldSchema, delta: int) -> FieldSchema:
    """Shift offsets so an array element's fields are relative to the element start."""
    from dataclasses import replace

    return replace(
        f,
        offset=f.offset + delta,
        element=f.element,
        fields=tuple(_rebase(m, delta) for m in f.fields),
    )


@dataclass(frozen=True)
class ModuleSchema:
    """A module's params struct as darktable describes it."""

    name: str
    version: int
    size: int
    type_name: str
    root: FieldSchema
    darktable_version: str = ""

    def walk(self) -> Iterator[FieldSchema]:
        """Fields in struct order: struct members are visited (and yielded after
        their children); arrays are yielded as one field, not per element."""

        def rec(f: FieldSchema) -> Iterator[FieldSchema]:
            for m in f.fields:
                if m.type in ("struct", "union"):
                    yield from rec(m)
                    yield m
                else:
                    yield m

        yield from rec(self.root)

    @property
    def fields(self) -> list[FieldSchema]:
        """Leaf fields (scalars, arrays, strings) with dotted names, by offset."""
        return [f for f in self.walk() if f.type not in ("struct", "union")]

    @property
    def scalar_fields(self) -> list[FieldSchema]:
        return [f for f in self.fields if f.is_scalar]

    @property
    def float_count(self) -> int:
        """How many float values the params hold, an array's elements each (color calibration: 28)."""

        def count(f: FieldSchema) -> int:
            if f.type in ("float", "double"):
                return 1
            if f.type == "array" and f.element is not None and not f.is_string:
                return (f.count or 0) * count(f.element)
            return sum(count(c) for c in f.fields) if f.type in ("struct", "union") else 0

        return count(self.root)

    def scalar(self, name: str) -> FieldSchema:
        """The scalar field ``name`` gives, under that name: a plain param (:meth:`field`) or an element of an
        array param as darktable's introspection names it (``red[0]``, ``curve_nodes[0][1].y``: its type,
        range and default are the element's). :class:`UnknownParam` for anything else."""
        path = element_path(name)
        if path is None:
            f = self.field(name)
        else:
            base, idx, members = path
            f = self.field(base)
            for i in idx:
                if f.type != "array" or f.element is None or f.is_string or not 0 <= i < (f.count or 0):
                    raise UnknownParam(f"module {self.name} has no parameter {name!r} (no such element)")
                f = f.element
            for member in members:
                f = next((c for c in f.fields if c.name.rsplit(".", 1)[-1] == member), None)  # type: ignore[assignment]
                if f is None:
                    raise UnknownParam(f"module {self.name} has no parameter {name!r} (no member {member!r})")
        if not f.is_scalar:
            raise UnknownParam(f"{self.name}.{name} is a {f.type}, not a scalar parameter")
        return dataclasses.replace(f, name=name)

    def field(self, name: str) -> FieldSchema:
        for f in self.walk():
            if f.name == name:
                return f
        close = [f.name for f in self.fields if name.lower() in f.name.lower()][:5]
        hint = (
            f" (did you mean {', '.join(close)}?)"
            if close
            else f"; known: {', '.join(f.name for f in self.scalar_fields[:12])}"
        )
        raise UnknownParam(f"module {self.name} has no parameter {name!r}{hint}")

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.name,
            "version": self.version,
            "size": self.size,
            "type_name": self.type_name,
            "darktable_version": self.darktable_version,
            "fields": [f.to_json() for f in self.fields],
        }


@dataclass(frozen=True)
class SchemaSet:
    """All schemas of one darktable version, plus modules lacking introspection."""

    darktable_version: str
    modules: dict[str, ModuleSchema]
    without_introspection: dict[str, str] = field(default_factory=dict)  # name -> reason
    module_versions: dict[str, int] = field(default_factory=dict)  # every plugin's version
    source: str = ""  # "darktable" (read now), "cache:<path>", "snapshot:<name>"
    pipe_orders: dict[str, list[str]] = field(default_factory=dict)  # iop_order_version -> module order

    def pipe_order(self, iop_order_version: int = 2) -> list[str]:
        """darktable's built-in module order (2 = v3.0, the default for raws)."""
        order = self.pipe_orders.get(str(iop_order_version))
        if not order:
            raise DarktableNotFound(
                f"darktable's pipe order {iop_order_version} is not known for darktable {self.darktable_version}"
            )
        return list(order)

    def get(self, name: str) -> ModuleSchema:
        if name in self.modules:
            return self.modules[name]
        if name in self.without_introspection:
            raise UnknownModule(f"module {name!r} has no parameter introspection in darktable {self.darktable_version}")
        import difflib

        close = difflib.get_close_matches(name, list(self.modules), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `darkproxy modules` lists them"
        raise UnknownModule(f"unknown darktable module {name!r}{hint}")

    def __contains__(self, name: str) -> bool:
        return name in self.modules

    @classmethod
    def from_raw(cls, raw: dict[str, Any], darktable_version: str, source: str) -> SchemaSet:
        mods: dict[str, ModuleSchema] = {}
        missing: dict[str, str] = {}
        versions: dict[str, int] = {}
        for m in raw["modules"]:
            if m.get("version") is not None:
                versions[m["name"]] = int(m["version"])
            if "root" not in m:
                missing[m["name"]] = m.get("error", "no introspection")
                continue
            mods[m["name"]] = ModuleSchema(
                name=m["name"],
                version=int(m.get("params_version") or m.get("version")),
                size=int(m["size"]),
                type_name=m.get("type_name", ""),
                root=FieldSchema.from_raw(m["root"]),
                darktable_version=darktable_version,
            )
        return cls(darktable_version, mods, missing, versions, source, dict(raw.get("pipe_orders", {})))


def _snapshot_names() -> list[str]:
    try:
        d = resources.files("darkproxy") / "darktable" / "schema_cache"
        return sorted(p.name for p in d.iterdir() if p.name.endswith(".json"))
    except (FileNotFoundError, ModuleNotFoundError):
        return []


def load_schema_snapshot(darktable_version: str | None = None) -> SchemaSet:
    """Load a schema snapshot shipped with darkproxy (no darktable needed).
    With ``darktable_version=None`` the newest snapshot is used."""
    names = _snapshot_names()
    if darktable_version:
        names = [n for n in names if n == f"darktable-{darktable_version}.json"]
    if not names:
        raise DarktableNotFound(f"no shipped schema snapshot for darktable {darktable_version or '(any)'}")
    name = names[-1]
    raw = json.loads((resources.files("darkproxy") / "darktable" / "schema_cache" / name).read_text())
    return SchemaSet.from_raw(raw, raw.get("darktable_version", name[10:-5]), f"snapshot:{name}")


def load_schemas(install: DarktableInstall | None, cache_dir: Path | None = None, refresh: bool = False) -> SchemaSet:
    """Schemas for ``install``: from the per-version cache in ``cache_dir`` if
    present, else read from darktable's plugins (and cached). With no install
    (darktable missing), falls back to the shipped snapshot."""
    if install is None:
        return load_schema_snapshot()
    cache = cache_dir / f"darktable-{install.version}.json" if cache_dir else None
    if cache and cache.is_file() and not refresh:
        try:
            raw = json.loads(cache.read_text())
            if raw.get("reader") == READER_VERSION:  # else written by an older reader: read again below
                return SchemaSet.from_raw(raw, install.version, f"cache:{cache}")
        except (json.JSONDecodeError, KeyError):
            pass  # corrupt cache: read again below
    if install.libdir is None or install.plugindir is None:
        try:
            return load_schema_snapshot(install.version)
        except DarktableNotFound:
            raise DarktableNotFound(
                f"cannot find darktable's plugin libraries for {install.cli} (libdarktable.so); "
                "install darktable's full package"
            ) from None
    raw = extract_schemas(install.libdir, install.plugindir)
    raw["darktable_version"] = install.version
    if cache:
        # an unwritable workspace only costs a re-read next time (doctor reports it)
        with contextlib.suppress(OSError):
            write_json(cache, raw, indent=None)
    return SchemaSet.from_raw(raw, install.version, "darktable")
