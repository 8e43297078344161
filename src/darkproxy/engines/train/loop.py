"""The training loop: AdamW with warm-up then cosine decay, a perceptual loss, validation and
checkpoints as it goes (:func:`train`)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from darkproxy.colour.encodings import LOSS_SPACES, perceptual_loss_encode
from darkproxy.data.dataset import DatasetInfo, ModuleDataset, load_dataset_info
from darkproxy.engines.train.arch import _arch_defaults, choose_arch, model_hparams, training_scales
from darkproxy.engines.train.batches import _batches, _fit_crop, context_mask
from darkproxy.engines.train.checkpoint import _torch_save_atomic, _trim_history, save_weights
from darkproxy.engines.train.config import LOSSES, TrainConfig, TrainError, TrainResult, _Plan, resolve_device
from darkproxy.engines.train.validate import _val_dataset, validate
from darkproxy.engines.train.warmstart import check_scales, init_config
from darkproxy.errors import DatasetError
from darkproxy.fsutil import write_json
from darkproxy.models.registry import arch_entry, arch_hparams, build_model

if TYPE_CHECKING:
    from darkproxy.models.layers import PixelMLP


def lr_at(step: int, frac: float, peak: float, warmup: int) -> float:
    """Learning rate: linear warm-up over ``warmup`` steps from 1 % of
    ``peak``, then cosine decay to 1 % of ``peak`` as the run's progress
    ``frac`` (in ``[0, 1]``, by steps or by time budget) goes to 1."""
    if step < warmup:
        return peak * (0.01 + 0.99 * step / warmup)
    frac = min(max(frac, 0.0), 1.0)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * frac)))


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


def train(
    dataset_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train a proxy of the dataset's module; see the package docstring for the
    run folder. ``resume``: continue from ``RUN/checkpoint.pt`` with the
    checkpoint's config (same total steps; ``device`` may change). Without
    ``resume`` an existing run is refused unless ``overwrite``. ``clock``
    (seconds) times the run and its ``time_budget_s``: a test passes a fake one."""
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
    _check_config(cfg)
    init = None
    if cfg.init and ckpt is None:  # a resumed run's weights are its checkpoint's
        cfg, init = init_config(cfg, info)
    plan, train_ds, val_ds, val_split = _plan(root, cfg, info)
    # a resumed run's model is its checkpoint's (before model_hparams: the config's)
    resumed = ckpt.get("model_hparams", cfg.hparams) if ckpt is not None else None
    plan.hparams = dict(resumed) if resumed is not None else model_hparams(cfg, info, plan.arch)
    if init is not None:
        check_scales(init, bool(plan.scales and plan.scales.conditioned), str(cfg.init))
    run.mkdir(parents=True, exist_ok=True)
    prev_threads = torch.get_num_threads()
    threads = cfg.threads or (1 if plan.pixels is not None and plan.device.type == "cpu" else prev_threads)
    torch.set_num_threads(int(threads))
    try:
        return _train(root, run, cfg, info, plan, train_ds, val_ds, val_split, ckpt, ckpt_path, progress, clock, init)
    finally:
        torch.set_num_threads(prev_threads)


def _check_config(cfg: TrainConfig) -> None:
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


def _plan(root: Path, cfg: TrainConfig, info: DatasetInfo) -> tuple[_Plan, ModuleDataset, ModuleDataset, str]:
    """The run's resolved settings, its train and validation sets and the validation split's name."""
    arch, decision = choose_arch(info, cfg.arch)
    unknown = sorted(set(cfg.hparams) - set(arch_hparams(arch)))
    if unknown:
        raise TrainError(
            f"{arch} has no hparam {', '.join(map(repr, unknown))}; it takes {', '.join(arch_hparams(arch))}"
        )
    device = resolve_device(cfg.device)
    d = _arch_defaults(arch, device)
    pixel_rows = arch_entry(arch).pixel_batches
    batch = int(cfg.batch or d["batch"])
    crop = None if pixel_rows else int(cfg.crop or d["crop"])
    context = 0 if pixel_rows else int(cfg.context if cfg.context is not None else d["context"])
    need = arch_entry(arch).min_context
    if not pixel_rows and context < need:
        if cfg.context is not None:
            raise TrainError(f"context {context} is under what {arch} needs ({need} px each side of a crop)")
        context = need
    if info.pre_demosaic:
        context += context % 2  # mosaic crops start on even output px

    train_ds = ModuleDataset(root, "train", crop=None, flips=not pixel_rows, seed=cfg.seed)
    if not pixel_rows:
        assert crop is not None  # set for crop-trained archs
        crop, context = _fit_crop(train_ds, crop, context, need)
        train_ds.crop = crop + 2 * context
    whole = bool(cfg.hparams.get("image_stats"))
    # a model that reads the whole image's statistics is validated on whole samples: a crop's are not darktable's
    val_ds, val_split, kept = _val_dataset(root, dataclasses.replace(cfg, val_crop=None) if whole else cfg)
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
            stacklevel=3,
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
    return plan, train_ds, val_ds, val_split


