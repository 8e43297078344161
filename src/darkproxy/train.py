"""Training a proxy on a ``darkproxy-dataset/1`` folder (``darkproxy train``).

AdamW with linear warm-up then cosine decay, loss in a perceptual encoding
(:func:`~darkproxy.colorspace.perceptual_loss_encode`), validation PSNR on
display-encoded images (linear -> clip [0, 1] -> sRGB curve), best weights
kept, TensorBoard logs, resumable checkpoints, mixed precision on CUDA.

Run folder::

    RUN/
      run.json           what the proxy is (arch, hparams, module, param space, ...)
      model.safetensors  best weights (by validation PSNR)
      metrics.json       best_val_psnr, best_step, steps, seconds, val_identity_psnr, ...
      history.jsonl      one line per logged step: step, loss, lr, val_psnr, elapsed
      checkpoint.pt      model + optimizer + scheduler + step (for --resume)
      tb/                TensorBoard event files

Every file is written atomically (temp file + ``os.replace``); ``history.jsonl``
is append-only and trimmed back to the checkpoint's step on resume.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from darkproxy.colorspace import LOSS_SPACES, perceptual_loss_encode
from darkproxy.data.dataset import DatasetInfo, ModuleDataset, PixelBatches, load_dataset_info, split_indices
from darkproxy.data.store import write_bytes_atomic
from darkproxy.errors import DarkproxyError, DatasetError
from darkproxy.fsutil import atomic_path
from darkproxy.models.registry import arch_entry, build_model, list_archs
from darkproxy.scale import ScaleRange
from darkproxy.viz.metrics import display_psnr_batch

if TYPE_CHECKING:
    from darkproxy.models.layers import PixelMLP

LOSSES = ("l1", "mse", "charbonnier")


class TrainError(DarkproxyError):
    """A training request that cannot run (bad option, existing run, ...)."""


def _arch_defaults(arch: str, device: torch.device | None = None) -> dict[str, Any]:
    """Per-architecture defaults for the options left at ``None``.

    Per-pixel MLPs (``pointwise``, ``multiscale``) learn from random *pixels*
    of many samples per step (:class:`~darkproxy.data.dataset.PixelBatches`:
    ``batch`` samples x ``pixels`` pixels), which gives them many param
    vectors per step. UNet (``spatial``) and demosaic proxies learn from ``batch`` crops of ``crop`` px, each seen
    with ``context`` extra px on every side that the loss ignores, so that no
    loss is computed where the proxy sees a padded border but darktable saw
    real neighbours. On CUDA a step costs about the same whatever its size
    (it is launch-bound at these sizes), so batches are larger there."""
    gpu = device is not None and device.type == "cuda"
    if arch_entry(arch).pixel_batches:
        return {
            "steps": 8000,
            "batch": 256 if gpu else 64,
            "pixels": 256 if gpu else 64,
            "crop": None,
            "context": 0,
            "lr": 6e-3,
        }
    if arch_entry(arch).pre_demosaic:
        return {"steps": 3000, "batch": 32 if gpu else 8, "pixels": None, "crop": 64, "context": 4, "lr": 1e-3}
    return {"steps": 3000, "batch": 32 if gpu else 8, "pixels": None, "crop": 64, "context": 16, "lr": 1e-3}


@dataclass
class TrainConfig:
    """Training options. ``None`` means "the architecture's default" (see
    :func:`_arch_defaults`); the resolved values are recorded in ``run.json``.

    ``steps`` wins over ``epochs`` (``epochs * ceil(n_train / batch)`` steps);
    ``batch``: samples per step; ``pixels``: random pixels per sample
    (per-pixel MLPs); ``crop``: the square training crop in output
    px and ``context`` the px around it the model sees but the loss ignores
    (other architectures); ``val_crop`` the
    centre crop validation images are cut to (``None``: full images);
    ``val_max`` caps the number of validation images; ``amp``: ``"auto"``
    (autocast on CUDA only: bfloat16 where supported, else float16 with loss scaling), ``True`` or ``False``;
    ``time_budget_s`` bounds the wall clock over all sessions: the learning
    rate follows its schedule over whichever of steps and time runs out
    first, so a budgeted run still ends annealed; ``threads``: torch CPU
    threads while training (``None``: 1 for a per-pixel MLP on the CPU,
    else torch's default: the per-pixel layers are small, and on a 2-core
    machine a second thread gained little when idle but slowed training
    several-fold as soon as another process, e.g. darktable, shared the CPU)."""

    arch: str = "auto"
    steps: int | None = None
    epochs: float | None = None
    batch: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-5
    loss: str = "l1"
    loss_space: str = "srgb"
    crop: int | None = None
    pixels: int | None = None
    context: int | None = None
    device: str = "auto"
    seed: int = 0
    val_every: int | None = None
    val_crop: int | None = 256
    val_max: int = 32
    amp: Any = "auto"
    time_budget_s: float | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    warmup: int = 50
    checkpoint_every: int = 250
    log_every: int = 25
    grad_clip: float = 1.0
    num_workers: int = 0
    threads: int | None = None
    cache_gb: float = 2.0
    # train on samples darktable rendered beyond float16's range (stored float32: numerical blow-ups,
    # 2e10-2.5e11 in colorbalancergb); off by default: see docs/zoo.md, "Data integrity"
    keep_outliers: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """Outcome of :func:`train` (also in ``RUN/metrics.json``)."""

    run_dir: Path
    arch: str
    best_val_psnr: float
    best_step: int
    steps: int
    seconds: float
    val_identity_psnr: float | None
    val_split: str
    stopped_early: bool = False


# ------------------------------------------------------------------------------ helpers


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda, else mps, else cpu; an unavailable explicit device
    raises :class:`TrainError`."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise TrainError("--device mps: MPS is not available")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise TrainError(f"unknown device {device!r}; expected auto, cpu, cuda or mps")
    return torch.device(device)


def choose_arch(info: DatasetInfo, requested: str) -> tuple[str, dict[str, Any]]:
    """The architecture to train and why. ``auto``: ``demosaic`` for a
    pre-demosaic dataset, else the generator's darktable probe
    (``dataset.json`` ``pointwise``, ``position_dependent``): ``positional``
    for a position-dependent module, ``pointwise`` if pointwise, ``multiscale`` (the
    best local-operator proxy measured, see ``bench/results/proxies.md``) if
    false or unavailable (safe: it can learn a pointwise op too)."""
    probe = info.raw.get("pointwise", None)
    decision: dict[str, Any] = {"requested": requested, "probe_pointwise": probe, "probe_available": probe is not None}
    if requested != "auto":
        try:
            e = arch_entry(requested)
        except ValueError as ex:
            raise TrainError(str(ex)) from None
        if e.pre_demosaic != info.pre_demosaic:
            need = "demosaic" if info.pre_demosaic else "an RGB architecture"
            raise TrainError(
                f"arch {requested!r} does not fit this dataset ({'pre' if info.pre_demosaic else 'post'}-demosaic"
                f" module {info.module}): use {need}"
            )
        decision["reason"] = "requested"
        if e.pointwise and probe is False:
            decision["warning"] = "the darktable probe found this module is NOT pointwise"
            warnings.warn(
                f"training a pointwise proxy of {info.module}, which darktable's probe found not pointwise",
                stacklevel=3,
            )
        return requested, decision
    if info.pre_demosaic:
        decision["reason"] = "pre-demosaic module: packed mosaic input"
        return "demosaic", decision
    if info.raw.get("position_dependent"):
        decision["reason"] = "darktable probe: the output depends on the pixel's position in the image"
        return "positional", decision
    if probe is True:
        decision["reason"] = "darktable probe: pointwise"
        return "pointwise", decision
    if probe is False:
        decision["reason"] = "darktable probe: not pointwise"
        return "multiscale", decision
    decision["reason"] = "pointwise probe unavailable in dataset.json: multiscale for safety"
    return "multiscale", decision


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(Path(path), (json.dumps(obj, indent=1, default=str) + "\n").encode())


def _torch_save_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """Model weights as safetensors (atomic)."""
    from safetensors.torch import save as st_save

    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(Path(path), st_save(sd))


def loss_fn(
    pred: torch.Tensor, target: torch.Tensor, kind: str, space: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Scalar loss between linear ``(B, 3, H, W)`` tensors, in encoding
    ``space``; ``weight`` (broadcastable, 0/1) keeps only some pixels."""
    if kind not in LOSSES:
        raise TrainError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
    d = perceptual_loss_encode(pred.float(), space) - perceptual_loss_encode(target.float(), space)
    e = d.abs() if kind == "l1" else d * d if kind == "mse" else torch.sqrt(d * d + 1e-6)
    if weight is None:
        return e.mean()
    w = weight.expand_as(e)
    return (e * w).sum() / w.sum().clamp_min(1.0)


