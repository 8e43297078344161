"""A proxy on an image of any size: tiles with the context each architecture needs.

A full-size photo does not fit through a network at once (a 24 MP image through
a ``multiscale`` proxy would need tens of GiB of activations), so
:func:`apply_tiled` cuts the output into tiles, runs the network on each tile
plus a *halo* of input context around it, keeps the tile's part of the result
and writes it into the output: peak memory follows the tile size, not the
image's. The halo is what makes a tiled result equal to the untiled one (to
float rounding; ``tests/proxy/test_tiling.py`` checks 1e-5 on a 2 MP image with random
weights), per architecture (:func:`tile_context`):

=============  ==============================================  =======  ==========
architecture   halo (input px each side)                       offsets  origin
=============  ==============================================  =======  ==========
pointwise      0 (each output pixel is its input pixel's)      any      no
positional     0                                               any      yes (its coordinates)
multiscale     ``blur_radius`` of the widest blur (~3 sigma)     any      yes (border distance, wide blurs' cells)
               (with ``image_stats``: the whole image)
spatial        widest band blur + the UNet's reach, rounded    ``2**levels`` yes
               up to ``2**levels``
demosaic       ``depth + 1`` packed px (3x3 convs + bilinear)  packed   no
demosaic-rcd   that, and 5 packed px (RCD's frame and reach)   packed   no
=============  ==============================================  =======  ==========

*origin*: the model is told where the tile lies in the image (``origin`` =
``(y0, x0, H, W)``), so what depends on the position (border distances,
coordinates) is that of the whole image. A ``spatial`` UNet pools twice: tile
offsets are multiples of ``2**levels`` so that its pooling grid is the whole
image's. Inside the halo the reflected or zero padding of a tile's edge only
reaches pixels that are cut away; at a real image border a tile's padding is
the whole image's. Measured with random weights: ``multiscale`` needs its whole halo (4 px
less, 44 of 48, and tiles differ by 0.3), ``demosaic`` is exact from 2 of its
3 packed px, and the ``spatial`` halo is an upper bound (its 2-level UNet was
exact to 5e-7 from 24 px of its 52).

:func:`apply_image` is what ``darkproxy apply`` and :meth:`Proxy.apply_image
<darkproxy.proxy.Proxy.apply_image>` run: the fast path of :mod:`darkproxy.proxy.fastpath`
(a 3D LUT) for a pointwise proxy, else the tiled network. Both are inference
only (no gradients): regression keeps the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from darkproxy.errors import DarkproxyError
from darkproxy.models.layers import blur_radius
from darkproxy.progress import progress_bar
from darkproxy.proxy.protocol import ProxyLike

WHOLE_IMAGE = 2**31  # a halo that makes every tile's window the whole image
DEFAULT_TILE = 512  # output px a side: ~0.4 GB of activations for a multiscale proxy with its halo
# the LUT is used when it is at least this close to the network (display PSNR on a sample of the image):
# the zoo's pointwise proxies are 44-62 dB from darktable, their LUTs mostly 55-100 dB from the network
LUT_MIN_PSNR = 55.0
# ...and in PU21 PSNR, which sees what the display encoding clips (values above 1.0). Measured on the zoo's 9
# pointwise proxies at 4 random params each, on darktable's renders of two synthetic raws and one of them x6:
# every LUT at or above 55 dB display was 68.8-100 dB PU21 (PU21 ran 10 dB above display, median). On an image of
# highlights only (1.05-15), sigmoid's LUTs were 56.6-58.6 dB display but 61.1-63.0 dB PU21: refused.
LUT_MIN_PU21_PSNR = 65.0

ImageT = TypeVar("ImageT", np.ndarray, torch.Tensor)
ProgressArg = bool | Callable[[int, int], None]


@dataclass(frozen=True)
class TileContext:
    """What a tiled apply needs to know about an architecture (see the module docstring).

    ``halo``: input px of context each side of a tile; ``align``: tile offsets
    are multiples of it (input px); ``out_scale``: output px per input px (2 for
    a packed mosaic in, RGB out); ``origin``: the model takes the tile's place
    (``takes_origin``); ``tileable``: ``False`` for an architecture this module
    does not know, which is then applied to the whole image at once."""

    halo: int
    align: int = 1
    out_scale: int = 1
    origin: bool = False
    tileable: bool = True


def unet_reach(levels: int) -> int:
    """How far (level-0 px) the input of :class:`~darkproxy.models.spatial.SpatialProxy`'s
    UNet reaches into its output, counted generously: two 3x3 convs per level
    down and up (1 px each at that level's stride ``2**l``), each average
    pooling (``2**(l+1)``), each x2 bilinear upsampling (a neighbour at the
    coarser level, counted twice). 38 px for 2 levels."""
    reach = sum(2 * 2**lv for lv in range(levels + 1))
    reach += sum(2 ** (lv + 1) + 2 * 2 ** (lv + 1) + 2 * 2**lv for lv in range(levels))
    return int(reach)  # int ** int is typed Any


def tile_context(model: nn.Module) -> TileContext:
    """The :class:`TileContext` of a proxy's network (``proxy.model``)."""
    from darkproxy.models.demosaic import DemosaicProxy
    from darkproxy.models.multiscale import MultiscaleProxy
    from darkproxy.models.pointwise import PointwiseProxy
    from darkproxy.models.positional import PositionalProxy
    from darkproxy.models.spatial import SpatialProxy

    if isinstance(model, PointwiseProxy):
        return TileContext(0)
    if isinstance(model, PositionalProxy):
        return TileContext(0, origin=True)
    if isinstance(model, MultiscaleProxy):
        if model.image_stats:  # statistics of the whole image: every window is the whole image, each tile its roi
            return TileContext(WHOLE_IMAGE, origin=True)
        return TileContext(max((blur_radius(s) for s in model.sigmas), default=0), origin=True)
    if isinstance(model, SpatialProxy):
        m = 2**model.levels
        bands = max((blur_radius(s) for s in model.band_sigmas), default=0)
        detail = max((blur_radius(s) for s in model.detail_sigmas), default=0)  # a parallel path
        halo = max(bands + unet_reach(model.levels), detail)
        return TileContext(-(-halo // m) * m, align=m, origin=True)
    if isinstance(model, DemosaicProxy):
        return TileContext(model.halo, out_scale=2)
    return TileContext(0, tileable=False)


@dataclass(frozen=True)
class Tile:
    """One tile, in input px: the output region ``[y0, y1) x [x0, x1)`` and the
    input window ``[wy0, wy1) x [wx0, wx1)`` it is computed from (the region and
    its halo, clipped to the image)."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int


def plan_tiles(height: int, width: int, tile: int, ctx: TileContext) -> list[Tile]:
    """Tiles covering an ``height x width`` input (row-major): ``tile`` px a side
    (rounded down to a multiple of ``ctx.align``, at least one), windows grown
    by ``ctx.halo`` (rounded up to ``ctx.align``). An architecture that cannot be
    tiled gets one tile, the whole image."""
    if tile < 1:
        raise DarkproxyError(f"tile size must be positive, not {tile}")
    if not ctx.tileable:
        return [Tile(0, height, 0, width, 0, height, 0, width)]
    a = ctx.align
    t = max(a, tile // a * a)
    h = -(-ctx.halo // a) * a
    out = []
    for y0 in range(0, height, t):
        y1 = min(height, y0 + t)
        for x0 in range(0, width, t):
            x1 = min(width, x0 + t)
            out.append(Tile(y0, y1, x0, x1, max(0, y0 - h), min(height, y1 + h), max(0, x0 - h), min(width, x1 + h)))
    return out


def _progress(progress: ProgressArg, total: int, desc: str) -> tuple[Any, Callable[[int], None]]:
    """A bar (``True``) or a ``callback(done, total)``; returns (bar or None, step(n))."""
    if callable(progress):
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        return None, step
    bar = progress_bar(total, desc, unit="tile", disable=not progress)
    return bar, bar.update


def _as_batch(image: np.ndarray | torch.Tensor) -> tuple[np.ndarray | torch.Tensor, bool]:
    if image.ndim == 3:
        return image[None], True
    if image.ndim != 4:
        raise DarkproxyError(f"expected an image (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
    return image, False


@torch.no_grad()
def apply_tiled(
    proxy: ProxyLike,
    image: ImageT,
    params: torch.Tensor | Mapping[str, Any],
    scale: float | None = None,
    tile: int = DEFAULT_TILE,
    progress: ProgressArg = False,
    halo: int | None = None,
) -> ImageT:
    """The proxy's network on ``image`` tile by tile (no gradients).

    ``image``: ``(C, H, W)`` or ``(B, C, H, W)`` float, a numpy array or a
    tensor, linear_rec2020 (``C = 4``: the packed mosaic ``(4, H/2, W/2)`` of
    a pre-demosaic proxy). ``params``: named values or normalised ``(P,)`` /
    ``(B, P)``, as for :meth:`Proxy.forward <darkproxy.proxy.Proxy.forward>`;
    ``scale``: the image's render scale (soften's: its whole diagonal in output px, :meth:`Proxy.scale_for`), checked
    against the proxy's range.
    Returns ``(3, H', W')`` / ``(B, 3, H', W')`` float32 linear_rec2020 of the
    same kind as ``image`` (a tensor on ``image``'s device; tiles run on the
    proxy's). ``tile``: output px a side per tile (see :func:`plan_tiles`);
    ``progress``: a bar (``True``) or ``callback(done, total)`` in tiles;
    ``halo``: override the architecture's halo (tests)."""
    batch, squeeze = _as_batch(image)
    is_np = isinstance(batch, np.ndarray)
    B, _, H, W = batch.shape
    ctx = tile_context(proxy.model)
    if halo is not None:
        ctx = TileContext(halo, ctx.align, ctx.out_scale, ctx.origin, ctx.tileable)
    tiles = plan_tiles(H, W, tile, ctx)
    s = ctx.out_scale
    roi = bool(getattr(proxy.model, "takes_roi", False))
    dev = proxy.device
    if isinstance(params, Mapping):
        p = proxy.normalize(params, batch=1)
    else:
        p = torch.as_tensor(params, dtype=torch.float32, device=dev)
        p = p[None] if p.ndim == 1 else p
    proxy.check_scale(scale)
    out: np.ndarray | torch.Tensor
    if is_np:
        out = np.empty((B, 3, H * s, W * s), np.float32)
    else:
        out = torch.empty((B, 3, H * s, W * s), dtype=torch.float32, device=batch.device)
    bar, step = _progress(progress, B * len(tiles), f"{proxy.module} ({proxy.arch}): {H * s}x{W * s}")
    try:
        for b in range(B):
            pb = p[b : b + 1] if p.shape[0] > 1 else p
            for t in tiles:
                win = batch[b : b + 1, :, t.wy0 : t.wy1, t.wx0 : t.wx1]
                x = torch.from_numpy(np.ascontiguousarray(win, np.float32)) if isinstance(win, np.ndarray) else win
                origin = torch.tensor([[t.wy0, t.wx0, H, W]], device=dev) if ctx.origin else None
                keep = (t.y0 - t.wy0, t.y1 - t.wy0, t.x0 - t.wx0, t.x1 - t.wx0)
                if roi:  # the halo is read, not computed on
                    y = proxy(x.to(dev, torch.float32), pb, scale=scale, origin=origin, roi=keep)
                else:
                    y = proxy(x.to(dev, torch.float32), pb, scale=scale, origin=origin)
                    y = y[:, :, keep[0] * s : keep[1] * s, keep[2] * s : keep[3] * s]
                dst = (slice(b, b + 1), slice(None), slice(t.y0 * s, t.y1 * s), slice(t.x0 * s, t.x1 * s))
                if is_np:
                    out[dst] = y.float().cpu().numpy()
                else:
                    out[dst] = y.to(out.device, torch.float32)
                del x, y
                step(1)
    finally:
        if bar is not None:
            bar.close()
    return out[0] if squeeze else out  # type: ignore[return-value]  # the kind of ``image``


@dataclass
class ApplyResult:
    """What :func:`apply_image` did. ``output``: ``(3, H', W')`` float32
    linear_rec2020; ``path``: ``"lut"`` (the fast path) or ``"network"``;
    ``seconds``: the whole apply (bake and check included), ``bake_seconds``:
    the LUT's bake; ``lut_error``: the LUT against the network on a sample of
    the image's pixels (:meth:`~darkproxy.proxy.fastpath.Lut3D.error`; ``{}`` when not
    baked); ``note``: why the network ran for a pointwise proxy."""

    output: np.ndarray
    path: str
    seconds: float
    bake_seconds: float = 0.0
    tiles: int = 0
    lut_error: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def record(self) -> dict[str, Any]:
        """Plain data (the output's shape, not its pixels)."""
        return {
            "shape": list(self.output.shape),
            "path": self.path,
            "seconds": round(self.seconds, 3),
            "bake_seconds": round(self.bake_seconds, 3),
            "tiles": self.tiles,
            "lut_error": self.lut_error,
            "note": self.note,
        }


def apply_image(
    proxy: ProxyLike,
    image: np.ndarray,
    params: Mapping[str, Any],
    scale: float | None = None,
    exact: bool = False,
    tile: int = DEFAULT_TILE,
    progress: ProgressArg = False,
    check_pixels: int = 1 << 16,
    min_psnr: float = LUT_MIN_PSNR,
    min_pu21_psnr: float = LUT_MIN_PU21_PSNR,
) -> ApplyResult:
    """The proxy on one whole image ``(C, H, W)`` (numpy, linear_rec2020 or the
    packed mosaic), no gradients, the fastest way that stays close to the
    network: a pointwise proxy through its baked 3D LUT (:mod:`darkproxy.proxy.fastpath`;
    pixels outside the LUT's domain through the network) unless ``exact``, when
    the LUT, checked on ``check_pixels`` of the image's pixels drawn at random,
    is within ``min_psnr`` (display PSNR) and ``min_pu21_psnr`` (PU21 PSNR: the
    display encoding clips the highlights) of the network, and the image has
    more pixels than the bake and the check cost; anything else through the
    tiled network (:func:`apply_tiled`)."""
    if check_pixels < 1:
        raise DarkproxyError(f"check_pixels {check_pixels}: the LUT is used only once checked on some of the pixels")
    from darkproxy.proxy.fastpath import DEFAULT_SIZE, FastPathUnavailable, bake_lut

    proxy.check_scale(scale)
    t0 = time.perf_counter()
    note = ""
    err: dict[str, Any] = {}
    small = image.shape[-1] * image.shape[-2] <= DEFAULT_SIZE**3 + check_pixels
    if exact or not proxy.pointwise:
        pass
    elif small:
        note = "a small image: the network is quicker than baking a LUT"
    else:
        try:
            lut = bake_lut(proxy, params, scale=scale)
        except FastPathUnavailable as e:
            note = str(e)
        else:
            bake = time.perf_counter() - t0
            err = lut.error(image, n_pixels=check_pixels)
            if err["psnr"] >= min_psnr and err["pu21_psnr"] >= min_pu21_psnr:
                out = lut.apply(image, progress=progress)
                return ApplyResult(out, "lut", time.perf_counter() - t0, bake, 0, err)
            note = (
                f"the LUT is {err['psnr']:.1f} dB display, {err['pu21_psnr']:.1f} dB PU21 from the network on this "
                f"image (it needs {min_psnr:g} and {min_pu21_psnr:g}): the network computed it"
            )
    ctx = tile_context(proxy.model)
    n_tiles = len(plan_tiles(image.shape[-2], image.shape[-1], tile, ctx))
    out = apply_tiled(proxy, image, params, scale=scale, tile=tile, progress=progress)
    return ApplyResult(out, "network", time.perf_counter() - t0, 0.0, n_tiles, err, note)