class _Loop:
    """One training session's state (model, optimiser, step, best validation) and its steps."""

    def __init__(
        self,
        run: Path,
        cfg: TrainConfig,
        info: DatasetInfo,
        plan: _Plan,
        val_ds: ModuleDataset,
        ckpt: dict[str, Any] | None,
        ckpt_path: Path,
        clock: Callable[[], float],
    ) -> None:
        torch.manual_seed(cfg.seed)
        self.run, self.cfg, self.plan, self.val_ds = run, cfg, plan, val_ds
        self.ckpt_path, self.clock = ckpt_path, clock
        device, steps = plan.device, plan.steps
        n_in = len(info.param_space) + int(bool(plan.scales and plan.scales.conditioned))  # + the scale feature
        self.model = build_model(plan.arch, n_in, in_channels=info.in_channels, **plan.hparams).to(device)
        cuda = device.type == "cuda"
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=plan.lr, weight_decay=cfg.weight_decay, fused=cuda or None
        )
        self.warm = min(cfg.warmup, max(steps // 10, 1))
        # bfloat16 autocast where the GPU has it: no loss scaling, hence no host sync per step
        self.amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=plan.amp and self.amp_dtype == torch.float16)
        self.step, self.best, self.best_step, self.elapsed0 = 0, -math.inf, -1, 0.0
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(ckpt["scaler"])
            self.step, self.best, self.best_step = ckpt["step"], ckpt["best_val_psnr"], ckpt["best_step"]
            self.elapsed0 = ckpt["elapsed"]
            torch.set_rng_state(ckpt["torch_rng"])
            _trim_history(run / "history.jsonl", self.step)
        self.identity_psnr: float | None = None
        self.tb: Any = None
        self.t0 = 0.0

    def open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run / "tb"), purge_step=self.step if self.step else None)
        except ImportError:  # tensorboard is an extra: train anyway
            warnings.warn(
                "TensorBoard logs disabled: tensorboard is not installed (pip install 'darkproxy[tensorboard]')",
                stacklevel=4,
            )

    def elapsed(self) -> float:
        return self.elapsed0 + self.clock() - self.t0

    def checkpoint(self) -> None:
        _torch_save_atomic(
            self.ckpt_path,
            {
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "step": self.step,
                "best_val_psnr": self.best,
                "best_step": self.best_step,
                "elapsed": self.elapsed(),
                "config": asdict(self.cfg),
                "model_hparams": self.plan.hparams,
                "torch_rng": torch.get_rng_state(),
            },
        )

    def progress_frac(self) -> float:
        frac = self.step / self.plan.steps
        if self.cfg.time_budget_s:
            frac = max(frac, self.elapsed() / self.cfg.time_budget_s)
        return frac

    def validate(self) -> float:
        """Validation PSNR now; the best weights are kept."""
        psnr, ident = validate(self.model, self.val_ds, self.plan.device)
        self.identity_psnr = ident
        if psnr > self.best:
            self.best, self.best_step = psnr, self.step
            save_weights(self.run / "model.safetensors", self.model)
        if self.tb is not None:
            self.tb.add_scalar("val/psnr_display", psnr, self.step)
        return psnr

    def train_step(self, b: dict[str, Any], cur_lr: float) -> torch.Tensor:
        """One optimiser step on batch ``b``; returns the loss (on the device: no sync)."""
        device, model, opt, scaler = self.plan.device, self.model, self.opt, self.scaler
        for g in opt.param_groups:
            g["lr"] = cur_lr
        x = b["input"].to(device, non_blocking=True)
        y = b["output"].to(device, non_blocking=True)
        p = b["params"].to(device, non_blocking=True)
        origin = b["origin"].to(device) if "origin" in b else None
        with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.plan.amp):
            if "features" in b:  # pixel rows of a PixelMLP
                pred = cast("PixelMLP", model).head(b["features"].to(device, non_blocking=True), x, p)

            elif getattr(model, "takes_origin", False):
                pred = model(x, p, origin=origin)
            else:
                pred = model(x, p)
        mask = context_mask(origin, y.shape[-2], y.shape[-1], self.plan.context) if origin is not None else None
        loss = loss_fn(pred, y, self.cfg.loss, self.cfg.loss_space, mask)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            scaler.unscale_(opt)  # a no-op when the scaler is disabled
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)  # foreach=True fails on mps
        scaler.step(opt)
        scaler.update()
        self.step += 1
        return loss.detach()

    def run_steps(self, batches: Iterator[dict[str, Any]], hist_f: Any, bar: Any) -> bool:
        """Train to the end (or the time budget); returns whether the budget stopped it."""
        cfg, steps = self.cfg, self.plan.steps
        run_loss: Any = 0.0
        run_n = 0
        while self.step < steps:
            if cfg.time_budget_s is not None and self.elapsed() > cfg.time_budget_s:
                return True
            cur_lr = lr_at(self.step, self.progress_frac(), self.plan.lr, self.warm)
            run_loss = run_loss + self.train_step(next(batches), cur_lr)
            run_n += 1
            step = self.step
            val = self.validate() if (step % self.plan.val_every == 0 or step == steps) else None
            if step % cfg.log_every == 0 or val is not None or step == steps:
                lv = float(run_loss) / max(run_n, 1)
                if not math.isfinite(lv):
                    raise TrainError(f"training diverged by step {step} (loss {lv}); try a lower --lr")
                rec = {"step": step, "loss": lv, "lr": cur_lr, "val_psnr": val, "elapsed": round(self.elapsed(), 3)}
                hist_f.write(json.dumps(rec) + "\n")
                hist_f.flush()
                if self.tb is not None:
                    self.tb.add_scalar("train/loss", rec["loss"], step)
                    self.tb.add_scalar("train/lr", cur_lr, step)
                run_loss, run_n = 0.0, 0
                if bar is not None:
                    bar.set_postfix(loss=f"{lv:.4g}", best=f"{self.best:.2f}dB" if self.best > -math.inf else "-")
            if bar is not None:
                bar.update(1)
            if step % cfg.checkpoint_every == 0:
                self.checkpoint()
        return False


