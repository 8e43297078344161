"""darktable's output colour profile (``colorout``) to its sRGB export, as an exact display stage.

With filmic rgb run by a proxy (which learnt filmic's gamut mapping for a Rec2020
output profile), :func:`display_gamut_map` adds filmic's gamut mapping to the sRGB
export profile in closed form.
"""

from __future__ import annotations

import torch

from darkproxy.colour.encodings import srgb_encode
from darkproxy.colour.matrices import REC709_TO_XYZ_D65, XYZ_D65_TO_LMS_2006, Y_LMS_2006, rec2020_to_rec709_matrix
from darkproxy.replica.registry import StageContext, Values, register_exact
from darkproxy.replica.science import mix

# luminance weights of linear Rec709 in CIE 2006 Y (filmic rgb's Yrg space: XYZ D65 -> LMS 2006 -> Y)
_Y2006_REC709 = Y_LMS_2006 @ XYZ_D65_TO_LMS_2006 @ REC709_TO_XYZ_D65


def display_gamut_map(rgb709: torch.Tensor) -> torch.Tensor:
    """filmic rgb's gamut mapping to the export profile (darktable 4.x, v6 colour
    science), in closed form: each linear Rec709 pixel is mixed with the grey of
    its CIE 2006 luminance (constant luminance and hue in filmic's Yrg space)
    just enough to bring every channel into ``[0, 1]``; negative channels first
    raise the luminance by half the white that would cancel them, as filmic's
    heuristic does. ``(B, 3, H, W)`` -> same shape, in ``[0, 1]``."""
    w = torch.as_tensor(_Y2006_REC709, dtype=rgb709.dtype, device=rgb709.device).reshape(1, 3, 1, 1)
    wsum = float(_Y2006_REC709.sum())
    y = (rgb709 * w).sum(1, keepdim=True)
    off = torch.relu(-rgb709.amin(1, keepdim=True))
    y = (y + ((rgb709 + off) * w).sum(1, keepdim=True)) / 2.0
    grey = (y / wsum).clamp(0.0, 1.0)
    d = rgb709 - grey
    big = torch.full_like(d, 1e9)
    eps = 1e-9
    t_hi = torch.where(d > eps, (1.0 - grey) / torch.where(d > eps, d, torch.ones_like(d)), big)
    t_lo = torch.where(d < -eps, -grey / torch.where(d < -eps, d, -torch.ones_like(d)), big)
    t = torch.minimum(t_hi.amin(1, keepdim=True), t_lo.amin(1, keepdim=True)).clamp(0.0, 1.0)
    return (grey + t * d).clamp(0.0, 1.0)


@register_exact(
    "colorout",
    output="display",
    reads_params=False,
    note="linear Rec2020 -> Rec709 primaries -> sRGB curve (darktable's sRGB export, exact in gamut); with "
    "filmic rgb's proxy, its gamut mapping to the sRGB export profile in closed form (the zoo's proxy learnt "
    "it for a Rec2020 output profile; the exact filmic rgb stage maps to ctx.output_profile itself)",
)
def colorout(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    rgb = mix(rec2020_to_rec709_matrix(), x)
    if "filmicrgb" in ctx.modules and "filmicrgb" not in ctx.exact:
        rgb = display_gamut_map(rgb)
    return srgb_encode(rgb)
