"""``pointwise``: a per-pixel MLP with FiLM conditioning, for modules whose
output pixel depends only on the same input pixel (exposure,
colorbalancergb, colorin, filmicrgb, sigmoid...).

The MLP sees the pixel in a log-like encoding
(:func:`~darkproxy.models.layers.encode_input`), where a gain is a shift, and
predicts the per-pixel affine colour transform of the *linear* input
(:func:`~darkproxy.models.layers.affine_apply`); a linear path from the params
to its coefficients makes an exposure (``g = ev * ln 2``, linear in the
normalised param) exactly representable.

``mix = K`` (a hyper-parameter, 0 by default) adds ``K`` features that are linear maps of the
pixel's *linear* RGB with coefficients from the params (a small MLP per image), read through the
same log encoding: a channel mix the sliders set, and the clip of its result at 0 (color
calibration's), or a luminance whose weights they move, is then one feature, where the MLP
otherwise rebuilds a sum of linear values from their logarithms. ``positional``'s ``proj`` does
the same for the position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from darkproxy.colour.encodings import log_decode
from darkproxy.models.layers import ParamMLP, PixelMLP, encode_input, param_linear_maps
from darkproxy.models.registry import register_arch


@register_arch("pointwise", pointwise=True, pixel_batches=True)
class PointwiseProxy(PixelMLP):
    """Per-pixel MLP over the log-encoded pixel (see :class:`PixelMLP` and the module docstring)."""

    def __init__(
        self,
        n_params: int,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 64,
        depth: int = 3,
        param_hidden: int = 64,
        mix: int = 0,
        periodic: Sequence[Sequence[float]] = (),
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("pointwise proxies map 3 channels to 3 (use 'demosaic' for a packed mosaic)")
        if mix < 0:
            raise ValueError(f"mix must be >= 0, got {mix}")
        super().__init__(n_params, in_channels + mix, width, depth, param_hidden, periodic)
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}
        self.hparams.update(self.periodic_hparams())
        self.mix = mix
        if mix:
            self.hparams["mix"] = mix
            # per image: K rows of (3 coefficients, offset); zero at first, like FiLM
            self.mix_mlp = ParamMLP(self.n_read, mix * 4, param_hidden)

    def features(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        return encode_input(image)  # per pixel: where the image lies does not matter

    def hidden(self, feats: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`PixelMLP.hidden`, with the ``mix`` param-conditioned linear maps of the pixel's linear RGB
        (decoded from ``feats (B, N, 3)``, the log-encoded pixel) appended to it, log-encoded."""
        if not self.mix:
            return super().hidden(feats, params)
        coef = self.mix_mlp(self.read_params(params, feats))
        u = param_linear_maps(coef, log_decode(feats[..., :3].to(coef.dtype)))
        return super().hidden(torch.cat([feats, encode_input(u).to(feats.dtype)], dim=-1), params)
