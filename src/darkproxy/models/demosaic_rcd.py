"""``demosaic-rcd``: proxy of a pre-demosaic module whose demosaic is darktable's own. Input: the packed
Bayer mosaic ``(B, 4, H/2, W/2)`` linear (R, G1, G2, B; G1 on the red row), output ``(B, 3, H, W)``
linear_rec2020.

A pre-demosaic module's tap-out is darktable's render after it, through demosaic (RCD by default) and
colorin: what a ``demosaic`` proxy learns as a correction of a bilinear demosaic is mostly RCD, and it stops
near 34 dB. RCD is a closed form, ported exactly (:mod:`darkproxy.raw.demosaic`), so here the network learns
only the module, in the mosaic, and what follows demosaic:

1. per photosite, the module: per-channel gains from the params (white balance) and a residual MLP of the
   2x2 block's photosites and the params (clipping, reconstruction), zero-initialised (the identity);
2. darktable's RCD on the result (:func:`~darkproxy.raw.demosaic.rcd_untiled`: the whole mosaic as one tile,
   so that a window's result is the whole mosaic's beyond 10 photosites of its edge);
3. :class:`~darkproxy.models.demosaic.DemosaicProxy`'s conv net on the input mosaic: per-pixel affine
   colour coefficients applied to RCD's camera RGB (colorin's matrix, corrections), zero-initialised but for
   the params' global term.

The loss must skip the 10 px next to a training crop's edge, where RCD's frame and reach see the crop's edge
and darktable saw the raw (``min_context``); a tile's halo is as wide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from darkproxy.models.demosaic import DemosaicProxy
from darkproxy.models.layers import AffineHead, ParamMLP, encode_input, film, params_or_const, upcast
from darkproxy.models.registry import register_arch
from darkproxy.raw.demosaic import cfa_colours, rcd_untiled

RCD_REACH = 10  # photosites: RCD's 6-photosite frame at a cut and what RCD reads beyond it


def packed_cfa(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The CFA colours ``(2h, 2w)`` (0 R, 1 G, 2 B) of a packed ``(R, G1, G2, B)`` mosaic unpacked by
    ``pixel_shuffle(2)``: R at even rows and columns."""
    return cfa_colours((0, 1, 1, 2), 2 * h, 2 * w, device)


@register_arch("demosaic-rcd", pre_demosaic=True, min_context=RCD_REACH)
class DemosaicRCDProxy(DemosaicProxy):
    """``image (B, 4, H/2, W/2)`` packed mosaic, ``params (B, P)`` in [0, 1] -> ``(B, 3, H, W)``
    linear_rec2020, through darktable's RCD."""

    def __init__(
        self,
        n_params: int,
        in_channels: int = 4,
        out_channels: int = 3,
        width: int = 32,
        depth: int = 4,
        param_hidden: int = 64,
        pre_hidden: int = 32,
    ) -> None:
        super().__init__(n_params, in_channels, out_channels, width, depth, param_hidden)
        self.hparams["pre_hidden"] = pre_hidden
        self.pre_gain = ParamMLP(n_params, 4, param_hidden)  # log gains per CFA channel
        self.pre_film = ParamMLP(n_params, 4 * pre_hidden, param_hidden)
        self.pre_in = nn.Conv2d(8 + max(n_params, 1), pre_hidden, 1)
        self.pre_mid = nn.Conv2d(pre_hidden, pre_hidden, 1)
        self.pre_out = nn.Conv2d(pre_hidden, 4, 1)
        nn.init.zeros_(self.pre_out.weight)
        assert self.pre_out.bias is not None  # made with a bias
        nn.init.zeros_(self.pre_out.bias)

    @property
    def halo(self) -> int:
        """Packed px of input context a tile needs each side: the conv net's and RCD's."""
        return max(super().halo, -(-RCD_REACH // 2))

    def module_mosaic(self, image: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Step 1: the packed mosaic ``(B, 4, h, w)`` after the module (linear, camera RGB)."""
        m = upcast(image) * torch.exp(self.pre_gain(p).clamp(-4.0, 4.0))[:, :, None, None]
        pp = p[:, :, None, None].expand(-1, -1, *m.shape[2:])
        g1, g2 = self.pre_film(p).chunk(2, dim=1)
        h = self.act(film(self.pre_in(torch.cat([m, encode_input(m), pp], 1)), g1))
        h = self.act(film(self.pre_mid(h), g2))
        return m + self.pre_out(h)

    def forward(self, image: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p = params_or_const(params, self.n_params, image)
        coef = self.coefficients(image, p)
        with torch.autocast(image.device.type, enabled=False):
            mosaic = F.pixel_shuffle(self.module_mosaic(image, p), 2)  # (B, 1, H, W)
            h, w = image.shape[-2:]
            # darktable divides by max(processed_maximum) around RCD, which is scale-free but for its 1e-5
            # epsilons: the gains above absorb the scale
            scaler = torch.ones(mosaic.shape[0], dtype=mosaic.dtype, device=mosaic.device)
            rgb = rcd_untiled(mosaic, packed_cfa(h, w, mosaic.device), scaler)
        return AffineHead.apply(coef, rgb)
