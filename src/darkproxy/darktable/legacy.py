"""darktable's ``legacy_params`` ported: history items written by an older version of a
module, upgraded exactly as darktable 4.2.1 upgrades them when it loads an XMP.

darktable's introspection describes only the current params struct of each module, so the
old layouts come from darktable's source (tag release-4.2.1, ``src/iop/<module>.c``,
``legacy_params``): each :class:`Legacy` below cites its source and gives the old struct
(member names and C types, in order) and what darktable does with it:

* it starts from the module's defaults (``*n = *d`` / ``memcpy(new, default_params)``;
  here the introspection ``$DEFAULT`` values, which are darktable's ``default_params``
  for exposure and color balance rgb, which do not override them in ``reload_defaults``;
  the mosaic stages' upgrades, whose defaults darktable fills per image, set every member);
* ``prefix``: it then ``memcpy``s the old struct over the start of the new one (the new
  struct extends the old: checked against the schema's offsets);
* ``assign(old)``: the members it sets, as C assignments (no range checks).

A version without a port here is not upgraded: :func:`upgrade_params` raises
:class:`LegacyError` naming the module and both versions, and the replica refuses such
an item in one line (darktable itself still renders it).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from darkproxy.darktable.locate import version_tuple
from darkproxy.darktable.params import assign_fields, decode_params, default_blob, flatten
from darkproxy.darktable.schema import ModuleSchema, SchemaSet
from darkproxy.darktable.xmp import HistoryItem, Sidecar, parse_instance_key
from darkproxy.errors import XmpError

# C member types of the old structs -> struct codes (x86-64, little-endian); "pad2": the compiler's 2 bytes of
# padding after a uint16_t (no value)
_C = {
    "float": "f",
    "int": "i",
    "enum": "i",
    "gboolean": "i",
    "uint16_t": "H",
    "uint16_t[4]": "4H",
    "float[3]": "3f",
    "float[5][6]": "30f",
    "pad2": "2x",
}


def _count(t: str) -> int:
    """How many values a member of C type ``t`` holds (an array's length, all dimensions; none for padding)."""
    if t.startswith("pad"):
        return 0
    return math.prod(int(n) for n in re.findall(r"\[(\d+)\]", t))


class LegacyError(XmpError):
    """A history item of a params version darkproxy cannot upgrade."""


@dataclass(frozen=True)
class Legacy:
    """One ``legacy_params`` branch of darktable: ``module`` from ``from_version`` to
    ``to_version`` (see the module docstring); ``fields``: the old struct as
    ``(name, C type)``; ``source``: where in darktable's source it comes from."""

    module: str
    from_version: int
    to_version: int
    fields: tuple[tuple[str, str], ...]
    assign: Callable[[Mapping[str, Any]], dict[str, Any]]
    source: str
    prefix: bool = False
    # the darktable releases whose upgrade this is, [first, last) (darktable changed some: color balance rgb v1's
    # saturation); a release outside every variant's range is refused
    darktable: tuple[tuple[int, ...], tuple[int, ...]] = ((0,), (99,))

    @property
    def fmt(self) -> str:
        return "<" + "".join(_C[t] for _, t in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)

    def decode(self, blob: bytes) -> dict[str, Any]:
        """The old struct's members by name (floats and ints)."""
        if len(blob) != self.size:
            raise LegacyError(
                f"{self.module} params version {self.from_version} blob has {len(blob)} bytes, darktable's "
                f"version {self.from_version} struct has {self.size}"
            )
        vals = iter(struct.unpack(self.fmt, blob))
        out: dict[str, Any] = {}
        for name, t in self.fields:
            got = [next(vals) for _ in range(_count(t))]
            conv = float if t.startswith("float") else int
            if got:
                out[name] = [conv(v) for v in got] if "[" in t else conv(got[0])
        return out

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """The old struct with ``values`` by name (0 for the members not given): what an older darktable wrote."""
        flat: list[Any] = []
        for name, t in self.fields:
            if _count(t):
                v = values.get(name, 0.0 if t == "float" else 0)
                flat += list(v) if isinstance(v, (list, tuple)) else [v]
        return struct.pack(self.fmt, *flat)

    def upgrade(self, schema: ModuleSchema, blob: bytes) -> bytes:
        """``blob`` (this old version) -> a params blob of ``schema`` (darktable's current version)."""
        if schema.version != self.to_version or schema.name != self.module:
            raise LegacyError(
                f"{self.module}: the legacy port upgrades version {self.from_version} to {self.to_version}, "
                f"the installed darktable has version {schema.version}"
            )
        old = self.decode(blob)
        new = default_blob(schema)
        if self.prefix:  # memcpy(new_params, old_params, sizeof(old)): same members at the same offsets
            off = 0
            for name, t in self.fields:
                size = struct.calcsize("<" + _C[t])
                if not t.startswith("pad"):
                    f = schema.field(name)
                    if f.offset != off or f.size != size:
                        raise LegacyError(f"{self.module}: member {name} of version {self.from_version} does not map")
                off += size
            new = blob + new[len(blob) :]
        return assign_fields(schema, new, self.assign(old))


LEGACY: dict[tuple[str, int], Legacy] = {}  # the first variant of each upgrade (module, old version)
_VARIANTS: dict[tuple[str, int], list[Legacy]] = {}  # every variant, by the darktable releases it is for


def _register(leg: Legacy) -> None:
    LEGACY.setdefault((leg.module, leg.from_version), leg)
    _VARIANTS.setdefault((leg.module, leg.from_version), []).append(leg)


def _variant(module: str, version: int, darktable: str) -> Legacy | None:
    """The upgrade of ``module``'s params ``version`` that ``darktable`` (a version string, ``""``: unknown) runs."""
    variants = _VARIANTS.get((module, version), [])
    release = version_tuple(darktable)
    if not release:
        return variants[0] if variants else None
    return next((v for v in variants if v.darktable[0] <= release < v.darktable[1]), None)


# ------------------------------------------------------------------ exposure (v6 in darktable 4.2.1)
_EXPOSURE = "darktable 4.2.1 src/iop/exposure.c, legacy_params: old_version == {} && new_version == 6"
_register(
    Legacy(
        "exposure",
        2,
        6,
        (("black", "float"), ("exposure", "float"), ("gain", "float")),
        lambda o: {"black": o["black"], "exposure": o["exposure"], "compensate_exposure_bias": False},
        _EXPOSURE.format(2),
    )
)
_register(
    Legacy(
        "exposure",
        3,
        6,
        (
            ("black", "float"),
            ("exposure", "float"),
            ("deflicker", "gboolean"),
            ("deflicker_percentile", "float"),
            ("deflicker_target_level", "float"),
        ),
        lambda o: {
            "mode": 1 if o["deflicker"] else 0,  # EXPOSURE_MODE_DEFLICKER : EXPOSURE_MODE_MANUAL
            "black": o["black"],
            "exposure": o["exposure"],
            "deflicker_percentile": o["deflicker_percentile"],
            "deflicker_target_level": o["deflicker_target_level"],
            "compensate_exposure_bias": False,
        },
        _EXPOSURE.format(3),
    )
)
_EXPOSURE_V45 = (
    ("mode", "enum"),
    ("black", "float"),
    ("exposure", "float"),
    ("deflicker_percentile", "float"),
    ("deflicker_target_level", "float"),
)


def _exposure_v45(o: Mapping[str, Any]) -> dict[str, Any]:
    # v4's deflicker_histogram_source is dropped (darktable: "deflicker still was not publicly released")
    return {k: o[k] for k, _ in _EXPOSURE_V45} | {"compensate_exposure_bias": False}


_register(
    Legacy(
        "exposure", 4, 6, (*_EXPOSURE_V45, ("deflicker_histogram_source", "enum")), _exposure_v45, _EXPOSURE.format(4)
    )
)
_register(Legacy("exposure", 5, 6, _EXPOSURE_V45, _exposure_v45, _EXPOSURE.format(5)))
# darktable 5.4 (v7): compensate_hilite_pres added, off for an older edit ("module did not compensate h.p. before
# version 7"); 5.4's upgrades of versions 2 to 5 to 6 are 4.2.1's, then this one (the chain: upgrade_params)
_register(
    Legacy(
        "exposure",
        6,
        7,
        (*_EXPOSURE_V45, ("compensate_exposure_bias", "gboolean")),
        lambda o: (
            {k: o[k] for k, _ in _EXPOSURE_V45}
            | {"compensate_exposure_bias": o["compensate_exposure_bias"], "compensate_hilite_pres": False}
        ),
        "darktable 5.4.1 src/iop/exposure.c, legacy_params: old_version == 6",
    )
)


# ------------------------------------------------------------------ color balance rgb (v5 in darktable 4.2.1)
_CBRGB = "darktable 4.2.1 src/iop/colorbalancergb.c, legacy_params: old_version == {} && new_version == 5"
_CBRGB_V1 = tuple(
    (f"{r}_{c}", "float") for r in ("shadows", "midtones", "highlights", "global") for c in ("Y", "C", "H")
) + tuple(
    (n, "float")
    for n in (
        "shadows_weight",
        "white_fulcrum",
        "highlights_weight",
        "chroma_shadows",
        "chroma_highlights",
        "chroma_global",
        "chroma_midtones",
        "saturation_global",
        "saturation_highlights",
        "saturation_midtones",
        "saturation_shadows",
        "hue_angle",
    )
)
_CBRGB_V2 = _CBRGB_V1 + tuple((f"brilliance_{r}", "float") for r in ("global", "highlights", "midtones", "shadows"))
_CBRGB_V3 = (*_CBRGB_V2, ("mask_grey_fulcrum", "float"))
_CBRGB_V4 = (*_CBRGB_V3, ("vibrance", "float"), ("grey_fulcrum", "float"), ("contrast", "float"))
_JZAZBZ = 0  # DT_COLORBALANCE_SATURATION_JZAZBZ: every version before 5 used JzAzBz saturation
_V4_NEW = {"vibrance": 0.0, "grey_fulcrum": 0.1845, "contrast": 0.0}

_register(
    Legacy(
        "colorbalancergb",
        1,
        5,
        _CBRGB_V1,
        # n->saturation_global /= 180.f / M_PI: in double (M_PI), stored as float
        lambda o: (
            {"saturation_global": o["saturation_global"] / (180.0 / math.pi), "mask_grey_fulcrum": 0.1845}
            | _V4_NEW
            | {"saturation_formula": _JZAZBZ}
        ),
        _CBRGB.format(1),
        prefix=True,
        darktable=((0,), (5, 1)),  # measured on 4.2.1 and 5.0.1
    )
)
_register(
    Legacy(
        "colorbalancergb",
        1,
        5,
        _CBRGB_V1,
        # darktable 5.4.1 (legacy_params, old_version == 1): n->saturation_global /= 100.f
        lambda o: (
            {"saturation_global": float(np.float32(o["saturation_global"]) / np.float32(100.0))}
            | {"mask_grey_fulcrum": 0.1845}
            | _V4_NEW
            | {"saturation_formula": _JZAZBZ}
        ),
        "darktable 5.4.1 src/iop/colorbalancergb.c, legacy_params: old_version == 1",
        prefix=True,
        darktable=((5, 4), (99,)),  # 5.1 to 5.3 not measured: refused
    )
)
_register(
    Legacy(
        "colorbalancergb",
        2,
        5,
        _CBRGB_V2,
        lambda o: {"mask_grey_fulcrum": 0.1845} | _V4_NEW | {"saturation_formula": _JZAZBZ},
        _CBRGB.format(2),
        prefix=True,
    )
)
_register(
    Legacy(
        "colorbalancergb",
        3,
        5,
        _CBRGB_V3,
        lambda o: _V4_NEW | {"saturation_formula": _JZAZBZ},
        _CBRGB.format(3),
        prefix=True,
    )
)
_register(
    Legacy(
        "colorbalancergb",
        4,
        5,
        _CBRGB_V4,
        lambda o: {"saturation_formula": _JZAZBZ},
        _CBRGB.format(4),
        prefix=True,
    )
)


# ------------------------------------------------------------------ sigmoid (v3 in darktable 5.0 and 5.4)
# darktable 5.4.1 src/iop/sigmoid.c, legacy_params: calloc'd v3, the old struct memcpy'd over its start: the primaries
# (v2) and base primaries (v3) zero, the working profile's primaries untouched
_SIGMOID_V1 = (
    ("middle_grey_contrast", "float"),
    ("contrast_skewness", "float"),
    ("display_white_target", "float"),
    ("display_black_target", "float"),
    ("color_processing", "enum"),
    ("hue_preservation", "float"),
)
_SIGMOID_V2 = (*_SIGMOID_V1, *((f"{c}_{k}", "float") for c in ("red", "green", "blue") for k in ("inset", "rotation")))
_SIGMOID_V2 += (("purity", "float"),)
_SIGMOID_NEW = {n: 0.0 for n, _ in _SIGMOID_V2[len(_SIGMOID_V1) :]} | {"base_primaries": 0}
_SIGMOID = "darktable 5.4.1 src/iop/sigmoid.c, legacy_params: old_version == {}"
_register(Legacy("sigmoid", 1, 3, _SIGMOID_V1, lambda o: dict(_SIGMOID_NEW), _SIGMOID.format(1), prefix=True))
_register(
    Legacy(
        "sigmoid",
        2,
        3,
        _SIGMOID_V2,
        lambda o: {"base_primaries": 0},
        _SIGMOID.format(2),
        prefix=True,
    )
)


# ------------------------------------------------------------------ haze removal (v3 in darktable 5.4.1)
# darktable 5.4.1 src/iop/hazeremoval.c, legacy_params: the old struct memcpy'd, version 1 kept in compatibility
# mode (4.2's quick_select), neither adaptive (the windows fixed)
_HAZE = "darktable 5.4.1 src/iop/hazeremoval.c, legacy_params: old_version == {}"
_HAZE_V1 = (("strength", "float"), ("distance", "float"))
_register(
    Legacy(
        "hazeremoval",
        1,
        3,
        _HAZE_V1,
        lambda o: {"compatibility_mode": True, "adaptive": False},
        _HAZE.format(1),
        prefix=True,
        darktable=((5, 4), (99,)),
    )
)
_register(
    Legacy(
        "hazeremoval",
        2,
        3,
        (*_HAZE_V1, ("compatibility_mode", "gboolean")),
        lambda o: {"adaptive": False},
        _HAZE.format(2),
        prefix=True,
        darktable=((5, 4), (99,)),
    )
)


# ------------------------------------------------------------------ lowpass (v4 in darktable 4.2.1)
_LP = "darktable 4.2.1 src/iop/lowpass.c, legacy_params: old_version == {} && new_version == 4"
_LP_V1 = (("order", "enum"), ("radius", "float"), ("contrast", "float"), ("saturation", "float"))
_LP_V2 = (*_LP_V1[:3], ("brightness", "float"), ("saturation", "float"))
_LP_V3 = (*_LP_V2, ("unbound", "int"))


def _lowpass(o: Mapping[str, Any]) -> dict[str, Any]:
    """Every member set: a negative radius meant the bilateral filter; unbound 0 before version 3."""
    return {
        "order": o["order"],
        "radius": abs(o["radius"]),
        "contrast": o["contrast"],
        "saturation": o["saturation"],
        "brightness": o.get("brightness", 0.0),
        "lowpass_algo": 1 if o["radius"] < 0.0 else 0,
        "unbound": o.get("unbound", 0),
    }


for _v, _f in ((1, _LP_V1), (2, _LP_V2), (3, _LP_V3)):
    _register(Legacy("lowpass", _v, 4, _f, _lowpass, _LP.format(_v)))

# ------------------------------------------------------------------ diffuse (v2 in darktable 4.2.1)
# v1 is v2 without radius_center: darktable copies it over the defaults and sets radius_center to 0
_DIFFUSE_V1 = (
    ("iterations", "int"),
    ("sharpness", "float"),
    ("radius", "int"),
    ("regularization", "float"),
    ("variance_threshold", "float"),
    ("anisotropy_first", "float"),
    ("anisotropy_second", "float"),
    ("anisotropy_third", "float"),
    ("anisotropy_fourth", "float"),
    ("threshold", "float"),
    ("first", "float"),
    ("second", "float"),
    ("third", "float"),
    ("fourth", "float"),
)
_register(
    Legacy(
        "diffuse",
        1,
        2,
        _DIFFUSE_V1,
        lambda o: {"radius_center": 0},
        "darktable 4.2.1 src/iop/diffuse.c, legacy_params: old_version == 1 && new_version == 2",
        prefix=True,
    )
)

# ------------------------------------------------------------------ atrous (equalizer; v2 in darktable 4.2.1)
# v1 is v2 without mix: darktable copies it over the defaults and sets mix to 1
_register(
    Legacy(
        "atrous",
        1,
        2,
        (("octaves", "int"), ("x", "float[5][6]"), ("y", "float[5][6]")),
        lambda o: {"mix": 1.0},
        "darktable 4.2.1 src/iop/atrous.c, legacy_params: old_version == 1 && new_version == 2",
        prefix=True,
    )
)

# ------------------------------------------------------------------ the mosaic stages
_HL = "darktable 4.2.1 src/iop/highlights.c, legacy_params: old_version == {} && new_version == 4"
# v1 is v4's first four members (the fourth was "blendh", now "strength"), v2 adds clip, v3 adds the
# guided laplacians' members; darktable copies the old struct over the start of v4 and sets the rest
_HL_V1 = (("mode", "enum"), ("blendL", "float"), ("blendC", "float"), ("strength", "float"))
_HL_V2 = (*_HL_V1, ("clip", "float"))
_HL_V3 = (
    *_HL_V2,
    ("noise_level", "float"),
    ("iterations", "int"),
    ("scales", "enum"),
    ("candidating", "float"),
    ("combine", "float"),
    ("recovery", "enum"),
)
_HL_V3_NEW = {"noise_level": 0.0, "candidating": 0.4, "combine": 2.0, "recovery": 0, "iterations": 1, "scales": 5}
_HL_V4_NEW = {"solid_color": 0.0, "strength": 0.0}
_register(Legacy("highlights", 1, 4, _HL_V1, lambda o: {"clip": 1.0} | _HL_V3_NEW | _HL_V4_NEW, _HL.format(1), True))
_register(Legacy("highlights", 2, 4, _HL_V2, lambda o: _HL_V3_NEW | _HL_V4_NEW, _HL.format(2), True))
_register(Legacy("highlights", 3, 4, _HL_V3, lambda o: _HL_V4_NEW, _HL.format(3), True))
_register(
    Legacy(
        "rawprepare",
        1,
        2,
        (
            ("x", "int"),
            ("y", "int"),
            ("width", "int"),
            ("height", "int"),
            ("raw_black_level_separate", "uint16_t[4]"),
            ("raw_white_point", "uint16_t"),
            ("_padding", "pad2"),  # sizeof(v1) is 28: darktable copies all of it
        ),
        lambda o: {"flat_field": 0},  # FLAT_FIELD_OFF
        "darktable 4.2.1 src/iop/rawprepare.c, legacy_params: old_version == 1 && new_version == 2",
        prefix=True,
    )
)
_register(
    Legacy(
        "demosaic",
        3,
        4,
        (
            ("green_eq", "enum"),
            ("median_thrs", "float"),
            ("color_smoothing", "enum"),
            ("demosaicing_method", "enum"),
            ("lmmse_refine", "enum"),
        ),
        lambda o: {"dual_thrs": 0.2},
        "darktable 4.2.1 src/iop/demosaic.c, legacy_params: old_version == 3 && new_version == 4",
        prefix=True,
    )
)
_register(
    Legacy(
        "temperature",
        2,
        3,
        (("temp_out", "float"), ("coeffs", "float[3]")),
        lambda o: {"red": o["coeffs"][0], "green": o["coeffs"][1], "blue": o["coeffs"][2], "g2": math.nan},
        "darktable 4.2.1 src/iop/temperature.c, legacy_params: old_version == 2 && new_version == 3",
    )
)


# ------------------------------------------------------------------ the API
def upgradable(module: str) -> list[int]:
    """The old params versions of ``module`` darkproxy upgrades."""
    return sorted(v for (m, v) in LEGACY if m == module)


def upgrade_params(schema: ModuleSchema, version: int, blob: bytes, darktable: str = "") -> bytes:
    """A history item's params (``version``) as darktable upgrades them to ``schema``'s
    version. Raises :class:`LegacyError` (one line, the module and both versions) for a
    newer version or an old one without a port."""
    m = schema.name
    dt = f"darktable {darktable}" if darktable else "the installed darktable"
    if version == schema.version:
        return blob
    if version > schema.version:
        raise LegacyError(f"{m} params version {version} is newer than {dt}'s {m} version {schema.version}")
    legs: list[Legacy] = []
    v = version
    while v != schema.version:  # darktable upgrades one version after another (5.x's legacy_params)
        leg = _variant(m, v, darktable)
        if leg is None or leg.to_version > schema.version or (legs and legs[-1].prefix):
            ported = upgradable(m)
            have = f" (ported: from {', '.join(f'v{v}' for v in ported)})" if ported else ""
            if leg is None and (m, v) in _VARIANTS:
                have = f" as {dt} runs it (ported for other releases)"
            raise LegacyError(
                f"{m} params version {version} in the history, {dt} has version {schema.version}: darkproxy does "
                f"not port {m}'s legacy_params from version {v}{have}"
            )
        legs.append(leg)
        v = leg.to_version
    defaults = flatten(decode_params(schema, default_blob(schema))) if len(legs) > 1 else {}
    for leg, nxt in zip(legs, legs[1:], strict=False):  # each version between as the next step's old struct
        values = {n: defaults.get(n, 0) for n, t in nxt.fields if _count(t)} | leg.assign(leg.decode(blob))
        blob = nxt.encode(values)
    return legs[-1].upgrade(schema, blob)


def upgrade_item(item: HistoryItem, schemas: SchemaSet) -> HistoryItem:
    """``item`` at the installed module version (a copy when upgraded; ``item`` itself when
    already current). Raises :class:`LegacyError` as :func:`upgrade_params`."""
    sch = schemas.get(item.operation)
    if item.modversion == sch.version:
        return item
    blob = upgrade_params(sch, item.modversion, item.params, schemas.darktable_version)
    return replace(item, params=blob, modversion=sch.version, params_text=None, extra=dict(item.extra))


def upgrade_history(sidecar: Sidecar, schemas: SchemaSet, modules: Iterable[str] | None = None) -> Sidecar:
    """A copy of ``sidecar`` with the old-version items of ``modules`` (default: every
    module with a port) upgraded as darktable does on loading; items without a port
    are left as they are (darktable upgrades them itself when it renders)."""
    want = {parse_instance_key(m)[0] for m in modules} if modules is not None else None
    out = sidecar.copy()
    for i, it in enumerate(out.items):
        if want is not None and it.operation not in want:
            continue
        sch = schemas.modules.get(it.operation)
        if sch is None or it.modversion == sch.version or (it.operation, it.modversion) not in LEGACY:
            continue
        out.items[i] = upgrade_item(it, schemas)
    return out
