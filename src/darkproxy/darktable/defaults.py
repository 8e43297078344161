"""darktable's defaults where its introspection's ``$DEFAULT`` is not them.

A module's params start from introspection's ``$DEFAULT`` (zero where it gives none), then its ``init()``
and, per image, ``reload_defaults()`` overwrite some of them. A module darkproxy adds to a history that lacks
it must start from what darktable would start from, or it renders as no photographer ever saw it:
denoiseprofile and color calibration render all black from introspection's values alone.

:data:`INIT_DEFAULTS` holds what those functions write, read from darktable's ``src/iop/*.c`` (4.2.1,
unchanged through 5.x for these params versions) and applied by
:func:`darkproxy.darktable.params.default_blob`. Each entry names the params version it was read for: a
darktable whose module has another version is refused by name, never given the old values. Only what
changes the render is listed; the modules whose ``init()`` writes values equal in effect to introspection's
(colorize's ``version``: 0 and 2 take the same path; colorchecker's patches, source = target; retouch's and
spots' values, which matter only with shapes) are not. clahe's init() matters but it has no introspection:
darkproxy cannot edit it. Modules whose ``reload_defaults()`` fill per-image values (white balance, the raw's
black and white levels, the input profile...) are darktable's own default history's, never these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BANDS = 7  # DT_IOP_DENOISE_PROFILE_BANDS
CHANNELS = 6  # DT_DENOISE_PROFILE_NONE


@dataclass(frozen=True)
class InitDefaults:
    """Values a module's ``init()`` / ``reload_defaults()`` write over introspection's, for one params version."""

    version: int
    values: Mapping[str, Any]
    why: str
    # later params versions darktable's init() / reload_defaults() fill the same way, with these values on top
    later: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    def values_at(self, version: int) -> Mapping[str, Any] | None:
        """What darktable writes at params ``version``; ``None``: a version not read here."""
        if version == self.version:
            return self.values
        return {**self.values, **self.later[version]} if version in self.later else None


INIT_DEFAULTS: Mapping[str, InitDefaults] = {
    "denoiseprofile": InitDefaults(
        11,
        {
            # init(): each band's x at k / (bands - 1) (introspection leaves the curves' x at 0), as darktable's
            # build computes it: k times the float reciprocal (5/6 is 0x3f555556, one ulp above the quotient)
            **{
                f"x[{c}][{k}]": float(np.float32(k) * (np.float32(1) / np.float32(BANDS - 1)))
                for c in range(CHANNELS)
                for k in range(BANDS)
            },
            # reload_defaults() (with a GUI) writes the camera's noise profile, a[0] = -1 where one matches:
            # darktable's "autodetect" (its presets write it too); commit_params then looks the camera and
            # ISO up, and falls back to the generic poissonian profile, per image, as the GUI does
            "a[0]": -1.0,
        },
        "init() sets the bands' x, reload_defaults() the noise profile (a = b = 0 renders black)",
        # darktable 5.4's v12 (denoiseprofile.c, 5.4.1): reload_defaults() turns compensate_hilite_pres on only where
        # the raw's maker notes give a highlight preservation mode (its ISO shift), which darkproxy does not read:
        # those cameras' automatic profiles are darktable's own lookup, which the port refuses anyway
        later={12: {"compensate_hilite_pres": False}},
    ),
    "channelmixerrgb": InitDefaults(
        3,
        {
            # init(): the identity mixing (introspection: all-zero rows, a black image)
            "red[0]": 1.0,
            "green[1]": 1.0,
            "blue[2]": 1.0,
            # reload_defaults() under the legacy chromatic adaptation workflow (4.2.1's default): a plain channel
            # mixer, no adaptation. Under the modern one darktable's own default history holds the module with
            # its per-image CAT, and darkproxy does not add it
            "illuminant": 0,  # DT_ILLUMINANT_PIPE
            "adaptation": 4,  # DT_ADAPTATION_RGB
        },
        "init() sets the identity mixing, reload_defaults() the adaptation (zero rows render black)",
    ),
    # the curve and wavelet modules below: init() spreads the nodes' x over [0, 1] (introspection leaves them all at
    # 0: darktable's spline setup then fails and its LUT is whatever memory held, or an out-of-bounds node is read)
    "rgbcurve": InitDefaults(
        1,
        {f"curve_nodes[{c}][1].{a}": 1.0 for c in range(3) for a in ("x", "y")},
        "init() puts each curve's second node at (1, 1): the identity",
    ),
    "tonecurve": InitDefaults(
        5,
        {
            "tonecurve_nodes[0]": 2,
            "tonecurve_nodes[1]": 3,
            "tonecurve_nodes[2]": 3,
            **{f"tonecurve[0][1].{a}": 1.0 for a in ("x", "y")},
            **{f"tonecurve[{c}][{k}].{a}": k / 2 for c in (1, 2) for k in (1, 2) for a in ("x", "y")},
        },
        "init() sets the identity L curve (2 nodes) and a, b curves (3 nodes)",
    ),
    "basecurve": InitDefaults(
        6,
        {"basecurve_nodes[0]": 2, "basecurve[0][1].x": 1.0, "basecurve[0][1].y": 1.0},
        "init() sets the identity curve (2 nodes; introspection's 0 nodes read a node out of bounds above 1)",
    ),
    "colorzones": InitDefaults(
        5,
        {
            **{f"curve_num_nodes[{c}]": 2 for c in range(3)},
            **{f"curve_type[{c}]": 1 for c in range(3)},  # CATMULL_ROM
            **{f"curve[{c}][{k}].x": (k + 0.5) / 2 for c in range(3) for k in range(2)},
            **{f"curve[{c}][{k}].y": 0.5 for c in range(3) for k in range(2)},
            "splines_version": 1,  # DT_IOP_COLORZONES_SPLINES_V2
        },
        "init() sets flat curves at 0.5 (no change) on every channel, the current splines",
    ),
    "atrous": InitDefaults(
        2,
        {
            # k / (BANDS - 1.0f) in float32; the luma and chroma noise thresholds (curves 3, 4) at 0
            **{f"x[{c}][{k}]": float(np.float32(k) / np.float32(5)) for c in range(5) for k in range(6)},
            **{f"y[{c}][{k}]": 0.0 for c in (3, 4) for k in range(6)},
        },
        "init() spreads the bands' x and zeroes the noise thresholds",
    ),
    "equalizer": InitDefaults(
        1,
        {
            **{f"equalizer_x[{c}][{k}]": float(np.float32(k) / np.float32(5)) for c in range(3) for k in range(6)},
            **{f"equalizer_y[{c}][{k}]": 0.5 for c in range(3) for k in range(6)},
        },
        "init() spreads the bands' x with y 0.5 (no change)",
    ),
    "rawdenoise": InitDefaults(
        2,
        {f"x[{c}][{k}]": k / 4 for c in range(4) for k in range(5)},
        "init() spreads the bands' x",
    ),
    "lowlight": InitDefaults(
        1,
        # k / (BANDS - 1.0) in double, stored as float
        {f"transition_x[{k}]": float(np.float32(k / 5.0)) for k in range(6)},
        "init() spreads the transition curve's x",
    ),
    "channelmixer": InitDefaults(
        2,
        {"red[3]": 1.0, "green[4]": 1.0, "blue[5]": 1.0, "algorithm_version": 1},  # CHANNEL_MIXER_VERSION_2
        "init() sets the identity mixing (all-zero rows render black) and the current algorithm",
    ),
    "levels": InitDefaults(2, {"levels[1]": 0.5, "levels[2]": 1.0}, "init() sets the manual levels 0, 0.5, 1"),
    "rgblevels": InitDefaults(
        1,
        {f"levels[{c}][{k}]": v for c in range(3) for k, v in ((1, 0.5), (2, 1.0))},
        "init() sets each channel's levels 0, 0.5, 1",
    ),
    # filmic (v1) has no introspection defaults at all: init() writes the whole struct
    "filmic": InitDefaults(
        3,
        {
            "grey_point_source": 18.0,
            "black_point_source": -8.65,
            "white_point_source": 2.45,
            "grey_point_target": 18.0,
            "white_point_target": 100.0,
            "output_power": 2.2,
            "latitude_stops": 2.0,
            "contrast": 1.5,
            "saturation": 100.0,
            "global_saturation": 100.0,
        },
        "init() writes every parameter (introspection has none: a zero dynamic range)",
    ),
    "negadoctor": InitDefaults(
        2,
        # init(): the film substrate's colour (introspection: Dmin's $DEFAULT, 1, on every channel)
        {"Dmin[0]": 1.0, "Dmin[1]": 0.45, "Dmin[2]": 0.25},
        "init() sets the film substrate's colour Dmin",
    ),
}
