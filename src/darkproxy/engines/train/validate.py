"""Validation during training: display PSNR of the model (and of the identity) on the
validation split (``val``, else ``test``, else train samples held out)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from darkproxy.colour.metrics import display_psnr_batch
from darkproxy.data.dataset import ModuleDataset, split_indices
from darkproxy.engines.train.config import TrainConfig
from darkproxy.errors import DatasetError


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
        stacklevel=4,
    )
    ds = ModuleDataset(root, "train", crop=cfg.val_crop, flips=False, seed=cfg.seed, indices=held, center_crop=True)
    return _cap(ds, cfg.val_max), "train-holdout", kept


def _cap(ds: ModuleDataset, n: int) -> ModuleDataset:
    if len(ds) > n:  # evenly spaced, deterministic
        ds.records = [ds.records[int(i)] for i in np.linspace(0, len(ds) - 1, n).round().astype(int)]
    return ds


@torch.no_grad()
def validate(model: torch.nn.Module, ds: ModuleDataset, device: torch.device) -> tuple[float, float | None]:
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
