"""``pointwise``: a per-pixel MLP (1x1 convolutions) with FiLM conditioning,
for modules whose output pixel depends only on the same input pixel
(exposure, colorbalancergb, ...).

Representation (why it reaches high fidelity fast): the MLP sees the pixel in a
log-like encoding (:func:`~darkproxy.colorspace.log_encode`), where a gain is a
shift, and predicts a per-pixel **affine colour transform** applied to the
*linear* input (:class:`AffineHead`)::

    out = exp(g) * x + M x + o        g: (3,) log gains, M: 3x3 mix, o: (3,) offsets

The head's last layer starts at zero, so the untrained model is the identity,
and a linear path from the params to ``(g, M, o)`` makes an exposure
(``g = ev * ln 2``, linear in the normalised param) exactly representable.

Also home of the building blocks the other architectures share.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from darkproxy.colorspace import log_encode
from darkproxy.models.registry import register_arch

N_HEAD = 15  # 3 log gains + 9 mix + 3 offsets
LOG_GAIN_LIMIT = 12.0  # |g| bound: 2^17 of gain is beyond any module
OFFSET_SCALE = 0.1  # offsets learn 10x slower than gains (Adam steps are scale-free): explain by gain first


def encode_input(x: torch.Tensor) -> torch.Tensor:
    """Feature encoding of a linear image ``(B, C, H, W)``: ``log_encode``
    (linear near 0, logarithmic above 1/256; 1 -> 1, 64 -> ~1.8)."""
    return log_encode(x.float())


def _params_or_const(params: torch.Tensor, n_params: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` float params; a module without free params gets a constant 1."""
    if n_params == 0:
        return torch.ones(like.shape[0], 1, device=like.device, dtype=torch.float32)
    if params.ndim == 1:
        params = params[None].expand(like.shape[0], -1)
    return params.float()


class ParamMLP(nn.Module):
    """Normalised params ``(B, P)`` -> ``(B, out)`` (zero-initialised output, so
    FiLM starts as the identity)."""

    def __init__(self, n_params: int, out: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(max(n_params, 1), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, out))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(p)


def film(h: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """Feature-wise linear modulation: ``h * (1 + gamma) + beta`` with
    ``gb = (B, 2C)`` split into gamma and beta."""
    g, b = gb.chunk(2, dim=1)
    return h * (1.0 + g[:, :, None, None]) + b[:, :, None, None]


class AffineHead(nn.Module):
    """Features ``(B, F, H, W)`` + params -> per-pixel affine colour transform
    of the linear ``base`` image ``(B, 3, H, W)`` -> ``(B, 3, H, W)`` linear.

    Computed in float32 even under autocast (the gain must be precise)."""

    def __init__(self, features: int, n_params: int, out_channels: int = 3) -> None:
        super().__init__()
        if out_channels != 3:
            raise ValueError("the affine head outputs 3 channels")
        self.conv = nn.Conv2d(features, N_HEAD, 1)
        self.from_params = nn.Linear(max(n_params, 1), N_HEAD)
        for m in (self.conv, self.from_params):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def coefficients(self, feats: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        with torch.autocast(feats.device.type, enabled=False):
            return self.conv(feats.float()) + self.from_params(p.float())[:, :, None, None]

    @staticmethod
    def apply(coef: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Apply ``(B, 15, H, W)`` coefficients to ``base`` ``(B, 3, H, W)``."""
        with torch.autocast(base.device.type, enabled=False):
            coef, base = coef.float(), base.float()
            g = coef[:, 0:3].clamp(-LOG_GAIN_LIMIT, LOG_GAIN_LIMIT)
            mix = coef[:, 3:12].unflatten(1, (3, 3))  # (B, out, in, H, W)
            o = OFFSET_SCALE * coef[:, 12:15]
            return torch.exp(g) * base + (mix * base[:, None]).sum(2) + o

    def forward(self, feats: torch.Tensor, p: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return self.apply(self.coefficients(feats, p), base)


@register_arch("pointwise", pointwise=True)
class PointwiseProxy(nn.Module):
    """Per-pixel MLP (``depth`` 1x1 conv layers of ``width``), each layer
    FiLM-modulated by the params. ``image (B, 3, H, W)`` linear_rec2020,
    ``params (B, P)`` in [0, 1] -> ``(B, 3, H, W)`` linear_rec2020."""

    def __init__(self, n_params: int, in_channels: int = 3, out_channels: int = 3, width: int = 32, depth: int = 3,
                 param_hidden: int = 64) -> None:
        super().__init__()
        if in_channels != 3:
            raise ValueError("pointwise proxies take 3-channel images (use 'demosaic' for a packed mosaic)")
        self.n_params = n_params
        self.hparams: dict[str, Any] = {"width": width, "depth": depth, "param_hidden": param_hidden}
        layers, c = [], in_channels
        for _ in range(depth):
            layers.append(nn.Conv2d(c, width, 1))
            c = width
        self.layers = nn.ModuleList(layers)
        self.param_mlp = ParamMLP(n_params, 2 * width * depth, param_hidden)
        self.act = nn.SiLU()
        self.head = AffineHead(width, n_params, out_channels)

    def forward(self, image: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p = _params_or_const(params, self.n_params, image)
        gbs = self.param_mlp(p).chunk(len(self.layers), dim=1)
        h = encode_input(image)
        for layer, gb in zip(self.layers, gbs):
            h = self.act(film(layer(h), gb))
        return self.head(h, p, image)
