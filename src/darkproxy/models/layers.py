"""Building blocks the proxy architectures share.

* :func:`encode_input`: the log-like feature encoding of linear pixels.
* :class:`ParamMLP` and :func:`film`: param conditioning (FiLM).
* :func:`affine_apply` / :class:`AffineHead`: the output representation of
  every architecture, a per-pixel **affine colour transform** of the *linear*
  input::

      out = exp(g) * x + M x + o        g: (3,) log gains, M: 3x3 mix, o: (3,) offsets

  It starts at zero (the untrained model is the identity) and a gain is one
  number, so exposure-like modules are exactly representable.
* :func:`gaussian_blur`: a fixed separable Gaussian (band-pass features); :func:`wide_blur` above
  16 px sigma.
* :class:`PixelMLP`: the base of per-pixel MLP proxies (``pointwise``,
  ``multiscale``): fixed ``features(image)`` then a FiLM-conditioned MLP per
  pixel. Its split into ``features`` and ``head`` is what lets the trainer
  draw random pixels of many samples per step
  (:class:`~darkproxy.data.dataset.PixelBatches`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from darkproxy.colour.encodings import log_encode

N_HEAD = 15  # 3 log gains + 9 mix + 3 offsets
LOG_GAIN_LIMIT = 12.0  # |g| bound: 2^17 of gain is beyond any module
OFFSET_SCALE = 0.1  # offsets learn 10x slower than gains (Adam steps are scale-free): explain by gain first


def upcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least float32: half precision (bf16 / fp16 under autocast) and
    integer tensors become float32; float32 and float64 are kept (so a
    ``model.double()`` runs in float64, e.g. for gradcheck)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def encode_input(x: torch.Tensor) -> torch.Tensor:
    """Feature encoding of linear pixels (any shape): ``log_encode`` (linear
    near 0, logarithmic above 1/256; 1 -> 1, 64 -> ~1.8)."""
    return log_encode(upcast(x))


def params_or_const(params: torch.Tensor, n_params: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` float params; a module without free params gets a constant 1."""
    if n_params == 0:
        return torch.ones(like.shape[0], 1, device=like.device, dtype=torch.float32)
    if params.ndim == 1:
        params = params[None].expand(like.shape[0], -1)
    return upcast(params)


class ParamMLP(nn.Module):
    """Normalised params ``(B, P)`` -> ``(B, out)`` (zero-initialised output, so
    FiLM starts as the identity)."""

    def __init__(self, n_params: int, out: int, hidden: int = 64) -> None:
        super().__init__()
        last = nn.Linear(hidden, out)
        self.net = nn.Sequential(
            nn.Linear(max(n_params, 1), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), last
        )
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(p)


