"""darktable 4.2.1's deprecated channel mixer (``channelmixer``, params version 2) as an exact stage:
``src/iop/channelmixer.c``.

An RGB module (``IOP_CS_RGB``) in the working profile (linear Rec2020: after colorin in the v3.0 order; the
legacy order puts it after colorout, in display RGB: refused). Each params array (``red``, ``green``,
``blue``: the input channel) holds its weight in the seven destinations (hue, saturation, lightness, red,
green, blue, gray). ``commit_params()``: the HSL matrix (rows: hue, saturation, lightness), the RGB matrix
(rows: red, green, blue), replaced where the gray row is not all zero by three copies of ``gray . M``
(monochrome), and the operation mode:

* ``algorithm_version`` 0 (version 1, histories from before darktable 3.0, ``legacy_params``): ``hmix =
  clamp01(r h_r) + g h_g + b h_b`` (only the first term clamped, as darktable writes it) and likewise for
  saturation and lightness; where any is not 0, the pixel's HSL (``rgb2hsl`` of the unclamped pixel) takes
  them in place of its own and goes back to RGB (``hsl2rgb``); out = ``clamp01(M . rgb)``;
* ``algorithm_version`` 1 (version 2, the default): the HSL mix ``clamp01(H . rgb)`` per destination; where
  any is not 0, the pixel clamped to ``[0, 1]``, to HSL, the non-zero mixes in place, back to RGB; out =
  ``max(M . rgb, 0)``. With an all-zero HSL matrix this is darktable's RGB mode (``max(M . rgb, 0)``) and,
  with a gray row, its gray mode (one value in three channels): the same arithmetic.

Shapes: ``(B, 3, H, W)`` -> the same; pointwise. Values: darktable's (float32 arithmetic, its clamps and
its per-pixel "not 0" tests); gradients in the image and all 21 weights (``red[k]``, ``green[k]``,
``blue[k]``: a value under that name overrides the array's element) where they are differentiable: an HSL
weight only moves the output where its mix is not 0 (a mix switching between 0 and not 0, or a gray row
becoming all zero, changes the mode: a step). Refused: unknown algorithm versions, the module after
colorout.

Measured against darktable-cli's tap-outs (``tests/replica/test_monochrome_lowlight_channelmixer.py``, 8 settings,
8 runs): 78.3-100 dB display PSNR: darktable's approximate Lab round trip before colorout (an RGB module's
output; emulated on the port's output, 100 dB) and its run-to-run noise. The presets "swap R and B" and "B/W
Ilford Delta 100-400" through the replica (512 px raws at 256 px): the stage alone 93.2 and 100 dB, the
replica 59.2 and 58.9 dB against darktable's 8-bit export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import hsl_to_rgb, rgb_to_hsl

Tensor = torch.Tensor

ROWS = ("red", "green", "blue")  # the params: the input channel
HUE, SATURATION, LIGHTNESS, RED, GREEN, BLUE, GRAY = range(7)  # _channelmixer_output_t
VERSION_1, VERSION_2 = 0, 1  # _channelmixer_algorithm_t
PARAMS = tuple(f"{r}[{k}]" for r in ROWS for k in range(7))


def _weight(v: Values, row: str, k: int, x: Tensor) -> Tensor:
    """``p->row[k]`` as a ``(B or 1, 1, 1, 1)`` column (``v["row[k]"]`` when given: a regressed weight)."""
    key = f"{row}[{k}]"
    return column(v[key] if key in v else v[row][k], x)


def matrices(v: Values, x: Tensor) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """commit_params(): the HSL and RGB matrices as ``[out][in]`` columns (the gray row folded in)."""
    hsl = [[_weight(v, r, k, x) for r in ROWS] for k in (HUE, SATURATION, LIGHTNESS)]
    rgb = [[_weight(v, r, k, x) for r in ROWS] for k in (RED, GREEN, BLUE)]
    gray = [_weight(v, r, GRAY, x) for r in ROWS]
    on = (gray[0] != 0.0) | (gray[1] != 0.0) | (gray[2] != 0.0)
    mixed = [gray[0] * rgb[0][j] + gray[1] * rgb[1][j] + gray[2] * rgb[2][j] for j in range(3)]
    rgb = [[torch.where(on, mixed[j], rgb[i][j]) for j in range(3)] for i in range(3)]
    return hsl, rgb


def _dot(m: list[Tensor], c: Sequence[Tensor]) -> Tensor:
    return m[0] * c[0] + m[1] * c[1] + m[2] * c[2]


def mix_channels(x: Tensor, v: Values) -> Tensor:
    """The module on ``x`` ``(B, 3, H, W)`` (the working profile's RGB) -> the same."""
    hsl_m, rgb_m = matrices(v, x)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    v1 = int(v["algorithm_version"]) == VERSION_1
    if v1:  # process_hsl_v1: only the red term clamped
        mixes = [m[0].mul(r).clamp(0.0, 1.0) + m[1] * g + m[2] * b for m in hsl_m]
        src = (r, g, b)
    else:
        mixes = [_dot(m, (r, g, b)).clamp(0.0, 1.0) for m in hsl_m]
        src = (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
    use = (mixes[0] != 0.0) | (mixes[1] != 0.0) | (mixes[2] != 0.0)
    rgb: list[Tensor] = [r, g, b]
    if bool(use.any()):
        hsl = rgb_to_hsl(*src)
        h, s, li = (torch.where(m != 0.0, m, c) for m, c in zip(mixes, hsl, strict=True))
        rgb = [torch.where(use, n, o) for n, o in zip(hsl_to_rgb(h, s, li), rgb, strict=True)]
    out = [_dot(m, rgb) for m in rgb_m]
    lo = [o.clamp(0.0, 1.0) if v1 else o.clamp_min(0.0) for o in out]
    return torch.cat(torch.broadcast_tensors(*lo), 1)


def _channelmixer_supported(v: Values, ctx: StageContext) -> str | None:
    ver = int(v.get("algorithm_version", VERSION_2))
    if ver not in (VERSION_1, VERSION_2):
        return f"channelmixer algorithm version {ver} is not modelled"
    mods = ctx.modules
    if "channelmixer" in mods and "colorout" in mods and mods.index("colorout") < mods.index("channelmixer"):
        return "channelmixer after colorout (the legacy pipe order: display RGB) is not modelled"
    return None


@register_exact(
    "channelmixer",
    params=PARAMS,
    versions=(2,),
    note="darktable's channelmixer.c (deprecated): HSL destinations (algorithm versions 1 and 2), the RGB "
    "matrix, the gray row, their clamps; in the working profile",
    supports=_channelmixer_supported,
)
def channelmixer(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    return mix_channels(x, v)
