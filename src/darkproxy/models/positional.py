"""``positional``: a per-pixel MLP that also sees where the pixel is, for
modules whose output depends on the position in the image (vignette,
graduatednd): neither pointwise nor band-pass.

Features: the log-encoded pixel (as ``pointwise``) and the pixel centre's
coordinates in the whole image, ``x, y`` in ``[-1, 1]`` along each axis, plus
``x^2, y^2, xy`` (a radial falloff or a rotated linear gradient is then a
low-order function of the features) and the aspect ratio ``log(W / H)``
(darktable's vignette and graduated density are defined relative to the
image's sides). The coordinates are those of the image the model is given,
unless ``origin`` says where it lies in a larger one: a tiled apply
(:mod:`darkproxy.proxy.tiling`) passes each tile's place in the image.

``proj = K`` (a hyper-parameter, 0 by default) adds ``K`` features that are linear maps of
the position features with coefficients from the params (a small MLP per image): a gradient's
line rotated and offset by sliders (graduatednd's distance to it is ``cos r x + sin r y - o``)
or an ellipse moved by them (vignette's ``(x - cx)^2 / a^2 + ...``) is then one feature,
where FiLM alone can only scale each hidden unit's fixed mix of ``x`` and ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from darkproxy.models.layers import ParamMLP, PixelMLP, encode_input, param_linear_maps
from darkproxy.models.registry import register_arch

N_COORD = 6  # x, y, x^2, y^2, xy, log aspect


def image_coordinates(image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 6, H, W)`` position features (see the module
    docstring), same dtype and device as ``image``. ``origin`` ``(B, 4)`` =
    ``(y0, x0, H, W)``: the images are windows of larger ``H x W`` images
    (tiles), whose coordinates they get; ``None``: whole images."""
    b, _, h, w = image.shape
    kw: dict[str, Any] = {"dtype": image.dtype, "device": image.device}

    def coords(y0: int, x0: int, hh: int, ww: int) -> torch.Tensor:
        # the same operations on the same values for a tile as for the whole image: bitwise equal
        y = (torch.arange(y0, y0 + h, **kw) + 0.5) / hh * 2 - 1
        x = (torch.arange(x0, x0 + w, **kw) + 0.5) / ww * 2 - 1
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        aspect = torch.full_like(xx, math.log(ww / hh))
        return torch.stack([xx, yy, xx * xx, yy * yy, xx * yy, aspect])

    if origin is None:
        return coords(0, 0, h, w)[None].expand(b, -1, -1, -1)
    return torch.stack([coords(*(int(v) for v in o)) for o in origin.tolist()])


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
        proj: int = 0,
        periodic: Sequence[Sequence[float]] = (),
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("positional proxies map 3 channels to 3")
        if proj < 0:
            raise ValueError(f"proj must be >= 0, got {proj}")
        super().__init__(n_params, 3 + N_COORD + proj, width, depth, param_hidden, periodic)
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}
        self.hparams.update(self.periodic_hparams())
        self.proj = proj
        if proj:
            self.hparams["proj"] = proj
            # per image: K rows of (N_COORD coefficients, offset); zero at first, like FiLM
            self.proj_mlp = ParamMLP(self.n_read, proj * (N_COORD + 1), param_hidden)

    takes_origin = True  # forward(..., origin=): a tile gets its coordinates in the whole image

    def features(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        enc = encode_input(image)
        return torch.cat([enc, image_coordinates(image, origin).to(enc.dtype)], dim=1)

    def hidden(self, feats: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`PixelMLP.hidden`, with the ``proj`` param-conditioned linear maps of the
        position features (``feats (B, N, 3 + N_COORD)``) appended to them first."""
        if not self.proj:
            return super().hidden(feats, params)
        u = param_linear_maps(self.proj_mlp(self.read_params(params, feats)), feats[..., 3 : 3 + N_COORD])
        return super().hidden(torch.cat([feats, u.to(feats.dtype)], dim=-1), params)