def film(h: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """Feature-wise linear modulation of ``(B, C, H, W)`` features:
    ``h * (1 + gamma) + beta`` with ``gb = (B, 2C)`` split into gamma and beta."""
    g, b = gb.chunk(2, dim=1)
    return h * (1.0 + g[:, :, None, None]) + b[:, :, None, None]


def param_linear_maps(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``K`` affine maps of pixel rows, set per image (by the params: ``positional``'s ``proj``, ``pointwise``'s
    ``mix``): ``coef (B, K * (C + 1))``, each map's ``C`` weights then its offset (a :class:`ParamMLP`'s output),
    ``x (B, N, C)`` -> ``(B, N, K)`` in ``coef``'s dtype."""
    c = x.shape[-1]
    m = coef.unflatten(1, (-1, c + 1))  # (B, K, C + 1)
    return torch.baddbmm(m[:, None, :, c], x.to(m.dtype), m[..., :c].transpose(1, 2))


def affine_apply(coef: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """The per-pixel affine colour transform, channels last: coefficients
    ``(..., 15)`` (3 log gains, 3x3 mix, 3 offsets) applied to linear
    ``base`` ``(..., 3)`` -> ``(..., 3)`` linear. Float32 even under autocast
    (the gain must be precise)."""
    with torch.autocast(base.device.type, enabled=False):
        coef, base = upcast(coef), upcast(base)
        g = coef[..., 0:3].clamp(-LOG_GAIN_LIMIT, LOG_GAIN_LIMIT)
        mix = coef[..., 3:12].unflatten(-1, (3, 3))  # (..., out, in)
        o = OFFSET_SCALE * coef[..., 12:15]
        return torch.exp(g) * base + (mix @ base[..., None])[..., 0] + o


def affine_matrix(coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`affine_apply` as a matrix and an offset: coefficients ``(..., 15)``
    -> ``A (..., 3, 3)`` (out, in) and ``o (..., 3)``, ``out = A x + o`` (float32;
    the same transform up to float rounding, for code that stores it, e.g.
    :mod:`darkproxy.proxy.fastpath`)."""
    coef = upcast(coef)
    g = coef[..., 0:3].clamp(-LOG_GAIN_LIMIT, LOG_GAIN_LIMIT)
    a = coef[..., 3:12].unflatten(-1, (3, 3)) + torch.diag_embed(torch.exp(g))
    return a, OFFSET_SCALE * coef[..., 12:15]


class AffineHead(nn.Module):
    """Features ``(B, F, H, W)`` + params -> :func:`affine_apply` of the
    linear ``base`` image ``(B, 3, H, W)`` -> ``(B, 3, H, W)`` linear."""

    def __init__(self, features: int, n_params: int, out_channels: int = 3) -> None:
        super().__init__()
        if out_channels != 3:
            raise ValueError("the affine head outputs 3 channels")
        self.conv = nn.Conv2d(features, N_HEAD, 1)
        self.from_params = nn.Linear(max(n_params, 1), N_HEAD)
        for m in (self.conv, self.from_params):
            assert m.bias is not None  # both made with a bias
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def coefficients(self, feats: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        with torch.autocast(feats.device.type, enabled=False):
            return self.conv(upcast(feats)) + self.from_params(upcast(p))[:, :, None, None]

    @staticmethod
    def apply(  # type: ignore[override]  # shadows nn.Module.apply (never used on a head); public name kept
        coef: torch.Tensor, base: torch.Tensor
    ) -> torch.Tensor:
        """Apply ``(B, 15, H, W)`` coefficients to ``base`` ``(B, 3, H, W)``."""
        return affine_apply(coef.movedim(1, -1), base.movedim(1, -1)).movedim(-1, 1)

    def forward(self, feats: torch.Tensor, p: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return self.apply(self.coefficients(feats, p), base)


WIDE_SIGMA = 16.0  # px: wider blurs run on a downsampled image (:func:`wide_blur`)


def wide_factor(sigma: float) -> int:
    """The downsampling of :func:`wide_blur` at ``sigma``: the power of two that leaves 4-8 px of sigma."""
    return 2 ** max(0, math.ceil(math.log2(sigma / 8.0)))


def blur_radius(sigma: float) -> int:
    """The px of context each side that :func:`gaussian_blur` reads (the halo a tile needs for it:
    :mod:`darkproxy.proxy.tiling`): its kernel's ``round(3 sigma)``, at least 1; for a wide blur the
    kernel's reach in cells of :func:`wide_factor` px plus three cells (the bilinear upsampling's
    neighbour and a tile window's partial cell)."""
    if sigma <= WIDE_SIGMA:
        return max(1, int(round(3 * sigma)))
    k = wide_factor(sigma)
    return (max(1, int(round(3 * sigma / k))) + 3) * k


def gaussian_blur(x: torch.Tensor, sigma: float, origin: torch.Tensor | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` (radius ``3 sigma``,
    reflected borders; replicated when the image is smaller than the radius).
    Above :data:`WIDE_SIGMA`: :func:`wide_blur` (``origin`` is read there only).

    Hand-written, not ``kornia.filters.gaussian_blur2d(x, 2 r + 1, (sigma, sigma), border_type=mode)``:
    that gives the same values (float32: equal or within 1 ulp, max abs 4.8e-7), but was slower here
    (multiscale features, 11 blurs, CPU one thread, min of 12: 56 vs 66 ms at 1x3x256x256 and 36 vs
    46 ms at 8x3x64x64 without grad, as in training; the same with grad)."""
    if sigma > WIDE_SIGMA:
        return wide_blur(x, sigma, origin)
    r = blur_radius(sigma)
    return _separable(x, sigma, r, "reflect" if min(x.shape[2:]) > r else "replicate")


def _separable(x: torch.Tensor, sigma: float, r: int, mode: str) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` through the normalised 1-D Gaussian of ``sigma`` over ``-r .. r`` along each
    axis, padded by ``r`` with ``mode`` (``F.pad``'s: reflect, replicate, constant zeros)."""
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def wide_blur(x: torch.Tensor, sigma: float, origin: torch.Tensor | None = None) -> torch.Tensor:
    """A Gaussian blur of ``(B, C, H, W)`` at a sigma of tens to hundreds of px, at the cost of a small one:
    box means over cells of :func:`wide_factor` ``k`` px, a Gaussian of ``sigma / k`` cells over them, a
    bilinear upsampling. Normalised, not padded: each pixel gets the weighted mean of the image's pixels only
    (darktable's box means treat borders so; a reflected or replicated border would weigh the edge pixels by
    the hundred). ``origin`` ``(B, 4)`` = ``(y0, x0, H, W)`` of windows of larger images (tiles): the cells
    are the whole image's, so a tile with :func:`blur_radius` of context gets the whole image's values."""
    k = wide_factor(sigma)
    b, c, h, w = x.shape
    offsets = {(0, 0)} if origin is None else {(int(o[0]) % k, int(o[1]) % k) for o in origin.tolist()}
    if origin is not None and len(offsets) > 1:  # windows at different cell phases: one at a time
        return torch.cat([wide_blur(x[i : i + 1], sigma, origin[i : i + 1]) for i in range(b)])
    ((oy, ox),) = offsets
    t = torch.cat([x, torch.ones_like(x[:, :1])], 1)  # the last channel counts the image's pixels
    t = F.pad(t, (ox, (-(w + ox)) % k, oy, (-(h + oy)) % k))
    sc = sigma / k
    cells = _separable(F.avg_pool2d(t, k), sc, max(1, int(round(3 * sc))), "constant")
    up = F.interpolate(cells, scale_factor=k, mode="bilinear", align_corners=False)[..., oy : oy + h, ox : ox + w]
    return up[:, :c] / up[:, c:].clamp_min(1e-12)


class PixelMLP(nn.Module):
    """Per-pixel MLP proxy: ``features(image)`` (fixed, no weights; shape
    ``(B, n_features, H, W)``), then ``depth`` linear layers of ``width``, each
    FiLM-modulated by the params, then the affine colour transform of the
    linear input, whose coefficients are the sum of that pixel path and a
    params-only MLP (a global transform). ``image (B, 3, H, W)`` linear_rec2020, ``params (B, P)`` in
    ``[0, 1]`` -> ``(B, 3, H, W)`` linear_rec2020.

    The MLP runs channels-last (pixels as rows of ``nn.Linear``), which was
    faster per training step on a CPU than the same network as 1x1 convolutions.
    Subclasses define :meth:`features` and set ``hparams``."""

    def __init__(
        self,
        n_params: int,
        n_features: int,
        width: int,
        depth: int,
        param_hidden: int,
        periodic: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__()
        self.n_params = n_params
        self.n_features = n_features
        # angles among the params: (index, a, b) rows, read as cos and sin of a + b u (data.ranges.periodic_encoding)
        self.periodic = [(int(i), float(a), float(b)) for i, a, b in periodic]
        if any(not 0 <= i < n_params for i, _, _ in self.periodic):
            raise ValueError(f"periodic params {[i for i, _, _ in self.periodic]} out of range for {n_params} params")
        self.n_read = n_read = n_params + len(self.periodic)  # an angle is read as two numbers (read_params)
        self.layers = nn.ModuleList(nn.Linear(n_features if i == 0 else width, width) for i in range(depth))
        self.param_mlp = ParamMLP(n_read, 2 * width * depth, param_hidden)
        self.act = nn.SiLU()
        self.to_coef = nn.Linear(width, N_HEAD)
        nn.init.zeros_(self.to_coef.weight)  # identity at initialisation
        nn.init.zeros_(self.to_coef.bias)
        # A pixel-independent path, non-linear in the params: a global colour transform
        # (exposure with a black offset, white balance, a channel mix) is exact through it,
        # whatever pixels the training images happen to have; the pixel path only has to
        # learn what really depends on the pixel.
        self.coef_from_params = ParamMLP(n_read, N_HEAD, param_hidden)

    def periodic_hparams(self) -> dict[str, Any]:
        """``{"periodic": rows}`` for a subclass's ``hparams``; empty without angles (as the runs saved before them)."""
        return {"periodic": [list(r) for r in self.periodic]} if self.periodic else {}

    def read_params(self, params: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Normalised ``params (B, P)`` -> what the param MLPs read ``(B, max(P, 1) + len(periodic))``: each angle
        replaced by its cosine and sine (0 and its period the same input), the others as they are."""
        p = params_or_const(params, self.n_params, like)
        if not self.periodic:
            return p
        idx = [i for i, _, _ in self.periodic]
        a = torch.tensor([a for _, a, _ in self.periodic], dtype=p.dtype, device=p.device)
        b = torch.tensor([b for _, _, b in self.periodic], dtype=p.dtype, device=p.device)
        theta = a + b * p[:, idx]
        keep = [i for i in range(p.shape[1]) if i not in idx]
        return torch.cat([p[:, keep], torch.cos(theta), torch.sin(theta)], 1)

    def features(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3, H, W)`` linear -> ``(B, n_features, H, W)``. ``origin``
        ``(B, 4)`` = ``(y0, x0, H, W)``: where the image lies in a larger one
        (a tile), for features that depend on the position (``takes_origin``
        models); ``None``: a whole image."""
        raise NotImplementedError

    def hidden(self, feats: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The FiLM-modulated MLP on pixel rows: ``feats (B, N, n_features)``,
        ``params (B, P)`` -> its last hidden layer ``(B, N, width)`` and the
        params as the model reads them (:meth:`read_params`)."""
        p = self.read_params(params, feats)
        h = upcast(feats)
        for layer, gb in zip(self.layers, self.param_mlp(p).chunk(len(self.layers), dim=1), strict=True):
            g, b = gb.chunk(2, dim=1)
            h = self.act(torch.addcmul(b[:, None], layer(h), 1.0 + g[:, None]))  # FiLM
        return h, p

    def coefficients(self, feats: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The MLP on pixel rows: ``feats (B, N, n_features)``, ``params (B, P)``
        -> the affine coefficients ``(B, N, 15)`` (see :func:`affine_apply`)."""
        return self.coefficients_of(*self.hidden(feats, params))

    def coefficients_of(self, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The affine coefficients ``(B, N, 15)`` from :meth:`hidden`'s output:
        the pixel path plus the params-only (global) path, in float32."""
        with torch.autocast(h.device.type, enabled=False):
            return self.to_coef(upcast(h)) + self.coef_from_params(p)[:, None]

    def head(self, feats: torch.Tensor, base: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The MLP on pixel rows: ``feats (B, N, n_features)``, linear ``base
        (B, N, 3)``, ``params (B, P)`` -> ``(B, N, 3)`` linear."""
        return affine_apply(self.coefficients(feats, params), base)

    def forward(self, image: torch.Tensor, params: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        B, _, H, W = image.shape
        x = upcast(image)
        feats = (self.features(x) if origin is None else self.features(x, origin)).flatten(2).transpose(1, 2)
        return self.head(feats, x.flatten(2).transpose(1, 2), params).transpose(1, 2).reshape(B, 3, H, W)
