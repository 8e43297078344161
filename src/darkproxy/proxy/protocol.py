"""What tiling and the LUT fast path ask of a proxy (:class:`darkproxy.proxy.model.Proxy` is
one): a structural type, so that they need not import the model module, which imports them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import nn


class ProxyLike(Protocol):
    model: nn.Module
    module: str
    arch: str
    pointwise: bool
    pre_demosaic: bool

    @property
    def device(self) -> torch.device: ...

    def normalize(self, values: Mapping[str, Any], batch: int | None = None) -> torch.Tensor: ...

    def check_scale(self, scale: float | None) -> None: ...

    def __call__(
        self,
        image: torch.Tensor,
        params: torch.Tensor | Mapping[str, Any],
        scale: float | torch.Tensor | None = None,
        origin: torch.Tensor | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> Any: ...  # as nn.Module.__call__