def _run_info(
    root: Path,
    cfg: TrainConfig,
    info: DatasetInfo,
    plan: _Plan,
    hparams: dict[str, Any],
    n_train: int,
    n_val: int,
    val_split: str,
) -> dict[str, Any]:
    """``run.json``: what the proxy is (status ``training`` until the run ends)."""
    return {
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
        "n_train": n_train,
        "outliers_left_out": plan.outliers_left_out,
        "n_val": n_val,
        "val_split": val_split,
        "status": "training",
        "torch_version": torch.__version__,
    }


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
    clock: Callable[[], float],
    init: Any = None,
) -> TrainResult:
    loop = _Loop(run, cfg, info, plan, val_ds, ckpt, ckpt_path, clock)
    if init is not None:  # the same architecture and hparams (init_config): its weights fit
        loop.model.load_state_dict(init.model.state_dict())
    hparams = dict(cast("dict[str, Any]", loop.model.hparams))  # every arch sets hparams (nn.Module attrs are untyped)
    run_info = _run_info(root, cfg, info, plan, hparams, len(train_ds), len(val_ds), val_split)
    write_json(run / "run.json", run_info, indent=1)
    loop.open_tensorboard()
    loop.t0 = clock()
    batches = _batches(train_ds, plan, cfg, loop.step, loop.model)
    hist_f = open(run / "history.jsonl", "a")  # noqa: SIM115 - closed in the training loop's finally
    bar = None
    if progress:
        from darkproxy.progress import progress_bar  # a tqdm bar on a terminal, a line every few seconds in a log

        bar = progress_bar(total=plan.steps, initial=loop.step, desc=f"train {info.module} ({plan.arch})", unit="step")
    loop.model.train()
    try:
        stopped_early = loop.run_steps(batches, hist_f, bar)
        if loop.best_step < 0 or (stopped_early and loop.best_step != loop.step):
            loop.validate()  # a time budget may stop before any validation
    finally:
        # also on KeyboardInterrupt / errors: the run can be resumed from here
        loop.checkpoint()
        hist_f.close()
        if bar is not None:
            bar.close()
        if loop.tb is not None:
            loop.tb.close()
    return _finish(run, info, plan, loop, run_info, val_split, stopped_early)


def _finish(
    run: Path,
    info: DatasetInfo,
    plan: _Plan,
    loop: _Loop,
    run_info: dict[str, Any],
    val_split: str,
    stopped_early: bool,
) -> TrainResult:
    """``metrics.json`` and the finished ``run.json``."""
    seconds = loop.elapsed()
    if loop.identity_psnr is None and not info.pre_demosaic:  # e.g. resumed a finished run
        loop.identity_psnr = validate(loop.model, loop.val_ds, plan.device)[1]
    metrics = {
        "best_val_psnr": loop.best,
        "best_step": loop.best_step,
        "steps": loop.step,
        "total_steps": plan.steps,
        "seconds": round(seconds, 3),
        "val_identity_psnr": loop.identity_psnr,
        "val_split": val_split,
        "n_val": len(loop.val_ds),
        "arch": plan.arch,
        "stopped_early": stopped_early,
    }
    write_json(run / "metrics.json", metrics, indent=1)
    run_info["status"] = "stopped_early" if stopped_early else "done"
    run_info["metrics"] = metrics
    write_json(run / "run.json", run_info, indent=1)
    return TrainResult(
        run, plan.arch, loop.best, loop.best_step, loop.step, seconds, loop.identity_psnr, val_split, stopped_early
    )
