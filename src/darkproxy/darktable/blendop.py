"""darktable's blend params (a history item's ``blendop_params``): decoded, encoded, judged.

darktable has no introspection for them: the layout is ``dt_develop_blend_params_t`` of ``src/develop/blend.h`` at
``DEVELOP_BLEND_VERSION`` 11 (darktable 4.0 to 4.2 at least), 420 bytes, little endian, read field by field below.
Versions 12 and 13 (darktable 5.0: the same 420 bytes) are read as they are: 12 normalised ``raster_mask_id`` and
stopped writing the inverted combine of drawn masks (an equivalent one), 13 took ``reserved[0]`` for
``feather_version`` (1: darktable 5's feathering, another guided filter weight and epsilon in RGB, ported:
:func:`darkproxy.replica.maskrefine.feather_constants`; 0: the older one, which darktable's upgrade of an older
blob sets): :attr:`BlendParams.feather_version`. Version 14 (darktable 5.4.1: the
same 420 bytes) is 13 with a raster mask's own refinements (details, feathering, blur, tone curve) zeroed on upgrade,
as darktable 5.4 applies them to a raster mask where 4.2 ignored them (:mod:`darkproxy.replica.raster` refuses the
ones it would apply). Older blobs are upgraded as darktable's ``dt_develop_blend_legacy_params`` upgrades them:
version 10 (darktable 3.0-3.8; the same layout, its legacy blend modes mapped, ``details`` read from the old
``reserved[0]``), versions 1 to 9 (their own layouts, on darktable's defaults with the module's display-referred
blend colour space: :mod:`darkproxy.darktable.blendop_legacy`) and the all-zero blobs of any version (darktable's
defaults: no blending); a blob of another version or size, or an old one of a module unknown there, is refused in one
line. ``tests/darktable/test_blendop.py`` checks the layout on darktable's own default blend params and on a blob
encoded here that darktable-cli renders as intended.

darktable blends an item only when ``mask_mode`` has ``DEVELOP_MASK_ENABLED``
(``dt_develop_blend_process`` returns at once otherwise, whatever the other fields hold):
:attr:`BlendParams.enabled`. :func:`blend_problem` says what of an enabled blend the replica
cannot reproduce exactly.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from darkproxy.darktable import blendop_legacy as legacy
from darkproxy.darktable.masks import DrawnMask, Form, forms_problem
from darkproxy.errors import XmpError

BLEND_VERSION = 11  # the version darkproxy writes (darktable 5 upgrades it: feather_version 0)
READ_VERSIONS = (10, 11, 12, 13, 14)  # the versions of this layout darkproxy reads
# mask_mode, blend_cst, blend_mode, blend_parameter, opacity, mask_combine, mask_id, blendif,
# feathering_radius, feathering_guide, blur_radius, contrast, brightness, details, reserved[3],
# blendif_parameters[4 * 16], blendif_boost_factors[16], raster_mask_source (dt_dev_operation_t:
# char[20]), raster_mask_instance, raster_mask_id, raster_mask_invert (gboolean)
_FMT = "<IiIffIIIfIffff3I64f16f20siii"
SIZE = struct.calcsize(_FMT)  # 420

MASK_ENABLED = 1  # "uniformly"
MASK_DRAWN = 2
MASK_PARAMETRIC = 4
MASK_RASTER = 8
# mask_combine (blend.h dt_develop_combine_masks_t): the parametric mask inverted; its channels combined
# inclusively (the product of the channels' complements, then complemented); a drawn mask inverted
COMBINE_INV = 0x01
COMBINE_INCL = 0x02
COMBINE_MASKS_POS = 0x04
# blendif: bit i, channel i takes part; bit 16 + i, its polarity is inverted (blend.h dt_develop_blendif_channels_t:
# scene RGB's 0 g (luminance) in, 1-3 R G B in, 4-7 the same out, 8-10 Jz Cz hz in, 12-14 Jz Cz hz out)
BLENDIF_RGB_MASK = 0x77FF
BLENDIF_CHANNELS = {0: "g", 1: "R", 2: "G", 3: "B", 8: "Jz", 9: "Cz", 10: "hz"}

COLORSPACES = {0: "the module's default colour space", 1: "raw", 2: "Lab", 3: "RGB (display)", 4: "RGB (scene)"}
CS_RGB_SCENE = 4
CS_LAB, CS_RGB_DISPLAY = 2, 3  # blended by replica/blend_lab.py and blend_display.py where the pipe is working RGB
# the blend-if channels of Lab (blend.h: 0-2 L a b, 8-9 C h; DEVELOP_BLENDIF_Lab_MASK) and RGB (display) (0 gray,
# 1-3 R G B, 8-10 H S L of HSL); + 4: the module's output
LAB_CHANNELS = {0: "L", 1: "a", 2: "b", 8: "C", 9: "h"}
DISPLAY_CHANNELS = {0: "g", 1: "R", 2: "G", 3: "B", 8: "H", 9: "S", 10: "L"}
BLEND_REVERSE = 0x80000000
BLEND_NORMAL = 0x18  # DEVELOP_BLEND_NORMAL2: darktable's "normal" since 3.0
BLEND_MODES = {
    0x00: "normal (obsolete)",
    0x01: "normal bounded (obsolete)",
    0x02: "lighten",
    0x03: "darken",
    0x04: "multiply",
    0x05: "average",
    0x06: "addition",
    0x07: "subtract",
    0x08: "difference (deprecated)",
    0x09: "screen",
    0x0A: "overlay",
    0x0B: "softlight",
    0x0C: "hardlight",
    0x0D: "vividlight",
    0x0E: "linearlight",
    0x0F: "pinlight",
    0x10: "lightness",
    0x11: "chromaticity",
    0x12: "hue",
    0x13: "color",
    0x14: "inverse (obsolete)",
    0x15: "unbounded (obsolete)",
    0x16: "coloradjustment",
    0x17: "difference",
    0x18: "normal",
    0x19: "bounded",
    0x1A: "Lab lightness",
    0x1B: "Lab color",
    0x1C: "HSV value",
    0x1D: "HSV color",
    0x1E: "Lab L-channel",
    0x1F: "Lab a-channel",
    0x20: "Lab b-channel",
    0x21: "RGB red channel",
    0x22: "RGB green channel",
    0x23: "RGB blue channel",
    0x24: "multiply reverse (obsolete)",
    0x25: "subtract reverse",
    0x26: "divide",
    0x27: "divide reverse",
    0x28: "geometric mean",
    0x29: "harmonic mean",
}


# the modes darktable's scene-referred RGB blend implements (develop/blends/blendif_rgb_jzczhz.c,
# _choose_blend_func): any other mode code falls back to normal there
SCENE_RGB_MODES = frozenset({0x04, 0x05, 0x06, 0x07, 0x08, 0x10, 0x11, 0x17, 0x18, 0x21, 0x22, 0x23, 0x25, 0x26, 0x27})
SCENE_RGB_MODES |= {0x28, 0x29}
# the modes of darktable's Lab and RGB (display) blends (blendif_lab.c, blendif_rgb_hsl.c _choose_blend_func; any
# other code runs normal, unbounded, there)
LAB_MODES = frozenset({0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10})
LAB_MODES |= {0x11, 0x12, 0x13, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1E, 0x1F, 0x20}
DISPLAY_MODES = (LAB_MODES - {0x1A, 0x1B, 0x1E, 0x1F, 0x20}) | {0x1C, 0x1D, 0x21, 0x22, 0x23}
BLEND_SPACE_MODES = {CS_RGB_SCENE: SCENE_RGB_MODES, CS_LAB: LAB_MODES, CS_RGB_DISPLAY: DISPLAY_MODES}


# blend.h dt_develop_mask_feathering_guide_t: the feathering's guide and its place relative to the blur
GUIDE_IN_BEFORE_BLUR, GUIDE_OUT_BEFORE_BLUR, GUIDE_IN_AFTER_BLUR, GUIDE_OUT_AFTER_BLUR = 0x01, 0x02, 0x05, 0x06
BLUR, FEATHER_IN, FEATHER_OUT = "blurred", "feathered by the input", "feathered by the output"


def post_operations(feathering_radius: float, feathering_guide: int, blur_radius: float) -> list[str]:
    """blend.c ``_develop_mask_get_post_operations`` but the tone curve: the mask's spatial refinements in
    darktable's order (:data:`BLUR`, :data:`FEATHER_IN`, :data:`FEATHER_OUT`; empty: none). The feathering
    runs above a radius of 0.1 (``piece->colors >= 3``: always in RGB), the blur too; the feathering comes
    before the blur only where its guide says "before blur" (any other value: after it, guided by the input)."""
    f32 = struct.Struct("<f")

    def above(v: float) -> bool:  # params->radius > 0.1f, in float32
        return bool(f32.unpack(f32.pack(v))[0] > f32.unpack(f32.pack(0.1))[0])

    feather, blur = above(feathering_radius), above(blur_radius)
    before = feathering_guide in (GUIDE_IN_BEFORE_BLUR, GUIDE_OUT_BEFORE_BLUR)
    fop = FEATHER_OUT if feathering_guide in (GUIDE_OUT_BEFORE_BLUR, GUIDE_OUT_AFTER_BLUR) else FEATHER_IN
    if feather:
        return [fop, BLUR] if blur and before else ([BLUR] if blur else []) + [fop]
    return [BLUR] if blur else []


@dataclass(frozen=True)
class ParametricMask:
    """An item's parametric mask (blend-if) in scene RGB, as ``dt_develop_blendif_rgb_jzczhz_make_mask``
    reads it: ``blendif`` (active and polarity bits: :data:`BLENDIF_CHANNELS`), ``parameters`` (4
    breakpoints per channel, 16 channels, in darktable's slider units), ``boost`` (log2 factors per
    channel: a breakpoint in channel units is ``parameter * 2^boost``), ``combine`` (``mask_combine``:
    :data:`COMBINE_INV`, :data:`COMBINE_INCL`), ``contrast`` and ``brightness`` (the mask's tone curve),
    ``feathering_radius``, ``feathering_guide`` and ``blur_radius`` (the refinements before it, in px at
    full resolution: :mod:`darkproxy.replica.maskrefine`)."""

    blendif: int
    parameters: tuple[float, ...]
    boost: tuple[float, ...]
    combine: int = 0
    contrast: float = 0.0
    brightness: float = 0.0
    feathering_radius: float = 0.0
    feathering_guide: int = 0
    blur_radius: float = 0.0
    colorspace: int = CS_RGB_SCENE  # the blend colour space: its channels (CS_LAB, CS_RGB_DISPLAY)
    feather_version: int = 0  # darktable 5's feathering (1: another guide weight and epsilon in RGB)

    @property
    def refinements(self) -> list[str]:
        """The spatial refinements darktable runs on the mask, in its order: :func:`post_operations`."""
        return post_operations(self.feathering_radius, self.feathering_guide, self.blur_radius)

    def channels(self) -> str:
        """The active channels, darktable's names (``Jz in, R out (inverted)``) or ``no channel``."""
        names = []
        for side, off in (("in", 0), ("out", 4)):
            space = {CS_LAB: LAB_CHANNELS, CS_RGB_DISPLAY: DISPLAY_CHANNELS}.get(self.colorspace, BLENDIF_CHANNELS)
            for ch, name in space.items():
                if self.blendif & (1 << (ch + off)):
                    inv = " (inverted)" if self.blendif & (1 << (ch + off + 16)) else ""
                    names.append(f"{name} {side}{inv}")
        return ", ".join(names) or "no channel"


@dataclass(frozen=True)
class UniformBlend:
    """An item's blend in scene RGB: ``opacity`` in ``[0, 1]`` (clipped as darktable clips it), ``mode``
    (the mode code darktable's scene-RGB blend runs: an unknown one is normal there), ``reverse`` (input
    and output swapped), ``parameter`` (darktable's ``blend_parameter``, in EV: the modes that scale the
    output use ``2^parameter``); ``mask``: its parametric mask (``None``: uniformly, the opacity everywhere);
    ``colorspace``: Lab or RGB (display) in place of scene RGB (``mode`` then one of that space's, or normal)."""

    opacity: float
    mode: int = BLEND_NORMAL
    reverse: bool = False
    parameter: float = 0.0
    mask: ParametricMask | None = None
    drawn: DrawnMask | None = None  # its drawn mask (then ``mask`` is set: blendif 0 where not parametric)
    colorspace: int = CS_RGB_SCENE  # the blend colour space: CS_LAB, CS_RGB_DISPLAY (replica/blend_lab.py...)

    @property
    def plain(self) -> bool:
        """Normal, uniformly, in scene RGB: ``in (1 - opacity) + out opacity`` (blend.blend_uniform)."""
        return self.mask is None and self.mode == BLEND_NORMAL and not self.reverse and self.colorspace == CS_RGB_SCENE

    @property
    def how(self) -> str:
        """``uniformly``, ``with a parametric mask`` or ``with a parametric mask (feathered by the input,
        blurred)``; ``with a drawn mask (circle) and a parametric mask``..."""
        space = "" if self.colorspace == CS_RGB_SCENE else f" in {COLORSPACES[self.colorspace]}"
        if self.mask is None:
            return "uniformly" + space
        refined = self.mask.refinements
        what = "a parametric mask" if self.drawn is None else self.drawn.how
        if self.drawn is not None and self.mask.blendif & BLENDIF_RGB_MASK:
            what += " and a parametric mask"
        return f"with {what}" + (f" ({', '.join(refined)})" if refined else "") + space

    @property
    def spatial(self) -> bool:
        """Whether the mask is feathered or blurred or drawn (each output pixel depends on its neighbours or on
        its place)."""
        return self.mask is not None and (bool(self.mask.refinements) or self.drawn is not None)

    @property
    def mode_name(self) -> str:
        return BLEND_MODES.get(self.mode, f"mode {self.mode:#x}") + (" (reversed)" if self.reverse else "")


@dataclass(frozen=True)
class BlendParams:
    """``dt_develop_blend_params_t`` (version 11), field by field as darktable lays it out."""

    mask_mode: int
    blend_cst: int
    blend_mode: int
    blend_parameter: float
    opacity: float  # percent
    mask_combine: int
    mask_id: int
    blendif: int
    feathering_radius: float
    feathering_guide: int
    blur_radius: float
    contrast: float
    brightness: float
    details: float
    reserved: tuple[int, ...]
    blendif_parameters: tuple[float, ...]  # 4 per channel, 16 channels
    blendif_boost_factors: tuple[float, ...]  # 16
    raster_mask_source: str
    raster_mask_instance: int
    raster_mask_id: int
    raster_mask_invert: bool
    feather_version: int = 0  # version 13's and 14's reserved[0]: 1 is darktable 5's feathering (module docstring)

    @property
    def enabled(self) -> bool:
        """Does darktable blend at all (``dt_develop_blend_process`` returns without this bit)?"""
        return bool(self.mask_mode & MASK_ENABLED)

    @property
    def masks(self) -> list[str]:
        """The masks ``mask_mode`` asks for (empty: uniform blending)."""
        bits = ((MASK_DRAWN, "drawn mask"), (MASK_PARAMETRIC, "parametric mask"), (MASK_RASTER, "raster mask"))
        return [name for bit, name in bits if self.mask_mode & bit]

    @property
    def mode_name(self) -> str:
        name = BLEND_MODES.get(self.blend_mode & 0xFF, f"unknown mode {self.blend_mode & 0xFF:#x}")
        return name + (" (reversed)" if self.blend_mode & BLEND_REVERSE else "")

    @property
    def colorspace_name(self) -> str:
        return COLORSPACES.get(self.blend_cst, f"unknown colour space {self.blend_cst}")

    def summary(self) -> str:
        """One line: ``off``, or the mode, opacity, colour space and masks."""
        if not self.enabled:
            return "off"
        masks = ", ".join(self.masks) or "uniformly"
        return f"{self.mode_name} at {self.opacity:g} %, {masks}, in {self.colorspace_name}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("reserved", "blendif_parameters", "blendif_boost_factors"):
            d[k] = list(d[k])
        d.update(enabled=self.enabled, masks=self.masks, mode=self.mode_name, colorspace=self.colorspace_name)
        return d

    def encode(self) -> bytes:
        """The 420-byte blob darktable reads (version :data:`BLEND_VERSION`)."""
        if len(self.reserved) != 3 or len(self.blendif_parameters) != 64 or len(self.blendif_boost_factors) != 16:
            raise XmpError("blend params: reserved[3], blendif_parameters[64], blendif_boost_factors[16] expected")
        src = self.raster_mask_source.encode()
        if len(src) >= 20:
            raise XmpError(f"blend params: raster_mask_source {self.raster_mask_source!r} is over 19 bytes")
        return struct.pack(
            _FMT,
            self.mask_mode,
            self.blend_cst,
            self.blend_mode,
            self.blend_parameter,
            self.opacity,
            self.mask_combine,
            self.mask_id,
            self.blendif,
            self.feathering_radius,
            self.feathering_guide,
            self.blur_radius,
            self.contrast,
            self.brightness,
            self.details,
            *self.reserved,
            *self.blendif_parameters,
            *self.blendif_boost_factors,
            src,
            self.raster_mask_instance,
            self.raster_mask_id,
            int(self.raster_mask_invert),
        )

    def uniform(self, opacity: float, mode: int = BLEND_NORMAL) -> BlendParams:
        """These params blending uniformly (no mask) in ``mode`` at ``opacity`` percent."""
        return replace(self, mask_mode=MASK_ENABLED, blend_mode=mode, opacity=float(opacity))


# blend.c: the legacy blend modes and what _blend_legacy_blend_mode makes of them (mode, reversed)
_LEGACY_MODES = {0x00: (BLEND_NORMAL, False), 0x01: (0x19, False), 0x14: (0x19, True), 0x15: (BLEND_NORMAL, False)}
_LEGACY_MODES[0x24] = (0x04, True)  # multiply reverse: multiply, reversed
_DEFAULT_PARAMETERS = (0.0, 0.0, 1.0, 1.0) * 16  # _default_blendop_params' blendif_parameters


def _legacy_blend_mode(mode: int) -> int:
    """blend.c ``_blend_legacy_blend_mode``: obsolete modes to their 4.2 equivalents."""
    new, reverse = _LEGACY_MODES.get(mode & 0xFF, (mode & 0xFF, False))
    return (BLEND_REVERSE if reverse else 0) | new


def _zero_params() -> BlendParams:
    """darktable's default blend params (``_default_blendop_params``; its colour space ``none``: the
    module's own): what it makes of an all-zero blob of any version. Blending is off in them."""
    return BlendParams(
        0,
        0,
        BLEND_NORMAL,
        0.0,
        100.0,
        0,
        0,
        0,
        0.0,
        GUIDE_IN_AFTER_BLUR,  # DEVELOP_MASK_GUIDE_IN_AFTER_BLUR
        0.0,
        0.0,
        0.0,
        0.0,
        (0, 0, 0),
        _DEFAULT_PARAMETERS,
        (0.0,) * 16,
        "",
        0,
        0,
        False,
    )


def decode_blendop(
    blob: bytes, version: int | None, where: str = "blend params", operation: str | None = None
) -> BlendParams:
    """``blob`` of blendop ``version`` of module ``operation`` -> :class:`BlendParams` (versions 1 to 10 and
    all-zero blobs upgraded as darktable upgrades them; versions 1 to 9 take the module's blend colour space,
    and need ``operation``); one-line :class:`XmpError` for another version or size, or an unknown module."""
    # an all-zero blob: darktable's defaults, blending off (an old version's: the module's colour space, where
    # known; one of version 11 to 14 and its size darktable copies as it is: blending off too, colour space none)
    if blob and not any(blob):
        cst = legacy.DISPLAY_CST.get(operation or "", 0) if version not in READ_VERSIONS[1:] else 0
        return replace(_zero_params(), blend_cst=cst)
    if version in legacy.LAYOUTS:
        f = legacy.upgrade_fields(blob, version, operation, where)
        f["blend_mode"] = _legacy_blend_mode(f["blend_mode"])
        if "blendif_parameters" in f:  # version 2: the first 8 channels, the rest darktable's defaults
            f["blendif_parameters"] += _DEFAULT_PARAMETERS[len(f["blendif_parameters"]) :]
        return replace(_zero_params(), **f)  # (the boost factors: 0, no module's default colour space is JzCzhz)
    if version not in READ_VERSIONS:
        raise XmpError(
            f"{where}: blendop version {version}, darkproxy reads versions 1 to {READ_VERSIONS[-1]} (darktable to 5.4)"
        )
    if len(blob) != SIZE:
        raise XmpError(f"{where}: {len(blob)} bytes, blendop version {version} has {SIZE}")
    bp = _unpack(blob)
    if version in (BLEND_VERSION, 12):
        return bp
    if version in (13, 14):
        return replace(bp, feather_version=bp.reserved[0])
    # v10 -> v11 (dt_develop_blend_legacy_params): the same fields; reserved[0] became details (NaN -> 0,
    # clamped to [-1, 1]), the rest of reserved darktable's defaults
    details = 0.0 if math.isnan(bp.details) else min(1.0, max(-1.0, bp.details))
    return replace(bp, blend_mode=_legacy_blend_mode(bp.blend_mode), details=details, reserved=(0, 0, 0))


def _unpack(blob: bytes) -> BlendParams:
    v = struct.unpack(_FMT, blob)
    scalars = dict(zip([f.name for f in fields(BlendParams)][:14], v[:14], strict=True))
    return BlendParams(
        **scalars,
        reserved=tuple(v[14:17]),
        blendif_parameters=tuple(v[17:81]),
        blendif_boost_factors=tuple(v[81:97]),
        raster_mask_source=v[97].split(b"\0", 1)[0].decode("utf-8", "replace"),
        raster_mask_instance=v[98],
        raster_mask_id=v[99],
        raster_mask_invert=bool(v[100]),
    )


def item_blend(item: Any) -> BlendParams | None:
    """A history item's blend params (``None``: the item has none, darktable's defaults: no blending);
    one-line :class:`XmpError` when they cannot be read."""
    if item.blendop_params is None:
        return None
    where = f"{item.operation} instance {item.multi_priority}"
    return decode_blendop(item.blendop_params, item.blendop_version, where, item.operation)


def mask_problems(
    bp: BlendParams,
    exact_modes: bool,
    forms: dict[int, Form] | None = None,
    exact_uniform: bool = False,
    raster: bool = False,
) -> list[str]:
    """What of ``bp``'s masks the replica does not reproduce (empty: none, or a parametric mask alone in scene
    RGB where the pipe is the working profile's RGB (``exact_modes``), refined by feathering, blur, contrast and
    brightness: :mod:`darkproxy.replica.mask`, :mod:`darkproxy.replica.maskrefine`); the details threshold
    (darktable's detail mask: it runs at any non-zero value) is not ported. With ``forms`` (the sidecar's
    active drawn forms, by id), a drawn mask of circles, ellipses, gradients, paths, brushes is reproduced too
    (:mod:`darkproxy.replica.drawn`); what of its group is not: :func:`darkproxy.darktable.masks.forms_problem`.
    A drawn mask alone, not feathered (the guided filter reads the pipe's colours), depends on no colour: it is
    reproduced wherever the uniform blend is (``exact_uniform``: scene-referred linear RGB, before colorin too).
    ``raster``: the plan hands the item its raster mask's source (:mod:`darkproxy.replica.raster`)."""
    if raster and "raster mask" in bp.masks:  # blend.c reads the raster mask alone: no other mask, no details
        return [] if exact_modes else ["raster mask outside the working profile's RGB (between colorin and colorout)"]
    ported = ("parametric mask",) if forms is None else ("parametric mask", "drawn mask")
    what = [m for m in bp.masks if m not in ported]
    if not any(m in ported for m in bp.masks):
        return what
    colourless = forms is not None and bp.masks == ["drawn mask"] and FEATHER_IN not in _feathers(bp)
    if not exact_modes and not (exact_uniform and colourless):  # (another blend colour space: blend_problem says)
        kinds = " and ".join(m for m in bp.masks if m in ported)
        what.append(f"{kinds} outside the working profile's RGB (between colorin and colorout)")
    if forms is not None and "drawn mask" in bp.masks and (why := forms_problem(forms, bp.mask_id)) is not None:
        what.append(why)
    if bp.details != 0.0:
        what.append(f"mask details threshold {bp.details:g} (detail mask, not ported)")
    if bp.feather_version not in (0, 1) and _feathers(bp):
        what.append(f"mask feathering version {bp.feather_version} (darkproxy ports 0 and darktable 5's 1)")
    return what


def _feathers(bp: BlendParams) -> list[str]:
    """The mask's feathering, if any, as :data:`FEATHER_IN` (by the input or the output: both read colours)."""
    ops = post_operations(bp.feathering_radius, bp.feathering_guide, bp.blur_radius)
    return [FEATHER_IN for op in ops if op in (FEATHER_IN, FEATHER_OUT)]


def blend_problem(
    item: Any,
    exact_uniform: bool,
    exact_modes: bool = False,
    forms: dict[int, Form] | None = None,
    raster: bool = False,
    camera_modes: bool = False,
) -> str | None:
    """What of ``item``'s blending the replica cannot reproduce exactly (``None``: nothing: it does
    not blend, or, with ``exact_uniform`` (the stage is in scene-referred linear RGB), it blends
    uniformly in mode normal in scene RGB, or, with ``exact_modes`` too (the stage's pipe is the
    working profile's RGB, the replica's), in any mode of darktable's scene-RGB blend, uniformly or
    with a parametric mask (see :func:`mask_problems`), and there in any mode of darktable's Lab and RGB
    (display) blends too: :mod:`darkproxy.replica.blend` reproduces those; not a drawn mask in those).
    The text names the module, its instance and what: ``opacity 50 %``, ``blend mode multiply``,
    ``drawn mask``, ``mask feathering radius 5``... ``camera_modes``: the stage runs on camera RGB (between
    demosaic and colorin): any mode and mask of the scene-RGB blend there (:mod:`darkproxy.replica.blend_camera`),
    not a raster mask."""
    where = f"{item.operation} instance {item.multi_priority}"
    try:
        bp = item_blend(item)
    except XmpError as e:
        return str(e)
    if bp is None or not bp.enabled:
        return None
    camera = camera_modes and bp.blend_cst == CS_RGB_SCENE  # on camera RGB and its profile: blend_camera.py
    what = mask_problems(bp, exact_modes or (camera and not raster), forms, exact_uniform, raster)
    if bp.blend_mode != BLEND_NORMAL and not (exact_modes and bp.blend_cst in BLEND_SPACE_MODES) and not camera:
        what.append(f"blend mode {bp.mode_name}")
    if bp.blend_cst not in BLEND_SPACE_MODES or (bp.blend_cst != CS_RGB_SCENE and not exact_modes):
        outside = "" if bp.blend_cst not in BLEND_SPACE_MODES else " outside the working profile's RGB"
        what.append(f"blending in {bp.colorspace_name}{outside}")
    elif bp.blend_cst != CS_RGB_SCENE and "drawn mask" in bp.masks and "drawn mask" not in what:  # scene only
        what.append(f"drawn mask in {bp.colorspace_name}")
    if not what and exact_uniform:
        return None
    if not what:
        what.append(f"opacity {bp.opacity:g} %")
    return f"{where} blends ({', '.join(what)}): the replica does not reproduce that"


def uniform_blend(
    item: Any, forms: dict[int, Form] | None = None, crop: tuple[int, ...] = (0, 0, 0, 0), raster: bool = False
) -> UniformBlend | None:
    """An item's blend in scene RGB, uniform or with a parametric mask (see :class:`UniformBlend`), or with a
    drawn one where ``forms`` (the sidecar's active drawn forms, by id) are given (``crop``: rawprepare's ``x,
    y, width, height``); ``None`` when the item does not blend, or blends otherwise (a raster mask, another
    colour space: see :func:`blend_problem`, which also says what of a mask is not reproduced); ``raster``: a
    raster mask's blend (its mode, colour space and opacity, no mask: the plan hands it its source's mask)."""
    bp = item_blend(item)
    if bp is None or not bp.enabled or bp.blend_cst not in BLEND_SPACE_MODES:
        return None
    rastered = raster and "raster mask" in bp.masks  # blend.c: the raster mask alone
    if not rastered and bp.masks not in ([], ["parametric mask"]) and (forms is None or "raster mask" in bp.masks):
        return None
    mask, drawn = None, None
    if "drawn mask" in bp.masks and forms is not None and not rastered:  # (forms: the sidecar's; rawprepare's crop)
        c = (int(crop[0]), int(crop[1]), int(crop[2]), int(crop[3]))
        drawn = DrawnMask(tuple(forms.values()), bp.mask_id, bool(bp.mask_combine & COMBINE_MASKS_POS), c)
    if bp.masks and not rastered:
        mask = ParametricMask(
            blendif=bp.blendif if "parametric mask" in bp.masks else 0,  # not conditional: the drawn mask alone
            parameters=bp.blendif_parameters,
            boost=bp.blendif_boost_factors,
            combine=bp.mask_combine,
            contrast=float(bp.contrast),
            brightness=float(bp.brightness),
            feathering_radius=float(bp.feathering_radius),
            feathering_guide=int(bp.feathering_guide),
            blur_radius=float(bp.blur_radius),
            colorspace=int(bp.blend_cst),
            feather_version=int(bp.feather_version),
        )
    code = bp.blend_mode & 0xFF
    return UniformBlend(
        opacity=min(max(bp.opacity / 100.0, 0.0), 1.0),
        mode=code if code in BLEND_SPACE_MODES[bp.blend_cst] else BLEND_NORMAL,
        reverse=bool(bp.blend_mode & BLEND_REVERSE),
        parameter=float(bp.blend_parameter),
        mask=mask,
        drawn=drawn,
        colorspace=int(bp.blend_cst),
    )
