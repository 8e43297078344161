"""darktable 4.2.1's and 5's negadoctor (``negadoctor``, params version 2) as an exact stage.

A port of ``src/iop/negadoctor.c`` (``commit_params()`` and the CPU ``process()``) with what they inline
(``src/develop/openmp_maths.h``: ``fast_exp10f`` and ``fast_expf``, ``exp2f`` of a float-scaled argument).
darktable 5 (:attr:`StageContext.darktable_version`) computes the same through ``_process_pixel``'s vectorised
approximations (``dt_vector_log2``, ``dt_vector_exp10``, ``dt_vector_powf`` and the bit-trick ``dt_vector_exp``
for the roll-off: :mod:`darkproxy.replica.dtmath`), emulated there.
Per channel of the working profile's RGB (the module sits after colorin in every pipe order):

* density ``d = -log10(Dmin / max(x, 2^-32))``, corrected ``d wb_high / D_max + wb_high offset wb_low``;
* printed ``p = max(-(exposure 10^corrected - exposure (1 + black)), 0)^gamma``;
* highlights rolled off above ``soft_clip``: ``s + (1 - e^(-(p - s) / (1 - s))) (1 - s)``.

Both film stocks: colour film (``Dmin`` per channel) and black and white (``Dmin[0]`` on every channel, as
``commit_params()`` copies it; ``wb_high`` and ``wb_low`` stay per channel, darktable's sepia look).
Exact, float32 as darktable computes it (the parameters derived in ``commit_params()`` too), and
differentiable in the image and every float slider: ``D_max``, ``offset``, ``black``, ``gamma``,
``soft_clip``, ``exposure`` and the array elements ``Dmin[c]``, ``wb_high[c]``, ``wb_low[c]`` (c < 3; a
value under that name overrides the array's element, as channelmixerrgb's rows). Refused: a film stock
other than those two (darktable leaves ``Dmin`` unset then).

Shapes: ``(B, 3, H, W)`` linear Rec2020 in and out. Measured against darktable-cli's tap-outs
(``tests/replica/test_negadoctor.py``, 7 settings, 5 runs): worst setting per run 83.6-89.2 dB display PSNR,
every setting 83.6-100, darktable's run-to-run noise. darktable's presets (colour, black and white film, 256 px):
the stage alone 97.8 and 98.5 dB, the replica 59.3 and 60.2 dB against darktable's 8-bit export.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from darkproxy.replica.dtmath import vector_exp, vector_exp10, vector_log2, vector_powf
from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import safe_div, safe_pow

Tensor = torch.Tensor

BW, COLOR = 0, 1  # dt_iop_negadoctor_filmstock_t
THRESHOLD = 2.3283064365386963e-10  # -32 EV
LOG2_10 = float(np.float32(3.3219280948873626))  # fast_exp10f's float literal
LOG2_E = float(np.float32(1.4426950408889634))  # fast_expf's
LOG2_TO_LOG10 = float(np.float32(0.3010299956))  # darktable 5's _process_pixel
ARRAYS = ("Dmin", "wb_high", "wb_low")
SCALARS = ("D_max", "offset", "black", "gamma", "soft_clip", "exposure")
PARAMS = (*(f"{a}[{c}]" for a in ARRAYS for c in range(3)), *SCALARS)
# introspection defaults, Dmin as init() sets it
DEFAULTS: dict[str, Any] = {"Dmin": [1.0, 0.45, 0.25, 1.0], "wb_high": [1.0] * 4, "wb_low": [1.0] * 4}
DEFAULTS |= {"D_max": 2.046, "offset": -0.05, "black": 0.0755, "gamma": 4.0, "soft_clip": 0.75, "exposure": 0.9245}


def _scalar(v: Values, name: str, x: Tensor) -> Tensor:
    return column(v.get(name, DEFAULTS[name]), x)


def _elem(v: Values, array: str, c: int, x: Tensor) -> Tensor:
    """Element ``c`` of the array param (``v["array[c]"]`` when given: a regressed slider) as a column."""
    key = f"{array}[{c}]"
    return column(v[key] if key in v else v.get(array, DEFAULTS[array])[c], x)


def _supported(v: Values, ctx: StageContext) -> str | None:
    stock = int(v.get("film_stock", COLOR))
    if stock not in (BW, COLOR):
        return f"negadoctor film stock {stock} is not modelled (colour and black and white film are)"
    return None


@register_exact(
    "negadoctor",
    params=PARAMS,
    versions=(2,),
    note="darktable's negadoctor.c: density from Dmin, corrected by the white balances and D max, printed with "
    "exposure, black and gamma, highlights soft-clipped; colour and black and white film",
    supports=_supported,
)
def negadoctor(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    bw = int(v.get("film_stock", COLOR)) == BW
    dt5 = ctx.darktable5
    d_max, offset = _scalar(v, "D_max", x), _scalar(v, "offset", x)
    exposure, black = _scalar(v, "exposure", x), _scalar(v, "black", x)
    gamma, soft = _scalar(v, "gamma", x), _scalar(v, "soft_clip", x)
    # commit_params()
    d_black = -exposure * (1.0 + black)
    comp = 1.0 - soft
    out = []
    for c in range(3):
        wb_high = _elem(v, "wb_high", c, x)
        wb = wb_high / d_max
        off = wb_high * offset * _elem(v, "wb_low", c, x)
        dmin = _elem(v, "Dmin", 0 if bw else c, x)
        # process()
        ratio = dmin / torch.clamp_min(x[:, c : c + 1], THRESHOLD)
        if dt5:  # _process_pixel: darktable 5's vectorised log2, exp10, powf and exp
            corrected = wb * (vector_log2(ratio) * -LOG2_TO_LOG10) + off
            paper = vector_powf(torch.clamp_min(-(exposure * vector_exp10(corrected) + d_black), 0.0), gamma)
        else:
            corrected = wb * -torch.log10(ratio) + off
            paper = safe_pow(torch.clamp_min(-(exposure * torch.exp2(LOG2_10 * corrected) + d_black), 0.0), gamma)
        over = paper > soft
        # the roll-off's argument where it is used (elsewhere it can overflow exp, and its gradient with it)
        arg = torch.where(over, safe_div(-(paper - soft), comp, comp != 0.0), torch.zeros_like(paper))
        e = vector_exp(arg) if dt5 else torch.exp2(LOG2_E * arg)
        out.append(torch.where(over, soft + (1.0 - e) * comp, paper))
    return torch.cat(out, 1)
