"""darktable's blend params of blendop versions 1 to 9 (darktable before 3.0), upgraded to version 11
as darktable 4.2.1 upgrades them when it loads a history (``src/develop/blend.c``
``dt_develop_blend_legacy_params``).

Each old version is a struct of its own (the layouts below, little endian, checked against gcc's
``sizeof`` and ``offsetof`` of darktable's typedefs: 12, 144, 272, 276, 300, 300, 300, 316 and 348
bytes). darktable starts every upgrade from its default blend params for a display-referred edit
(``_blend_default_module_blend_colorspace(module, 0)``): the blend colour space is the module's own,
RGB modules blend in RGB (display), Lab modules in Lab, raw modules in raw, and a module that does
not blend gets none. That depends on the module: :data:`DISPLAY_CST` holds it for every module of
darktable 4.2.1 (its ``flags()`` and ``default_colorspace()``, which ``blend_colorspace()`` returns
for all of them); the blob of another module is refused in one line.
"""

from __future__ import annotations

import struct
from typing import Any

from darkproxy.errors import XmpError

# version -> struct layout (blend.c's dt_develop_blend_params<N>_t); 5, 6 and 7 are identical
LAYOUTS = {
    1: "<IfI",  # mode, opacity, mask_id
    2: "<IfII32f",  # + blendif, blendif_parameters[4 * 8]
    3: "<IfII64f",  # blendif_parameters[4 * 16]
    4: "<IfIIf64f",  # + radius (the blur) before blendif_parameters
    5: "<IIfIIIf4I64f",  # mask_mode, blend_mode, opacity, mask_combine, mask_id, blendif, radius, reserved[4]
    6: "<IIfIIIf4I64f",
    7: "<IIfIIIf4I64f",
    # mask_mode, blend_mode, opacity, mask_combine, mask_id, blendif, feathering_radius, feathering_guide,
    # blur_radius, contrast, brightness, reserved[4], blendif_parameters[64]
    8: "<IIfIIIfIfff4I64f",
    9: "<IIfIIIfIfff4I64f20siii",  # + raster_mask_source (char[20]), _instance, _id, _invert (gboolean)
}
SIZES = {v: struct.calcsize(f) for v, f in LAYOUTS.items()}

_BLENDIF_ACTIVE = 1 << 31  # DEVELOP_BLENDIF_active: versions 2-5 kept "the parametric mask is on" here
_MASK_ENABLED, _MASK_CONDITIONAL = 1, 4  # DEVELOP_MASK_ENABLED, DEVELOP_MASK_CONDITIONAL

# the module's blend colour space in a display-referred edit (blend.h dt_develop_blend_colorspace_t: 0 none,
# 1 raw, 2 Lab, 3 RGB (display)), per module of darktable 4.2.1 (src/iop/*.c): the 60 that blend, then those
# that do not (none). No module of 4.2.1 works in HSL or JzCzhz (RGB (display) and RGB (scene) there).
DISPLAY_CST: dict[str, int] = {}
DISPLAY_CST.update(dict.fromkeys(["highlights", "hotpixels", "rawdenoise"], 1))
_LAB = "atrous bilat bloom colisa colorbalance colorchecker colorcontrast colorcorrection colorize colormapping"
_LAB += " colorreconstruction colorzones defringe filmic globaltonemap grain highpass levels lowlight lowpass"
_LAB += " monochrome nlmeans relight shadhi sharpen tonecurve vibrance zonesystem"
DISPLAY_CST.update(dict.fromkeys(_LAB.split(), 2))
_RGB = "basecurve basicadj blurs cacorrectrgb censorize channelmixer channelmixerrgb colorbalancergb denoiseprofile"
_RGB += " diffuse exposure filmicrgb graduatednd hazeremoval liquify lut3d profile_gamma retouch rgbcurve rgblevels"
_RGB += " sigmoid soften splittoning spots toneequal useless velvia vignette watermark"
DISPLAY_CST.update(dict.fromkeys(_RGB.split(), 3))
_NONE = "ashift borders cacorrect clahe clipping colorin colorout colortransfer crop demosaic dither equalizer"
_NONE += " finalscale flip gamma invert mask_manager negadoctor overexposed rawoverexposed rawprepare rotatepixels"
_NONE += " scalepixels temperature"
DISPLAY_CST.update(dict.fromkeys(_NONE.split(), 0))


