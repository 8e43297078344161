"""``pointwise``: a per-pixel MLP with FiLM conditioning, for modules whose
output pixel depends only on the same input pixel (exposure,
colorbalancergb, colorin, filmicrgb, sigmoid...).

The MLP sees the pixel in a log-like encoding
(:func:`~darkproxy.models.layers.encode_input`), where a gain is a shift, and
predicts the per-pixel affine colour transform of the *linear* input
(:func:`~darkproxy.models.layers.affine_apply`); a linear path from the params
to its coefficients makes an exposure (``g = ev * ln 2``, linear in the
normalised param) exactly representable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from darkproxy.models.layers import PixelMLP, encode_input
from darkproxy.models.registry import register_arch


@register_arch("pointwise", pointwise=True, pixel_batches=True)
class PointwiseProxy(PixelMLP):
    """Per-pixel MLP over the log-encoded pixel (see :class:`PixelMLP`)."""

    def __init__(
        self,
        n_params: int,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        depth: int = 3,
        param_hidden: int = 64,
        periodic: Sequence[Sequence[float]] = (),
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("pointwise proxies map 3 channels to 3 (use 'demosaic' for a packed mosaic)")
        super().__init__(n_params, in_channels, width, depth, param_hidden, periodic)
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}
        self.hparams.update(self.periodic_hparams())

    def features(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        return encode_input(image)  # per pixel: where the image lies does not matter
