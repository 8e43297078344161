"""darktable's drawn shapes (``darktable:masks_history`` of an XMP sidecar): decoded, encoded, judged.

darktable 4.2 (``src/common/exif.cc``, ``dt_exif_xmp_read_data`` / ``read_masks_v3`` and the writer of
``dt_exif_xmp_attach_export``) keeps every shape ("form") as one ``rdf:li`` of the ``darktable:masks_history``
sequence with ``mask_num`` (the history item the form belongs to), ``mask_id`` (the form's id, the group's one
named by a blend's ``mask_id``), ``mask_type`` (``dt_masks_type_t``), ``mask_name``, ``mask_version``
(``DEVELOP_MASKS_VERSION``, 6), ``mask_points`` (the points structs, hex or ``gz`` as params blobs), ``mask_nb``
(their count) and ``mask_src`` (the clone source, two floats). The pipe uses the forms of the last history item
below ``history_end`` that has any (``dt_dev_pop_history_items_ext``): :func:`active_forms`.

The points structs (``src/develop/masks.h``, little endian, 4-byte fields): ``dt_masks_point_circle_t``
(centre x, y, radius, border), ``dt_masks_point_ellipse_t`` (centre, radii, rotation in degrees, border, flags:
1 proportional feather), ``dt_masks_point_gradient_t`` (anchor, rotation, compression, steepness, curvature,
state: 1 linear, 2 sigmoid), ``dt_masks_point_group_t`` (formid, parentid, state bits, opacity). Positions are
fractions of the pipe's input image (``pipe->iwidth``, ``iheight``: the raw before rawprepare's crop), sizes
fractions of its smaller side; ``dt_masks_point_path_t`` (corner, ctrl1, ctrl2, border[2], state), one per
corner of a path; ``dt_masks_point_brush_t`` (the same, density, hardness), one per corner of a brush stroke.
Clones are kept as blobs, not decoded: :func:`forms_problem` refuses them.
``tests/darktable/test_masks.py`` checks the layout on a sidecar darktable wrote.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from darkproxy.darktable.params import decode_blob_text, encode_blob_text
from darkproxy.errors import XmpError

DT = "{http://darktable.sf.net/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
MASKS_VERSION = 6  # DEVELOP_MASKS_VERSION (darktable 3.6-4.2)

# dt_masks_type_t
CIRCLE, PATH, GROUP, CLONE, GRADIENT, ELLIPSE, BRUSH, NON_CLONE = 1, 2, 4, 8, 16, 32, 64, 128
TYPE_NAMES = {CIRCLE: "circle", PATH: "path", GROUP: "group", GRADIENT: "gradient", ELLIPSE: "ellipse", BRUSH: "brush"}
# dt_masks_state_t: a group member's state
STATE_USE, STATE_SHOW, STATE_INVERSE = 1, 2, 4
STATE_UNION, STATE_INTERSECTION, STATE_DIFFERENCE, STATE_EXCLUSION = 8, 16, 32, 64
COMBINATIONS = STATE_UNION | STATE_INTERSECTION | STATE_DIFFERENCE | STATE_EXCLUSION
ELLIPSE_PROPORTIONAL = 1  # dt_masks_ellipse_flags_t: the feather a fraction of the radii
GRADIENT_LINEAR, GRADIENT_SIGMOIDAL = 1, 2  # dt_masks_gradient_states_t


@dataclass(frozen=True)
class Circle:
    """``dt_masks_point_circle_t``."""

    center: tuple[float, float]
    radius: float
    border: float


@dataclass(frozen=True)
class Ellipse:
    """``dt_masks_point_ellipse_t`` (``rotation`` in degrees; ``flags`` 1: the border proportional to the radii)."""

    center: tuple[float, float]
    radius: tuple[float, float]
    rotation: float
    border: float
    flags: int = 0


@dataclass(frozen=True)
class Gradient:
    """``dt_masks_point_gradient_t`` (``rotation`` in degrees; ``state`` linear 1 or sigmoid 2; darktable's
    mask ignores ``steepness``)."""

    anchor: tuple[float, float]
    rotation: float
    compression: float
    steepness: float
    curvature: float
    state: int = GRADIENT_SIGMOIDAL


@dataclass(frozen=True)
class GroupMember:
    """``dt_masks_point_group_t``: a form of a group, how it combines (``state``) at ``opacity`` (0..1)."""

    formid: int
    parentid: int
    state: int
    opacity: float


@dataclass(frozen=True)
class PathPoint:
    """``dt_masks_point_path_t``: a path's corner, its bezier handles (``ctrl1`` before it, ``ctrl2`` after it),
    its feather on each side (``border``, fractions of the input's smaller side) and ``state`` (1 normal: darktable's
    GUI recomputes the handles; 2 user: kept)."""

    corner: tuple[float, float]
    ctrl1: tuple[float, float]
    ctrl2: tuple[float, float]
    border: tuple[float, float]
    state: int = 2


@dataclass(frozen=True)
class BrushPoint:
    """``dt_masks_point_brush_t``: a brush stroke's corner, handles and size on each side (``border``, fractions
    of the input's smaller side), ``density`` (the stroke's opacity, 0..1), ``hardness`` (the solid fraction of
    its radius) and ``state`` (as :class:`PathPoint`'s)."""

    corner: tuple[float, float]
    ctrl1: tuple[float, float]
    ctrl2: tuple[float, float]
    border: tuple[float, float]
    density: float
    hardness: float
    state: int = 2


Point = Circle | Ellipse | Gradient | GroupMember | PathPoint | BrushPoint
_FORMATS: dict[int, str] = {
    CIRCLE: "<4f", ELLIPSE: "<6fi", GRADIENT: "<6fi", GROUP: "<3if", PATH: "<8fi", BRUSH: "<10fi"
}  # fmt: skip


def _unpack(kind: int, raw: tuple) -> Point:  # type: ignore[type-arg]
    if kind == CIRCLE:
        return Circle((raw[0], raw[1]), raw[2], raw[3])
    if kind == ELLIPSE:
        return Ellipse((raw[0], raw[1]), (raw[2], raw[3]), raw[4], raw[5], raw[6])
    if kind == GRADIENT:
        return Gradient((raw[0], raw[1]), raw[2], raw[3], raw[4], raw[5], raw[6])
    if kind == PATH:
        return PathPoint((raw[0], raw[1]), (raw[2], raw[3]), (raw[4], raw[5]), (raw[6], raw[7]), raw[8])
    if kind == BRUSH:
        return BrushPoint(
            (raw[0], raw[1]), (raw[2], raw[3]), (raw[4], raw[5]), (raw[6], raw[7]), raw[8], raw[9], raw[10]
        )
    return GroupMember(raw[0], raw[1], raw[2], raw[3])


def _pack(p: Point) -> bytes:
    if isinstance(p, Circle):
        return struct.pack(_FORMATS[CIRCLE], *p.center, p.radius, p.border)
    if isinstance(p, Ellipse):
        return struct.pack(_FORMATS[ELLIPSE], *p.center, *p.radius, p.rotation, p.border, p.flags)
    if isinstance(p, Gradient):
        g = p
        return struct.pack(_FORMATS[GRADIENT], *g.anchor, g.rotation, g.compression, g.steepness, g.curvature, g.state)
    if isinstance(p, PathPoint):
        return struct.pack(_FORMATS[PATH], *p.corner, *p.ctrl1, *p.ctrl2, *p.border, p.state)
    if isinstance(p, BrushPoint):
        return struct.pack(_FORMATS[BRUSH], *p.corner, *p.ctrl1, *p.ctrl2, *p.border, p.density, p.hardness, p.state)
    return struct.pack(_FORMATS[GROUP], p.formid, p.parentid, p.state, p.opacity)


_KINDS = {Circle: CIRCLE, Ellipse: ELLIPSE, Gradient: GRADIENT, GroupMember: GROUP, PathPoint: PATH, BrushPoint: BRUSH}


@dataclass(frozen=True)
class Form:
    """One entry of ``masks_history``: a form ``formid`` of ``kind`` (``dt_masks_type_t``) with its points
    blob (``nb`` structs), ``version``, clone ``source`` and ``num`` (the history item it belongs to)."""

    formid: int
    kind: int
    name: str
    blob: bytes
    nb: int
    version: int = MASKS_VERSION
    source: tuple[float, float] = (0.0, 0.0)
    num: int = 0

    @classmethod
    def of(cls, formid: int, name: str, *points: Point, num: int = 0) -> Form:
        """A form of ``points`` (a circle, ellipse or gradient alone; a path's or brush's corners; group members),
        darktable's layout."""
        kinds = {_KINDS[type(p)] for p in points}
        if len(kinds) != 1 or (not kinds & {GROUP, PATH, BRUSH} and len(points) != 1):
            raise XmpError(
                f"form {name!r}: one circle, ellipse or gradient, a path's or brush's corners, or group members"
            )
        return cls(formid, kinds.pop(), name, b"".join(_pack(p) for p in points), len(points), num=num)

    @property
    def type_name(self) -> str:
        names = [n for bit, n in TYPE_NAMES.items() if self.kind & bit]
        return "/".join(names) or f"type {self.kind}"

    def points(self) -> tuple[Point, ...]:
        """The decoded points structs; one-line :class:`XmpError` for a kind not decoded or a bad size."""
        fmt = _FORMATS.get(self.kind & (CIRCLE | ELLIPSE | GRADIENT | GROUP | PATH | BRUSH | CLONE))
        if fmt is None or self.kind & CLONE:
            raise XmpError(f"drawn form {self.name!r} ({self.type_name}): darkproxy does not decode it")
        size = struct.calcsize(fmt)
        if len(self.blob) != size * self.nb:
            raise XmpError(f"drawn form {self.name!r}: {len(self.blob)} bytes, {self.nb} x {size} expected")
        kind = self.kind & (CIRCLE | ELLIPSE | GRADIENT | GROUP | PATH | BRUSH)
        return tuple(_unpack(kind, struct.unpack_from(fmt, self.blob, i * size)) for i in range(self.nb))


def _field(li: ET.Element, key: str) -> str | None:
    v = li.get(DT + key)
    if v is None and (child := li.find(DT + key)) is not None:
        v = (child.text or "").strip()
    return v


def read_forms(desc: ET.Element, where: str = "XMP") -> list[Form]:
    """Every entry of ``desc``'s ``darktable:masks_history`` (the sidecar's ``rdf:Description``), in order."""
    seq = desc.find(f"{DT}masks_history/{RDF}Seq")
    forms = []
    for li in seq.findall(RDF + "li") if seq is not None else []:
        try:
            src = decode_blob_text(_field(li, "mask_src") or "")
            source = struct.unpack("<2f", src) if len(src) == 8 else (0.0, 0.0)
            forms.append(
                Form(
                    formid=int(_field(li, "mask_id") or 0),
                    kind=int(_field(li, "mask_type") or 0),
                    name=_field(li, "mask_name") or "",
                    blob=decode_blob_text(_field(li, "mask_points") or ""),
                    nb=int(_field(li, "mask_nb") or 0),
                    version=int(_field(li, "mask_version") or 0),
                    source=(float(source[0]), float(source[1])),
                    num=int(_field(li, "mask_num") or 0),
                )
            )
        except (ValueError, XmpError) as e:
            raise XmpError(f"{where}: unreadable darktable:masks_history entry ({e})") from None
    return forms


def write_forms(desc: ET.Element, forms: Iterable[Form]) -> None:
    """Replace ``desc``'s ``darktable:masks_history`` by ``forms`` (none: removed), as darktable writes it."""
    for old in desc.findall(DT + "masks_history"):
        desc.remove(old)
    forms = list(forms)
    if not forms:
        return
    seq = ET.SubElement(ET.SubElement(desc, DT + "masks_history"), RDF + "Seq")
    for f in forms:
        li = ET.SubElement(seq, RDF + "li")
        for k, v in (
            ("mask_num", str(f.num)),
            ("mask_id", str(f.formid)),
            ("mask_type", str(f.kind)),
            ("mask_name", f.name),
            ("mask_version", str(f.version)),
            ("mask_points", encode_blob_text(f.blob)),
            ("mask_nb", str(f.nb)),
            ("mask_src", encode_blob_text(struct.pack("<2f", *f.source))),
        ):
            li.set(DT + k, v)


def active_forms(forms: Iterable[Form], history_end: int) -> dict[int, Form]:
    """The forms darktable's pipe uses: those of the last history item below ``history_end`` that has any
    (by id)."""
    forms = list(forms)
    nums = [f.num for f in forms if f.num < history_end]
    if not nums:
        return {}
    last = max(nums)
    return {f.formid: f for f in forms if f.num == last}


@dataclass(frozen=True)
class DrawnMask:
    """An item's drawn mask: the group ``group`` (the blend's ``mask_id``) among ``forms`` (the active ones;
    the group absent: darktable fills the mask), ``inverted`` (``mask_combine``'s
    ``DEVELOP_COMBINE_MASKS_POS``), ``crop`` (rawprepare's ``x, y, width, height`` crop in raw px: the forms'
    frame is the raw before it)."""

    forms: tuple[Form, ...]
    group: int
    inverted: bool = False
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def by_id(self) -> dict[int, Form]:
        return {f.formid: f for f in self.forms}

    def uses(self, kind: int) -> bool:
        """Whether a form of ``kind`` (``PATH``...) is in the mask: the group or its members, nested."""
        forms, seen = self.by_id, set()

        def walk(fid: int) -> bool:
            f = forms.get(fid)
            if f is None or fid in seen:
                return False
            seen.add(fid)
            if f.kind & kind:
                return True
            return bool(f.kind & GROUP) and any(walk(m.formid) for m in f.points() if isinstance(m, GroupMember))

        return walk(self.group)

    @property
    def how(self) -> str:
        """``a drawn mask (circle, gradient, inverted)``, or ``an empty drawn mask`` (no such group)."""
        forms = self.by_id
        g = forms.get(self.group)
        if g is None:
            return "an empty drawn mask"
        members = [m for m in g.points() if isinstance(m, GroupMember)] if g.kind & GROUP else []
        kinds = [forms[m.formid].type_name for m in members if m.formid in forms] or [g.type_name]
        return "a drawn mask (" + ", ".join(kinds) + (", inverted" if self.inverted else "") + ")"


def forms_problem(forms: Mapping[int, Form], group: int) -> str | None:
    """What of the group ``group`` darkproxy does not reproduce (``None``: nothing): a form of another
    version, a kind not decoded (clone), a path of fewer than 3 corners, a brush of one, a group whose first member
    combines with the mask before it (darktable's buffer there is not initialised), a member missing, a group in
    a group twice."""
    seen: set[int] = set()

    def check(fid: int, nested: bool) -> str | None:
        f = forms.get(fid)
        if f is None:
            return None if not nested else f"drawn form {fid} missing from the sidecar's masks history"
        if fid in seen:
            return f"drawn form {f.name!r} used twice"
        seen.add(fid)
        if f.version != MASKS_VERSION:
            return f"drawn form {f.name!r} of masks version {f.version} (darkproxy reads {MASKS_VERSION})"
        try:
            pts = f.points()
        except XmpError as e:
            return str(e)
        if f.kind & PATH and len(pts) < 3:
            return f"drawn path {f.name!r} of {len(pts)} corners (darkproxy reproduces 3 or more)"
        if f.kind & BRUSH and len(pts) < 2:
            return f"drawn brush {f.name!r} of {len(pts)} corner (darkproxy reproduces 2 or more)"
        if not f.kind & GROUP:
            return None
        members = [p for p in pts if isinstance(p, GroupMember)]
        if members and members[0].state & COMBINATIONS and not nested:
            return f"drawn group {f.name!r}: its first shape combines with an uninitialised mask in darktable"
        for m in members:
            if (why := check(m.formid, True)) is not None:
                return why
        return None

    return check(group, False)
