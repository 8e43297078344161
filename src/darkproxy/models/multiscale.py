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
  cannot learn that;
* with ``tone_bands``, blurs of a piecewise-linear basis of the luminance
  (:func:`tone_ramps`): what a module blurs is often a function of the pixel
  (bloom blurs the highlights above a threshold), and the blur of such a
  function is a weighted sum of these, where a blur of the image is not;
* with ``image_stats``, statistics of the whole image, the same at every pixel
  (:func:`image_statistics`): haze removal's ambient light is the mean colour of
  the haziest, brightest pixels of the image, which no window of it knows.
  A tiled apply then reads the whole image for every tile (the features of
  the tile only: ``roi``).

Sigmas above 16 px (bloom's box blur reaches 256 px at full size) are computed
on box-mean cells (:func:`~darkproxy.models.layers.wide_blur`): a 512 px blur
costs about what a 16 px one does.

The encoding of the bands is the sRGB curve extended to all reals
(:func:`~darkproxy.colour.encodings.srgb_encode_ext`), close to CIE L* (cube root),
which is where Lab modules compute their details. On darktable's sharpen it is
ahead of the ``spatial`` UNets at equal CPU time (``bench/results/proxies.md``).

With ``blur_bases`` the affine transform applies to a per-pixel blend of the
pixel and the linear input blurred at each sigma, ``x + sum_k w_k (gauss(x,
sigma_k) - x)`` (weights from the same MLP, zero at initialisation), not to
the pixel alone. A module whose output is a blur of its input (lowpass,
soften) is an affine transform of the pixel only through a gain near zero and
an offset that carries the blurred value to the last bit; here it is the
blend's weight at one sigma, and the affine part keeps the colour transform.

Training draws random pixels of many samples per step from features computed
once per image (:class:`~darkproxy.data.dataset.PixelBatches`), as for
pointwise proxies. The receptive field is ``3 * max(sigmas)`` px: a tiled apply
(:mod:`darkproxy.proxy.tiling`) gives each tile that much context and its ``origin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from darkproxy.colour.encodings import srgb_encode_ext
from darkproxy.models.layers import PixelMLP, affine_apply, blur_radius, encode_input, gaussian_blur, upcast
from darkproxy.models.registry import register_arch

DEFAULT_SIGMAS = (0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0, 5.66, 8.0, 11.3, 16.0)
BORDER_SCALES = (16.0, 64.0)  # px
# Rec. 2020 luminance weights (ITU-R BT.2020)
LUMA_REC2020 = (0.2627, 0.6780, 0.0593)
# image_statistics: the order statistics of each encoded plane (R, G, B, their minimum, the luminance)
STAT_QUANTILES = (0.05, 0.5, 0.95, 0.99)
STAT_PLANES = 5


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


def tone_ramps(luma: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, 1, H, W)`` encoded luminance -> ``(B, n, H, W)``: ``clamp(n e - j, 0, 1)`` for ``j < n``, the
    piecewise-linear basis of functions of ``e`` over ``[0, 1]`` (any such function is ``f(0)`` plus a weighted
    sum of them), the last ramp going on above 1."""
    j = torch.arange(n, dtype=luma.dtype, device=luma.device)[None, :, None, None]
    r = (n * luma - j).clamp_min(0.0)
    return torch.cat([r[:, :-1].clamp_max(1.0), r[:, -1:]], 1)


def quantiles(x: torch.Tensor, q: Sequence[float]) -> torch.Tensor:
    """``(B, K, N)`` -> ``(B, K, len(q))``: the ``q`` quantiles of each row, linearly
    interpolated between order statistics as ``torch.quantile`` does (which refuses
    rows over 2**24 values: a 24 MP plane), differentiable through the sort."""
    s = torch.sort(x, dim=-1).values
    pos = torch.tensor(q, dtype=s.dtype, device=s.device) * (s.shape[-1] - 1)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=s.shape[-1] - 1)
    w = pos - lo
    return s[..., lo] * (1 - w) + s[..., hi] * w


def image_statistics(image: torch.Tensor, q: Sequence[float] = STAT_QUANTILES) -> torch.Tensor:
    """Linear_rec2020 ``(B, 3, H, W)`` -> ``(B, 5 * len(q))``: the ``q`` quantiles of
    the sRGB-encoded (:func:`~darkproxy.colour.encodings.srgb_encode_ext`) R, G, B,
    their per-pixel minimum (the dark channel's pixel part) and the luminance,
    grouped by plane. What a module reads from the whole image: haze removal's
    ambient light (the haziest 5 %, then the brightest 5 % of those)."""
    x = upcast(image)
    w = torch.tensor(LUMA_REC2020, dtype=x.dtype, device=x.device)
    planes = torch.cat([x, x.amin(1, keepdim=True), (x * w[None, :, None, None]).sum(1, keepdim=True)], 1)
    return quantiles(srgb_encode_ext(planes).flatten(2), q).flatten(1)


def multiscale_features(
    image: torch.Tensor,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    border_scales: Sequence[float] = BORDER_SCALES,
    origin: torch.Tensor | None = None,
    blurs: bool = False,
    tone_bands: int = 0,
    roi: tuple[int, int, int, int] | None = None,
    image_stats: bool = False,
) -> torch.Tensor:
    """Fixed multi-scale features of a linear_rec2020 image ``(B, 3, H, W)``
    -> ``(B, 4 + 4 * len(sigmas) + 2 * len(border_scales), H, W)``: log-encoded
    pixel, encoded luminance, band-passes of the encoded luminance and
    channels per sigma, border distances (``origin``: see
    :func:`border_distance`); with ``tone_bands`` ``n``, then ``n * (1 + len(sigmas))``
    more: :func:`tone_ramps` of the encoded luminance and their blurs at each
    sigma (a blur of any function of the luminance is a weighted sum of them:
    bloom's blurred highlights); with ``image_stats``, then ``5 * len(STAT_QUANTILES)``
    more: :func:`image_statistics` of the whole ``image`` at every pixel; with ``blurs``, then ``3 * len(sigmas)`` more:
    the linear image blurred at each sigma (linear_rec2020). Differentiable
    with respect to the image.

    ``roi`` ``(y0, y1, x0, x1)``: the features of that region only, each blur
    computed on the region grown by its own reach (:func:`blur_radius`), so a
    tile's wide halo costs what its widest blur needs and no more; the values
    are the whole input's."""
    x = upcast(image)
    B, _, H, W = x.shape
    y0, y1, x0, x1 = roi if roi is not None else (0, H, 0, W)
    at = torch.tensor([[0, 0, H, W]], device=x.device).expand(B, 4) if origin is None else origin.to(x.device)

    def origin_at(dy: int, dx: int) -> torch.Tensor | None:
        """The origin of the window from ``(dy, dx)`` of ``image`` (``None``: the whole image, as given)."""
        return None if origin is None and roi is None else at + torch.tensor([dy, dx, 0, 0], device=x.device)

    def around(t: torch.Tensor, sigma: float) -> torch.Tensor:
        """``t`` blurred at ``sigma`` over the region (from the region and its blur's reach)."""
        r = blur_radius(sigma)
        a, b, c, d = max(0, y0 - r), min(H, y1 + r), max(0, x0 - r), min(W, x1 + r)
        return gaussian_blur(t[..., a:b, c:d], sigma, origin_at(a, c))[..., y0 - a : y1 - a, x0 - c : x1 - c]

    w = torch.tensor(LUMA_REC2020, dtype=torch.float32, device=x.device)
    src = torch.cat([srgb_encode_ext((x * w[None, :, None, None]).sum(1, keepdim=True)), srgb_encode_ext(x)], 1)
    here = (..., slice(y0, y1), slice(x0, x1))
    feats = [encode_input(x[here]), src[here][:, :1]]
    # one grouped blur per sigma for the encoded channels and, with blurs, the linear ones
    both = torch.cat([src, x], 1) if blurs else src
    blurred = [around(both, s) for s in sigmas]
    feats += [src[here] - b[:, :4] for b in blurred]
    if border_scales:
        feats.append(border_distance(B, y1 - y0, x1 - x0, border_scales, x.device, origin_at(y0, x0)))
    if tone_bands:
        ramps = tone_ramps(src[:, :1], tone_bands)
        feats += [ramps[here]] + [around(ramps, s) for s in sigmas]
    if image_stats:
        feats.append(image_statistics(x)[:, :, None, None].expand(-1, -1, y1 - y0, x1 - x0))
    if blurs:
        feats += [b[:, 4:] for b in blurred]
    return torch.cat(feats, 1)


@register_arch("multiscale", pixel_batches=True)
class MultiscaleProxy(PixelMLP):
    """Per-pixel MLP over :func:`multiscale_features` (see the module docstring)."""

    takes_origin = True  # forward(..., origin=): a tile must see the real image border (darkproxy.proxy.tiling)
    takes_roi = True  # forward(..., roi=): a tile's output only, its halo read as context

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
        blur_bases: bool = False,
        tone_bands: int = 0,
        image_stats: bool = False,
        periodic: Sequence[Sequence[float]] = (),
    ) -> None:
        if in_channels != 3 or out_channels != 3:
            raise ValueError("multiscale proxies map 3 channels to 3 (use 'demosaic' for a packed mosaic)")
        sig, bsc, tb = [float(s) for s in sigmas], [float(s) for s in border_scales], int(tone_bands)
        n_stats = STAT_PLANES * len(STAT_QUANTILES) if image_stats else 0
        n_features = 4 + 4 * len(sig) + 2 * len(bsc) + tb * (1 + len(sig)) + n_stats
        super().__init__(n_params, n_features, width, depth, param_hidden, periodic)
        self.sigmas, self.border_scales, self.blur_bases, self.tone_bands = sig, bsc, bool(blur_bases), tb
        self.image_stats = bool(image_stats)
        self.hparams: dict[str, Any] = {
            "width": width,
            "depth": depth,
            "param_hidden": param_hidden,
            "sigmas": self.sigmas,
            "border_scales": self.border_scales,
            "blur_bases": self.blur_bases,
        }
        if tb:  # absent from the runs saved before it (their hparams rebuild them as they were)
            self.hparams["tone_bands"] = tb
        if self.image_stats:  # likewise
            self.hparams["image_stats"] = True
        self.hparams.update(self.periodic_hparams())
        if self.blur_bases:
            self.to_blend = nn.Linear(width, len(sig))
            nn.init.zeros_(self.to_blend.weight)  # still the identity at initialisation
            nn.init.zeros_(self.to_blend.bias)

    def features(
        self, image: torch.Tensor, origin: torch.Tensor | None = None, roi: tuple[int, int, int, int] | None = None
    ) -> torch.Tensor:
        return multiscale_features(
            image, self.sigmas, self.border_scales, origin, self.blur_bases, self.tone_bands, roi, self.image_stats
        )

    def forward(
        self,
        image: torch.Tensor,
        params: torch.Tensor,
        origin: torch.Tensor | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> torch.Tensor:
        """:meth:`PixelMLP.forward`; with ``roi`` ``(y0, y1, x0, x1)`` the output of that region only (the rest
        of ``image`` is context: a tile's halo)."""
        if roi is None:
            return super().forward(image, params, origin)
        y0, y1, x0, x1 = roi
        x = upcast(image)
        feats = self.features(x, origin, roi).flatten(2).transpose(1, 2)
        base = x[..., y0:y1, x0:x1].flatten(2).transpose(1, 2)
        return self.head(feats, base, params).transpose(1, 2).reshape(x.shape[0], 3, y1 - y0, x1 - x0)

    def coefficients(self, feats: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The affine coefficients ``(B, N, 15)`` of pixel rows (the blurred
        bases, if any, are the last features and not read here)."""
        return super().coefficients(feats[..., : self.n_features], params)

    def head(self, feats: torch.Tensor, base: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Pixel rows: ``feats (B, N, F)``, linear ``base (B, N, 3)``, ``params
        (B, P)`` -> ``(B, N, 3)`` linear: the affine transform of ``base`` (with
        ``blur_bases``: of its blend with the blurred bases)."""
        if not self.blur_bases:
            return super().head(feats, base, params)
        f, blurred = feats[..., : self.n_features], feats[..., self.n_features :]
        h, p = self.hidden(f, params)
        with torch.autocast(feats.device.type, enabled=False):
            x = upcast(base)
            w = self.to_blend(upcast(h))[..., None]  # (B, N, K, 1): one weight per sigma, shared by the channels
            mixed = x + (w * (upcast(blurred).unflatten(-1, (len(self.sigmas), 3)) - x[..., None, :])).sum(-2)
            return affine_apply(self.coefficients_of(h, p), mixed)
