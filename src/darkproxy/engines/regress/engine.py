"""The regression engine: recover a darktable module's params from an image pair.

Given the module's input ``x`` and a target ``y`` (both float32 ``(3, H, W)``
**linear Rec2020**, e.g. a tap-out, or a raw whose input darkproxy renders), find
the params ``p`` that make the trained proxy reproduce the target,
``proxy(x, p) ~= y``, by gradient descent through the proxy. This module only
optimises tensors; reading files, proving the answer with darktable (render the
recovered params and compare with the target) and writing the results are
:mod:`darkproxy.engines.regress.recover` (``darkproxy regress``); the optimisation's video and
plot are :func:`darkproxy.engines.regress.optimisation_video.write_optimisation_video`.

How the optimisation works:

* **Free params** are all of the run's :class:`~darkproxy.data.paramspace.ParamSpace`
  or a subset (``params=[...]``); the others stay at their defaults.
* **Bounded by construction**: Adam optimises unconstrained logits ``z``;
  ``u = sigmoid(z)`` is the normalised param in ``[0, 1]`` (the proxy's input
  convention), ``value = lo + u (hi - lo)`` in the training range. Nothing is
  ever clipped, so no gradient is lost at a bound. An angle whose range is a
  whole turn (a hue wheel: :attr:`~darkproxy.data.paramspace.ParamSpec.full_turn`)
  is not bounded but wrapped, ``u = (z / 4) mod 1``, so a fit may cross 0 to
  reach 359 degrees (the sigmoid's walls would stop it at 0).
* **Restarts against local minima**: restart 0 starts at the defaults, the
  others at seeded uniform points in ``[0.05, 0.95]``. All restarts run at once
  as one batch (Adam is element-wise, so a batch of restarts is exactly the
  same as independent runs); the restart with the lowest final loss wins.
* **Perceptual loss**: L1 / MSE / SSIM between *display-encoded* images (the
  sRGB transfer curve, extended above 1 and odd-symmetric below 0 so clipped
  highlights and out-of-gamut pixels still pass gradients). Reported PSNRs use
  the project's display encoding (:func:`darkproxy.colour.encodings.srgb_display_rec709`).
  A model whose output is already display-encoded (``display_output = True``: the
  replica) is compared with its display-referred target as is (:func:`encoder_for`).
* **One engine for every chain**: anything with a ``param_space`` called as
  ``model(x, u)`` is optimised here: a proxy (``darkproxy regress``), chained
  proxies (:class:`darkproxy.pipeline.FlatPipelineProxy`, ``pipeline regress``), the
  whole replica (:class:`darkproxy.replica.ReplicaChain`, ``replica regress``).
* **Pixel subset**: a proxy that is found to be pointwise (see
  :func:`_work_pixels`) is optimised on ``max_pixels`` random pixels; the restarts
  are ranked on another, 64 times larger random sample (the whole image when that
  is smaller), and the final loss, output and PSNR use the whole image.
* **Learning rate**: cosine decay to 1 % (``schedule="cosine"``) or halving on
  plateaus (``"plateau"``).
* **Enum / bool params** are optimised relaxed (a continuous ``u`` in
  ``[0, 1]``, which the proxy was trained on at the discrete points
  ``index / (n - 1)`` only), then *snapped*, per restart: for each discrete
  param in turn, every allowed value is tried with the others fixed, and the
  one with the lowest loss is kept (a value whose output is not finite never is;
  a restart where none is finite drops out); then the continuous params are re-fitted
  with the discrete ones fixed (``max(50, iters // 3)`` more iterations, since
  they may have compensated for a relaxed in-between value). Int params are
  rounded.
* **Fixed params are exact**: a param that is not optimised keeps the value it was
  given (``fixed``, the space's ``fixed``, else its default), even outside the
  training range (a history's value in the replica): the forward passes, the final
  output and ``params`` all use it unclipped. Only the free params are in range.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import kornia  # differentiable SSIM (ssim_map_mean)
import numpy as np
import torch

from darkproxy.colour import encodings
from darkproxy.colour.metrics import display_psnr
from darkproxy.errors import DarkproxyError, UnknownParam

if TYPE_CHECKING:
    from darkproxy.data.paramspace import ParamSpace

LOSSES = ("l1", "mse", "ssim")
SCHEDULES = ("cosine", "plateau")


class RegressError(DarkproxyError):
    """A regression that cannot run: bad inputs, shapes that do not match."""


# --------------------------------------------------------------------- config
@dataclass
class RegressConfig:
    """Settings of one regression. ``params``: names of the free params (None:
    all of the run's param space). ``lr`` is the Adam step on the logits."""

    iters: int = 300
    restarts: int = 4
    loss: str = "l1"
    lr: float = 0.1
    schedule: str = "cosine"
    seed: int = 0
    params: list[str] | None = None
    record: bool = True  # keep the per-iteration trajectory (for plots / video)
    max_pixels: int | None = 2048  # pointwise proxies: optimise on this many pixels (None: all)
    # Levenberg-Marquardt steps on the best restart's continuous params after Adam (:mod:`.polish`; 0: none). Off
    # by default: through a proxy it fits the proxy's own error (the tiny demo's regression through 23 dB proxies
    # fell from > 30 to 25.9 dB against darktable); ``match`` and ``replica regress`` turn it on for exact ports
    polish: int = 0

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise RegressError(f"unknown loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise RegressError(f"unknown lr schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.iters < 1 or self.restarts < 1:
            raise RegressError("iters and restarts must be >= 1")
        if self.polish < 0:
            raise RegressError(f"polish must be >= 0, got {self.polish}")
        if not (self.lr > 0):
            raise RegressError(f"lr must be > 0, got {self.lr}")


@dataclass
class RegressResult:
    """Outcome of :func:`regress`.

    ``params``: values by name of all params of the space: the free ones
    recovered (snapped, in the training range), the others exactly as given
    (unclipped); ``normalized``: the same as the proxy's normalised vector (free
    entries in ``[0, 1]``, fixed ones wherever their values fall); ``free``: the names that were optimised;
    ``loss``: final loss of the winning restart (after snapping, on the whole image);
    ``loss_history``: its loss per iteration; ``restart_losses``: final loss
    of every restart, on the pixels they are ranked on; ``trajectory``: ``(iters, P)`` normalised params of the
    winning restart per iteration (empty unless ``record``); ``proxy_output``:
    float32 ``(3, H, W)`` linear Rec2020, the proxy's render of ``params``;
    ``proxy_psnr``: its display-encoded PSNR (dB) against the target."""

    params: dict[str, Any]
    normalized: np.ndarray
    free: list[str]
    loss: float
    loss_history: list[float]
    restart_losses: list[float]
    best_restart: int
    trajectory: np.ndarray
    proxy_output: np.ndarray
    proxy_psnr: float
    seconds: float
    iters: int
    restarts: int


# ----------------------------------------------------------------- encodings
def loss_encode(x: torch.Tensor) -> torch.Tensor:
    """Perceptual encoding the loss is computed on: linear Rec2020 -> the sRGB
    curve extended to all reals (:func:`darkproxy.colour.encodings.srgb_encode_ext`:
    no clipping, so clipped highlights and out-of-gamut pixels keep a gradient)."""
    return encodings.srgb_encode_ext(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def encoder_for(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The encoding the loss compares ``model``'s output and the target in:
    :func:`loss_encode` for models that output linear Rec2020 (proxies, pipelines),
    the identity for models whose output is already display-encoded
    (``display_output = True``: the replica, :class:`darkproxy.replica.ReplicaChain`,
    compared with a display-referred sRGB target)."""
    return _identity if getattr(model, "display_output", False) else loss_encode


def ssim_map_mean(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per batch item (Wang et al. 2004: 11x11 Gaussian window,
    sigma 1.5, K1 0.01, K2 0.03, "valid" window positions only) of
    ``(B, C, H, W)`` tensors -> ``(B,)``. Differentiable (skimage's SSIM is
    not); images smaller than the window use a smaller odd window.

    :func:`kornia.metrics.ssim` with ``eps=0``; it replaced a hand-written
    version: same values (max abs difference 1.2e-7 in float32, 4e-8 in
    float64 over 256x256 to 4x4 images, where kornia builds the window in
    float64) and the same speed (1x3x256x256 forward+backward on this CPU,
    one thread, min of 12: 37 ms vs 40 ms; 8x3x64x64: 22 vs 16 ms)."""
    size = max(3, min(11, (min(a.shape[-2:]) // 2) * 2 - 1))
    return kornia.metrics.ssim(a, b, size, max_val=float(data_range), eps=0.0, padding="valid").flatten(1).mean(1)


def per_item_loss(pred_enc: torch.Tensor, target_enc: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss per batch item ``(B,)`` between encoded ``(B, C, H, W)`` images."""
    if kind == "l1":
        return (pred_enc - target_enc).abs().flatten(1).mean(1)
    if kind == "mse":
        return ((pred_enc - target_enc) ** 2).flatten(1).mean(1)
    if kind == "ssim":
        return 1.0 - ssim_map_mean(pred_enc, target_enc.expand_as(pred_enc))
    raise RegressError(f"unknown loss {kind!r}")


# --------------------------------------------------------------------- core
def resolve_free(space: Any, names: Sequence[str] | None) -> list[int]:
    """Indices of the free params in ``space`` (all when ``names`` is None).
    Raises :class:`~darkproxy.errors.UnknownParam` for a name not in the space."""
    if not names:
        return list(range(len(space.specs)))
    idx = []
    for n in names:
        if n not in space.names:
            raise UnknownParam(
                f"{n!r} is not a parameter of this {space.module} proxy; its params: {', '.join(space.names)}"
            )
        i = space.names.index(n)
        if i not in idx:
            idx.append(i)
    return idx


_WRAP_GAIN = 4.0  # an angle's u = (z / 4) mod 1: the sigmoid's slope at its centre, so ``lr`` means the same


def _wraps(space: Any, idx: list[int], device: torch.device) -> torch.Tensor:
    """``(k,)`` bool: which of the params ``idx`` are angles over a whole turn (wrapped, not bounded)."""
    return torch.tensor([space.specs[i].full_turn for i in idx], dtype=torch.bool, device=device)


def _to_u(z: torch.Tensor, wrap: torch.Tensor) -> torch.Tensor:
    """The optimised variables ``z`` (..., k) -> normalised params in [0, 1]: sigmoid, or mod 1 where ``wrap``."""
    return torch.where(wrap, torch.remainder(z / _WRAP_GAIN, 1.0), torch.sigmoid(z))


def _to_z(u: np.ndarray, wrap: np.ndarray) -> np.ndarray:
    """:func:`_to_u`'s inverse for a start ``u`` (..., k); bounded params kept off the sigmoid's flat ends."""
    uc = np.clip(u, 0.02, 0.98)
    return np.where(wrap, _WRAP_GAIN * np.asarray(u, np.float64), np.log(uc / (1 - uc)))


def as_batch(img: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """An image ``(C, H, W)`` (numpy or torch) as a float32 batch ``(1, C, H, W)`` on
    ``device`` (a batch ``(B, C, H, W)`` stays one)."""
    t = torch.as_tensor(np.asarray(img, np.float32) if not isinstance(img, torch.Tensor) else img)
    t = t.to(device=device, dtype=torch.float32)
    return t[None] if t.ndim == 3 else t


def proxy_device(proxy: torch.nn.Module) -> torch.device:
    """The device of ``proxy``'s weights (CPU when it has none)."""
    for p in proxy.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def _losses_at(
    proxy: torch.nn.Module, x: torch.Tensor, tenc: torch.Tensor, u: torch.Tensor, kind: str, chunk: int = 16
) -> torch.Tensor:
    out = []
    for i in range(0, u.shape[0], chunk):
        uu = u[i : i + chunk]
        y = proxy(x.expand(uu.shape[0], -1, -1, -1), uu)
        out.append(per_item_loss(encoder_for(proxy)(y), tenc, kind))
    return torch.cat(out)


def regress(
    proxy: torch.nn.Module,
    inp: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    config: RegressConfig | None = None,
    fixed: Mapping[str, Any] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> RegressResult:
    """Find the params of ``proxy``'s module that turn ``inp`` into ``target``.

    ``inp``: the module input, float32 ``(C, H, W)`` (``(3, H, W)`` linear
    Rec2020, or the ``(4, H/2, W/2)`` packed mosaic of a pre-demosaic module);
    ``target``: float32 ``(3, H, W)`` linear Rec2020. ``fixed``: values for the
    params that are not optimised (default: the space's defaults).
    ``progress(iteration, best_loss)`` is called every iteration."""
    cfg = config or RegressConfig()
    cfg.check()
    resolve_free(proxy.param_space, cfg.params)
    was_training = proxy.training
    grads = [p.requires_grad for p in proxy.parameters()]
    proxy.eval()  # the proxy is frozen: only the params move
    for p in proxy.parameters():
        p.requires_grad_(False)
    try:
        return _regress(proxy, inp, target, cfg, fixed, progress)
    finally:
        proxy.train(was_training)
        for p, g in zip(proxy.parameters(), grads, strict=True):
            p.requires_grad_(g)


def _regress(
    proxy: torch.nn.Module,
    inp: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    cfg: RegressConfig,
    fixed: Mapping[str, Any] | None,
    progress: Callable[[int, float], None] | None,
) -> RegressResult:
    space = cast("ParamSpace", proxy.param_space)  # any module with a param_space: Proxy, FlatPipelineProxy
    free = resolve_free(space, cfg.params)
    t0 = time.perf_counter()
    dev = proxy_device(proxy)
    x = as_batch(inp, dev)
    tgt = as_batch(target, dev)
    tenc = encoder_for(proxy)(tgt)
    base_vals = {**space.defaults(), **dict(space.fixed or {}), **dict(fixed or {})}
    for i, s in enumerate(space.specs):  # normalize() would send an unknown enum value to index 0
        if i not in free and s.kind == "enum" and int(base_vals[s.name]) not in s.values:
            raise RegressError(f"{s.name}={base_vals[s.name]} is not one of the values {list(s.values)} of this model")
    base_u = torch.as_tensor(space.normalize(base_vals), dtype=torch.float32, device=dev)

    R = cfg.restarts
    rng = np.random.default_rng(cfg.seed)
    (xw, tencw), (xr, tencr) = _work_pixels(proxy, x, tenc, base_u, cfg, rng)
    u0 = np.empty((R, len(free)), np.float64)
    u0[0] = base_u.cpu().numpy()[free]
    if R > 1:
        u0[1:] = rng.uniform(0.05, 0.95, size=(R - 1, len(free)))
    xb = xw.expand(R, -1, -1, -1).contiguous()
    base = base_u.expand(R, -1).clone()
    # phase 1: every free param, discrete ones relaxed
    u_fin, hist, traj = _adam(proxy, xb, tencw, base, free, u0, cfg.iters, cfg, progress, 0)
    discrete = [i for i in free if space.specs[i].kind in ("enum", "bool")]
    continuous = [i for i in free if i not in discrete]
    dead: list[int] = []  # restarts where no value of a discrete param gives a finite output
    if discrete:
        snapped, why = [], ""
        for r in range(R):
            try:
                snapped.append(_snap(proxy, xw, tencw, u_fin[r].clone(), space, discrete, cfg.loss))
            except RegressError as e:
                snapped.append(u_fin[r])
                dead.append(r)
                why = str(e)
        if len(dead) == R:
            raise RegressError(why)
        u_fin = torch.stack(snapped)
        if continuous:  # phase 2: re-fit the continuous params with the discrete ones snapped
            n2 = max(50, cfg.iters // 3)
            u_fin, h2, t2 = _adam(
                proxy, xb, tencw, u_fin, continuous, u_fin[:, continuous].cpu().numpy(), n2, cfg, progress, cfg.iters
            )
            hist, traj = np.concatenate([hist, h2]), np.concatenate([traj, t2])
    if cfg.polish and continuous and cfg.loss in ("l1", "mse"):
        u_fin = _polished(proxy, xw, tencw, u_fin, continuous, dead, cfg)
    with torch.no_grad():
        final = _losses_at(proxy, xr, tencr, u_fin, cfg.loss)
    final[dead] = float("nan")  # never the answer: its discrete params are not snapped
    if not bool(torch.isfinite(final).any()):
        raise RegressError("the model's output is not finite at the end of every restart (NaN or inf): cannot regress")
    best = int(torch.argmin(torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))))
    # free params: in range by the sigmoid (or wrapped), ints rounded, enums/bools exact; the others exactly as given
    # (a value outside the training range, e.g. a history's, must reach the output and the result unclipped)
    got = space.denormalize(u_fin[best].cpu().numpy())
    free_names = {space.names[i] for i in free}
    params = {n: got[n] if n in free_names else base_vals.get(n, got[n]) for n in space.names}
    u_snapped = base_u.clone()
    u_snapped[free] = torch.as_tensor(space.normalize(got), dtype=torch.float32, device=dev)[free]
    with torch.no_grad():
        y = proxy(x, u_snapped[None])
        loss = float(per_item_loss(encoder_for(proxy)(y), tenc, cfg.loss)[0])
    out = y[0].detach().cpu().numpy().astype(np.float32)
    tgt_np = tgt[0].detach().cpu().numpy()
    return RegressResult(
        params=params,
        normalized=u_snapped.cpu().numpy(),
        free=[space.names[i] for i in free],
        loss=loss,
        loss_history=[float(v) for v in hist[:, best]],
        restart_losses=[float(v) for v in final.cpu().numpy()],
        best_restart=best,
        trajectory=traj[:, best] if cfg.record else np.zeros((0, len(space.specs)), np.float32),
        proxy_output=out,
        proxy_psnr=_output_psnr(proxy, out, tgt_np),
        seconds=time.perf_counter() - t0,
        iters=int(hist.shape[0]),
        restarts=R,
    )


def _polished(
    proxy: torch.nn.Module,
    xw: torch.Tensor,
    tencw: torch.Tensor,
    u_fin: torch.Tensor,
    idx: list[int],
    dead: list[int],
    cfg: RegressConfig,
) -> torch.Tensor:
    """``u_fin (R, P)`` with the restart of the lowest loss on the work pixels polished (:func:`.polish.lm_polish`
    on the logits of its continuous params ``idx``)."""
    from darkproxy.engines.regress.polish import lm_polish

    with torch.no_grad():
        work = _losses_at(proxy, xw, tencw, u_fin, cfg.loss)
    work[dead] = float("nan")
    if not bool(torch.isfinite(work).any()):
        return u_fin
    r = int(torch.argmin(torch.where(torch.isfinite(work), work, torch.full_like(work, float("inf")))))
    idx_t = torch.tensor(idx, dtype=torch.long, device=u_fin.device)
    enc = encoder_for(proxy)
    wrap = _wraps(getattr(proxy, "param_space"), idx, u_fin.device)  # noqa: B009

    def model(z: torch.Tensor) -> torch.Tensor:
        u = u_fin[r].expand(z.shape[0], -1).clone()
        u[:, idx_t] = _to_u(z.to(u.dtype), wrap)
        return enc(proxy(xw.expand(z.shape[0], -1, -1, -1), u))

    u0 = u_fin[r, idx_t]
    z0 = torch.where(wrap, _WRAP_GAIN * u0, torch.logit(u0, eps=1e-6))
    z, _, _ = lm_polish(model, z0, tencw, cfg.loss, cfg.polish)
    out = u_fin.clone()
    out[r, idx_t] = _to_u(z.to(out.dtype), wrap)
    return out


def _output_psnr(model: Any, out: np.ndarray, target: np.ndarray) -> float:
    """Display PSNR of the model's output against the target (NaN for other shapes); a
    display-encoded output (``display_output``) is compared as is."""
    if out.shape != target.shape:
        return float("nan")
    if getattr(model, "display_output", False):
        from darkproxy.colour.metrics import psnr_from_mse

        return psnr_from_mse(float(np.mean((out.astype(np.float64) - target) ** 2)))
    return display_psnr(out, target)


def _work_pixels(
    proxy: torch.nn.Module,
    x: torch.Tensor,
    tenc: torch.Tensor,
    base_u: torch.Tensor,
    cfg: RegressConfig,
    rng: np.random.Generator,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The images the optimisation runs on and the images its restarts are ranked on, each as
    ``(input, encoded target)``. A *pointwise* proxy (each output pixel depends only on the same
    input pixel, checked numerically on a random window: the proxy of 256 of its pixels, rearranged,
    equals them in its output) is optimised on a fixed random subset of ``cfg.max_pixels`` pixels,
    arranged as a square image (the same loss landscape in expectation, at a fraction of the cost),
    and ranked on an independent one 64 times larger (or the whole image). Anything else (spatial
    proxies, SSIM loss, mosaic inputs) uses the whole image for both."""
    B, C, H, W = x.shape
    whole = (x, tenc), (x, tenc)
    if getattr(proxy, "full_image_only", False):  # declared spatial (e.g. the replica with sharpen or tap-outs)
        return whole
    side = int(math.isqrt(cfg.max_pixels or 0))
    if not side or side * side >= H * W or cfg.loss == "ssim" or tenc.shape[-2:] != x.shape[-2:] or side < 16:
        return whole
    # the check on a window of up to 128 x 128 px (a spatial or image-statistics stage differs there as on the
    # whole image), not on the whole image: one full-size forward pass less
    wh, ww = min(H, 128), min(W, 128)
    top, left = int(rng.integers(0, H - wh + 1)), int(rng.integers(0, W - ww + 1))
    win = x[:, :, top : top + wh, left : left + ww]
    check = torch.as_tensor(rng.choice(wh * ww, size=min(256, wh * ww), replace=False), device=x.device)
    n = int(math.isqrt(check.numel()))
    check = check[: n * n]
    with torch.no_grad():
        full = proxy(win, base_u[None]).flatten(2)[:, :, check]
        part = proxy(win.flatten(2)[:, :, check].reshape(B, C, n, n), base_u[None]).flatten(2)
    if full.shape != part.shape or not torch.allclose(full, part, rtol=1e-4, atol=1e-5):
        return whole

    def sample(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(rng.choice(H * W, size=k * k, replace=False), device=x.device)
        return (
            x.flatten(2)[:, :, idx].reshape(B, C, k, k),
            tenc.flatten(2)[:, :, idx].reshape(B, tenc.shape[1], k, k),
        )

    work = sample(side)
    return work, (sample(8 * side) if 64 * side * side < H * W else (x, tenc))


_PRELOAD: list[threading.Thread] = []


def preload_optimizer() -> None:
    """Start importing ``torch._dynamo`` in a background thread, once per process. ``torch.optim``'s optimisers
    import it when first built (their ``add_param_group`` is dynamo-wrapped): about a second on a 2-core CPU,
    which a caller about to wait on something else (darktable's renders, ``darkproxy match``) can hide there;
    :func:`_adam` waits for the thread before it builds its optimiser."""
    if not _PRELOAD:
        t = threading.Thread(target=importlib.import_module, args=("torch._dynamo",), daemon=True)
        _PRELOAD.append(t)
        t.start()


def _adam(
    proxy: torch.nn.Module,
    xb: torch.Tensor,
    tenc: torch.Tensor,
    base: torch.Tensor,
    idx: list[int],
    u0: np.ndarray,
    iters: int,
    cfg: RegressConfig,
    progress: Callable[[int, float], None] | None,
    offset: int,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Adam on the logits (an angle's wrapped variable: :func:`_to_u`) of params ``idx`` for a batch of ``R`` restarts
    (``base``: (R, P) normalised values of the others; ``u0``: (R, k) starts).
    Returns the final (R, P) params, the (iters, R) losses and the (iters, R, P)
    trajectory (empty unless ``cfg.record``)."""
    R, P = base.shape
    dev = base.device
    wrap = _wraps(getattr(proxy, "param_space"), idx, dev)  # noqa: B009
    z0 = _to_z(np.asarray(u0, np.float64), wrap.cpu().numpy())
    z = torch.tensor(z0, dtype=torch.float32, device=dev, requires_grad=True)
    idx_t = torch.tensor(idx, dtype=torch.long, device=dev)

    def full_u(zz: torch.Tensor) -> torch.Tensor:
        u = base.clone()
        u[:, idx_t] = _to_u(zz, wrap)
        return u

    for t in _PRELOAD:  # the preload thread's import, if still running, finishes first
        t.join()
    opt = torch.optim.Adam([z], lr=cfg.lr)
    if cfg.schedule == "cosine":
        sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters, eta_min=cfg.lr * 0.01)
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=15, min_lr=cfg.lr * 1e-3)
    hist = np.zeros((iters, R), np.float64)
    traj = np.zeros((iters if cfg.record else 0, R, P), np.float32)
    for it in range(iters):
        u = full_u(z)
        per = per_item_loss(encoder_for(proxy)(proxy(xb, u)), tenc, cfg.loss)
        opt.zero_grad(set_to_none=True)
        per.sum().backward()  # restarts are independent: the sum's gradient is each one's own
        if z.grad is not None:  # a non-finite step (a model's singular pixel) would poison Adam's moments for good
            z.grad = torch.nan_to_num(z.grad, nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()
        if cfg.schedule == "cosine":
            sched.step()
        else:
            sched.step(float(per.sum()))
        hist[it] = per.detach().cpu().numpy()
        if cfg.record:
            traj[it] = u.detach().cpu().numpy()
        if progress is not None:
            progress(offset + it, float(hist[it].min()))
    with torch.no_grad():
        return full_u(z), hist, traj


def _snap(
    proxy: torch.nn.Module, x: torch.Tensor, tenc: torch.Tensor, u: torch.Tensor, space: Any, free: list[int], kind: str
) -> torch.Tensor:
    """Snap relaxed enum/bool params ``free``: per discrete param, try every
    allowed value (others fixed) and keep the lowest finite loss (a NaN loss
    would win ``argmin``). :class:`RegressError` when no value gives a finite one."""
    for i in free:
        s = space.specs[i]
        n = len(s.values) if s.kind == "enum" else 2
        cands = u[None].repeat(n, 1)
        cands[:, i] = torch.linspace(0.0, 1.0, n) if n > 1 else 0.0
        losses = _losses_at(proxy, x, tenc, cands, kind)
        ok = torch.isfinite(losses)
        if not bool(ok.any()):
            raise RegressError(
                f"snapping {s.name!r}: the model's output is not finite (NaN or inf) at every one of its {n} values"
            )
        u = cands[int(torch.argmin(torch.where(ok, losses, torch.full_like(losses, float("inf")))))]
    return u
