"""``TrainConfig.init``: a training that starts from another run's weights (a zoo proxy fine-tuned on other
photos, or with another loss), not from a random draw."""

from __future__ import annotations

import dataclasses
from typing import Any

from darkproxy.data.dataset import DatasetInfo
from darkproxy.engines.train.config import TrainConfig, TrainError


def init_config(cfg: TrainConfig, info: DatasetInfo) -> tuple[TrainConfig, Any]:
    """``cfg`` with the architecture and hparams of the run ``cfg.init`` names (a folder or ``zoo:MODULE``), and
    that run's :class:`~darkproxy.proxy.Proxy`. Refused in one line where its weights cannot mean the same on
    this dataset: another module, other sliders or ranges (the params it reads are normalised by them), another
    architecture or hparams than ``cfg`` asks for."""
    from darkproxy.proxy import Proxy

    proxy = Proxy.load(str(cfg.init))
    what = f"--init {cfg.init}"
    if proxy.module != info.module:
        raise TrainError(f"{what}: a proxy of {proxy.module}, the dataset is {info.module}'s")
    if proxy.param_space.to_json() != info.param_space.to_json():
        raise TrainError(
            f"{what}: its sliders or their ranges ({', '.join(proxy.param_space.names)}) differ from the dataset's "
            f"({', '.join(info.param_space.names)}); the weights read params normalised by them"
        )
    if cfg.arch not in ("auto", proxy.arch):
        raise TrainError(f"{what}: its architecture is {proxy.arch}, not {cfg.arch}")
    hp = dict(proxy.run_info.get("hparams", {}))
    if {**hp, **cfg.hparams} != hp:
        raise TrainError(f"{what}: its hparams are {hp}; the weights fix them (leave --hparams out)")
    return dataclasses.replace(cfg, arch=proxy.arch, hparams=hp), proxy


def check_scales(proxy: Any, conditioned: bool, what: str) -> None:
    """The init run and this training must agree on whether the render scale is an input (its weights' width)."""
    had = bool(proxy.scale_range and proxy.scale_range.conditioned)
    if had != conditioned:
        said = "takes the render scale as an input" if had else "does not take the render scale"
        raise TrainError(f"--init {what}: it {said}; this dataset's samples say otherwise")
