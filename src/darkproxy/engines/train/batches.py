"""Training batches: random pixels of many samples (per-pixel MLPs) or crops with their context,
and the mask that keeps the loss off a crop's context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils.data import DataLoader, RandomSampler

from darkproxy.data.dataset import ModuleDataset, PixelBatches
from darkproxy.engines.train.config import TrainConfig, TrainError, _Plan

if TYPE_CHECKING:
    from darkproxy.models.layers import PixelMLP


def _fit_crop(ds: ModuleDataset, crop: int, context: int, min_context: int = 0) -> tuple[int, int]:
    """Shrink ``crop`` (then ``context``, never under ``min_context``: what the architecture must see around a
    crop, e.g. demosaic-rcd's RCD reach) so that ``crop + 2 * context`` fits the smallest image of ``ds`` (crops
    of one batch must share a size). Raises :class:`TrainError` where not even a 2 px crop fits."""
    sides = [min(r["shape"][1:]) for r in ds.records if len(r.get("shape") or ()) == 3]
    if not sides:
        return crop, context
    side = min(sides) - min(sides) % 2
    if crop + 2 * context > side:
        context = min(context, max(min_context, (side - 16) // 4 * 2))
        crop = min(crop, side - 2 * context)
        if crop < 2:
            raise TrainError(
                f"the smallest training image ({min(sides)} px) cannot hold a crop with the {context} px of "
                f"context each side this architecture needs: generate with a larger --size"
            )
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


def _infinite(loader: DataLoader) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader
