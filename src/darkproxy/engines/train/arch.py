"""Which architecture trains on a dataset (``--arch auto``: darktable's probe), its defaults, and
the render scales a run covers."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from darkproxy.data.dataset import DatasetInfo, ModuleDataset
from darkproxy.data.ranges import periodic_encoding
from darkproxy.data.scale import DIAGONAL_PX, FULL_SIZE_RADIUS, RENDER, ScaleRange, basis_for, sample_scale
from darkproxy.engines.train.config import TrainConfig, TrainError
from darkproxy.errors import DatasetError
from darkproxy.models.registry import arch_entry, arch_hparams


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
            need = "demosaic-rcd or demosaic" if info.pre_demosaic else "an RGB architecture"
            raise TrainError(
                f"arch {requested!r} does not fit this dataset ({'pre' if info.pre_demosaic else 'post'}-demosaic"
                f" module {info.module}): use {need}"
            )
        decision["reason"] = "requested"
        if e.pointwise and probe is False:
            decision["warning"] = "the darktable probe found this module is NOT pointwise"
            warnings.warn(
                f"training a pointwise proxy of {info.module}, which darktable's probe found not pointwise",
                stacklevel=4,
            )
        return requested, decision
    if info.pre_demosaic:
        decision["reason"] = "pre-demosaic module: packed mosaic input, darktable's RCD demosaic"
        return "demosaic-rcd", decision
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
    basis = basis_for(info.module) if dependent else RENDER
    measured = [sample_scale(r, basis) for r in train_ds.records]
    if basis == DIAGONAL_PX:  # soften: its radius follows the whole image's size (the diagonals the data hold)
        if any(r.get("render_scale") for r in train_ds.records) and not all(measured):
            raise DatasetError(
                f"{info.module}'s radius is {FULL_SIZE_RADIUS[info.module]}: its samples must record their raw's "
                "full_size (datasets generated before 2026-12-06 do not): generate it again"
            )
        return ScaleRange.from_scales(measured, dependent, basis)
    asked = (info.raw.get("scales") or {}).get("range") if isinstance(info.raw.get("scales"), dict) else None
    # a drawn range is the trained range, ends included (the draws seldom land on them)
    return ScaleRange.from_scales([*measured, *(asked or [])] if any(measured) else [], dependent)


def model_hparams(cfg: TrainConfig, info: DatasetInfo, arch: str) -> dict[str, Any]:
    """The hparams to build ``arch`` with: ``cfg``'s, plus the dataset's angle sliders (``periodic``:
    :func:`~darkproxy.data.ranges.periodic_encoding`) where the architecture reads them so and ``cfg`` does not
    say otherwise (``periodic: []`` turns it off)."""
    if "periodic" in cfg.hparams or "periodic" not in arch_hparams(arch):
        return dict(cfg.hparams)
    rows = periodic_encoding(info.param_space)
    return {**cfg.hparams, "periodic": rows} if rows else dict(cfg.hparams)