def _infinite(loader: DataLoader) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader


def _val_dataset(root: Path, cfg: TrainConfig) -> tuple[ModuleDataset, str, list[int] | None]:
    """Validation split: ``val``, else ``test``, else 10 % of ``train`` held out
    (then also returns the train indices to keep)."""
    for split in ("val", "test"):
        ds = ModuleDataset(root, split, crop=cfg.val_crop, flips=False, seed=cfg.seed, center_crop=True)
        if len(ds):
            return _cap(ds, cfg.val_max), split, None
    full = ModuleDataset(root, "train", crop=None, flips=False)
    if len(full) < 2:
        raise DatasetError(f"{root}: need at least 2 samples (no val/test split, and train has {len(full)})")
    kept, held = split_indices(len(full), 0.1, cfg.seed)
    warnings.warn(
        f"{root}: no val or test samples; holding out {len(held)} of {len(full)} train samples for validation",
        stacklevel=3,
    )
    ds = ModuleDataset(root, "train", crop=cfg.val_crop, flips=False, seed=cfg.seed, indices=held, center_crop=True)
    return _cap(ds, cfg.val_max), "train-holdout", kept


def _cap(ds: ModuleDataset, n: int) -> ModuleDataset:
    if len(ds) > n:  # evenly spaced, deterministic
        ds.records = [ds.records[int(i)] for i in np.linspace(0, len(ds) - 1, n).round().astype(int)]
    return ds


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds: ModuleDataset, device: torch.device) -> tuple[float, float | None]:
    """Mean display PSNR (dB) of the model's output against the target over
    ``ds``, and of the input against the target (identity; ``None`` for a
    mosaic input)."""
    was = model.training
    model.eval()
    ps, ids = [], []
    try:
        for i in range(len(ds)):
            it = ds[i]
            x, y, p = it["input"][None].to(device), it["output"][None].to(device), it["params"][None].to(device)
            ps.append(float(display_psnr_batch(model(x, p), y)[0]))
            if x.shape == y.shape:
                ids.append(float(display_psnr_batch(x, y)[0]))
    finally:
        model.train(was)
    return float(np.mean(ps)), (float(np.mean(ids)) if ids else None)


