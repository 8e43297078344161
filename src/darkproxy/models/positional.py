"""``positional``: a per-pixel MLP that also sees where the pixel is, for
modules whose output depends on the position in the image (vignette,
graduatednd): neither pointwise nor band-pass.

Features: the log-encoded pixel (as ``pointwise``) and the pixel centre's
coordinates in the whole image, ``x, y`` in ``[-1, 1]`` along each axis, plus
``x^2, y^2, xy`` (a radial falloff or a rotated linear gradient is then a
low-order function of the features) and the aspect ratio ``log(W / H)``
(darktable's vignette and graduated density are defined relative to the
image's sides). The coordinates are those of the image the model is given:
apply it to whole images, not to crops (a tiled apply must pass each tile's
place in the image; not supported yet).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from darkproxy.models.layers import PixelMLP, encode_input
from darkproxy.models.registry import register_arch

N_COORD = 6  # x, y, x^2, y^2, xy, log aspect


def image_coordinates(image: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 6, H, W)`` position features (see the module
    docstring), same dtype and device as ``image``."""
    b, _, h, w = image.shape
    kw: dict[str, Any] = {"dtype": image.dtype, "device": image.device}

    y = (torch.arange(h, **kw) + 0.5) / h * 2 - 1
    x = (torch.arange(w, **kw) + 0.5) / w * 2 - 1
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    aspect = torch.full_like(xx, math.log(w / h))
    f = torch.stack([xx, yy, xx * xx, yy * yy, xx * yy, aspect])
    return f[None].expand(b, -1, -1, -1)


@register_arch("positional", pixel_batches=True)
class PositionalProxy(PixelMLP):
    """Per-pixel MLP over the log-encoded pixel and its position (see the
    module docstring). ``image (B, 3, H, W)`` linear_rec2020, ``params (B, P)``
    in ``[0, 1]`` -> ``(B, 3, H, W)`` linear_rec2020."""

    def __init__(
        self,
        n_params: int,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        depth: int = 3,
        param_hidden: int = 64,
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("positional proxies map 3 channels to 3")
        super().__init__(n_params, 3 + N_COORD, width, depth, param_hidden)
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}

    def features(self, image: torch.Tensor) -> torch.Tensor:
        enc = encode_input(image)
        return torch.cat([enc, image_coordinates(image).to(enc.dtype)], dim=1)
