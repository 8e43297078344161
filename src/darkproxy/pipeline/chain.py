"""Chained proxies (:class:`ProxyPipeline`, and :class:`FlatPipelineProxy`: one flat param
space for the regression engine) and darktable's histories and renders of a chain."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from darkproxy.pipeline.config import PipelineConfig, PipelineError
from darkproxy.proxy import Proxy


class ProxyPipeline(nn.Module):
    """Chained proxies. ``forward(image (B,C,H,W), params: list of (B,P_i)
    normalised tensors, one per stage) -> (B,3,H,W) linear Rec2020``; with
    ``return_stages=True`` also every stage's output. :meth:`set_scale` gives
    the images' render scale to every stage (checked against each proxy's
    trained range); without it a stage whose module depends on the scale
    refuses to run (:class:`~darkproxy.errors.ScaleError`)."""

    def __init__(self, proxies: Sequence[nn.Module], cfg: PipelineConfig | None = None) -> None:
        super().__init__()
        self.stages = nn.ModuleList(proxies)
        self.cfg = cfg
        self.scale: float | None = None
        self.stage_scales: list[float | None] = [None] * len(proxies)  # what each stage's network takes

    def set_scale(self, scale: float | None, full_size: tuple[float, float] | None = None) -> None:
        """Run every stage at render ``scale`` of an image whose full-resolution ``(width, height)`` is
        ``full_size`` (soften's proxy needs it: :meth:`Proxy.scale_for`; raises
        :class:`~darkproxy.errors.ScaleError` when a stage was not trained at it)."""
        stage_scales = []
        for p in self.stages:
            scale_for = getattr(p, "scale_for", None)
            stage_scales.append(scale_for(scale, full_size) if scale_for is not None else scale)
        self.scale, self.stage_scales = scale, stage_scales

    @property
    def proxies(self) -> list[Proxy]:
        """The stages as a typed list (``stages`` is their ``nn.ModuleList``)."""
        return cast("list[Proxy]", list(self.stages))

    @classmethod
    def load(cls, cfg: PipelineConfig, device: str = "cpu") -> ProxyPipeline:
        proxies = []
        for s in cfg.stages:
            if not s.run.is_dir():
                raise PipelineError(f"stage {s.module}: run folder {s.run} does not exist (train it first)")
            proxies.append(Proxy.load(s.run, device=device))
        return cls(proxies, cfg)

    @property
    def modules_names(self) -> list[str]:
        return [p.module for p in self.proxies]

    def default_params(self, batch: int = 1, device: str | torch.device = "cpu") -> list[torch.Tensor]:
        """Per stage normalised params: defaults overridden by the config's ``fixed``."""
        out = []
        for i, p in enumerate(self.proxies):
            vals = p.param_space.defaults()
            if self.cfg is not None:
                vals.update(self.cfg.stages[i].fixed)
            out.append(torch.as_tensor(p.param_space.normalize(vals), device=device).expand(batch, -1).clone())
        return out

    def free_mask(self) -> list[torch.Tensor]:
        """Per stage boolean mask of the params that `pipeline regress` optimises."""
        masks = []
        for i, p in enumerate(self.proxies):
            names = p.param_space.names
            free = self.cfg.stages[i].free if self.cfg is not None else None
            if free is not None:
                unknown = set(free) - set(names)
                if unknown:
                    raise PipelineError(
                        f"stage {p.module}: unknown free param(s) {', '.join(sorted(unknown))}; "
                        f"the proxy has {', '.join(names)}"
                    )
            fixed = set(self.cfg.stages[i].fixed) if self.cfg is not None else set()
            masks.append(torch.tensor([(free is None or n in free) and n not in fixed for n in names]))
        return masks

    def forward(self, image: torch.Tensor, params: Sequence[torch.Tensor], return_stages: bool = False):
        x = image
        outs = []
        for proxy, p, s in zip(self.stages, params, self.stage_scales, strict=False):
            x = proxy(x, p, scale=s)  # None (no set_scale) is refused by a scale-dependent stage
            outs.append(x)
        return (x, outs) if return_stages else x


