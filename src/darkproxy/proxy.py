"""A trained proxy, loaded from its run folder.

>>> proxy = Proxy.load("runs/exposure")
>>> y = proxy(x, {"exposure": 1.0})               # x: (B, 3, H, W) linear_rec2020
>>> y = proxy(x, proxy.normalize({"exposure": torch.tensor([0.5, 1.0])}))

The weights are frozen (``requires_grad=False``) and the model is in eval
mode; gradients flow to the image and to the params.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from darkproxy.data.paramspace import ParamSpace
from darkproxy.errors import DarkproxyError, UnknownParam
from darkproxy.models.registry import arch_entry, build_model


class Proxy(nn.Module):
    """A param-conditioned differentiable replica of one darktable module.

    Attributes: ``module`` (darktable operation name), ``param_space``
    (:class:`~darkproxy.data.paramspace.ParamSpace`), ``run_info`` (the run's
    ``run.json``), ``arch``, ``pre_demosaic`` (input is the packed mosaic),
    ``pointwise`` (architecture is per-pixel), ``model`` (the network),
    ``run_dir`` (the run folder, when loaded from one)."""

    def __init__(self, model: nn.Module, param_space: ParamSpace, run_info: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.param_space = param_space
        self.run_info = dict(run_info)
        self.module = str(run_info.get("module", param_space.module))
        self.arch = str(run_info.get("arch", ""))
        self.pre_demosaic = bool(run_info.get("pre_demosaic", False))
        self.pointwise = bool(run_info.get("pointwise", False))
        self.run_dir: Path | None = None  # the run folder it was loaded from (set by load)

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike[str], device: str | torch.device = "cpu", trainable: bool = False
    ) -> Proxy:
        """Load ``RUN/run.json`` + ``RUN/model.safetensors`` (best weights).
        ``run_dir`` may be ``zoo:MODULE`` (the zoo's proxy: :mod:`darkproxy.zoo`)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from darkproxy.zoo import resolve_run

        run = resolve_run(run_dir)
        try:
            info = json.loads((run / "run.json").read_text())
        except FileNotFoundError:
            raise DarkproxyError(f"{run} is not a darkproxy run (no run.json)") from None
        except json.JSONDecodeError as e:
            raise DarkproxyError(f"{run / 'run.json'} is corrupt: {e}") from None
        weights = run / "model.safetensors"
        if not weights.is_file():
            raise DarkproxyError(f"{run} has no model.safetensors (training has not validated yet)")
        space = ParamSpace.from_json(info["param_space"])
        try:
            arch_entry(info["arch"])
        except ValueError as e:
            raise DarkproxyError(f"{run}: {e}") from None
        hp = {k: v for k, v in info.get("hparams", {}).items()}
        model = build_model(
            info["arch"],
            len(space),
            in_channels=int(info.get("in_channels", 4 if info.get("pre_demosaic") else 3)),
            out_channels=int(info.get("out_channels", 3)),
            **hp,
        )
        try:
            model.load_state_dict(load_file(str(weights), device="cpu"))
        except (RuntimeError, OSError, SafetensorError) as e:  # corrupt file, or keys/shapes of another architecture
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DarkproxyError(
                f"{weights} does not fit architecture {info['arch']!r} "
                f"(a run from another darkproxy version, or a corrupt file): {first}"
            ) from None
        proxy = cls(model, space, info).to(device)
        proxy.run_dir = run.resolve()
        proxy.eval()
        proxy.requires_grad_(trainable)
        return proxy

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def n_params(self) -> int:
        return len(self.param_space)

    def normalize(self, values: Mapping[str, Any], batch: int | None = None) -> torch.Tensor:
        """Named values (float, int, bool or tensor; missing names take the
        space's defaults) -> normalised params ``(B, P)`` float32 on the proxy's
        device. Differentiable for float/int tensor values (``(v - lo) / (hi - lo)``);
        bools and enums map to 0/1 and index / (n - 1). ``B`` is the largest
        leading size of a tensor value, else ``batch`` or 1. Not clipped: values
        outside the training range extrapolate."""
        unknown = set(values) - set(self.param_space.names) - set(self.param_space.fixed)
        if unknown:
            raise UnknownParam(
                f"{', '.join(sorted(unknown))}: not a free parameter of this {self.module} proxy; "
                f"free: {', '.join(self.param_space.names)}"
            )
        dev = self.device
        cols = []
        for s in self.param_space.specs:
            v = values.get(s.name, s.default)
            if isinstance(v, torch.Tensor) and s.kind in ("float", "int"):
                u = (
                    (v.to(dev, torch.float32) - s.lo) / (s.hi - s.lo)
                    if s.hi != s.lo
                    else torch.zeros_like(v, dtype=torch.float32)
                )
            elif isinstance(v, (torch.Tensor, np.ndarray)):
                arr = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v).reshape(-1)
                u = torch.tensor([s.normalize(float(a)) for a in arr], dtype=torch.float32, device=dev)
            else:
                u = torch.tensor(s.normalize(v), dtype=torch.float32, device=dev)
            cols.append(u.reshape(-1))
        n = max([c.shape[0] for c in cols if c.shape[0] > 1] + [batch or 1])
        if not cols:
            return torch.zeros(n, 0, device=dev)
        return torch.stack([c.expand(n) for c in cols], 1)

    def denormalize(self, u: torch.Tensor | np.ndarray) -> dict[str, Any] | list[dict[str, Any]]:
        """Normalised ``(P,)`` -> ``{name: value}`` (ints rounded, enums
        snapped, clipped to the training range); ``(B, P)`` -> a list of dicts."""
        a = np.asarray(u.detach().cpu() if isinstance(u, torch.Tensor) else u, dtype=np.float64)
        if a.ndim == 2:
            return [self.param_space.denormalize(r) for r in a]
        return self.param_space.denormalize(a)

    def forward(self, image: torch.Tensor, params: torch.Tensor | Mapping[str, Any]) -> torch.Tensor:
        """``image (B, C, H, W)`` linear_rec2020 (``C = 4`` packed mosaic for a
        pre-demosaic proxy), ``params``: normalised ``(B, P)`` / ``(P,)`` tensor
        or a dict of named values -> ``(B, 3, H', W')`` linear_rec2020."""
        squeeze = image.ndim == 3
        if squeeze:
            image = image[None]
        B = image.shape[0]
        if isinstance(params, Mapping):
            p = self.normalize(params, batch=B)
        else:
            p = torch.as_tensor(params, dtype=torch.float32, device=image.device)
            if p.ndim == 1:
                p = p[None]
        if p.shape[-1] != self.n_params:
            raise DarkproxyError(f"{self.module} proxy takes {self.n_params} params, got {p.shape[-1]}")
        if p.shape[0] != B:
            p = p.expand(B, -1)
        out: torch.Tensor = self.model(image, p.to(image.device))
        return out[0] if squeeze else out
