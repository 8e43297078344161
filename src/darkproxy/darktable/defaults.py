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
(colorize's ``version``: 0 and 2 take the same path) are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    "negadoctor": InitDefaults(
        2,
        # init(): the film substrate's colour (introspection: Dmin's $DEFAULT, 1, on every channel)
        {"Dmin[0]": 1.0, "Dmin[1]": 0.45, "Dmin[2]": 0.25},
        "init() sets the film substrate's colour Dmin",
    ),
}
