"""Default training ranges per module, and building a :class:`ParamSpace` from
darktable's schema plus command-line options.

Training ranges are narrower than darktable's $MIN/$MAX: a proxy is trained
where photographers actually put the sliders. Defaults (free params first,
ranges in the module's own units):

==================  ==========================================================
module              free by default (training range)
==================  ==========================================================
exposure            exposure -2..4 EV, black -0.02..0.05
colorbalancergb     saturation_global -0.5..0.5, vibrance -0.5..0.5,
                    contrast -0.5..0.5 (optional: chroma_global 0..0.5,
                    global_Y -0.5..0.5, brilliance_global -0.5..0.5)
sharpen             radius 0.5..8, amount 0..2, threshold 0..2
lowpass             radius 0.1..20 (optional: contrast, brightness, saturation -1..2)
filmicrgb           white_point_source 2..8 EV, black_point_source -12..-4 EV,
                    contrast 0.8..2 (optional: latitude 0.01..50, saturation -50..50)
sigmoid             middle_grey_contrast 0.8..3, contrast_skewness -0.5..0.5
temperature         red 0.25..5, blue 0.25..5 (green 1 fixed by darktable's convention)
vignette            brightness -1..0.5, scale 20..120
bilat               detail -0.5..1.5, sigma_s (shadows) 0..2 (local laplacian mode;
                    optional: sigma_r (highlights) 0..2, midtone 0.001..1)
==================  ==========================================================

Any other module: every float param with finite $MIN/$MAX is free over its full
range. Parameter-less modules (``colorin``, ``colorout``, ``gamma``,
``demosaic``, ``rawprepare``...) have no free params; they get variety from an
upstream module whose params are sampled per sample instead
(:data:`UPSTREAM_VARIETY`, recorded in the manifest's ``upstream`` field).

Enum and bool params named with ``--params`` are sampled over all their values.

Every list of freed sliders lives here: :data:`DEFAULT_FREE` (generation's defaults, the
replica regression's default set), :data:`ZOO_MODULES` (the sliders a zoo proxy is modelled
over) and :data:`LOOK_FREE` (the sliders a look is made of, for ``darkproxy match``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from darkproxy.darktable.schema import FieldSchema, ModuleSchema, SchemaSet
from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.errors import ParamValueError

# module -> {param: (lo, hi)}: training ranges where photographers put the sliders (darktable's
# GUI soft ranges where they are narrower than the hard $MIN/$MAX of its introspection). The
# one home of ranges: generate's defaults, the zoo and --help all read this table.
DEFAULT_RANGES: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "exposure": {"exposure": (-2.0, 4.0), "black": (-0.02, 0.05)},
    "colorbalancergb": {
        "saturation_global": (-0.5, 0.5),
        "vibrance": (-0.5, 0.5),
        "contrast": (-0.5, 0.5),
        "chroma_global": (-0.5, 0.5),
        "brilliance_global": (-0.5, 0.5),
        "hue_angle": (-30.0, 30.0),
        # the 4-ways: luminance (lift / power / gain / offset), chroma and hue of each
        **{f"{r}_Y": (-0.25, 0.25) for r in ("shadows", "midtones", "highlights", "global")},
        **{f"{r}_C": (0.0, 0.25) for r in ("shadows", "midtones", "highlights", "global")},
        **{f"{r}_H": (0.0, 360.0) for r in ("shadows", "midtones", "highlights", "global")},
    },
    "sharpen": {"radius": (0.5, 8.0), "amount": (0.0, 2.0), "threshold": (0.0, 2.0)},
    "lowpass": {"radius": (0.5, 20.0), "contrast": (-1.0, 2.0), "brightness": (-1.0, 1.0), "saturation": (-1.0, 2.0)},
    "filmicrgb": {
        "white_point_source": (2.0, 8.0),
        "black_point_source": (-12.0, -4.0),
        "contrast": (0.8, 2.0),
        "latitude": (0.01, 50.0),
        "saturation": (-50.0, 50.0),
        "balance": (-50.0, 50.0),
    },
    "sigmoid": {"middle_grey_contrast": (0.8, 3.0), "contrast_skewness": (-0.5, 0.5), "hue_preservation": (0.0, 100.0)},
    # cameras' coefficients reach 3-4.5 (blue under tungsten, red in shade): a cap of 3.0 pinned a match at it (the
    # synthetic DNG's red 2.57 x 1.2 = 3.09 came back 3.0, 2.9 % short: bench_polish.py's white balance case run
    # before this range; 0.03 % after, polish_4.2.1.md)
    "temperature": {"red": (0.25, 5.0), "blue": (0.25, 5.0)},
    "vignette": {
        "brightness": (-1.0, 0.5),
        "scale": (20.0, 120.0),
        "falloff_scale": (20.0, 150.0),
        "saturation": (-1.0, 0.5),
        "center.x": (-0.5, 0.5),
        "center.y": (-0.5, 0.5),
    },
    # local laplacian (mode 1, darktable's default): sigma_r and sigma_s are its highlights and shadows (the
    # GUI's hard max 2 = 200 %), midtone its midtone range; the bilateral mode's range/spatial sigmas (1..100)
    # reuse the same fields and mean something else (values that large here are degenerate images)
    "bilat": {"detail": (-0.5, 1.5), "sigma_r": (0.0, 2.0), "sigma_s": (0.0, 2.0), "midtone": (0.001, 1.0)},
    "highlights": {"clip": (0.5, 1.2)},
    # wavelets mode (darktable's default): strength 1 and bias 0 are its defaults; the hard limits
    # (strength 1000, bias -1000) give degenerate images
    "denoiseprofile": {"strength": (0.25, 4.0), "shadows": (0.2, 1.8), "bias": (-5.0, 5.0)},
    "hazeremoval": {"strength": (-1.0, 1.0), "distance": (0.0, 1.0)},
    "bloom": {"size": (0.0, 100.0), "threshold": (0.0, 100.0), "strength": (0.0, 100.0)},
    "colorize": {
        "hue": (0.0, 1.0),
        "saturation": (0.0, 1.0),
        "source_lightness_mix": (0.0, 100.0),
        "lightness": (0.0, 100.0),
    },
    "soften": {"size": (0.0, 100.0), "saturation": (0.0, 100.0), "brightness": (-2.0, 2.0), "amount": (0.0, 100.0)},
    # offset is in % of the image (the hard limit is +-FLT_MAX: the gradient leaves the image)
    "graduatednd": {
        "density": (-4.0, 4.0),
        "hardness": (0.0, 100.0),
        "rotation": (-180.0, 180.0),
        "offset": (0.0, 100.0),
        "hue": (0.0, 1.0),
        "saturation": (0.0, 1.0),
    },
    "censorize": {"radius_1": (0.0, 50.0), "pixelate": (0.0, 50.0), "radius_2": (0.0, 50.0)},
    # color calibration: the illuminant (temperature for daylight / Planckian, xy for custom: around the
    # Planckian locus), the compression, and the elements of its rows (named as darktable's introspection
    # names them, ``red[0]``: input R of output R): the mixing diagonal 0.5..1.5 and the rest -0.5..0.5 (no
    # GUI soft range), colorfulness and brightness the GUI's -1..1, grey its 0..1
    "channelmixerrgb": {
        "temperature": (3000.0, 9000.0),
        "x": (0.28, 0.48),
        "y": (0.28, 0.42),
        "gamut": (0.0, 3.0),
        **{
            f"{r}[{i}]": (0.5, 1.5) if i == k else (-0.5, 0.5)
            for k, r in enumerate(("red", "green", "blue"))
            for i in range(3)
        },
        **{f"{r}[{i}]": (-1.0, 1.0) for r in ("saturation", "lightness") for i in range(3)},
        **{f"grey[{i}]": (0.0, 1.0) for i in range(3)},
    },
    "velvia": {"strength": (0.0, 100.0), "bias": (0.0, 1.0)},
    # diffuse or sharpen: the GUI's soft ranges narrowed to where its presets put them (iterations 1..128 and
    # radius 1..512 px soft: the presets use 1-40 and 1-256, and the cost grows with both); speeds in
    # darktable's units (the GUI shows them x100 as %)
    "diffuse": {
        "iterations": (1, 16),
        "radius": (1, 64),
        **{k: (-0.5, 0.5) for k in ("first", "second", "third", "fourth")},
        **{f"anisotropy_{k}": (-5.0, 5.0) for k in ("first", "second", "third", "fourth")},
        "sharpness": (-0.5, 0.5),
        "regularization": (0.0, 4.0),
        "threshold": (0.0, 0.5),
    },
    # rgb curve: the y of every node (darktable's $MIN/$MAX), named as its introspection names them
    # (``curve_nodes[c][k].y``: channel c, node k); the nodes' x are not differentiable
    "rgbcurve": {f"curve_nodes[{c}][{k}].y": (0.0, 1.0) for c in range(3) for k in range(20)},
    # tone curve: the y of the L curve's nodes (the linked modes' only curve), L / 100 in [0, 1]
    "tonecurve": {f"tonecurve[0][{k}].y": (0.0, 1.0) for k in range(20)},
    # base curve: the y of its curve's nodes (curve 0, the only one it uses), darktable's $MIN/$MAX
    "basecurve": {f"basecurve[0][{k}].y": (0.0, 1.0) for k in range(20)},
    # color zones: the mix (darktable's $MIN/$MAX) and the y of every node of its L, C and h curves (0.5: no
    # change; the GUI's 0..1)
    "colorzones": {
        "strength": (-200.0, 200.0),
        **{f"curve[{c}][{k}].y": (0.0, 1.0) for c in range(3) for k in range(20)},
    },
    "splittoning": {
        "shadow_hue": (0.0, 1.0),
        "shadow_saturation": (0.0, 1.0),
        "highlight_hue": (0.0, 1.0),
        "highlight_saturation": (0.0, 1.0),
        "balance": (0.0, 1.0),
        "compress": (0.0, 100.0),
    },
    # the offsets' hard limits are +-FLT_MAX
    "colorcontrast": {"a_steepness": (0.0, 3.0), "b_steepness": (0.0, 3.0)},
    "vibrance": {"amount": (0.0, 100.0)},
    # the colour of the shadows (lo) and highlights (hi) in Lab a*, b* (the GUI's square: +-40 by default zoom)
    # the legacy color balance: lift / gamma / gain (factor [0], red, green, blue [1..3]) around their neutral
    # 1 (darktable's $MIN/$MAX 0..2 end in degenerate images: gamma 0 is a power of 1e6), both saturations
    # over $MIN/$MAX, the contrast and its fulcrum (grey, in %) where photographers put them
    "colorbalance": {
        **{f"{a}[{i}]": (0.5, 1.5) for a in ("lift", "gamma", "gain") for i in range(4)},
        "saturation": (0.0, 2.0),
        "contrast": (0.5, 1.5),
        "grey": (5.0, 50.0),
        "saturation_out": (0.0, 2.0),
    },
    "colorcorrection": {
        "hia": (-40.0, 40.0),
        "hib": (-40.0, 40.0),
        "loa": (-40.0, 40.0),
        "lob": (-40.0, 40.0),
        "saturation": (0.0, 2.0),
    },
    # monochrome: the filter colour in a*, b* (the GUI's panel: +-128) and its size (the GUI's 0.5..3)
    "monochrome": {"a": (-128.0, 128.0), "b": (-128.0, 128.0), "size": (0.5, 3.0), "highlights": (0.0, 1.0)},
    # lowlight vision: the transition curve's node y (no $MIN/$MAX; the GUI's 0..1) and the blue shift
    "lowlight": {"blueness": (0.0, 100.0), **{f"transition_y[{k}]": (0.0, 1.0) for k in range(6)}},
    # the deprecated channel mixer: each input channel's weight per destination (hue, saturation, lightness,
    # red, green, blue, gray), darktable's $MIN/$MAX (the GUI's sliders reach +-2)
    "channelmixer": {f"{r}[{k}]": (-1.0, 1.0) for r in ("red", "green", "blue") for k in range(7)},
    # unbreak input profile: darktable's $MIN/$MAX, the GUI's soft ranges for dynamic range (0.5..16 EV)
    # and shadows range (up to 0 EV); security_factor only rescales the other sliders in the GUI
    "profile_gamma": {
        "linear": (0.0, 1.0),
        "gamma": (0.0, 1.0),
        "dynamic_range": (0.5, 16.0),
        "grey_point": (0.1, 100.0),
        "shadows_range": (-16.0, 0.0),
    },
    # fill light: the centre is L* / 100 (the GUI's gradient slider; no $MIN/$MAX)
    "relight": {"ev": (-2.0, 2.0), "center": (0.0, 1.0), "width": (2.0, 10.0)},
    # darktable's $MIN/$MAX; the array elements named as its introspection names them (``Dmin[0]``: red),
    # Dmin from 0.01 (its hard minimum, 1e-5, is no film base)
    "negadoctor": {
        **{f"Dmin[{c}]": (0.01, 1.5) for c in range(3)},
        **{f"{a}[{c}]": (0.25, 2.0) for a in ("wb_high", "wb_low") for c in range(3)},
        "D_max": (0.1, 6.0),
        "offset": (-1.0, 1.0),
        "black": (-0.5, 0.5),
        "gamma": (1.0, 8.0),
        "soft_clip": (0.0001, 1.0),
        "exposure": (0.5, 2.0),
    },
}
DEFAULT_FREE: Mapping[str, tuple[str, ...]] = {
    "exposure": ("exposure", "black"),
    "colorbalancergb": ("saturation_global", "vibrance", "contrast"),
    "sharpen": ("radius", "amount", "threshold"),
    "lowpass": ("radius",),
    "filmicrgb": ("white_point_source", "black_point_source", "contrast"),
    "sigmoid": ("middle_grey_contrast", "contrast_skewness"),
    "temperature": ("red", "blue"),
    "vignette": ("brightness", "scale"),
    "bilat": ("detail", "sigma_s"),
    # parameter-less for training purposes: variety comes from upstream
    "colorin": (),
    "colorout": (),
    "gamma": (),
    "demosaic": (),
    "rawprepare": (),
    "finalscale": (),
    "highlights": (),
}
# the sliders a look is made of, per module: what `darkproxy match` frees by default
LOOK_FREE: Mapping[str, tuple[str, ...]] = {
    "exposure": ("exposure",),
    "colorbalancergb": (
        "contrast",
        "saturation_global",
        "chroma_global",
        "vibrance",
        "brilliance_global",
        "global_C",
        "global_H",
    ),
    "filmicrgb": ("white_point_source", "black_point_source", "contrast", "latitude", "saturation"),
    "sigmoid": ("middle_grey_contrast", "contrast_skewness"),
    "sharpen": ("amount",),
    # white balance: the coefficients (green = 1); in the chain, the match starts from the raw's mosaic
    "temperature": ("red", "blue"),
    # color calibration: the channel gains (the mixing diagonal) and the colorfulness of each channel
    "channelmixerrgb": ("red[0]", "green[1]", "blue[2]", "saturation[0]", "saturation[1]", "saturation[2]"),
    # rgb curve: a tone curve (RGB linked, luminance preserved) through the y of its nodes above black
    # (NEUTRAL_START puts them at Lab L 25, 50, 75 and 100); black stays at 0
    "rgbcurve": tuple(f"curve_nodes[0][{k}].y" for k in range(1, 5)),
    # local contrast (local laplacian mode): detail and the highlights' and shadows' slopes; its midtone range stays
    "bilat": ("detail", "sigma_r", "sigma_s"),
}
# where `darkproxy match` starts a module its chain adds to a history that lacks it, when darktable's defaults
# (darktable.params.default_blob) are not a neutral edit: color calibration's are the identity without adaptation
# but with gamut compression and clipping of negatives on; here none of them (mixing in the pipeline's RGB,
# Rec2020), colorfulness and brightness 0, the current algorithm: darktable renders it as the history without it
NEUTRAL_START: Mapping[str, Mapping[str, Any]] = {
    "channelmixerrgb": {
        **{f"{r}[{i}]": float(i == k) for k, r in enumerate(("red", "green", "blue")) for i in range(3)},
        **{f"{r}[{i}]": 0.0 for r in ("saturation", "lightness", "grey") for i in range(3)},
        "adaptation": 4,  # DT_ADAPTATION_RGB: none (bypass)
        "illuminant": 0,  # DT_ILLUMINANT_PIPE: unused without adaptation
        "gamut": 0.0,
        "clip": False,
        "version": 2,  # CHANNELMIXERRGB_V_3
    },
    # the identity as five nodes at Lab L 0, 25, 50, 75, 100 (middle-grey compensation: the GUI's spacing, L 50 on
    # middle grey), RGB linked, luminance preserved, monotone spline: darktable renders it as the history without it
    "rgbcurve": {
        "curve_num_nodes[0]": 5,
        **{f"curve_nodes[0][{k}].{a}": k / 4 for k in range(5) for a in ("x", "y")},
        "curve_type[0]": 2,  # MONOTONE_HERMITE
        "curve_autoscale": 0,  # DT_S_SCALE_AUTOMATIC_RGB: RGB linked channels
        "compensate_middle_grey": True,
        "preserve_colors": 1,  # DT_RGB_NORM_LUMINANCE
    },
    # local contrast's identity: local laplacian mode, highlights and shadows 100 % (slope 1: nothing remapped),
    # detail 0 (darktable's defaults, detail 125 %, highlights and shadows 50 %, are already an edit)
    "bilat": {"mode": 1, "detail": 0.0, "sigma_r": 1.0, "sigma_s": 1.0, "midtone": 0.5},
}


@dataclass(frozen=True)
class ZooModule:
    """What the proxy zoo covers of one module: ``free`` sliders (their
    ranges from :data:`DEFAULT_RANGES`), values pinned in every sample
    (``fixed``) and why (``note``, shown by ``zoo list``)."""

    free: tuple[str, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


# Sliders that are angles: their period in their own units. darktable takes their cosine and sine (a hue
# wheel, a rotation), so 0 and the period are the same edit; a proxy reads them as such (periodic_encoding).
PERIODIC: Mapping[str, Mapping[str, float]] = {
    "colorbalancergb": {f"{r}_H": 360.0 for r in ("shadows", "midtones", "highlights", "global")}
    | {"hue_angle": 360.0},
    "colorize": {"hue": 1.0},
    "splittoning": {"shadow_hue": 1.0, "highlight_hue": 1.0},
    "graduatednd": {"hue": 1.0, "rotation": 360.0},
}


def with_periods(space: ParamSpace) -> ParamSpace:
    """``space`` with each angle's ``period`` set from :data:`PERIODIC` (a float slider of ``space.module``);
    ``space`` itself when the module has none."""
    table = PERIODIC.get(space.module, {})
    if not table:
        return space
    specs = [
        dataclasses.replace(s, period=table[s.name]) if s.name in table and s.kind == "float" else s
        for s in space.specs
    ]
    return dataclasses.replace(space, specs=tuple(specs))


def periodic_encoding(space: ParamSpace) -> list[list[float]]:
    """The angles among ``space``'s free params (:data:`PERIODIC`), as ``[index, a, b]`` rows: the slider's
    angle in radians is ``a + b * u`` for its normalised value ``u`` (``2 pi value / period``). Empty when the
    module has none."""
    return [
        [float(i), 2 * math.pi * s.lo / s.period, 2 * math.pi * (s.hi - s.lo) / s.period]
        for i, s in enumerate(with_periods(space).specs)
        if s.period > 0
    ]


# The zoo: every user-facing float slider of each module within curated ranges. A module not in
# this table is refused by ``darkproxy zoo train`` (no proxy over darktable's hard limits).
ZOO_MODULES: Mapping[str, ZooModule] = {
    "temperature": ZooModule(("red", "blue"), note="green = 1 (darktable normalises the coefficients to it)"),
    "highlights": ZooModule(("clip",), note="method: darktable's default for the raw"),
    "demosaic": ZooModule((), note="no sliders (RCD, darktable's default); variety from raws and crops"),
    "colorin": ZooModule((), note="no sliders; variety from upstream exposure"),
    "exposure": ZooModule(("exposure", "black")),
    "colorbalancergb": ZooModule(
        tuple(f"{r}_{c}" for r in ("shadows", "midtones", "highlights", "global") for c in "YCH")
        + ("chroma_global", "saturation_global", "brilliance_global", "vibrance", "contrast", "hue_angle"),
        note="per-range chroma/saturation/brilliance and the fulcrums stay at their defaults",
    ),
    "sharpen": ZooModule(("radius", "amount", "threshold")),
    "filmicrgb": ZooModule(
        ("white_point_source", "black_point_source", "contrast", "latitude", "saturation", "balance"),
        note="enums (colour science, preserve chrominance, curves) at their defaults",
    ),
    "sigmoid": ZooModule(("middle_grey_contrast", "contrast_skewness", "hue_preservation")),
    "hazeremoval": ZooModule(("strength", "distance")),
    "lowpass": ZooModule(("radius", "contrast", "brightness", "saturation")),
    "bloom": ZooModule(("size", "threshold", "strength")),
    "colorize": ZooModule(("hue", "saturation", "source_lightness_mix", "lightness")),
    "soften": ZooModule(("size", "saturation", "brightness", "amount")),
    "graduatednd": ZooModule(("density", "hardness", "rotation", "offset", "hue", "saturation")),
    "censorize": ZooModule(
        ("radius_1", "pixelate", "radius_2"), {"noise": 0.0}, note="noise (random per render) pinned at 0"
    ),
    "vignette": ZooModule(("brightness", "scale", "falloff_scale", "saturation", "center.x", "center.y")),
    "bilat": ZooModule(
        ("detail", "sigma_r", "sigma_s", "midtone"),
        note="local laplacian (darktable's default mode): sigma_r, sigma_s are its highlights and shadows",
    ),
    "velvia": ZooModule(("strength", "bias")),
    "splittoning": ZooModule(
        ("shadow_hue", "shadow_saturation", "highlight_hue", "highlight_saturation", "balance", "compress")
    ),
    "colorcontrast": ZooModule(("a_steepness", "b_steepness"), note="offsets at 0"),
    # these start from darktable's defaults, not introspection's (darktable.defaults.INIT_DEFAULTS: with
    # introspection's alone both render black)
    "denoiseprofile": ZooModule(
        ("strength", "shadows", "bias"),
        note="wavelets (darktable's default); the noise profile darktable picks per image (autodetect)",
    ),
    "channelmixerrgb": ZooModule(
        tuple(f"{r}[{i}]" for r in ("red", "green", "blue") for i in range(3))
        + tuple(f"saturation[{i}]" for i in range(3)),
        note="the mixing and each channel's colorfulness; no chromatic adaptation (darktable's default under "
        "its legacy workflow)",
    ),
    "diffuse": ZooModule(
        (
            "iterations",
            "radius",
            "first",
            "second",
            "third",
            "fourth",
            "anisotropy_first",
            "anisotropy_second",
            "sharpness",
            "regularization",
        ),
        note="the 3rd/4th order anisotropies, edge threshold, luminance masking and central radius at defaults",
    ),
}


# variety for modules without free params: (upstream module, {param: (lo, hi)}), first usable wins
UPSTREAM_VARIETY: tuple[tuple[str, Mapping[str, tuple[float, float]]], ...] = (
    ("exposure", {"exposure": (-2.0, 3.0)}),
    ("temperature", {"red": (0.7, 2.5), "blue": (0.7, 2.5)}),
)
INT_LIMIT = 1e6  # ints spanning more than this are flags/sentinels, not sliders


@dataclass(frozen=True)
class UpstreamVariety:
    """An upstream module sampled per sample to give a parameter-less target variety."""

    module: str
    space: ParamSpace

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "param_space": self.space.to_json()}


def defaults_help() -> str:
    """One line per module with its default free params and ranges (for ``--help``)."""
    lines = []
    for mod, free in DEFAULT_FREE.items():
        rng = DEFAULT_RANGES.get(mod, {})
        if free:
            lines.append(f"  {mod:16s} " + ", ".join(f"{p} {rng[p][0]:g}..{rng[p][1]:g}" for p in free))
    lines.append("  (parameter-less: colorin, colorout, gamma, demosaic, ...: upstream exposure/temperature is varied)")
    lines.append("  any other module: all float params with finite $MIN/$MAX, full range")
    return "\n".join(lines)


FLT_MAX_LIKE = 1e30  # darktable's introspection writes +-FLT_MAX (3.4e38) for "no limit": not a range


def _finite(x: Any) -> TypeGuard[float]:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x)) and abs(x) < FLT_MAX_LIKE


def spec_for(field_: FieldSchema, rng: tuple[float, float] | None = None) -> ParamSpec:
    """A :class:`ParamSpec` for one scalar field; ``rng`` overrides the range
    (floats/ints; must lie within $MIN/$MAX and be non-empty)."""
    t = field_.type
    default = field_.default
    if t == "enum":
        vals = field_.values or {}
        items = sorted(vals.items(), key=lambda kv: kv[1])
        values = tuple(int(v) for _, v in items)
        names = tuple(k for k, _ in items)
        return ParamSpec(
            field_.name,
            "enum",
            float(min(values)),
            float(max(values)),
            float(default if default is not None else values[0]),
            values,
            names,
        )
    if t == "bool":
        return ParamSpec(field_.name, "bool", 0.0, 1.0, float(bool(default)))
    if not field_.is_numeric:
        raise ParamValueError(f"{field_.name} is a {t} field; only numeric, enum and bool params can be sampled")
    kind = "float" if t in ("float", "double") else "int"
    lo, hi = (field_.min, field_.max) if rng is None else rng
    if not (_finite(lo) and _finite(hi)) or (kind == "int" and float(hi) - float(lo) > INT_LIMIT and rng is None):
        raise ParamValueError(
            f"{field_.name} has no finite range in darktable's schema; give one with --range {field_.name}=LO:HI"
        )
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ParamValueError(f"empty range for {field_.name}: {lo:g}:{hi:g} (need LO < HI)")
    if _finite(field_.min) and _finite(field_.max):
        eps = 1e-6 * max(1.0, abs(float(field_.max)), abs(float(field_.min)))
        if lo < float(field_.min) - eps or hi > float(field_.max) + eps:
            raise ParamValueError(
                f"range {field_.name}={lo:g}:{hi:g} is outside darktable's "
                f"[{float(field_.min):g}, {float(field_.max):g}]"
            )
        lo, hi = max(lo, float(field_.min)), min(hi, float(field_.max))
    d = float(default) if _finite(default) else lo
    return ParamSpec(field_.name, kind, lo, hi, d)


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    """``"name=lo:hi"`` -> ``("name", (lo, hi))``. Raises :class:`ParamValueError`."""
    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise ParamValueError(f"--range {text!r}: expected PARAM=LO:HI (e.g. exposure=-1:2)")
    name, r = text.split("=", 1)
    lo_s, hi_s = r.split(":", 1)
    try:
        lo, hi = float(lo_s), float(hi_s)
    except ValueError:
        raise ParamValueError(f"--range {text!r}: LO and HI must be numbers") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParamValueError(f"--range {text!r}: LO and HI must be finite")
    if not lo < hi:
        raise ParamValueError(f"empty range {name.strip()}={lo:g}:{hi:g} (need LO < HI)")
    return name.strip(), (lo, hi)


def default_free(schema: ModuleSchema) -> list[str]:
    """The params free by default for ``schema``'s module (see the module docstring)."""
    if schema.name in DEFAULT_FREE:
        return list(DEFAULT_FREE[schema.name])
    return [
        f.name
        for f in schema.scalar_fields
        if f.type in ("float", "double") and _finite(f.min) and _finite(f.max) and float(f.min) < float(f.max)
    ]


