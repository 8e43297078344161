"""``multiscale``: a per-pixel MLP over a fixed Gaussian band-pass stack, for
local operators (sharpen, lowpass, highpass, bloom, soften...).

Most of darktable's local modules are point-wise functions of a few blurred
versions of the image: sharpen adds a thresholded ``L - gauss(L, radius)``,
lowpass blends ``gauss(x, radius)``, bloom and soften add blurred highlights.
So instead of learning convolutions, the proxy computes fixed features per
pixel and learns the point-wise part with the same FiLM-conditioned MLP and
affine output as ``pointwise`` (:class:`~darkproxy.models.layers.PixelMLP`):

* the log-encoded pixel (3) and its encoded luminance (1);
* band-passes ``e - gauss(e, sigma)`` of the encoded luminance and of the three
  encoded channels for each ``sigma`` in ``sigmas`` (a sqrt(2) ladder from 0.5
  to 16 px: a blur at any radius in between is close to a blend of its
  neighbours);
* the distance to the image border (in units of 16 and 64 px, clipped at 1):
  darktable modules often treat borders specially (sharpen leaves a border of
  ``ceil(2.5 radius)`` px untouched), and a proxy that cannot see the border
  cannot learn that.

The encoding of the bands is the sRGB curve extended to all reals
(:func:`~darkproxy.colour.encodings.srgb_encode_ext`), close to CIE L* (cube root),
which is where Lab modules compute their details. On darktable's sharpen it is
ahead of the ``spatial`` UNets at equal CPU time (``bench/results/proxies.md``).

Training draws random pixels of many samples per step from features computed
once per image (:class:`~darkproxy.data.dataset.PixelBatches`), as for
pointwise proxies. The receptive field is ``3 * max(sigmas)`` px: a tiled apply
(:mod:`darkproxy.proxy.tiling`) gives each tile that much context and its ``origin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from darkproxy.colour.encodings import srgb_encode_ext
from darkproxy.models.layers import PixelMLP, encode_input, gaussian_blur, upcast
from darkproxy.models.registry import register_arch

DEFAULT_SIGMAS = (0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0, 5.66, 8.0, 11.3, 16.0)
BORDER_SCALES = (16.0, 64.0)  # px
# Rec. 2020 luminance weights (ITU-R BT.2020)
LUMA_REC2020 = (0.2627, 0.6780, 0.0593)


def border_distance(
    b: int,
    h: int,
    w: int,
    scales: Sequence[float] = BORDER_SCALES,
    device: Any = None,
    origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(b, 2 * len(scales), h, w)``: distance of each pixel to the nearest
    top/bottom and left/right image border in px, divided by each scale and
    clipped at 1. ``origin`` ``(b, 4)`` = ``(y0, x0, H, W)`` per item when the
    ``h x w`` images are windows of larger ``H x W`` images (training crops);
    ``None``: they are whole images."""
    yy = torch.arange(h, dtype=torch.float32, device=device)[None]
    xx = torch.arange(w, dtype=torch.float32, device=device)[None]
    if origin is None:
        dy, dx = torch.minimum(yy, h - 1 - yy).expand(b, h), torch.minimum(xx, w - 1 - xx).expand(b, w)
    else:
        o = origin.to(device=device, dtype=torch.float32)
        yy, xx = yy + o[:, 0:1], xx + o[:, 1:2]
        dy, dx = torch.minimum(yy, o[:, 2:3] - 1 - yy), torch.minimum(xx, o[:, 3:4] - 1 - xx)
    dy, dx = dy[:, :, None].expand(b, h, w), dx[:, None, :].expand(b, h, w)
    return torch.stack([(d / s).clamp(max=1.0) for s in scales for d in (dy, dx)], 1)


def multiscale_features(
    image: torch.Tensor,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    border_scales: Sequence[float] = BORDER_SCALES,
    origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fixed multi-scale features of a linear_rec2020 image ``(B, 3, H, W)``
    -> ``(B, 4 + 4 * len(sigmas) + 2 * len(border_scales), H, W)``: log-encoded
    pixel, encoded luminance, band-passes of the encoded luminance and
    channels per sigma, border distances (``origin``: see
    :func:`border_distance`). Differentiable with respect to the image."""
    x = upcast(image)
    B, _, H, W = x.shape
    w = torch.tensor(LUMA_REC2020, dtype=torch.float32, device=x.device)
    src = torch.cat([srgb_encode_ext((x * w[None, :, None, None]).sum(1, keepdim=True)), srgb_encode_ext(x)], 1)
    feats = [encode_input(x), src[:, :1]]
    feats += [src - gaussian_blur(src, s) for s in sigmas]
    if border_scales:
        feats.append(border_distance(B, H, W, border_scales, x.device, origin))
    return torch.cat(feats, 1)


@register_arch("multiscale", pixel_batches=True)
class MultiscaleProxy(PixelMLP):
    """Per-pixel MLP over :func:`multiscale_features` (see the module docstring)."""

    takes_origin = True  # forward(..., origin=): a tile must see the real image border (darkproxy.proxy.tiling)

    def __init__(
        self,
        n_params: int,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        depth: int = 3,
        param_hidden: int = 64,
        sigmas: Sequence[float] = DEFAULT_SIGMAS,
        border_scales: Sequence[float] = BORDER_SCALES,
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("multiscale proxies map 3 channels to 3 (use 'demosaic' for a packed mosaic)")
        sig, bsc = [float(s) for s in sigmas], [float(s) for s in border_scales]
        super().__init__(n_params, 4 + 4 * len(sig) + 2 * len(bsc), width, depth, param_hidden)
        self.sigmas, self.border_scales = sig, bsc
        self.hparams: dict[str, Any] = {
            "width": width,
            "depth": depth,
            "param_hidden": param_hidden,
            "sigmas": self.sigmas,
            "border_scales": self.border_scales,
        }

    def features(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        return multiscale_features(image, self.sigmas, self.border_scales, origin)
