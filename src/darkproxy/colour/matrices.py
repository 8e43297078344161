"""Colour matrices, one of each (numpy, float64; column vectors: ``out = M @ rgb``).

darktable's constants are copied as darktable writes them (``src/common/
chromatic_adaptation.h``, ``colorspaces_inline_conversions.h``); a port that needs
darktable's float32 rounding applies it itself, as an explicit step. The RGB -> XYZ
D50 matrices of darktable's built-in profiles are built as lcms builds them
(:func:`rgb_to_xyz_d50`: darktable's ``profile->matrix_in``).
"""

from __future__ import annotations

import functools

import numpy as np


def _const(rows: list[list[float]]) -> np.ndarray:
    m = np.array(rows, dtype=np.float64)
    m.setflags(write=False)
    return m


# ------------------------------------------------------------------ Rec2020 / Rec709
# ITU-R BT.2020 and BT.709 primaries (xy) and their D65 white, as the standards (and colour-science) give them
REC2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
REC709_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
D65_XY = (0.3127, 0.3290)


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def normalised_primary_matrix(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> np.ndarray:
    """RGB -> XYZ of an RGB space given by its primaries and white (xy), SMPTE RP 177's normalised primary
    matrix: the primaries' XYZ (Y = 1) scaled so that RGB (1, 1, 1) is the white (Y = 1). float64."""
    prim = np.stack([_xyz(*p) for p in primaries], 1)
    out: np.ndarray = prim * np.linalg.solve(prim, _xyz(*white))
    return out


@functools.cache
def rec2020_to_rec709_matrix() -> np.ndarray:
    """The 3x3 matrix taking linear Rec2020 RGB to linear Rec709/sRGB RGB (column
    vectors, ``rgb709 = M @ rgb2020``; same D65 white: no adaptation). Equals
    colour-science's ``matrix_RGB_to_RGB`` to 1e-15 (tests/colour/test_matrices.py; built here because
    importing colour-science costs a second per process) and ITU-R BT.2087-0's ``[[1.6605, -0.5876, -0.0728],
    [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]]`` to its 4 decimals. Read-only float64."""
    m = np.linalg.solve(
        normalised_primary_matrix(REC709_PRIMARIES, D65_XY), normalised_primary_matrix(REC2020_PRIMARIES, D65_XY)
    )
    m.setflags(write=False)
    return m


@functools.cache
def y_rec2020() -> tuple[float, float, float]:
    """BT.2020 luminance weights: the Y row of its RGB -> XYZ matrix (0.2627, 0.6780, 0.0593)."""
    y = normalised_primary_matrix(REC2020_PRIMARIES, D65_XY)[1]
    return float(y[0]), float(y[1]), float(y[2])


# linear Rec709 -> XYZ D65 (IEC 61966-2-1 primaries, 7 decimals)
REC709_TO_XYZ_D65 = _const(
    [[0.4123908, 0.3575843, 0.1804808], [0.2126390, 0.7151687, 0.0721923], [0.0193308, 0.1191948, 0.9505322]]
)

# ------------------------------------------------------------------ lcms: the profile builder
D50_LCMS = np.array([0.9642, 1.0, 0.8249])  # lcms' cmsD50_XYZ
D50_LCMS.setflags(write=False)
# the Bradford cone response of lcms' cmsAdaptationMatrix
BRADFORD = _const([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])

# darktable's built-in matrix profiles (colorspaces.c): primaries xy, all with the D65 white DARKTABLE_D65_XY
DARKTABLE_D65_XY = (0.312700492, 0.329000939)
PROFILE_PRIMARIES: dict[str, tuple[tuple[float, float], ...]] = {
    "srgb": REC709_PRIMARIES,
    "lin_rec709": REC709_PRIMARIES,
    "lin_rec2020": REC2020_PRIMARIES,
    "rec2020": REC2020_PRIMARIES,
    "adobergb": ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)),
}


