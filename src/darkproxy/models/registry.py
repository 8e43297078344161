"""Architecture registry: ``@register_arch("name")`` on an ``nn.Module`` class,
``build_model(arch, n_params, ...)`` to instantiate one. A new architecture is
one file in this package that registers itself (imported by ``__init__``).

Contract of every registered model::

    forward(image (B, C, H, W) linear_rec2020, params (B, P) normalised [0, 1])
        -> (B, 3, H', W') linear_rec2020

differentiable w.r.t. both inputs. The class is called as
``cls(n_params=P, in_channels=C, out_channels=3, **hparams)`` and must expose
``hparams`` (a JSON-able dict of every constructor argument except the three
above) so that a run can rebuild it exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ArchEntry:
    """A registered architecture: its class and hparams forced by the name
    (e.g. ``spatial-film`` is ``spatial`` with ``conditioning="film"``)."""

    name: str
    cls: type
    preset: dict[str, Any] = field(default_factory=dict)
    pointwise: bool = False  # each output pixel depends only on the same input pixel
    pre_demosaic: bool = False  # takes a packed (B, 4, H/2, W/2) mosaic
    # a PixelMLP (features() + head()): trained on random pixels of many samples per step
    pixel_batches: bool = False
    # output px next to a training crop's edge that the loss must skip at least (a base that sees the crop's
    # edge where darktable saw the image: RCD's frame and reach)
    min_context: int = 0


_REGISTRY: dict[str, ArchEntry] = {}


def register_arch(
    name: str,
    preset: dict[str, Any] | None = None,
    pointwise: bool = False,
    pre_demosaic: bool = False,
    pixel_batches: bool = False,
    min_context: int = 0,
) -> Callable[[type], type]:
    """Class decorator registering an architecture under ``name``. Stack it to
    register variants with different ``preset`` hparams."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchEntry(name, cls, dict(preset or {}), pointwise, pre_demosaic, pixel_batches, min_context)
        return cls

    return deco


def list_archs() -> list[str]:
    """Names of the registered architectures (sorted)."""
    _load_builtin()
    return sorted(_REGISTRY)


def arch_entry(arch: str) -> ArchEntry:
    """The :class:`ArchEntry` of ``arch``; ``ValueError`` for an unknown name."""
    _load_builtin()
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[arch]


def arch_hparams(arch: str) -> list[str]:
    """The hparams ``arch``'s class takes (its keyword arguments past the sizes; a preset's are fixed by the name)."""
    e = arch_entry(arch)
    fixed = {"n_params", "in_channels", "out_channels", *e.preset}
    params = inspect.signature(e.cls).parameters.values()
    return [p.name for p in params if p.name not in fixed and p.kind is p.POSITIONAL_OR_KEYWORD]


def build_model(arch: str, n_params: int, in_channels: int = 3, out_channels: int = 3, **hparams: Any) -> nn.Module:
    """Instantiate architecture ``arch`` for ``n_params`` normalised params.
    ``hparams`` override the class defaults; a preset of the name (e.g.
    ``spatial-film``'s conditioning) wins over ``hparams``."""
    e = arch_entry(arch)
    return e.cls(n_params=n_params, in_channels=in_channels, out_channels=out_channels, **{**hparams, **e.preset})


def _load_builtin() -> None:
    # the built-in architectures register themselves on import
    from darkproxy.models import demosaic, demosaic_rcd, multiscale, pointwise, positional, spatial  # noqa: F401