def _trim_history(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_bytes_atomic(path, "".join(k + "\n" for k in keep).encode())


# ------------------------------------------------------------------------------ train


@dataclass
class _Plan:
    """The resolved settings of one training run (recorded in ``run.json``)."""

    arch: str
    decision: dict[str, Any]
    steps: int
    batch: int
    lr: float
    pixels: int | None
    crop: int | None
    context: int
    val_every: int
    device: torch.device
    amp: bool
    outliers_left_out: list[str] = field(default_factory=list)  # sample ids (TrainConfig.keep_outliers)
    scales: ScaleRange | None = None  # render scales of the train split (run.json scale_range)

    def to_json(self, threads: int) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "batch": self.batch,
            "pixels": self.pixels,
            "crop": self.crop,
            "context": self.context,
            "lr": self.lr,
            "val_every": self.val_every,
            "device": str(self.device),
            "amp": self.amp,
            "threads": threads,
        }


def training_scales(info: DatasetInfo, arch: str, train_ds: ModuleDataset) -> ScaleRange | None:
    """The render scales the train split holds (``None``: not recorded) and
    whether they matter: a module is scale-dependent unless darktable's probe
    or the architecture says pointwise, it runs on the mosaic (always full
    size) or it is position-dependent (defined relative to the image's sides)."""
    dependent = not (
        info.pointwise is True
        or arch_entry(arch).pointwise
        or info.pre_demosaic
        or info.raw.get("position_dependent") is True
    )
    measured = [r.get("render_scale") for r in train_ds.records]
    asked = (info.raw.get("scales") or {}).get("range") if isinstance(info.raw.get("scales"), dict) else None
    # a drawn range is the trained range, ends included (the draws seldom land on them)
    return ScaleRange.from_scales([*measured, *(asked or [])] if any(measured) else [], dependent)


