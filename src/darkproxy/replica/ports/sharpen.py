"""darktable's sharpen (``sharpen``, params version 1) as an exact stage: ``src/iop/sharpen.c``.

sharpen runs in Lab (``IOP_CS_LAB``): darktable converts the working profile's RGB
to XYZ D50 with the profile's matrix (lcms's build) and to Lab (:func:`working_rgb_to_lab`),
sharpens L, and converts back.
"""

from __future__ import annotations

import math

import torch

from darkproxy.replica.registry import StageContext, Values, column, register_exact
from darkproxy.replica.science import lab_to_working_rgb, working_rgb_to_lab


@register_exact(
    "sharpen",
    params=("radius", "amount", "threshold"),
    versions=(1,),
    pointwise=False,
    note="darktable's sharpen.c: unsharp mask of CIE L* (Gaussian sigma = radius x render scale, cut at "
    "2.5 sigma), soft threshold, border of that width untouched; any render scale",
)
def sharpen(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    B, _, H, W = x.shape
    radius = column(v.get("radius", 2.0), x).reshape(-1)
    amount = column(v.get("amount", 0.5), x)
    threshold = column(v.get("threshold", 0.5), x)
    sigma = (radius * ctx.scale).clamp_min(1e-3)  # (B,) or (1,)
    rs = [int(math.ceil(2.5 * float(s))) for s in sigma.detach().cpu().tolist()]
    r_max = max(rs)
    if r_max < 1 or 2 * r_max >= min(H, W):  # darktable leaves images this small untouched
        return x
    lab = working_rgb_to_lab(x)
    L = lab[:, 0:1]
    t = torch.arange(-r_max, r_max + 1, dtype=x.dtype, device=x.device)
    rt = torch.as_tensor(rs, dtype=x.dtype, device=x.device).reshape(-1, 1)
    k = torch.exp(-(t[None] ** 2) / (2.0 * sigma.reshape(-1, 1) ** 2)) * (t[None].abs() <= rt)
    k = k / k.sum(1, keepdim=True)  # (Bk, 2R+1), Bk = B or 1
    if k.shape[0] != B:
        k = k.expand(B, -1)
    # separable blur, one kernel per batch item (grouped convolutions)
    Lg = L.reshape(1, B, H, W)
    blur = torch.nn.functional.conv2d(Lg, k.reshape(B, 1, 2 * r_max + 1, 1), padding=(r_max, 0), groups=B)
    blur = torch.nn.functional.conv2d(blur, k.reshape(B, 1, 1, 2 * r_max + 1), padding=(0, r_max), groups=B)
    d = L - blur.reshape(B, 1, H, W)
    L2 = L + amount * torch.sign(d) * torch.relu(d.abs() - threshold)
    yy = torch.arange(H, device=x.device).reshape(1, 1, H, 1)
    xx = torch.arange(W, device=x.device).reshape(1, 1, 1, W)
    rb = torch.as_tensor(rs if len(rs) == B else rs * B, device=x.device).reshape(B, 1, 1, 1)
    inner = (yy >= rb) & (yy < H - rb) & (xx >= rb) & (xx < W - rb)
    L2 = torch.where(inner, L2, L)
    return lab_to_working_rgb(torch.cat([L2, lab[:, 1:3]], 1))
