"""Slider regression: recover a darktable module's params from an image pair.

Given the module's input ``x`` and a target ``y`` (both float32 ``(3, H, W)``
**linear Rec2020**, e.g. a tap-out, or a raw whose input darkproxy renders), find
the params ``p`` that make the trained proxy reproduce the target,
``proxy(x, p) ~= y``, by gradient descent through the proxy, then prove the
answer with darktable: render the recovered params and compare with the target.

How the optimisation works:

* **Free params** are all of the run's :class:`~darkproxy.data.paramspace.ParamSpace`
  or a subset (``params=[...]``); the others stay at their defaults.
* **Bounded by construction**: Adam optimises unconstrained logits ``z``;
  ``u = sigmoid(z)`` is the normalised param in ``[0, 1]`` (the proxy's input
  convention), ``value = lo + u (hi - lo)`` in the training range. Nothing is
  ever clipped, so no gradient is lost at a bound.
* **Restarts against local minima**: restart 0 starts at the defaults, the
  others at seeded uniform points in ``[0.05, 0.95]``. All restarts run at once
  as one batch (Adam is element-wise, so a batch of restarts is exactly the
  same as independent runs); the restart with the lowest final loss wins.
* **Perceptual loss**: L1 / MSE / SSIM between *display-encoded* images (the
  sRGB transfer curve, extended above 1 and odd-symmetric below 0 so clipped
  highlights and out-of-gamut pixels still pass gradients). Reported PSNRs use
  the project's display encoding (:func:`darkproxy.colorspace.srgb_display_rec709`).
  A model whose output is already display-encoded (``display_output = True``: the
  replica) is compared with its display-referred target as is (:func:`encoder_for`).
* **One engine for every chain**: anything with a ``param_space`` called as
  ``model(x, u)`` is optimised here: a proxy (``darkproxy regress``), chained
  proxies (:class:`darkproxy.pipeline.FlatPipelineProxy`, ``pipeline regress``), the
  whole replica (:class:`darkproxy.replica.ReplicaChain`, ``replica regress``).
* **Pixel subset**: a proxy that is found to be pointwise (see
  :func:`_work_pixels`) is optimised on ``max_pixels`` random pixels (the
  final loss, output and PSNR use the whole image).
* **Learning rate**: cosine decay to 1 % (``schedule="cosine"``) or halving on
  plateaus (``"plateau"``).
* **Enum / bool params** are optimised relaxed (a continuous ``u`` in
  ``[0, 1]``, which the proxy was trained on at the discrete points
  ``index / (n - 1)`` only), then *snapped*, per restart: for each discrete
  param in turn, every allowed value is tried with the others fixed, and the
  one with the lowest loss is kept; then the continuous params are re-fitted
  with the discrete ones fixed (``max(50, iters // 3)`` more iterations, since
  they may have compensated for a relaxed in-between value). Int params are
  rounded.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import kornia  # differentiable SSIM (ssim_map_mean)
import numpy as np
import torch

from darkproxy import colorspace
from darkproxy.errors import DarkproxyError, UnknownParam
from darkproxy.fsutil import write_text_atomic
from darkproxy.viz.metrics import display_psnr

if TYPE_CHECKING:
    from darkproxy.data.paramspace import ParamSpace

LOSSES = ("l1", "mse", "ssim")
SCHEDULES = ("cosine", "plateau")


class RegressError(DarkproxyError):
    """A regression that cannot run: bad inputs, shapes that do not match."""


class ImageReadError(DarkproxyError):
    """A missing or unreadable TIFF (or one that is not a (3, H, W) image)."""


class RunLoadError(DarkproxyError):
    """A proxy run folder that is missing or cannot be loaded."""


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

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise RegressError(f"unknown loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise RegressError(f"unknown lr schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.iters < 1 or self.restarts < 1:
            raise RegressError("iters and restarts must be >= 1")
        if not (self.lr > 0):
            raise RegressError(f"lr must be > 0, got {self.lr}")


@dataclass
class RegressResult:
    """Outcome of :func:`regress`.

    ``params``: recovered values by name (all params of the space, free and
    fixed, snapped and in the training range); ``normalized``: the same as the
    proxy's ``[0, 1]^P`` vector; ``free``: the names that were optimised;
    ``loss``: final loss of the winning restart (after snapping);
    ``loss_history``: its loss per iteration; ``restart_losses``: final loss
    of every restart; ``trajectory``: ``(iters, P)`` normalised params of the
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
    curve extended to all reals (:func:`darkproxy.colorspace.srgb_encode_ext`:
    no clipping, so clipped highlights and out-of-gamut pixels keep a gradient)."""
    return colorspace.srgb_encode_ext(x)


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


def _logit(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.02, 0.98)  # keep the start off the flat ends of the sigmoid
    return np.log(u / (1 - u))


def _as_tensor(img: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(img, np.float32) if not isinstance(img, torch.Tensor) else img)
    t = t.to(device=device, dtype=torch.float32)
    return t[None] if t.ndim == 3 else t


def _proxy_device(proxy: torch.nn.Module) -> torch.device:
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
    dev = _proxy_device(proxy)
    x = _as_tensor(inp, dev)
    tgt = _as_tensor(target, dev)
    tenc = encoder_for(proxy)(tgt)
    base_vals = {**space.defaults(), **dict(space.fixed or {}), **dict(fixed or {})}
    base_u = torch.as_tensor(space.normalize(base_vals), dtype=torch.float32, device=dev)

    R = cfg.restarts
    rng = np.random.default_rng(cfg.seed)
    xw, tencw = _work_pixels(proxy, x, tenc, base_u, cfg, rng)
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
    if discrete:
        u_fin = torch.stack([_snap(proxy, xw, tencw, u_fin[r].clone(), space, discrete, cfg.loss) for r in range(R)])
        if continuous:  # phase 2: re-fit the continuous params with the discrete ones snapped
            n2 = max(50, cfg.iters // 3)
            u_fin, h2, t2 = _adam(
                proxy, xb, tencw, u_fin, continuous, u_fin[:, continuous].cpu().numpy(), n2, cfg, progress, cfg.iters
            )
            hist, traj = np.concatenate([hist, h2]), np.concatenate([traj, t2])
    with torch.no_grad():
        final = _losses_at(proxy, x, tenc, u_fin, cfg.loss)
    best = int(torch.argmin(final))
    params = space.denormalize(u_fin[best].cpu().numpy())  # ints rounded, enums/bools exact
    u_snapped = torch.as_tensor(space.normalize(params), dtype=torch.float32, device=dev)
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


def _output_psnr(model: Any, out: np.ndarray, target: np.ndarray) -> float:
    """Display PSNR of the model's output against the target (NaN for other shapes); a
    display-encoded output (``display_output``) is compared as is."""
    if out.shape != target.shape:
        return float("nan")
    if getattr(model, "display_output", False):
        from darkproxy.viz.metrics import psnr_from_mse

        return psnr_from_mse(float(np.mean((out.astype(np.float64) - target) ** 2)))
    return display_psnr(out, target)


def _work_pixels(
    proxy: torch.nn.Module,
    x: torch.Tensor,
    tenc: torch.Tensor,
    base_u: torch.Tensor,
    cfg: RegressConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the optimisation runs on. A *pointwise* proxy (each output
    pixel depends only on the same input pixel, checked numerically: the proxy
    of a random pixel subset equals the subset of its output) is optimised on
    a fixed random subset of ``cfg.max_pixels`` pixels, arranged as a square
    image: the same loss landscape in expectation, at a fraction of the cost.
    Anything else (spatial proxies, SSIM loss, mosaic inputs) uses the full image."""
    B, C, H, W = x.shape
    if getattr(proxy, "full_image_only", False):  # declared spatial (e.g. the replica with sharpen or tap-outs)
        return x, tenc
    side = int(math.isqrt(cfg.max_pixels or 0))
    if not side or side * side >= H * W or cfg.loss == "ssim" or tenc.shape[-2:] != x.shape[-2:] or side < 16:
        return x, tenc
    idx = torch.as_tensor(rng.choice(H * W, size=side * side, replace=False), device=x.device)
    check = idx[:256]
    with torch.no_grad():
        full = proxy(x, base_u[None]).flatten(2)[:, :, check]
        part = proxy(x.flatten(2)[:, :, check].reshape(B, C, 16, 16), base_u[None]).flatten(2)
    if full.shape != part.shape or not torch.allclose(full, part, rtol=1e-4, atol=1e-5):
        return x, tenc
    return (
        x.flatten(2)[:, :, idx].reshape(B, C, side, side),
        tenc.flatten(2)[:, :, idx].reshape(B, tenc.shape[1], side, side),
    )


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
    """Adam on the logits of params ``idx`` for a batch of ``R`` restarts
    (``base``: (R, P) normalised values of the others; ``u0``: (R, k) starts).
    Returns the final (R, P) params, the (iters, R) losses and the (iters, R, P)
    trajectory (empty unless ``cfg.record``)."""
    R, P = base.shape
    dev = base.device
    z = torch.tensor(_logit(np.asarray(u0, np.float64)), dtype=torch.float32, device=dev, requires_grad=True)
    idx_t = torch.tensor(idx, dtype=torch.long, device=dev)

    def full_u(zz: torch.Tensor) -> torch.Tensor:
        u = base.clone()
        u[:, idx_t] = torch.sigmoid(zz)
        return u

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
    allowed value (others fixed) and keep the lowest loss."""
    for i in free:
        s = space.specs[i]
        n = len(s.values) if s.kind == "enum" else 2
        cands = u[None].repeat(n, 1)
        cands[:, i] = torch.linspace(0.0, 1.0, n) if n > 1 else 0.0
        losses = _losses_at(proxy, x, tenc, cands, kind)
        u = cands[int(torch.argmin(losses))]
    return u


# ------------------------------------------------------------------ I/O glue
def read_image(path: str | os.PathLike[str], what: str = "image") -> np.ndarray:
    """Read a float TIFF as float32 ``(3, H, W)``; one-line
    :class:`ImageReadError` when missing or unreadable."""
    from darkproxy.darktable.render import read_tiff

    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{what} {p} does not exist")
    import logging

    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)  # its warnings about corrupt files would break the one-line error
    try:
        a = read_tiff(p)
    except Exception as e:  # tifffile raises many types for corrupt files
        raise ImageReadError(
            f"cannot read {what} {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    finally:
        log.setLevel(level)
    if a.ndim != 3 or a.shape[0] != 3 or min(a.shape[1:]) < 1:
        raise ImageReadError(f"cannot read {what} {p}: not an RGB image (shape {tuple(a.shape)})")
    if not np.isfinite(a).all():
        raise ImageReadError(f"{what} {p} contains NaN or infinite values")
    return a


def load_proxy(run_dir: str | os.PathLike[str], device: str = "cpu") -> Any:
    """:meth:`darkproxy.proxy.Proxy.load` with one-line errors for a missing or corrupt run
    (``zoo:MODULE`` accepted)."""
    from darkproxy.zoo import resolve_run

    d = resolve_run(run_dir)
    if not d.is_dir():
        raise RunLoadError(f"run folder {d} does not exist")
    if not (d / "run.json").is_file():
        raise RunLoadError(f"{d} is not a darkproxy run (no run.json)")
    from darkproxy.proxy import Proxy

    try:
        return Proxy.load(d, device=device)
    except DarkproxyError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise RunLoadError(f"cannot load the proxy in {d}: {type(e).__name__}: {msg}") from None


def _meta(input_path: Path) -> dict[str, Any]:
    meta = input_path.parent / "meta.json"
    try:
        d = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def raw_from_meta(input_path: Path) -> Path | None:
    """The raw of a tap-out whose ``meta.json`` sits next to ``input_path``
    (None when there is no meta or its raw is gone)."""
    raw = _meta(input_path).get("raw")
    if raw and Path(raw).is_file():
        return Path(raw)
    return None


def input_scale(inp: np.ndarray, pre: bool, input_path: Path | None, raw: Path | None) -> float | None:
    """Render scale of a module input: 1 for a packed mosaic, the tap-out's
    ``meta.json`` ``render_scale``, else measured against ``raw``'s size
    (``None`` when nothing tells)."""
    from darkproxy.darktable.tapout import render_scale

    if pre:
        return 1.0
    if input_path is not None and (got := _meta(input_path).get("render_scale")):
        return float(got)
    return render_scale(raw, inp.shape) if raw is not None else None


def render_module_input(dt: Any, raw: Path, module: str, max_size: int | None) -> tuple[np.ndarray, bool]:
    """The module's input for ``raw`` (darktable's default history upstream),
    as a tap-out at ``max_size``: ``(array, pre_demosaic)`` (one render)."""
    from darkproxy.darktable.tapout import packed_input, plan_tapout

    plan = plan_tapout(dt, dt.default_history(raw), module, {})
    if plan.pre_demosaic:
        return packed_input(raw, module), True
    return dt.renderer(max_size=max_size).render_array(raw, plan.input_sidecar), False


@dataclass
class Verification:
    """darktable's render of recovered params. ``output``: float32 ``(3, H, W)``
    linear Rec2020 (tap-out output: later modules disabled); ``sidecar``: the
    full history (nothing disabled); ``tapout_sidecar``: the verification history."""

    output: np.ndarray
    psnr: float
    sidecar: Any
    tapout_sidecar: Any
    seconds: float
    upstream_hash: str = ""


def verify_with_darktable(
    dt: Any, raw: Path, module: str, named: Mapping[str, Any], target: np.ndarray, pre_demosaic: bool = False
) -> Verification:
    """Render ``named`` params of ``module`` with darktable (default history of
    ``raw`` upstream, later modules disabled, at the target's size) and compare
    with ``target`` (display PSNR)."""
    from darkproxy.darktable.tapout import plan_tapout

    t0 = time.perf_counter()
    base = dt.default_history(raw)
    plan = plan_tapout(dt, base, module, named)
    size = None if pre_demosaic else int(max(target.shape[-2:]))
    out = dt.renderer(max_size=size).render_array(raw, plan.output_sidecar)
    if out.shape != target.shape:
        raise RegressError(
            f"darktable renders {raw} at {out.shape[2]}x{out.shape[1]}, the target is "
            f"{target.shape[2]}x{target.shape[1]}: was the target made from this raw?"
        )
    full = dt.edit(base, updates={module: named})
    return Verification(
        out, display_psnr(out, target), full, plan.output_sidecar, time.perf_counter() - t0, plan.upstream_hash
    )


def full_history_check(
    dt: Any,
    raw: Path,
    recovered: Mapping[str, Mapping[str, Any]],
    truth: Mapping[str, Mapping[str, Any]],
    max_size: int | None,
) -> dict[str, Any]:
    """What a photographer sees: darktable renders the raw's whole default
    history (every module on, as when ``result.xmp`` is opened) once with the
    ``recovered`` params ({module: {param: value}}) and once with the target's
    (``truth``), in one darktable-cli process, at ``max_size``. Returns
    ``full_history_psnr`` (display), ``full_history_pu21_psnr`` and
    ``full_history_deltae_mean`` between the two."""
    import tempfile

    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
    from darkproxy.errors import DarktableRenderError
    from darkproxy.viz.metrics import compare

    base = dt.default_history(raw)
    with tempfile.TemporaryDirectory(prefix="darkproxy-full-") as td:
        jobs = [
            RenderJob(raw, dt.edit(base, updates=u), Path(td) / f"{k}.tif") for k, u in enumerate((recovered, truth))
        ]
        res = dt.renderer(max_size=max_size).render_batch(jobs)
        for x in res:
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
        a, b = (read_tiff(p) for p in res)
    m = compare(a, b)
    return {
        "full_history_psnr": m.psnr,
        "full_history_pu21_psnr": m.pu21_psnr,
        "full_history_deltae_mean": m.deltae_mean,
    }


def darktable_figures(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Unclipped figures of darktable's render of recovered params against the
    target, beside the display PSNR: ``darktable_pu21_psnr``,
    ``darktable_hdrflip_mean``, ``darktable_deltae_mean``."""
    from darkproxy.viz.metrics import compare

    m = compare(output, target)
    return {
        "darktable_pu21_psnr": m.pu21_psnr,
        "darktable_hdrflip_mean": m.hdrflip_mean,
        "darktable_deltae_mean": m.deltae_mean,
    }


def defaults_figures(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """The baseline a regression must beat: darktable's render of the same
    history with the regressed sliders at their defaults, against the target
    (``defaults_psnr`` display, ``defaults_pu21_psnr``)."""
    from darkproxy.viz.metrics import compare

    m = compare(output, target)
    return {"defaults_psnr": m.psnr, "defaults_pu21_psnr": m.pu21_psnr}


def regress_files(
    proxy: Any,
    target_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    input_path: str | os.PathLike[str] | None = None,
    raw: str | os.PathLike[str] | None = None,
    config: RegressConfig | None = None,
    dt: Any = None,
    video: bool = False,
    log: Callable[[str], None] | None = None,
    target_params: Mapping[str, Any] | None = None,
    scale: float | None = None,
) -> dict[str, Any]:
    """The ``darkproxy regress`` pipeline. Reads the target (and the input, or
    renders it from ``raw``), regresses, verifies with darktable when a raw is
    known (``raw``, or the ``meta.json`` of a tap-out next to ``input_path``),
    writes ``params.json``, ``proxy_output.tif``, and with a raw
    ``darktable_output.tif``, ``result.xmp`` (the raw's default history with
    the module set to the recovered params: what a photographer opens) and
    ``result_tapout.xmp`` (the same with every later module disabled: the
    history ``darktable_psnr`` is measured on). When the target's params are
    known (``target_params``, or the ``set_params`` of a tap-out's
    ``meta.json`` next to the target), darktable also renders the full history
    with them and with the recovered ones: ``full_history_psnr``
    (:func:`full_history_check`). ``scale``: the images' render scale
    (default: from the input tap-out's ``meta.json`` or the raw's size); a
    scale-dependent proxy refuses one it was not trained on. Returns the
    params.json dict."""
    cfg = config or RegressConfig()
    cfg.check()
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    space = proxy.param_space
    resolve_free(space, cfg.params)  # unknown names fail before any render
    target = read_image(target_path, "target")
    module = proxy.module
    raw_p = Path(raw) if raw is not None else None
    if raw_p is not None and not raw_p.is_file():
        from darkproxy.errors import RawError

        raise RawError(f"raw file {raw_p} does not exist")
    if input_path is not None:
        inp = read_image(input_path, "input")
        if raw_p is None:
            raw_p = raw_from_meta(Path(input_path))
        pre = inp.shape[0] == 4  # packed mosaic: a pre-demosaic module
    else:
        if raw_p is None:
            raise RegressError("give the module input (--input) or the raw it comes from (--raw)")
        if dt is None:
            raise RegressError("a darktable session is needed to render the input from the raw")
        say(f"rendering {module}'s input from {raw_p} at {max(target.shape[1:])} px")
        inp, pre = render_module_input(dt, raw_p, module, int(max(target.shape[-2:])))
    _check_shapes(inp, target, pre)
    if scale is None:
        scale = input_scale(inp, pre, Path(input_path) if input_path is not None else None, raw_p)
    if hasattr(proxy, "at_scale"):  # a Proxy: fixed at the images' scale (refused outside its trained range)
        proxy = proxy.at_scale(scale)
    say(f"regressing {', '.join(cfg.params or space.names)} ({cfg.restarts} restarts x {cfg.iters} iters)")
    res = regress(proxy, inp, target, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from darkproxy.darktable.render import write_tiff

    write_tiff(out / "proxy_output.tif", res.proxy_output)
    named = space.for_darktable(res.params)
    record: dict[str, Any] = {
        "module": module,
        "params": _jsonable(res.params),
        "normalized": [float(v) for v in res.normalized],
        "free": res.free,
        "darktable_params": _jsonable(named),
        "proxy_psnr": _num(res.proxy_psnr),
        "darktable_psnr": None,
        "loss": res.loss,
        "loss_kind": cfg.loss,
        "regress_seconds": res.seconds,
        "seconds": None,
        "iters": res.iters,
        "restarts": res.restarts,
        "best_restart": res.best_restart,
        "restart_losses": res.restart_losses,
        "loss_history": res.loss_history,
        "lr": cfg.lr,
        "schedule": cfg.schedule,
        "seed": cfg.seed,
        "target": str(target_path),
        "input": str(input_path) if input_path else None,
        "raw": str(raw_p) if raw_p else None,
        "run": str(getattr(proxy, "run_dir", "") or ""),
        "render_scale": scale,
    }
    if raw_p is not None:
        if dt is None:
            raise RegressError("a darktable session is needed to verify the params")
        from darkproxy.zoo import check_zoo_proxy

        check_zoo_proxy(proxy, dt, say)
        say("rendering the recovered params with darktable")
        ver = verify_with_darktable(dt, raw_p, module, named, target, pre)
        write_tiff(out / "darktable_output.tif", ver.output)
        ver.sidecar.write(out / "result.xmp")
        ver.tapout_sidecar.write(out / "result_tapout.xmp")
        say("rendering the module's defaults with darktable (the baseline)")
        base_ver = verify_with_darktable(dt, raw_p, module, space.for_darktable(), target, pre)
        record.update(defaults_figures(base_ver.output, target))
        record.update(
            darktable_psnr=_num(ver.psnr),
            verify_seconds=ver.seconds,
            darktable_psnr_history="tap-out: the raw's default history, modules after "
            f"{module} disabled (result_tapout.xmp)",
            xmp=str(out / "result.xmp"),
            tapout_xmp=str(out / "result_tapout.xmp"),
            **darktable_figures(ver.output, target),
        )
        truth = dict(target_params) if target_params is not None else _meta(Path(target_path)).get("set_params")
        if truth and not pre:
            say("rendering the full history (result.xmp) and the target's params with darktable")
            record.update(
                full_history_check(
                    dt, raw_p, {module: named}, {module: space.for_darktable(truth)}, int(max(target.shape[-2:]))
                )
            )
        else:
            record["full_history_psnr"] = None
        meta_hash = _meta(Path(input_path)).get("upstream_hash") if input_path is not None else None
        if meta_hash and meta_hash != ver.upstream_hash:
            record["warning"] = (
                "the input's tap-out was made with another upstream history than darktable's "
                "defaults for the raw: darktable_psnr compares against the default history"
            )
            say("warning: " + record["warning"])
    if video:
        say("writing the optimisation video")
        record.update(write_video(proxy, inp, target, res, out))
    record["seconds"] = time.perf_counter() - t0
    write_json(out / "params.json", record)
    return record


def _check_shapes(inp: np.ndarray, target: np.ndarray, pre_demosaic: bool) -> None:
    th, tw = target.shape[-2:]
    if inp.shape[0] == 4 or pre_demosaic:
        ok = (2 * inp.shape[-2], 2 * inp.shape[-1]) == (th, tw)
    else:
        ok = inp.shape == target.shape
    if not ok:
        raise RegressError(
            f"input {tuple(inp.shape)} and target {tuple(target.shape)} do not match: render both at the same size"
        )


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    for k, v in d.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = float(v)
        else:
            out[k] = v
    return out


def write_json(path: Path, obj: Any) -> None:
    """Write indented JSON atomically (temporary file + rename)."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


# -------------------------------------------------------------------- video
def _to_display_rgb8(img: np.ndarray) -> np.ndarray:
    """float32 (3, H, W) linear -> uint8 (H, W, 3) in the display encoding."""
    from darkproxy.viz.images import to_display

    return to_display(img)


def _frame(pred: np.ndarray, target: np.ndarray, lines: list[str], height: int = 256) -> np.ndarray:
    """One video frame: proxy output | target, upscaled to ``height`` px (nearest),
    with ``lines`` of text underneath. uint8 (H', W', 3), even sizes (for yuv420)."""
    from PIL import Image, ImageDraw

    a, b = _to_display_rgb8(pred), _to_display_rgb8(target)
    h, w = a.shape[:2]
    scale = max(1, height // h)
    pair = np.concatenate([a, np.full((h, max(2, w // 32), 3), 255, np.uint8), b], axis=1)
    pair = np.repeat(np.repeat(pair, scale, 0), scale, 1)
    line_h = 14
    text_h = line_h * len(lines) + 8
    W = pair.shape[1] + (pair.shape[1] % 2)
    H = pair.shape[0] + text_h
    H += H % 2
    canvas = Image.new("RGB", (W, H), (20, 20, 20))
    canvas.paste(Image.fromarray(pair), (0, 0))
    d = ImageDraw.Draw(canvas)
    for i, ln in enumerate(lines):
        d.text((6, pair.shape[0] + 4 + i * line_h), ln, fill=(235, 235, 235))
    return np.asarray(canvas)


def write_video(
    proxy: Any,
    inp: np.ndarray,
    target: np.ndarray,
    res: RegressResult,
    out_dir: Path,
    n_frames: int = 60,
    fps: int = 12,
) -> dict[str, Any]:
    """The optimisation as frames (``frames/NNNN.png``: proxy output of the
    winning restart at evenly spaced iterations | target, with the iteration,
    loss and param values written in), ``optimisation.mp4`` (H.264,
    :func:`darkproxy.viz.video.write_video`) and ``optimisation.png`` (loss and params per iteration).
    Returns the paths written."""
    import imageio.v2 as iio

    space = proxy.param_space
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    n = res.trajectory.shape[0]
    if n == 0:
        raise RegressError("no trajectory was recorded (RegressConfig.record=False)")
    its = sorted(set(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int).tolist()))
    dev = _proxy_device(proxy)
    x = _as_tensor(inp, dev)
    free_idx = [space.names.index(nm) for nm in res.free]
    frames = []
    with torch.no_grad():
        for j, it in enumerate(its):
            u = torch.as_tensor(res.trajectory[it], dtype=torch.float32, device=dev)[None]
            pred = proxy(x, u)[0].cpu().numpy()
            vals = space.denormalize(res.trajectory[it])
            lines = [f"iter {it + 1}/{n}  loss {res.loss_history[it]:.5f}  (proxy | target)"]
            lines += [f"{space.names[i]} = {_fmt(vals[space.names[i]])}" for i in free_idx]
            fr = _frame(pred, target, lines)
            iio.imwrite(frames_dir / f"{j:04d}.png", fr)
            frames.append(fr)
    mp4 = out_dir / "optimisation.mp4"
    _write_mp4(mp4, frames, fps)
    plot = out_dir / "optimisation.png"
    _plot_history(plot, res, space)
    return {"frames": str(frames_dir), "video": str(mp4), "plot": str(plot)}


def _fmt(v: Any) -> str:
    return f"{v:+.4f}" if isinstance(v, float) else str(v)


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode frames (H.264 via imageio-ffmpeg) with the project's video writer."""
    from darkproxy.viz.video import write_video as _encode

    _encode(frames, path, fps=fps)


def _plot_history(path: Path, res: RegressResult, space: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.semilogy(np.arange(1, len(res.loss_history) + 1), np.maximum(res.loss_history, 1e-12))
    a1.set_xlabel("iteration")
    a1.set_ylabel("loss")
    a1.set_title(f"loss (restart {res.best_restart} of {res.restarts})")
    for nm in res.free:  # normalised, so that params with different ranges share one axis
        i = space.names.index(nm)
        s = space.specs[i]
        a2.plot(np.arange(1, res.trajectory.shape[0] + 1), res.trajectory[:, i], label=f"{nm} [{s.lo:g}, {s.hi:g}]")
    a2.set_ylim(-0.02, 1.02)
    a2.set_xlabel("iteration")
    a2.set_ylabel("position in training range")
    a2.set_title("params")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
