"""``demosaic``: proxy of a pre-demosaic module. Input: the packed Bayer mosaic
``(B, 4, H/2, W/2)`` linear (channel order R, G1, G2, B; G1 on the red row),
output ``(B, 3, H, W)`` linear_rec2020.

A conv net at half resolution (params as constant channels and FiLM) predicts
four sets of :class:`~darkproxy.models.layers.AffineHead` coefficients per
packed pixel, ``PixelShuffle(2)`` puts them at full resolution, and they are
applied to a bilinear upsampling of ``(R, (G1 + G2) / 2, B)``: the network only
learns the correction of a crude demosaic, and per-channel gains (white
balance, exposure) are constant log-gain maps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from darkproxy.models.layers import N_HEAD, AffineHead, ParamMLP, encode_input, film, params_or_const, upcast
from darkproxy.models.registry import register_arch


def packed_to_rgb_base(mosaic: torch.Tensor) -> torch.Tensor:
    """``(B, 4, h, w)`` packed R, G1, G2, B -> ``(B, 3, 2h, 2w)`` bilinear
    upsampling of ``(R, (G1 + G2) / 2, B)`` (a crude demosaic)."""
    r, g1, g2, b = upcast(mosaic).unbind(1)
    rgb = torch.stack([r, 0.5 * (g1 + g2), b], 1)
    return F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)


@register_arch("demosaic", pre_demosaic=True)
class DemosaicProxy(nn.Module):
    """``image (B, 4, H/2, W/2)`` packed mosaic, ``params (B, P)`` in [0, 1] ->
    ``(B, 3, H, W)`` linear_rec2020."""

    def __init__(
        self,
        n_params: int,
        in_channels: int = 4,
        out_channels: int = 3,
        width: int = 32,
        depth: int = 4,
        param_hidden: int = 64,
    ) -> None:
        super().__init__()
        if in_channels != 4:
            raise ValueError("demosaic proxies take the packed 4-channel mosaic")
        self.n_params = n_params
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}
        cin = in_channels + max(n_params, 1)
        self.convs = nn.ModuleList()
        c = cin
        for _ in range(depth):
            self.convs.append(nn.Conv2d(c, width, 3, padding=1))
            c = width
        self.param_mlp = ParamMLP(n_params, 2 * width * depth, param_hidden)
        self.act = nn.SiLU()
        self.to_coef = nn.Conv2d(width, 4 * N_HEAD, 1)
        nn.init.zeros_(self.to_coef.weight)
        assert self.to_coef.bias is not None  # made with a bias
        nn.init.zeros_(self.to_coef.bias)

        self.shuffle = nn.PixelShuffle(2)
        self.head = AffineHead(width, n_params, out_channels)  # its param path gives global gains

    @property
    def halo(self) -> int:
        """Packed px of input context a tile needs each side (3x3 convs + the bilinear base)."""
        return len(self.convs) + 1

    def coefficients(self, image: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The affine colour coefficients ``(B, 15, H, W)`` at full resolution (float32)."""
        h = torch.cat([encode_input(image), p[:, :, None, None].expand(-1, -1, *image.shape[2:])], 1)
        for conv, gb in zip(self.convs, self.param_mlp(p).chunk(len(self.convs), dim=1), strict=True):
            h = self.act(film(conv(h), gb))
        with torch.autocast(image.device.type, enabled=False):
            return self.shuffle(self.to_coef(upcast(h))) + self.head.from_params(p)[:, :, None, None]

    def forward(self, image: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p = params_or_const(params, self.n_params, image)
        return AffineHead.apply(self.coefficients(image, p), packed_to_rgb_base(image))
