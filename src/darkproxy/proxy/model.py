"""A trained proxy, loaded from its run folder.

>>> proxy = Proxy.load("runs/exposure")
>>> y = proxy(x, {"exposure": 1.0})               # x: (B, 3, H, W) linear_rec2020
>>> y = proxy(x, proxy.normalize({"exposure": torch.tensor([0.5, 1.0])}))
>>> y = proxy(x, {"radius": 3.0}, scale=0.25)        # a local module: the render scale

A proxy of a scale-dependent module knows the render scales it was trained on
(``scale_range``, :mod:`darkproxy.data.scale`) and refuses others; one trained over
a range takes the scale as an extra input (soften's: the whole image's diagonal in output
px, :meth:`Proxy.scale_for`, as its radius follows the image's size).

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
from darkproxy.data.ranges import with_periods
from darkproxy.data.scale import DIAGONAL_PX, RENDER, ScaleRange, full_size_problem, output_diagonal
from darkproxy.errors import DarkproxyError, ScaleError, UnknownParam
from darkproxy.models.registry import arch_entry, build_model
from darkproxy.proxy.locate import resolve_run


class Proxy(nn.Module):
    """A param-conditioned differentiable replica of one darktable module.

    Attributes: ``module`` (darktable operation name), ``param_space``
    (:class:`~darkproxy.data.paramspace.ParamSpace`), ``run_info`` (the run's
    ``run.json``), ``arch``, ``pre_demosaic`` (input is the packed mosaic),
    ``pointwise`` (architecture is per-pixel), ``model`` (the network),
    ``run_dir`` (the run folder, when loaded from one), ``scale_range`` (the
    render scales it was trained on; ``None`` for a run that did not record them)."""

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
        self.scale_range = ScaleRange.from_json(run_info.get("scale_range"))

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike[str], device: str | torch.device = "cpu", trainable: bool = False
    ) -> Proxy:
        """Load ``RUN/run.json`` + ``RUN/model.safetensors`` (best weights).
        ``run_dir`` may be ``zoo:MODULE`` (the zoo's proxy: :mod:`darkproxy.proxy.locate`)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

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
        space = with_periods(ParamSpace.from_json(info["param_space"]))
        try:
            arch_entry(info["arch"])
        except ValueError as e:
            raise DarkproxyError(f"{run}: {e}") from None
        hp = {k: v for k, v in info.get("hparams", {}).items()}
        scales = ScaleRange.from_json(info.get("scale_range"))
        model = build_model(
            info["arch"],
            len(space) + int(bool(scales and scales.conditioned)),
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
        if "raw_size" not in info and (run / "zoo.json").is_file():  # the zoo records its training raws' size
            try:
                info["raw_size"] = json.loads((run / "zoo.json").read_text()).get("raw_size")
            except json.JSONDecodeError as e:
                raise DarkproxyError(f"{run / 'zoo.json'} is corrupt: {e}") from None
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

    @property
    def scale_conditioned(self) -> bool:
        """Does the network take the render scale as an input?"""
        return bool(self.scale_range and self.scale_range.conditioned)

    def check_scale(self, scale: float | None) -> None:
        """Raise :class:`~darkproxy.errors.ScaleError` for a render scale this
        proxy was not trained on, or for ``None`` (an unknown scale) when its
        output depends on the scale (no-op for scale-independent proxies and for
        runs that did not record their scales)."""
        sr = self.scale_range
        if sr is None:
            return
        if scale is None and sr.dependent:  # ScaleRange.check lets None through unless conditioned
            raise ScaleError(
                f"this {self.module} proxy depends on the render scale (trained at {sr}): pass the image's scale"
            )
        sr.check(scale, f"{self.module} proxy")

    def scale_for(self, scale: float | None, full_size: tuple[float, float] | None = None) -> float | None:
        """What this proxy's network takes as its scale for an image at render ``scale`` whose full-resolution
        ``(width, height)`` is ``full_size`` (``None``: unknown): ``scale`` itself, or for a module whose radius
        follows the whole image's size (:data:`~darkproxy.data.scale.FULL_SIZE_RADIUS`: soften) the image's
        diagonal in output px (:func:`~darkproxy.data.scale.output_diagonal`). Checked against what it learnt:
        :class:`~darkproxy.errors.ScaleError` outside it, :class:`~darkproxy.errors.DarkproxyError` where the
        size is needed and unknown (or, for a soften proxy conditioned on the render scale, not its raws')."""
        basis = self.scale_range.basis if self.scale_range is not None else RENDER
        why = full_size_problem(
            self.module, self.run_info.get("raw_size"), full_size, str(self.run_dir or self.module), basis
        )
        if why is not None:
            raise DarkproxyError(why)
        if basis == DIAGONAL_PX and scale is not None and full_size is not None:
            scale = output_diagonal(scale, full_size)
        self.check_scale(scale)
        return scale

    def forward(
        self,
        image: torch.Tensor,
        params: torch.Tensor | Mapping[str, Any],
        scale: float | torch.Tensor | None = None,
        origin: torch.Tensor | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> torch.Tensor:
        """``image (B, C, H, W)`` linear_rec2020 (``C = 4`` packed mosaic for a
        pre-demosaic proxy), ``params``: normalised ``(B, P)`` / ``(P,)`` tensor
        or a dict of named values -> ``(B, 3, H', W')`` linear_rec2020.

        ``scale``: the render scale of ``image`` (output px per raw px; a float
        or ``(B,)``; for a soften proxy the whole image's diagonal in output px:
        :meth:`scale_for` converts), checked against :attr:`scale_range` and fed to a
        scale-conditioned network; required (:class:`~darkproxy.errors.ScaleError`
        without it) by a proxy whose module depends on the scale. ``origin`` ``(B, 4)`` = ``(y0, x0, H, W)``:
        where ``image`` lies in a larger image (tiles), for architectures that
        see the image border. ``roi`` ``(y0, y1, x0, x1)``: only that region of
        the output (px of ``image``), for architectures that compute no more
        than it (``takes_roi``: a tile's halo is read, not computed on)."""
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
        if scale is not None:
            for v in torch.as_tensor(scale).detach().reshape(-1).tolist():
                self.check_scale(float(v))
        else:
            self.check_scale(None)  # raises for a scale-dependent proxy: its output depends on the scale
        p = p.to(image.device)
        if self.scale_conditioned:
            assert self.scale_range is not None and scale is not None
            f = self.scale_range.feature(torch.as_tensor(scale).detach().cpu()).to(image.device).reshape(-1, 1)
            p = torch.cat([p, f.expand(B, 1)], 1)
        if roi is not None:
            if not getattr(self.model, "takes_roi", False):
                raise DarkproxyError(f"the {self.arch} architecture computes whole images (no roi)")
            out: torch.Tensor = self.model(image, p, origin=origin, roi=roi)
        elif origin is not None and getattr(self.model, "takes_origin", False):
            out = self.model(image, p, origin=origin)
        else:
            out = self.model(image, p)
        return out[0] if squeeze else out

    def at_scale(self, scale: float | None, full_size: tuple[float, float] | None = None) -> ScaledProxy:
        """This proxy fixed at render ``scale`` of an image whose full-resolution ``(width, height)`` is
        ``full_size`` (:meth:`scale_for`, checked now; ``None`` is refused by a scale-dependent proxy):
        ``at_scale(s)(x, p)`` is ``self(x, p, scale=scale_for(s))``, for code that calls proxies as ``f(x, p)``
        (the regression optimiser, pipelines)."""
        return ScaledProxy(self, self.scale_for(scale, full_size))

    def apply_image(  # not ``apply``: nn.Module.apply(fn) must keep working
        self,
        image: np.ndarray,
        params: Mapping[str, Any],
        scale: float | None = None,
        exact: bool = False,
        tile: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """This proxy on a whole image of any size, without gradients: ``image
        (C, H, W)`` numpy linear_rec2020 (or the packed mosaic) -> ``(3, H', W')``
        float32 linear_rec2020. A pointwise proxy goes through its baked 3D LUT
        (unless ``exact``), others through the network tile by tile, in bounded
        memory (:func:`darkproxy.proxy.tiling.apply_image`)."""
        from darkproxy.proxy.tiling import DEFAULT_TILE, apply_image

        res = apply_image(self, image, params, scale=scale, exact=exact, tile=tile or DEFAULT_TILE, progress=progress)
        return res.output


class ScaledProxy(nn.Module):
    """A :class:`Proxy` at a fixed render scale (see :meth:`Proxy.at_scale`);
    every other attribute is the proxy's."""

    def __init__(self, proxy: Proxy, scale: float | None) -> None:
        super().__init__()
        self.proxy = proxy
        self.scale = scale

    def forward(
        self,
        image: torch.Tensor,
        params: torch.Tensor | Mapping[str, Any],
        scale: float | torch.Tensor | None = None,
        origin: torch.Tensor | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> torch.Tensor:
        s = self.scale if scale is None else scale
        out: torch.Tensor = self.proxy(image, params, scale=s, origin=origin, roi=roi)
        return out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["proxy"], name)


class RunLoadError(DarkproxyError):
    """A proxy run folder that is missing or cannot be loaded."""


def load_proxy(run_dir: str | os.PathLike[str], device: str = "cpu") -> Any:
    """:meth:`Proxy.load` with one-line errors for a missing or corrupt run
    (``zoo:MODULE`` accepted)."""
    d = resolve_run(run_dir)
    if not d.is_dir():
        raise RunLoadError(f"run folder {d} does not exist")
    if not (d / "run.json").is_file():
        raise RunLoadError(f"{d} is not a darkproxy run (no run.json)")
    try:
        return Proxy.load(d, device=device)
    except DarkproxyError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise RunLoadError(f"cannot load the proxy in {d}: {type(e).__name__}: {msg}") from None