def display_cst(operation: str | None, version: int, where: str) -> int:
    """The blend colour space darktable gives ``operation``'s upgraded params (:data:`DISPLAY_CST`);
    one-line :class:`XmpError` for a module it does not know."""
    if operation not in DISPLAY_CST:
        raise XmpError(
            f"{where}: blendop version {version} of module {operation!r}: its default blend colour space in "
            "darktable 4.2.1 (which the upgrade takes) is not known to darkproxy"
        )
    return DISPLAY_CST[operation]


def upgrade_fields(blob: bytes, version: int, operation: str | None, where: str) -> dict[str, Any]:
    """The version-11 fields darktable sets when it upgrades ``blob`` of blendop ``version`` (1 to 9) of module
    ``operation`` (every other field: darktable's defaults). ``blend_mode`` is the old code, before
    ``_blend_legacy_blend_mode``; ``blendif_parameters`` the first 32 (version 2) or all 64 values. One-line
    :class:`XmpError` for a wrong size or an unknown module."""
    if len(blob) != SIZES[version]:
        raise XmpError(f"{where}: {len(blob)} bytes, blendop version {version} has {SIZES[version]}")
    v = struct.unpack(LAYOUTS[version], blob)
    out: dict[str, Any] = {"blend_cst": display_cst(operation, version, where)}
    if version <= 4:  # mode, opacity, mask_id[, blendif[, radius], parameters]
        # the mask is on unless the mode is DEVELOP_BLEND_DISABLED_OBSOLETE (0); parametric where blendif's bit 31 is
        enabled = _MASK_ENABLED if v[0] != 0 else 0
        out.update(mask_mode=enabled, blend_mode=v[0], opacity=v[1], mask_id=v[2])
        if version == 1:
            return out
        blendif = v[3]
        if blendif & _BLENDIF_ACTIVE and enabled:
            out["mask_mode"] = enabled | _MASK_CONDITIONAL
        out["blendif"] = blendif & 0xFF if version == 2 else blendif & ~_BLENDIF_ACTIVE
        if version == 4:
            out["blur_radius"] = v[4]
        out["blendif_parameters"] = tuple(v[5:] if version == 4 else v[4:])
        return out
    out.update(mask_mode=v[0], blend_mode=v[1], opacity=v[2], mask_combine=v[3], mask_id=v[4])
    if version <= 7:  # radius (the blur), reserved[4], parameters
        blendif = v[5]
        if version == 5 and blendif & _BLENDIF_ACTIVE:  # blend.c: version 5's bug on older stacks, repaired
            blendif |= 31
        out.update(blendif=blendif & ~_BLENDIF_ACTIVE if version == 5 else blendif, blur_radius=v[6])
        out["blendif_parameters"] = tuple(v[11:75])
        return out
    out.update(blendif=v[5], feathering_radius=v[6], feathering_guide=v[7], blur_radius=v[8])
    out.update(contrast=v[9], brightness=v[10], blendif_parameters=tuple(v[15:79]))
    if version == 9:
        out.update(raster_mask_source=v[79].split(b"\0", 1)[0].decode("utf-8", "replace"))
        out.update(raster_mask_instance=v[80], raster_mask_id=v[81], raster_mask_invert=bool(v[82]))
    return out


def encode_legacy(version: int, values: tuple[Any, ...]) -> bytes:
    """``values`` packed in blendop ``version``'s layout (:data:`LAYOUTS`): an old blob, for tests and tools."""
    return struct.pack(LAYOUTS[version], *values)