def lr_at(step: int, frac: float, peak: float, warmup: int) -> float:
    """Learning rate: linear warm-up over ``warmup`` steps from 1 % of
    ``peak``, then cosine decay to 1 % of ``peak`` as the run's progress
    ``frac`` (in ``[0, 1]``, by steps or by time budget) goes to 1."""
    if step < warmup:
        return peak * (0.01 + 0.99 * step / warmup)
    frac = min(max(frac, 0.0), 1.0)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def train(
    dataset_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train a proxy of the dataset's module; see the module docstring for the
    run folder. ``resume``: continue from ``RUN/checkpoint.pt`` with the
    checkpoint's config (same total steps; ``device`` may change). Without
    ``resume`` an existing run is refused unless ``overwrite``."""
    root = Path(dataset_dir)
    run = Path(run_dir)
    cfg = config or TrainConfig()
    info = load_dataset_info(root)
    ckpt_path = run / "checkpoint.pt"
    ckpt: dict[str, Any] | None = None
    if resume:
        if not ckpt_path.is_file():
            raise TrainError(f"--resume: {run} has no checkpoint.pt to resume from")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = TrainConfig.from_json({**ckpt["config"], "device": cfg.device})
    elif (run / "run.json").exists() and not overwrite:
        raise TrainError(f"{run} already holds a training run: use --resume to continue it or choose another folder")
    if cfg.loss not in LOSSES:
        raise TrainError(f"unknown loss {cfg.loss!r}; expected one of {', '.join(LOSSES)}")
    if cfg.loss_space not in LOSS_SPACES:
        raise TrainError(f"unknown loss space {cfg.loss_space!r}; expected one of {', '.join(LOSS_SPACES)}")
    for name in ("steps", "batch", "pixels", "crop"):
        v = getattr(cfg, name)
        if v is not None and v < 1:
            raise TrainError(f"{name} must be >= 1, got {v}")
    if cfg.context is not None and cfg.context < 0:
        raise TrainError(f"context must be >= 0, got {cfg.context}")
    run.mkdir(parents=True, exist_ok=True)

    arch, decision = choose_arch(info, cfg.arch)
    device = resolve_device(cfg.device)
    d = _arch_defaults(arch, device)
    pixel_rows = arch_entry(arch).pixel_batches
    batch = int(cfg.batch or d["batch"])
    crop = None if pixel_rows else int(cfg.crop or d["crop"])
    context = 0 if pixel_rows else int(cfg.context if cfg.context is not None else d["context"])
    if info.pre_demosaic:
        context += context % 2  # mosaic crops start on even output px

    train_ds = ModuleDataset(root, "train", crop=None, flips=not pixel_rows, seed=cfg.seed)
    if not pixel_rows:
        assert crop is not None  # set for crop-trained archs
        crop, context = _fit_crop(train_ds, crop, context)
        train_ds.crop = crop + 2 * context
    val_ds, val_split, kept = _val_dataset(root, cfg)
    bad = train_ds.nonfinite_ids() + val_ds.nonfinite_ids()
    if bad:
        raise DatasetError(
            f"{root}: {len(bad)} samples hold NaN/inf values ({', '.join(sorted(set(bad))[:8])}"
            f"{', ...' if len(set(bad)) > 8 else ''}): not a learning-rate problem; re-generate them "
            "(generate now records such renders in failed.jsonl) or remove them from manifest.jsonl"
        )
    if kept is not None:
        train_ds.records = [train_ds.records[i] for i in kept]
    outliers = [str(r.get("id")) for r in train_ds.records if r.get("dtype") == "float32"]
    if outliers and not cfg.keep_outliers:
        train_ds.records = [r for r in train_ds.records if r.get("dtype") != "float32"]
        warnings.warn(
            f"{root}: {len(outliers)} train samples hold values beyond float16's range (darktable's numerical "
            f"blow-ups): left out of training (keep_outliers to train on them)",
            stacklevel=2,
        )
    if not len(train_ds):
        raise DatasetError(f"{root}: no train samples")
    scales = training_scales(info, arch, train_ds)
    train_ds.scale_range = val_ds.scale_range = scales
    if cfg.steps:
        steps = int(cfg.steps)
    elif cfg.epochs:
        steps = max(1, math.ceil(cfg.epochs * math.ceil(len(train_ds) / batch)))
    else:
        steps = int(d["steps"])
    plan = _Plan(
        arch=arch,
        decision=decision,
        steps=steps,
        batch=batch,
        lr=float(cfg.lr or d["lr"]),
        pixels=int(cfg.pixels or d["pixels"]) if pixel_rows else None,
        crop=crop,
        context=context,
        val_every=int(cfg.val_every or max(50, steps // 10)),
        device=device,
        amp=device.type == "cuda" if cfg.amp == "auto" else bool(cfg.amp) and device.type == "cuda",
        outliers_left_out=[] if cfg.keep_outliers else outliers,
        scales=scales,
    )

    prev_threads = torch.get_num_threads()
    threads = cfg.threads or (1 if pixel_rows and device.type == "cpu" else prev_threads)
    torch.set_num_threads(int(threads))
    try:
        return _train(root, run, cfg, info, plan, train_ds, val_ds, val_split, ckpt, ckpt_path, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _fit_crop(ds: ModuleDataset, crop: int, context: int) -> tuple[int, int]:
    """Shrink ``crop`` (then ``context``) so that ``crop + 2 * context`` fits
    the smallest image of ``ds`` (crops of one batch must share a size)."""
    sides = [min(r["shape"][1:]) for r in ds.records if len(r.get("shape") or ()) == 3]
    if not sides:
        return crop, context
    side = min(sides) - min(sides) % 2
    if crop + 2 * context > side:
        context = min(context, max(0, (side - 16) // 4 * 2))
        crop = min(crop, side - 2 * context)
    return crop, context


def _batches(
    train_ds: ModuleDataset, plan: _Plan, cfg: TrainConfig, step: int, model: torch.nn.Module
) -> Iterator[dict[str, Any]]:
    """Training batches from ``step`` on: random pixels (per-pixel MLPs) or crops."""
    seed = cfg.seed * 1_000_003 + step  # fresh draws after a resume
    if plan.pixels is not None:
        return iter(
            PixelBatches(
                train_ds,
                plan.batch,
                plan.pixels,
                seed=seed,
                features=cast("PixelMLP", model).features,  # pixel batches: a PixelMLP arch
                device=plan.device,
                cache_bytes=int(cfg.cache_gb * 2**30),
            )
        )
    train_ds.seed = cfg.seed + step
    gen = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(
        train_ds, replacement=True, num_samples=max(plan.steps - step, 1) * plan.batch, generator=gen
    )
    loader = DataLoader(
        train_ds,
        batch_size=plan.batch,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=plan.device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
    )
    return _infinite(loader)


def context_mask(origin: torch.Tensor, h: int, w: int, context: int) -> torch.Tensor | None:
    """``(B, 1, h, w)`` 0/1 weights of a crop batch: 0 within ``context`` px
    of a crop edge that lies *inside* its image (the proxy saw padding where
    darktable saw pixels), 1 elsewhere, true image borders included (modules
    treat them specially, and the proxy must learn that). ``origin`` ``(B, 4)``
    = ``(y0, x0, H, W)`` of each crop."""
    if not context:
        return None
    o = origin.float()
    yy = torch.arange(h, dtype=torch.float32, device=o.device)[None]
    xx = torch.arange(w, dtype=torch.float32, device=o.device)[None]
    top = (o[:, 0:1] == 0) | (yy >= context)
    bottom = (o[:, 0:1] + h >= o[:, 2:3]) | (yy < h - context)
    left = (o[:, 1:2] == 0) | (xx >= context)
    right = (o[:, 1:2] + w >= o[:, 3:4]) | (xx < w - context)
    return ((top & bottom)[:, :, None] & (left & right)[:, None, :]).float()[:, None]


def _train(
    root: Path,
    run: Path,
    cfg: TrainConfig,
    info: DatasetInfo,
    plan: _Plan,
    train_ds: ModuleDataset,
    val_ds: ModuleDataset,
    val_split: str,
    ckpt: dict[str, Any] | None,
    ckpt_path: Path,
    progress: bool,
) -> TrainResult:
    torch.manual_seed(cfg.seed)
    device, amp, steps = plan.device, plan.amp, plan.steps
    n_in = len(info.param_space) + int(bool(plan.scales and plan.scales.conditioned))  # + the scale feature
    model = build_model(plan.arch, n_in, in_channels=info.in_channels, **cfg.hparams).to(device)
    hparams = dict(cast("dict[str, Any]", model.hparams))  # every arch sets hparams (nn.Module attrs are untyped)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=cfg.weight_decay, fused=cuda or None)
    warm = min(cfg.warmup, max(steps // 10, 1))
    # bfloat16 autocast where the GPU has it: no loss scaling, hence no host sync per step
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

    step, best, best_step, elapsed0 = 0, -math.inf, -1, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        step, best, best_step, elapsed0 = ckpt["step"], ckpt["best_val_psnr"], ckpt["best_step"], ckpt["elapsed"]
        torch.set_rng_state(ckpt["torch_rng"])
        _trim_history(run / "history.jsonl", step)

    run_info: dict[str, Any] = {
        "format": "darkproxy-run/1",
        "arch": plan.arch,
        "hparams": hparams,
        "module": info.module,
        "module_version": info.module_version,
        "darktable_version": info.darktable_version,
        "param_space": info.param_space.to_json(),
        "data_space": "linear_rec2020",
        "input_space": "packed_mosaic" if info.pre_demosaic else "linear_rec2020",
        "pre_demosaic": info.pre_demosaic,
        "in_channels": info.in_channels,
        "out_channels": 3,
        "pointwise": arch_entry(plan.arch).pointwise,
        "scale_range": plan.scales.to_json() if plan.scales else None,
        "arch_decision": plan.decision,
        "train_config": {**asdict(cfg), "resolved": plan.to_json(torch.get_num_threads())},
        "dataset": str(root.resolve()),
        "n_train": len(train_ds),
        "outliers_left_out": plan.outliers_left_out,
        "n_val": len(val_ds),
        "val_split": val_split,
        "status": "training",
        "torch_version": torch.__version__,
    }
    write_json_atomic(run / "run.json", run_info)

    tb = None
    try:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(run / "tb"), purge_step=step if step else None)
    except ImportError:  # tensorboard is an extra: train anyway
        warnings.warn(
            "TensorBoard logs disabled: tensorboard is not installed (pip install 'darkproxy[tensorboard]')",
            stacklevel=2,
        )

    t0 = time.monotonic()

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t0

    def checkpoint() -> None:
        _torch_save_atomic(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "step": step,
                "best_val_psnr": best,
                "best_step": best_step,
                "elapsed": elapsed(),
                "config": asdict(cfg),
                "torch_rng": torch.get_rng_state(),
            },
        )

    def progress_frac() -> float:
        frac = step / steps
        if cfg.time_budget_s:
            frac = max(frac, elapsed() / cfg.time_budget_s)
        return frac

    batches = _batches(train_ds, plan, cfg, step, model)
    identity_psnr: float | None = None
    stopped_early = False
    hist_f = open(run / "history.jsonl", "a")  # noqa: SIM115 - closed in the training loop's finally
    bar = None
    if progress:
        from darkproxy.progress import progress_bar  # a tqdm bar on a terminal, a line every few seconds in a log

        bar = progress_bar(total=steps, initial=step, desc=f"train {info.module} ({plan.arch})", unit="step")
    run_loss: Any = 0.0
    run_n = 0

    def validate() -> float:
        nonlocal best, best_step, identity_psnr
        psnr, ident = evaluate(model, val_ds, device)
        identity_psnr = ident
        if psnr > best:
            best, best_step = psnr, step
            save_weights(run / "model.safetensors", model)
        if tb is not None:
            tb.add_scalar("val/psnr_display", psnr, step)
        return psnr

    model.train()
    try:
        while step < steps:
            if cfg.time_budget_s is not None and elapsed() > cfg.time_budget_s:
                stopped_early = True
                break
            cur_lr = lr_at(step, progress_frac(), plan.lr, warm)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            b = next(batches)
            x = b["input"].to(device, non_blocking=True)
            y = b["output"].to(device, non_blocking=True)
            p = b["params"].to(device, non_blocking=True)
            origin = b["origin"].to(device) if "origin" in b else None
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                if "features" in b:  # pixel rows of a PixelMLP
                    pred = cast("PixelMLP", model).head(b["features"].to(device, non_blocking=True), x, p)

                elif getattr(model, "takes_origin", False):
                    pred = model(x, p, origin=origin)
                else:
                    pred = model(x, p)
            mask = context_mask(origin, y.shape[-2], y.shape[-1], plan.context) if origin is not None else None
            loss = loss_fn(pred, y, cfg.loss, cfg.loss_space, mask)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(opt)  # a no-op when the scaler is disabled
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # foreach=True fails on mps
            scaler.step(opt)
            scaler.update()
            step += 1
            run_loss = run_loss + loss.detach()  # on the device: no sync per step (GPU speed)
            run_n += 1
            val = validate() if (step % plan.val_every == 0 or step == steps) else None
            if step % cfg.log_every == 0 or val is not None or step == steps:
                lv = float(run_loss) / max(run_n, 1)
                if not math.isfinite(lv):
                    raise TrainError(f"training diverged by step {step} (loss {lv}); try a lower --lr")
                rec = {"step": step, "loss": lv, "lr": cur_lr, "val_psnr": val, "elapsed": round(elapsed(), 3)}
                hist_f.write(json.dumps(rec) + "\n")
                hist_f.flush()
                if tb is not None:
                    tb.add_scalar("train/loss", rec["loss"], step)
                    tb.add_scalar("train/lr", cur_lr, step)
                run_loss, run_n = 0.0, 0
                if bar is not None:
                    bar.set_postfix(loss=f"{lv:.4g}", best=f"{best:.2f}dB" if best > -math.inf else "-")
            if bar is not None:
                bar.update(1)
            if step % cfg.checkpoint_every == 0:
                checkpoint()
        if best_step < 0 or (stopped_early and best_step != step):
            validate()  # a time budget may stop before any validation
    finally:
        # also on KeyboardInterrupt / errors: the run can be resumed from here
        checkpoint()
        hist_f.close()
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()

    seconds = elapsed()
    if identity_psnr is None and not info.pre_demosaic:  # e.g. resumed a finished run
        identity_psnr = evaluate(model, val_ds, device)[1]
    metrics = {
        "best_val_psnr": best,
        "best_step": best_step,
        "steps": step,
        "total_steps": steps,
        "seconds": round(seconds, 3),
        "val_identity_psnr": identity_psnr,
        "val_split": val_split,
        "n_val": len(val_ds),
        "arch": plan.arch,
        "stopped_early": stopped_early,
    }
    write_json_atomic(run / "metrics.json", metrics)
    run_info["status"] = "stopped_early" if stopped_early else "done"
    run_info["metrics"] = metrics
    write_json_atomic(run / "run.json", run_info)
    return TrainResult(run, plan.arch, best, best_step, step, seconds, identity_psnr, val_split, stopped_early)


__all__ = [
    "LOSSES",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "choose_arch",
    "evaluate",
    "list_archs",
    "loss_fn",
    "lr_at",
    "resolve_device",
    "save_weights",
    "train",
]