@functools.cache
def rgb_to_xyz_d50(
    primaries: tuple[tuple[float, float], ...], white: tuple[float, float] = DARKTABLE_D65_XY
) -> np.ndarray:
    """RGB -> XYZ D50 of a matrix profile as lcms's ``cmsCreateRGBProfile`` builds it:
    the primaries (xy) scaled to ``white``, von Kries-adapted to lcms's D50 in the
    Bradford cone space. float64, read-only."""

    m = normalised_primary_matrix(primaries, white)
    w = _xyz(*white)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50_LCMS) / (BRADFORD @ w)) @ BRADFORD
    out: np.ndarray = adapt @ m
    out.setflags(write=False)
    return out


def profile_rgb_to_xyz_d50(name: str) -> np.ndarray:
    """:func:`rgb_to_xyz_d50` of one of darktable's built-in profiles (:data:`PROFILE_PRIMARIES`)."""
    return rgb_to_xyz_d50(PROFILE_PRIMARIES[name])


# ------------------------------------------------------------------ darktable's constants
# chromatic_adaptation.h: CAT16 between XYZ D50 and XYZ D65
XYZ_D50_TO_D65_CAT16 = _const(
    [
        [9.89466254e-01, -4.00304626e-02, 4.40530317e-02],
        [-5.40518733e-03, 1.00666069e00, -1.75551955e-03],
        [-4.03920992e-04, 1.50768030e-02, 1.30210211e00],
    ]
)
XYZ_D65_TO_D50_CAT16 = _const(
    [
        [1.01085433e00, 4.07086103e-02, -3.41445825e-02],
        [5.42814201e-03, 9.93581926e-01, 1.15592039e-03],
        [2.50722468e-04, -1.14918759e-02, 7.67964947e-01],
    ]
)
# colorspaces_inline_conversions.h: XYZ D65 <-> CIE 2006 LMS, Filmlight RGB <-> LMS (Kirk's Yrg)
XYZ_D65_TO_LMS_2006 = _const(
    [[0.257085, 0.859943, -0.031061], [-0.394427, 1.175800, 0.106423], [0.064856, -0.076250, 0.559067]]
)
LMS_2006_TO_XYZ_D65 = _const(
    [
        [1.80794659, -1.29971660, 0.34785879],
        [0.61783960, 0.39595453, -0.04104687],
        [-0.12546960, 0.20478038, 1.74274183],
    ]
)
FILMLIGHT_RGB_TO_LMS = _const([[0.95, 0.38, 0.00], [0.05, 0.62, 0.03], [0.00, 0.00, 0.97]])
LMS_TO_FILMLIGHT_RGB = _const(
    [[1.0877193, -0.66666667, 0.02061856], [-0.0877193, 1.66666667, -0.05154639], [0.0, 0.0, 1.03092784]]
)
# LMS_to_Yrg: the luminance Y of CIE 2006 LMS; Yrg_to_Ych: Filmlight rg of the D65 white
Y_LMS_2006 = _const([[0.68990272, 0.34832189, 0.0]])[0]
FILMLIGHT_D65_RG = (0.21902143, 0.54371398)
# chromatic_adaptation.h: the cone spaces of darktable's chromatic adaptations (XYZ normalised by Y).
# Bradford's XYZ -> LMS is :data:`BRADFORD` (lcms' numbers, the same); darktable's LMS -> XYZ is its own
# 4-decimal inverse, not the exact one
BRADFORD_LMS_TO_XYZ = _const([[0.9870, -0.1471, 0.1600], [0.4323, 0.5184, 0.0493], [-0.0085, 0.0400, 0.9685]])
XYZ_TO_CAT16_LMS = _const(
    [[0.401288, 0.650173, -0.051461], [-0.250268, 1.204414, 0.045854], [-0.002079, 0.048952, 0.953127]]
)
CAT16_LMS_TO_XYZ = _const(
    [[1.862068, -1.011255, 0.149187], [0.38752, 0.621447, -0.008974], [-0.015841, -0.034123, 1.049964]]
)
# develop/blend.c (dt_develop_blendif_init_masking_profile): Bradford XYZ D50 -> XYZ D65 (Lindbloom's), which
# scene-RGB parametric masks premultiply to the pipe profile's matrix_in to reach JzAzBz
XYZ_D50_TO_D65_BRADFORD_BLEND = _const(
    [[0.9555766, -0.0230393, 0.0631636], [-0.0282895, 1.0099416, 0.0210077], [0.0122982, -0.0204830, 1.3299098]]
)
