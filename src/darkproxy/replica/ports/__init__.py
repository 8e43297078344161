"""The exact ports of darktable modules, one file each; importing this package registers them
(:func:`darkproxy.replica.registry.register_exact`). A port imports the registry, never
:mod:`darkproxy.replica` itself."""

from __future__ import annotations

from darkproxy.replica.ports import (  # noqa: F401  each registers its exact stage
    basecurve,
    bilat,
    channelmixer,
    channelmixerrgb,
    colorbalance,
    colorbalancergb,
    colorcontrast,
    colorcorrection,
    colorin,
    colorize,
    colorout,
    colorzones,
    demosaic,
    denoiseprofile,
    exposure,
    filmicrgb,
    finalscale,
    flip,
    gamma,
    graduatednd,
    highlights,
    lowlight,
    monochrome,
    negadoctor,
    profile_gamma,
    rawprepare,
    relight,
    rgbcurve,
    sharpen,
    sigmoid,
    splittoning,
    temperature,
    tonecurve,
    velvia,
    vibrance,
    vignette,
)