def build_param_space(
    schema: ModuleSchema,
    params: Sequence[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> ParamSpace:
    """The training :class:`ParamSpace` of ``schema``'s module.

    ``params``: free param names (None: :func:`default_free`); ``fixed``:
    ``{name: value}`` pinned (values or CLI strings; removed from the free set);
    ``ranges``: ``{name: (lo, hi)}`` narrowing the default training range
    (:data:`DEFAULT_RANGES`, else darktable's $MIN/$MAX). Unknown names raise
    :class:`UnknownParam`; empty or out-of-schema ranges :class:`ParamValueError`.
    """
    from darkproxy.darktable.params import decode_params, default_blob, flatten, param_value, set_params

    fixed = dict(fixed or {})
    ranges = dict(ranges or {})
    free = list(params) if params is not None else default_free(schema)
    for name in [*free, *fixed, *ranges]:
        schema.scalar(name)  # raises UnknownParam with a hint (an array's element by its introspection name)
    for name in ranges:
        if name not in free:
            if name in fixed:
                raise ParamValueError(f"{name} is both --fix'ed and given a --range")
            free.append(name)  # --range on a param implies it is free
    free = [n for n in free if n not in fixed]
    if len(set(free)) != len(free):
        raise ParamValueError(f"duplicate params in {', '.join(free)}")
    # typed fixed values (validates types and $MIN/$MAX via the codec)
    base = default_blob(schema)
    if fixed:
        dec = flatten(decode_params(schema, set_params(schema, base, fixed)))
        fixed = {k: param_value(dec, k) for k in fixed}
    specs = []
    table = DEFAULT_RANGES.get(schema.name, {})
    # each free param's default is darktable's (default_blob: its init() values where introspection's differ),
    # what a sparse draw leaves the sliders it does not move at
    start = flatten(decode_params(schema, base))
    for name in free:
        f = dataclasses.replace(schema.scalar(name), default=param_value(start, name))
        rng = ranges.get(name, table.get(name)) if f.type not in ("enum", "bool") else None
        if name in ranges and f.type in ("enum", "bool"):
            raise ParamValueError(
                f"{name} is a{'n' if f.type == 'enum' else ''} {f.type}: it is sampled over its values, not a range"
            )
        specs.append(spec_for(f, rng))
    return with_periods(ParamSpace.of(schema.name, specs, fixed))


def upstream_variety(schemas: SchemaSet, module: str, iop_order_version: int = 2) -> UpstreamVariety | None:
    """The upstream module sampled for a parameter-less ``module`` (first of
    :data:`UPSTREAM_VARIETY` that sits before it in the pipe), or None (also for
    modules up to demosaic: their variety comes from raws and crops)."""
    from darkproxy.darktable.tapout import runs_on_mosaic

    order = schemas.pipe_order(iop_order_version)
    if module not in order:
        return None
    pos = order.index(module)
    if runs_on_mosaic(order, module):
        # a pre-demosaic module's recorded input is the raw's mosaic (read with rawpy): varying a
        # module upstream of it would change what darktable sees but not that input (ill-posed)
        return None
    for up, rng in UPSTREAM_VARIETY:
        if up in order and order.index(up) < pos and up in schemas:
            sch = schemas.get(up)
            return UpstreamVariety(up, build_param_space(sch, list(rng), ranges=rng))
    return None
