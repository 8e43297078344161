"""``spatial``: a small param-conditioned UNet for modules whose output pixel
depends on a neighbourhood (sharpen, local contrast, denoise, ...).

Two conditioning variants (hparam ``conditioning``):

* ``"concat"``: the normalised params are appended to the input as constant
  channels (the seed project's design);
* ``"film"``: every conv block is FiLM-modulated by a small param MLP.

Both end in the :class:`~darkproxy.models.layers.AffineHead` applied to the
linear input, which is the residual skip from input to output (identity at
initialisation; a gain is a constant log-gain map), plus a *detail* term:
per-pixel, per-channel coefficients times fixed band-pass layers of the linear
input, ``x - gauss(x, sigma)`` for ``sigma`` in ``detail_sigmas``. Sharpening,
local contrast and blurs are weighted sums of such layers, so a param-weighted
unsharp mask is exactly representable (linear param path) instead of having to
be synthesised from scratch by the convolutions. Registered as ``spatial``
(default ``film``; on darktable's sharpen the two conditionings are close
and both behind ``multiscale``: ``bench/results/proxies.md``),
``spatial-concat`` and ``spatial-film``. Any ``H, W``
works: the input is reflect-padded to a multiple of ``2**levels`` and the
output cropped back.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from darkproxy.models.layers import AffineHead, ParamMLP, film, gaussian_blur, params_or_const, upcast
from darkproxy.models.multiscale import BORDER_SCALES, multiscale_features
from darkproxy.models.registry import register_arch

CONDITIONINGS = ("concat", "film")


class _Block(nn.Module):
    """Two 3x3 convs with SiLU; optional FiLM after the second conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, gb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.act(self.c1(x))
        h = self.c2(h)
        if gb is not None:
            h = film(h, gb)
        return self.act(h)


@register_arch("spatial-film", preset={"conditioning": "film"})
@register_arch("spatial-concat", preset={"conditioning": "concat"})
@register_arch("spatial")
class SpatialProxy(nn.Module):
    """UNet with ``levels`` downsamplings and ``width * 2**l`` channels at level
    ``l``. ``image (B, 3, H, W)`` linear_rec2020, ``params (B, P)`` in [0, 1]
    -> ``(B, 3, H, W)`` linear_rec2020."""

    takes_origin = True  # forward(..., origin=): trained on crops, it must know where the image border is

    def __init__(
        self,
        n_params: int,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 16,
        levels: int = 2,
        conditioning: str = "film",
        param_hidden: int = 64,
        detail_sigmas: tuple[float, ...] | list[float] = (1.0, 2.0, 4.0),
        band_sigmas: tuple[float, ...] | list[float] = (0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0),
        border_scales: tuple[float, ...] | list[float] = BORDER_SCALES,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, not {conditioning!r}")
        if in_channels != 3:
            raise ValueError("spatial proxies take 3-channel images (use 'demosaic' for a packed mosaic)")
        self.n_params = n_params
        self.levels = levels
        self.conditioning = conditioning
        self.detail_sigmas = [float(v) for v in detail_sigmas]
        self.band_sigmas = [float(v) for v in band_sigmas]
        self.border_scales = [float(v) for v in border_scales]
        self.hparams: dict[str, Any] = {
            "width": width,
            "levels": levels,
            "conditioning": conditioning,
            "param_hidden": param_hidden,
            "detail_sigmas": self.detail_sigmas,
            "band_sigmas": self.band_sigmas,
            "border_scales": self.border_scales,
        }
        n_cond = max(n_params, 1) if conditioning == "concat" else 0
        # input features: the multiscale proxy's band-pass stack and border
        # distances + the linear image (clamped: local ops act on linear
        # differences) + constant param channels for concat
        cin = 4 + 4 * len(self.band_sigmas) + 2 * len(self.border_scales) + in_channels + n_cond
        widths = [width * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(_Block(c, w))
            c = w
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up_conv.append(nn.Conv2d(c, w, 1))
            self.up.append(_Block(2 * w, w))
            c = w
        blocks = cast("list[_Block]", [*self.down, *self.up])  # nn.ModuleList items are typed nn.Module
        film_sizes = [2 * b.c2.out_channels for b in blocks]
        self._film_sizes = film_sizes
        self.param_mlp = ParamMLP(n_params, sum(film_sizes), param_hidden) if conditioning == "film" else None
        self.head = AffineHead(widths[0], n_params, out_channels)
        nd = 3 * len(self.detail_sigmas)
        self.detail = nn.Conv2d(widths[0], nd, 1) if nd else None
        self.detail_p = nn.Linear(max(n_params, 1), nd) if nd else None
        for m in (self.detail, self.detail_p):
            if m is not None:
                assert m.bias is not None  # made with a bias
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor, params: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        """``origin`` ``(B, 4)``: where each image lies in its full image,
        ``(y0, x0, H, W)`` (training crops; see
        :func:`~darkproxy.models.multiscale.border_distance`)."""
        p = params_or_const(params, self.n_params, image)
        B, _, H, W = image.shape
        m = 2**self.levels
        ph, pw = (-H) % m, (-W) % m
        x = upcast(image)
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if origin is None and (ph or pw):  # the padding is not part of the image
            origin = torch.tensor([[0, 0, H, W]], device=x.device).expand(B, -1)
        feats = [multiscale_features(x, self.band_sigmas, self.border_scales, origin), x.clamp(-1.0, 4.0)]
        if self.conditioning == "concat":
            feats.append(p[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]))
        h = torch.cat(feats, 1)
        gbs: list[Any] = [None] * len(self._film_sizes)
        if self.param_mlp is not None:
            gbs = list(torch.split(self.param_mlp(p), self._film_sizes, dim=1))
        skips = []
        for i, blk in enumerate(self.down):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = blk(h, gbs[i])
            skips.append(h)
        skips.pop()
        for j, (uc, blk) in enumerate(zip(self.up_conv, self.up, strict=True)):
            h = F.interpolate(uc(h), scale_factor=2, mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, skips.pop()], 1), gbs[len(self.down) + j])
        out = self.head(h, p, x)
        if self.detail is not None and self.detail_p is not None:  # both or neither
            with torch.autocast(x.device.type, enabled=False):
                c = (self.detail(upcast(h)) + self.detail_p(p)[:, :, None, None]).unflatten(1, (-1, 3))
                for i, sg in enumerate(self.detail_sigmas):
                    out = out + c[:, i] * (x - gaussian_blur(x, sg))
        return out[:, :, :H, :W]
