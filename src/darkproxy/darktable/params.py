"""Params codec: darktable's binary params blobs <-> named values, via the schema.

Blob text forms in XMP (darktable ``src/common/exif.cc``):
  * plain lowercase hex of the struct bytes;
  * ``gz`` + two digits (compression factor, informative) + base64 of zlib data.

Values: floats/doubles -> ``float``, integer types -> ``int``, ``bool`` -> ``bool``,
enums -> ``int`` (encode also accepts the enum's name), char arrays -> ``str``,
other arrays -> lists, nested structs -> dicts. Unions, opaque fields and
float complex values are kept as hex strings / ``[re, im]``.

An element of an array param has the name darktable's introspection gives it: ``red[0]``,
``curve_nodes[0][1].y`` (:func:`param_value` reads one, :func:`set_params` writes one).

Encoding is *minimal*: :func:`encode_params` starts from a base blob and
rewrites only fields whose value differs, so decode -> encode is byte-exact
(padding, string tails and NaN payloads are never touched).
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from darkproxy.darktable.schema import FieldSchema, ModuleSchema, element_path
from darkproxy.errors import ParamValueError, UnknownParam, XmpError

_FMT = {
    "float": "f",
    "double": "d",
    "char": "b",
    "int8": "b",
    "uint8": "B",
    "short": "h",
    "ushort": "H",
    "int": "i",
    "uint": "I",
    "long": "q",
    "ulong": "Q",
    "enum": "i",
}
COMPRESS_THRESHOLD = 100  # darktable's default "only large entries"


# --------------------------------------------------------------------------- blob text


def decode_blob_text(text: str) -> bytes:
    """XMP params text (hex or ``gzNN`` + base64 zlib) -> raw bytes. Raises :class:`XmpError`."""
    t = (text or "").strip()
    if t.startswith("gz"):
        if len(t) < 5 or not t[2:4].isdigit():
            raise XmpError(f"malformed compressed params blob {t[:16]!r}...")
        try:
            return zlib.decompress(base64.b64decode(t[4:], validate=True))
        except (binascii.Error, zlib.error, ValueError) as e:
            raise XmpError(f"corrupt compressed params blob ({e})") from None
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise XmpError(f"params blob is neither hex nor gz-compressed: {t[:24]!r}") from None


def encode_blob_text(blob: bytes, compress: bool | None = None) -> str:
    """Raw bytes -> XMP text as darktable writes it (compressed when longer than
    100 bytes, darktable's default, unless ``compress`` says otherwise)."""
    if compress is None:
        compress = len(blob) > COMPRESS_THRESHOLD
    if not compress:
        return blob.hex()
    z = zlib.compress(blob)
    factor = min(len(blob) // len(z) + 1, 99)
    return f"gz{factor:02d}" + base64.b64encode(z).decode("ascii")


# --------------------------------------------------------------------------- decode


def _check_size(schema: ModuleSchema, blob: bytes) -> None:
    if len(blob) != schema.size:
        raise XmpError(
            f"{schema.name} params blob has {len(blob)} bytes, darktable {schema.darktable_version} "
            f"module version {schema.version} expects {schema.size} (truncated or from another version)"
        )


def _decode_field(f: FieldSchema, blob: bytes, base: int) -> Any:
    off = base + f.offset
    t = f.type
    if t in _FMT:
        (v,) = struct.unpack_from("<" + _FMT[t], blob, off)
        return float(v) if t in ("float", "double") else int(v)
    if t == "bool":
        return bool(int.from_bytes(blob[off : off + f.size], "little"))
    if t == "floatcomplex":
        return list(struct.unpack_from("<2f", blob, off))
    if t == "array" and f.element is not None and f.count:
        if f.is_string:
            raw = blob[off : off + f.count]
            return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        step = f.element.size
        return [_decode_field(f.element, blob, off + i * step) for i in range(f.count)]
    if t == "struct":
        return {m.name.rsplit(".", 1)[-1]: _decode_field(m, blob, base) for m in f.fields}
    return blob[off : off + f.size].hex()  # union / opaque


def decode_params(schema: ModuleSchema, blob: bytes) -> dict[str, Any]:
    """Decode a params blob into nested named values (see module docstring)."""
    _check_size(schema, blob)
    values: dict[str, Any] = _decode_field(schema.root, blob, 0)  # the root is a struct
    return values


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted names (arrays stay lists)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(flatten(v, name))
        else:
            out[name] = v
    return out


def unflatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names -> nested dicts."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out


# --------------------------------------------------------------------------- encode


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def coerce_value(f: FieldSchema, value: Any, clamp: bool = False, module: str = "") -> Any:
    """Check and convert ``value`` (Python value or CLI string) for field ``f``.
    Raises :class:`ParamValueError` for wrong types or values outside $MIN/$MAX
    (unless ``clamp``)."""
    where = f"{module}.{f.name}" if module else f.name
    t = f.type
    if t == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ParamValueError(f"{where} expects a boolean (true/false), got {value!r}")
        if isinstance(value, (bool, int)) or (isinstance(value, float) and value in (0.0, 1.0)):
            return bool(value)
        raise ParamValueError(f"{where} expects a boolean, got {value!r}")
    if t == "enum":
        vals = f.values or {}
        if isinstance(value, str) and value.strip() in vals:
            return vals[value.strip()]
        if isinstance(value, str):
            # accept the short name (without the common prefix) and plain integers
            short = {k.split("_", 2)[-1].lower(): v for k, v in vals.items()}
            if value.strip().lower() in short:
                return short[value.strip().lower()]
            try:
                value = int(value, 0)
            except ValueError:
                raise ParamValueError(f"{where} expects one of {', '.join(vals)}; got {value!r}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or (vals and value not in vals.values()):
            raise ParamValueError(
                f"{where} expects one of {', '.join(f'{k}={v}' for k, v in vals.items())}; got {value!r}"
            )
        return value
    if t in _FMT:
        from_text = isinstance(value, str)
        if isinstance(value, str):
            try:
                value = float(value) if t in ("float", "double") else int(value, 0)
            except ValueError:
                kind = "a number" if t in ("float", "double") else "an integer"
                raise ParamValueError(f"{where} expects {kind}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamValueError(f"{where} expects a number, got {value!r}")
        if t not in ("float", "double"):
            if isinstance(value, float):
                if not value.is_integer():
                    raise ParamValueError(f"{where} expects an integer, got {value!r}")
                value = int(value)
        elif math.isnan(float(value)):
            if from_text:
                raise ParamValueError(f"{where} must not be NaN")
            return float(value)  # darktable stores NaN as "unset" in some modules (temperature.g2)
        lo, hi = f.min, f.max
        if t == "float" and lo is not None and hi is not None:
            lo, hi = _f32(lo), _f32(hi)  # bounds are float32 in darktable
            value_cmp = _f32(value)
        else:
            value_cmp = value
        if lo is not None and hi is not None and not (lo <= value_cmp <= hi):
            if clamp:
                value = min(max(value, lo), hi)
            else:
                raise ParamValueError(
                    f"{where}={value} is outside darktable's range [{lo:g}, {hi:g}] (use --clamp to clip)"
                )
        return float(value) if t in ("float", "double") else int(value)
    if f.is_string:
        if not isinstance(value, str):
            raise ParamValueError(f"{where} expects a string, got {value!r}")
        if len(value.encode()) >= (f.count or 0):
            raise ParamValueError(f"{where} is at most {(f.count or 1) - 1} bytes")
        return value
    return value


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", float(x)))[0])


def _encode_field(f: FieldSchema, buf: bytearray, base: int, value: Any, clamp: bool, module: str) -> None:
    off = base + f.offset
    old = _decode_field(f, bytes(buf), base)
    if _same(old, value):
        return
    t = f.type
    if t in _FMT or t in ("bool", "enum"):
        v = coerce_value(f, value, clamp, module)
        if _same(old, v):
            return
        if t == "bool":
            buf[off : off + f.size] = int(v).to_bytes(f.size, "little")
        else:
            struct.pack_into("<" + _FMT[t], buf, off, v)
    elif t == "floatcomplex":
        struct.pack_into("<2f", buf, off, *[float(x) for x in value])
    elif t == "array" and f.element is not None and f.count:
        if f.is_string:
            s = coerce_value(f, value, clamp, module).encode()
            buf[off : off + f.count] = s + b"\0" * (f.count - len(s))
            return
        if not isinstance(value, (list, tuple)) or len(value) != f.count:
            raise ParamValueError(f"{module}.{f.name} expects a list of {f.count} values")
        for i, v in enumerate(value):
            _encode_field(f.element, buf, off + i * f.element.size, v, clamp, module)
    elif t == "struct":
        if not isinstance(value, Mapping):
            raise ParamValueError(f"{module}.{f.name} expects an object")
        members = {m.name.rsplit(".", 1)[-1]: m for m in f.fields}
        for k, v in value.items():
            if k not in members:
                raise UnknownParam(f"module {module} has no parameter {f.name + '.' if f.name else ''}{k}")
            _encode_field(members[k], buf, base, v, clamp, module)
    else:
        raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        if len(raw) != f.size:
            raise ParamValueError(f"{module}.{f.name} expects {f.size} bytes")
        buf[off : off + f.size] = raw


def default_blob(schema: ModuleSchema) -> bytes:
    """A blob holding every field's introspection $DEFAULT (zero elsewhere), with what the module's
    ``init()`` / ``reload_defaults()`` write over them where that changes the render
    (:data:`darkproxy.darktable.defaults.INIT_DEFAULTS`; another params version of such a module is
    refused). A history darktable wrote itself (:meth:`darkproxy.darktable.session.Darktable.default_history`)
    holds its per-image values: prefer it where it has the module."""
    from darkproxy.darktable.defaults import INIT_DEFAULTS

    blob = introspection_blob(schema)
    init = INIT_DEFAULTS.get(schema.name)
    if init is None:
        return blob
    values = init.values_at(schema.version)
    if values is None:
        known = ", ".join(str(v) for v in (init.version, *init.later))
        raise ParamValueError(
            f"{schema.name} params version {schema.version}: darkproxy knows darktable's defaults for it at "
            f"version {known} only ({init.why}); start from a history that has the module"
        )
    return set_params(schema, blob, values)


def introspection_blob(schema: ModuleSchema) -> bytes:
    """A blob holding every field's introspection $DEFAULT (zero elsewhere): not always darktable's
    defaults (:func:`default_blob`)."""
    buf = bytearray(schema.size)

    def rec(f: FieldSchema, base: int) -> None:
        if f.type == "struct":
            for m in f.fields:
                rec(m, base)
        elif f.type == "array" and f.element is not None and f.count and not f.is_string:
            for i in range(f.count):
                rec(f.element, base + f.offset + i * f.element.size)
        elif f.default is not None and f.type in _FMT or f.type == "bool":
            d = f.default
            if f.type == "bool":
                buf[base + f.offset : base + f.offset + f.size] = int(bool(d)).to_bytes(f.size, "little")
            else:
                struct.pack_into("<" + _FMT[f.type], buf, base + f.offset, d)

    rec(schema.root, 0)
    return bytes(buf)


def encode_params(
    schema: ModuleSchema, values: Mapping[str, Any], base: bytes | None = None, clamp: bool = False
) -> bytes:
    """Write ``values`` (nested dict, dotted names, or a mix) into a copy of
    ``base`` (default: :func:`default_blob`) and return the new blob. Only
    fields whose value changes are rewritten. Raises :class:`UnknownParam`,
    :class:`ParamValueError`."""
    buf = bytearray(base if base is not None else default_blob(schema))
    _check_size(schema, bytes(buf))
    nested = unflatten({k: v for k, v in values.items()})
    _encode_field(schema.root, buf, 0, nested, clamp, schema.name)
    return bytes(buf)


def assign_fields(schema: ModuleSchema, base: bytes, values: Mapping[str, Any]) -> bytes:
    """Write scalar ``values`` (dotted names) into a copy of ``base`` as C assignments
    do: converted to the field's type, with no $MIN/$MAX check (darktable's
    ``legacy_params`` copies old values as they are, in or out of today's ranges).
    Raises :class:`UnknownParam` for a name the schema lacks, :class:`ParamValueError`
    for a non-scalar field."""
    _check_size(schema, base)
    buf = bytearray(base)
    for name, v in values.items():
        f = schema.field(name)
        if "[" in f.name:  # a member of an array element: its offset is relative to the element
            raise ParamValueError(f"{schema.name}.{name}: fields inside arrays are not assignable")
        off = f.offset  # struct members' offsets are absolute (see _decode_field)
        if f.type == "bool":
            buf[off : off + f.size] = int(bool(v)).to_bytes(f.size, "little")
        elif f.type in _FMT:
            struct.pack_into("<" + _FMT[f.type], buf, off, float(v) if f.type in ("float", "double") else int(v))
        else:
            raise ParamValueError(f"{schema.name}.{name} is not a scalar field")
    return bytes(buf)


_NO_DEFAULT: Any = object()


def param_value(values: Mapping[str, Any], name: str, default: Any = _NO_DEFAULT) -> Any:
    """The value of param ``name`` in decoded, flattened ``values``: a dotted name, or an element of an
    array param (``red[0]``, ``curve_nodes[0][1].y``). Raises ``KeyError`` when there is none, unless a
    ``default`` is given (then that)."""
    if name in values:
        return values[name]
    path = element_path(name)
    cur: Any = values.get(path[0]) if path is not None else None
    try:
        if path is None or path[0] not in values:
            raise KeyError(name)
        for i in path[1]:
            cur = cur[i]
        for member in path[2]:
            cur = cur[member]
    except (IndexError, KeyError, TypeError):
        if default is not _NO_DEFAULT:
            return default
        raise KeyError(name) from None
    return cur


def set_params(schema: ModuleSchema, blob: bytes, updates: Mapping[str, Any], clamp: bool = False) -> bytes:
    """Set dotted-name scalar ``updates`` (values may be CLI strings) in ``blob``; an element of an array
    param by its element name (``red[0]``, ``curve_nodes[0][1].y``: the rest of the array as it is)."""
    plain: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for name, v in updates.items():
        path = element_path(name)
        if path is None:
            schema.field(name)  # UnknownParam with a hint
            plain[name] = v
            continue
        base, idx, members = path
        f = schema.field(base)
        if f.type != "array" or f.is_string:
            raise UnknownParam(f"module {schema.name}: {base} is not an array, {name!r} names no element of it")
        if base not in arrays:
            arrays[base] = copy.deepcopy(_decode_field(f, blob, 0))
        cur: Any = arrays[base]
        try:
            for i in idx[:-1]:
                cur = cur[i]
            if members:
                cur = cur[idx[-1]]
                for m in members[:-1]:
                    cur = cur[m]
                if members[-1] not in cur:
                    raise KeyError(members[-1])
                cur[members[-1]] = v
            else:
                if idx[-1] >= len(cur) or isinstance(cur[idx[-1]], (list, dict)):
                    raise IndexError(idx[-1])
                cur[idx[-1]] = v
        except (IndexError, KeyError, TypeError):
            raise UnknownParam(f"module {schema.name} has no parameter {name!r} (no such element of {base})") from None
    return encode_params(schema, {**plain, **arrays}, base=blob, clamp=clamp)


def get_param(schema: ModuleSchema, blob: bytes, name: str) -> Any:
    """One field's value by dotted name."""
    f = schema.field(name)
    return _decode_field(f, blob, 0)