def chain_histories(dt, base, stages: Sequence[tuple[str, Mapping[str, Any]]]):
    """darktable histories for a chain: returns ``(input_sidecar, [stage_output_sidecars])``.

    ``base`` is the raw's default history; ``stages`` is ``[(module, params), ...]``
    in pipe order. Modules after the first stage that are not stages are disabled
    (pass-through modules stay on). Stage k's output history has stages > k disabled."""
    from darkproxy.darktable.tapout import PASS_THROUGH

    order = base.pipe_order(dt.schemas)
    mods = [m for m, _ in stages]
    first = order.index(mods[0])
    base = base.compressed()
    others = [
        op
        for op in order[first + 1 :]
        if op not in mods and op not in PASS_THROUGH and (it := base.find(op)) is not None and it.enabled
    ]
    updates = {m: dict(p) for m, p in stages}
    full = dt.edit(base, updates=updates, enable=mods, disable=others)
    input_side = dt.edit(full, disable=mods)
    outs = []
    for k in range(len(mods)):
        outs.append(dt.edit(full, disable=mods[k + 1 :]))
    return input_side, outs


class FlatPipelineProxy(nn.Module):
    """A :class:`ProxyPipeline` seen as one proxy with one flat param space
    (names ``"module.param"``), so single-module slider regression
    (:func:`darkproxy.engines.regress.regress`) optimises all stages jointly.
    ``forward(image, u (B, sum P_i))``."""

    def __init__(self, pipe: ProxyPipeline) -> None:
        super().__init__()
        from darkproxy.data.paramspace import ParamSpace

        self.pipe = pipe
        specs, fixed, self.sizes = [], {}, []
        for i, p in enumerate(pipe.proxies):
            self.sizes.append(len(p.param_space))
            for s in p.param_space.specs:
                specs.append(dataclasses.replace(s, name=f"{p.module}.{s.name}"))
            if pipe.cfg is not None:
                fixed.update({f"{p.module}.{k}": v for k, v in pipe.cfg.stages[i].fixed.items()})
        self.param_space = ParamSpace.of("+".join(pipe.modules_names), specs, fixed)
        self.module = self.param_space.module
        self.pointwise = all(getattr(p, "pointwise", False) for p in pipe.stages)

    def split(self, u: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(u, self.sizes, dim=-1))

    def free_names(self) -> list[str]:
        names = []
        for p, mask in zip(self.pipe.proxies, self.pipe.free_mask(), strict=True):
            names += [f"{p.module}.{n}" for n, m in zip(p.param_space.names, mask.tolist(), strict=True) if m]
        return names

    def forward(self, image: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.pipe(image, self.split(u))


def stage_settings(pipe: ProxyPipeline, values: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``[(module, params for darktable)]`` in chain order: each stage's defaults,
    the values its run pinned at generation (``--fix``) and ``values[module]``,
    so darktable renders the settings the proxies were trained on."""
    return [(p.module, p.param_space.for_darktable(values.get(p.module, {}))) for p in pipe.proxies]


def render_chain(
    dt, raw: Path, stages: Sequence[tuple[str, Mapping[str, Any]]], max_size: int | None, with_input: bool = True
):
    """darktable renders of a chain: (input or None, [stage outputs]) as float32 (3, H, W)."""
    import tempfile

    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
    from darkproxy.errors import DarktableRenderError

    base = dt.default_history(raw)
    in_side, outs = chain_histories(dt, base, stages)
    with tempfile.TemporaryDirectory(prefix="darkproxy-chain-") as td:
        jobs = ([RenderJob(raw, in_side, Path(td) / "in.tif")] if with_input else []) + [
            RenderJob(raw, s, Path(td) / f"s{k}.tif") for k, s in enumerate(outs)
        ]
        res = dt.renderer(max_size=max_size).render_batch(jobs)
        for x in res:
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(x.message)
        imgs = [read_tiff(p) for p in res]
    return (imgs[0] if with_input else None), imgs[(1 if with_input else 0) :]
