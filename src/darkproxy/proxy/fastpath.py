"""The fast path of a pointwise proxy at fixed params: a baked 3D LUT.

A pointwise proxy maps each pixel on its own: at fixed params it is a function
of the pixel's three values, so it can be tabulated once and looked up, as
Image-Adaptive 3D LUT (Zeng et al. 2020) and NILUT (Conde et al. 2024) do for
colour transforms. What makes the table close to the network:

* **What a node stores**: not the output colour but the network's own
  per-pixel *affine transform* there, ``out = A x + o``
  (:meth:`PixelMLP.coefficients <darkproxy.models.layers.PixelMLP.coefficients>`
  as :func:`~darkproxy.models.layers.affine_matrix`: 12 numbers). ``A`` and
  ``o`` are interpolated and applied to the pixel's *linear* value: a transform
  that does not depend on the pixel (exposure, white balance, a channel mixer)
  is exact wherever the pixel lies, and a tone curve is interpolated in its
  gain, not its value. (Measured on the zoo's pointwise proxies at random
  params: 1-7 dB closer to the network than storing the network's tangent
  plane at each node, and the network's output itself is no affine function of
  the node coordinates, so interpolating colours was not tried.)
* **Where the nodes are**: uniform per channel in ``u = log2(x + c)``, a
  log-like axis as the network's own input encoding is
  (:func:`~darkproxy.models.layers.encode_input`): a constant relative step from
  the shadows to the highlights. The domain, ``-0.0125 <= x <= 16`` with
  ``c = 1/64`` (:data:`DEFAULT_DOMAIN`), holds scene-referred values above 1.0
  and the slightly negative ones of out-of-gamut colours and noise around black
  (1 in 10,000 tap-out input values is below it). Chosen by measurement
  against the network on the zoo datasets' inputs (``c`` 1/32, 1/64, 1/128;
  ``x_hi`` 16, 64; signed-log axes): ``c = 1/64`` and ``x_hi = 16`` were best.
  ``log2`` costs a twentieth of ``asinh`` on this CPU.
* **How many**: 65 a side (1.1 MB a coefficient, fits a CPU's L2 cache: the
  lookup stays fast). 97 is ~7 dB closer to the network and slower to bake and
  to look up.

Pixels outside the domain (or not finite) are **not clipped**: the network
computes them. The lookup is tetrahedral (4 of the cell's 8 corners, as ICC
colour management does), in chunks of pixels; hand-written because
``torch.nn.functional.grid_sample`` on a 5-D LUT is not vectorised on CPU (0.7 s
per megapixel for 12 channels here).

:meth:`Lut3D.error` measures the LUT against the network on an image's pixels
(max abs difference, display and PU21 PSNR): ``darkproxy apply`` checks it on
a sample of every image before using the LUT (:func:`darkproxy.proxy.tiling.apply_image`),
``bench/bench_apply.py`` records it on a whole image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from darkproxy.errors import DarkproxyError
from darkproxy.progress import progress_bar
from darkproxy.proxy.protocol import ProxyLike


class FastPathUnavailable(DarkproxyError):
    """The proxy has no fast path (not pointwise, or not a per-pixel MLP)."""


@dataclass(frozen=True)
class LutDomain:
    """The LUT's input domain per channel, ``x_lo <= x <= x_hi`` (linear), with
    nodes uniform in ``u = log2(x + c)`` (``x_lo + c > 0``)."""

    x_lo: float = -0.0125
    x_hi: float = 16.0
    c: float = 1.0 / 64

    def __post_init__(self) -> None:
        if not (self.x_hi > self.x_lo and self.x_lo + self.c > 0):
            raise ValueError(f"bad LUT domain {self}: needs x_lo < x_hi and x_lo + c > 0")

    @property
    def u_lo(self) -> float:
        return math.log2(self.x_lo + self.c)

    @property
    def u_hi(self) -> float:
        return math.log2(self.x_hi + self.c)

    def node_values(self, size: int) -> torch.Tensor:
        """The ``(size,)`` linear values of the nodes along one axis (float32)."""
        u = torch.linspace(self.u_lo, self.u_hi, size, dtype=torch.float64)
        return (torch.pow(2.0, u) - self.c).to(torch.float32)


DEFAULT_DOMAIN = LutDomain()
DEFAULT_SIZE = 65
CHUNK = 1 << 14  # pixels per lookup step (measured: 8k-32k best; 128k twice as slow, out of the cache)


def run_chunks(n: int, fn: Callable[[slice], None], step: Callable[[], None] | None = None) -> None:
    """``fn(chunk)`` for every :data:`CHUNK`-sized ``slice`` of ``range(n)``, in
    parallel on ``torch.get_num_threads()`` Python threads with one torch thread
    each (the setting is restored after), ``step()`` after each.

    Why not torch's own threads: a chunk is many small ops, and with the
    threads inside each op every op waits for the slowest one; on this shared
    2-core CPU under load that made the LUT lookup 30x slower (4.3 against
    0.13 s per megapixel, measured). ``fn`` runs without gradients."""
    threads = torch.get_num_threads()

    def run(chunk: slice) -> None:
        with torch.no_grad():  # grad mode is per thread
            fn(chunk)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            jobs = [pool.submit(run, slice(s, min(n, s + CHUNK))) for s in range(0, n, CHUNK)]
            for done in as_completed(jobs):
                done.result()
                if step is not None:
                    step()
    finally:
        torch.set_num_threads(threads)


def _model_params(proxy: ProxyLike, params: torch.Tensor | Mapping[str, Any], scale: float | None) -> torch.Tensor:
    """The ``(1, P')`` params the proxy's network gets for ``params`` at
    ``scale``: captured from :meth:`Proxy.forward <darkproxy.proxy.Proxy.forward>`
    itself on a 1-pixel image, so that normalisation, checks and a scale
    feature are whatever the proxy does."""
    got: list[torch.Tensor] = []

    def hook(_m: torch.nn.Module, args: tuple[Any, ...]) -> None:
        got.append(args[1].detach().clone())

    h = proxy.model.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            proxy(torch.zeros(1, 3, 1, 1, device=proxy.device), params, scale=scale)
    finally:
        h.remove()
    return got[0][:1]


@dataclass
class Lut3D:
    """A pointwise proxy baked at fixed params (see the module docstring).

    ``nodes``: ``(n, n, n, 12)`` float32 indexed ``[b, g, r]`` (red fastest):
    each node's ``A`` (3x3 row-major, row = output channel) then ``o`` (3), the
    network's transform at the node's linear colour. ``proxy`` and ``params``
    (``(1, P')`` as its network takes them): the network that computes pixels
    outside the domain; ``scale``: the render scale it was baked at."""

    nodes: torch.Tensor
    domain: LutDomain
    proxy: ProxyLike
    params: torch.Tensor
    scale: float | None = None

    def __post_init__(self) -> None:
        n = self.size
        # coefficient-major (12, n**3): each gather reads within one row of 1.1 MB (n = 65), cache-resident
        self._table = self.nodes.reshape(n**3, 12).T.contiguous()
        # per tetrahedron code (r >= g, r >= b, g >= b as bits 4, 2, 1): index offsets of its 2nd and 3rd corners
        step = {"r": 1, "g": n, "b": n * n}
        second, third = [], []
        for code in range(8):
            rg, rb, gb = bool(code & 4), bool(code & 2), bool(code & 1)
            largest = "r" if rg and rb else ("g" if gb else "b")
            smallest = "r" if not rg and not rb else ("b" if gb else "g")
            second.append(step[largest])
            third.append(1 + n + n * n - step[smallest])
        self._second, self._third = torch.tensor(second), torch.tensor(third)
        self._u_lo = self.domain.u_lo
        self._per_u = (n - 1) / (self.domain.u_hi - self._u_lo)

    @property
    def size(self) -> int:
        return int(self.nodes.shape[0])

    def lookup(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear pixels ``x (3, N)`` float32 -> ``(3, N)`` through the LUT, and
        the ``(N,)`` mask of pixels inside its domain (the others' values are
        meaningless: :meth:`apply_pixels` gives them to the network).

        Tetrahedral interpolation: the pixel's cell is cut into 6 tetrahedra
        along its main diagonal, and the 4 corners of the pixel's one are
        blended (exact for coefficients affine in ``u``, like trilinear, with
        half the corners to fetch)."""
        n = self.size
        u = (torch.log2(x + self.domain.c) - self._u_lo) * self._per_u  # grid units
        lo, hi = u.aminmax()
        if lo >= 0 and hi <= n - 1:  # the usual case: all inside (NaN fails both tests)
            inside = torch.ones(u.shape[1], dtype=torch.bool)
        else:
            inside = ((u >= 0) & (u <= n - 1)).all(0)
            u = u.nan_to_num_(0.0).clamp_(0, n - 1)
        i = u.floor().clamp_(max=n - 2)
        f = u - i  # (3, N) in [0, 1]: where in the cell
        base = ((i[2] * n + i[1]) * n + i[0]).to(torch.int64)  # exact in float32: n**3 < 2**24
        fr, fg, fb = f.unbind(0)
        # which of the 6 tetrahedra: the order of the fractions, as a 3-bit code
        code = torch.ge(fr, fg).long().mul_(4).add_(torch.ge(fr, fb).long().mul_(2)).add_(torch.ge(fg, fb).long())
        fmax = torch.maximum(torch.maximum(fr, fg), fb)
        fmin = torch.minimum(torch.minimum(fr, fg), fb)
        fmid = fr + fg + fb - fmax - fmin
        t = self._table
        # corners: the cell's origin, a step along the largest fraction's axis, the far corner less a step along
        # the smallest's, the far corner (ties give zero weights, so any order of equal fractions is right)
        co = t.index_select(1, base) * (1 - fmax)
        co.addcmul_(t.index_select(1, base + self._second.index_select(0, code)), fmax - fmid)
        co.addcmul_(t.index_select(1, base + self._third.index_select(0, code)), fmid - fmin)
        co.addcmul_(t.index_select(1, base + (1 + n + n * n)), fmin)  # (12, N): A row-major, then o
        out = co[9:12].clone()
        for j in range(3):
            out.addcmul_(co[j:9:3], x[j])  # column j of A times channel j
        return out, inside

    def apply_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """``x (3, N)`` linear_rec2020 -> ``(3, N)``: the LUT, and the network
        for the pixels outside its domain."""
        out, inside = self.lookup(x)
        if not bool(inside.all()):
            idx = (~inside).nonzero()[:, 0]
            out[:, idx] = self.network(x[:, idx])
        return out

    @torch.no_grad()
    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The proxy's network on pixels ``x (3, N)`` -> ``(3, N)`` (a row of
        pixels is an image to a pointwise network)."""
        dev = self.proxy.device
        out = torch.empty_like(x)
        for s in range(0, x.shape[1], CHUNK):
            px = x[:, s : s + CHUNK].to(dev)[None, :, None]
            out[:, s : s + CHUNK] = self.proxy.model(px, self.params)[0, :, 0].to(x.device)
        return out

    @torch.no_grad()
    def apply(
        self, image: np.ndarray | torch.Tensor, progress: bool | Callable[[int, int], None] = False
    ) -> np.ndarray:
        """``image (3, H, W)`` linear_rec2020 (numpy or tensor) -> ``(3, H, W)``
        float32 numpy, :data:`CHUNK` pixels at a time (memory: the output and a
        few chunks). ``progress``: a bar (``True``) or ``callback(done, total)``
        in chunks. Chunks run in parallel (:func:`run_chunks`)."""
        x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.asarray(image, np.float32))
        x = x.detach().to("cpu", torch.float32)
        if x.ndim != 3 or x.shape[0] != 3:
            raise DarkproxyError(f"the LUT takes one (3, H, W) image, got shape {tuple(x.shape)}")
        _, H, W = x.shape
        flat = x.reshape(3, H * W)
        out = np.empty((3, H * W), np.float32)
        n_chunks = -(-H * W // CHUNK)

        def one(c: slice) -> None:
            out[:, c] = self.apply_pixels(flat[:, c].contiguous()).numpy()

        done = [0]
        bar = None
        if not callable(progress):
            bar = progress_bar(n_chunks, f"{self.proxy.module} (LUT): {W}x{H}", unit="chunk", disable=not progress)

        def step() -> None:
            done[0] += 1
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(done[0], n_chunks)

        try:
            run_chunks(H * W, one, step)
        finally:
            if bar is not None:
                bar.close()
        return out.reshape(3, H, W)

    @torch.no_grad()
    def error(self, image: np.ndarray | torch.Tensor, n_pixels: int | None = None, seed: int = 0) -> dict[str, Any]:
        """The LUT (as :meth:`apply` uses it) against the network on ``image (3,
        H, W)``'s pixels, all or ``n_pixels`` drawn at random: ``max_abs``
        (linear), ``psnr`` (display) and ``pu21_psnr`` (:mod:`darkproxy.colour.metrics`),
        ``outside`` (the fraction of pixels outside the domain, which the
        network computes), ``pixels`` (how many were compared)."""
        from darkproxy.colour.metrics import display_psnr, pu21_psnr

        x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.asarray(image, np.float32))
        flat = x.detach().to("cpu", torch.float32).reshape(3, -1)
        if n_pixels is not None and n_pixels < flat.shape[1]:
            g = torch.Generator().manual_seed(seed)
            flat = flat[:, torch.randint(0, flat.shape[1], (n_pixels,), generator=g)]
        n = flat.shape[1]
        lut, net, inside = torch.empty(3, n), torch.empty(3, n), torch.empty(n, dtype=torch.bool)

        def one(c: slice) -> None:
            px = flat[:, c].contiguous()
            lut[:, c], inside[c] = self.lookup(px)
            net[:, c] = self.network(px)

        run_chunks(n, one)
        lut = torch.where(inside[None], lut, net)  # what apply() gives
        a, b = lut.numpy()[:, None], net.numpy()[:, None]  # (3, 1, N): an image to the metrics
        finite = np.isfinite(a) & np.isfinite(b)
        return {
            "max_abs": float(np.abs(a - b)[finite].max()) if finite.any() else 0.0,
            "psnr": float(display_psnr(np.where(finite, a, 0), np.where(finite, b, 0))),
            "pu21_psnr": float(pu21_psnr(np.where(finite, a, 0), np.where(finite, b, 0))),
            "outside": float(1.0 - inside.float().mean()) if inside.numel() else 0.0,
            "pixels": int(flat.shape[1]),
        }


@torch.no_grad()
def bake_lut(
    proxy: ProxyLike,
    params: torch.Tensor | Mapping[str, Any],
    scale: float | None = None,
    size: int = DEFAULT_SIZE,
    domain: LutDomain = DEFAULT_DOMAIN,
) -> Lut3D:
    """Bake a pointwise proxy at ``params`` (named values or normalised ``(P,)``)
    into a :class:`Lut3D` of ``size`` nodes a side: ``size**3`` pixels through
    the network's MLP (0.3 s for 65 on a 2-core CPU). Raises
    :class:`FastPathUnavailable` for a proxy that is not pointwise or whose
    network is not a :class:`~darkproxy.models.layers.PixelMLP`."""
    from darkproxy.models.layers import PixelMLP, affine_matrix

    model = proxy.model
    if not proxy.pointwise or proxy.pre_demosaic or not isinstance(model, PixelMLP):
        raise FastPathUnavailable(f"{proxy.module} proxy ({proxy.arch}) is not a pointwise MLP: no LUT fast path")
    if size < 2:
        raise ValueError(f"a LUT needs at least 2 nodes a side, not {size}")
    p = _model_params(proxy, params, scale)
    axis = domain.node_values(size)
    b, g, r = torch.meshgrid(axis, axis, axis, indexing="ij")
    rgb = torch.stack([r, g, b]).reshape(3, -1)  # node (ib, ig, ir) at (ib * n + ig) * n + ir
    nodes = torch.empty(size**3, 12)

    def one(c: slice) -> None:
        px = rgb[:, c].to(proxy.device)[None, :, None]  # (1, 3, 1, k): nodes as a row of pixels
        a, o = affine_matrix(model.coefficients(model.features(px).flatten(2).transpose(1, 2), p)[0])
        nodes[c] = torch.cat([a.reshape(-1, 9), o], 1).float().cpu()

    run_chunks(size**3, one)
    return Lut3D(nodes.reshape(size, size, size, 12), domain, proxy, p, scale)
