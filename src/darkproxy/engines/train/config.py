"""What a training run is asked (:class:`TrainConfig`), how it resolved it (:class:`_Plan`),
what it reports (:class:`TrainResult`), and the device it runs on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from darkproxy.data.scale import ScaleRange
from darkproxy.errors import DarkproxyError

LOSSES = ("l1", "mse", "charbonnier")


class TrainError(DarkproxyError):
    """A training request that cannot run (bad option, existing run, ...)."""


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
    # a run folder or zoo:MODULE whose weights start the training (engines.train.warmstart); None: a random draw
    init: str | None = None

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
    # the model's hparams: the config's, with what the dataset adds (arch.model_hparams); a resumed run's are its
    # checkpoint's, so that a plan's config compares equal to its checkpoint's (zoo.training._same_training)
    hparams: dict[str, Any] = field(default_factory=dict)

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
