"""Differentiable pipelines: trained proxies chained in darktable's pipe order.

A pipeline config (TOML) lists the stages, in pipe order::

    name = "demo"
    [[stage]]
    module = "exposure"
    run = "runs/exposure"          # a trained proxy run (relative to this file)
    free = ["exposure"]            # optimised by `pipeline regress` (default: all of the run's params)
    fixed = { black = 0.0 }        # pinned values (default: the run's defaults)

    [[stage]]
    module = "colorbalancergb"
    run = "runs/colorbalancergb"

:func:`check_pipeline` verifies the order against darktable's own pipe order
(read from libdarktable, not a hand-kept list) and that neighbouring proxies
share a data space (a stage's output, linear Rec2020, must be the next stage's
input; only the first stage may take the packed mosaic).

When darktable renders a pipeline (evaluation, verification), the raw's default
history is used upstream of the first stage, every module between and after
the stages that is not a stage (nor one of darktable's pass-through modules) is
disabled, so that darktable computes exactly what the chain of proxies models.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from darkproxy.errors import DarkproxyError


class PipelineError(DarkproxyError):
    """A pipeline config that is malformed, out of order or inconsistent."""


@dataclass
class StageConfig:
    module: str
    run: Path
    free: list[str] | None = None  # None: all of the run's params
    fixed: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    name: str
    stages: list[StageConfig]
    path: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "PipelineConfig":
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise PipelineError(f"pipeline config {p} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise PipelineError(f"pipeline config {p} is not valid TOML: {e}") from None
        stages = []
        for i, s in enumerate(data.get("stage", [])):
            if "module" not in s or "run" not in s:
                raise PipelineError(f"{p}: stage {i + 1} needs `module` and `run`")
            run = Path(s["run"]).expanduser()
            if not run.is_absolute():
                run = (p.parent / run).resolve()
            free = s.get("free")
            if free is not None and not isinstance(free, list):
                raise PipelineError(f"{p}: stage {i + 1} `free` must be a list of param names")
            stages.append(StageConfig(module=str(s["module"]), run=run, free=free, fixed=dict(s.get("fixed", {}))))
        if not stages:
            raise PipelineError(f"{p}: no [[stage]] entries")
        return cls(name=str(data.get("name", p.stem)), stages=stages, path=p)

    def dump(self) -> str:
        lines = [f'name = "{self.name}"', ""]
        for s in self.stages:
            lines += ["[[stage]]", f'module = "{s.module}"', f'run = "{s.run}"']
            if s.free is not None:
                lines.append("free = [" + ", ".join(f'"{x}"' for x in s.free) + "]")
            if s.fixed:
                lines.append("fixed = { " + ", ".join(f"{k} = {v!r}" for k, v in s.fixed.items()) + " }")
            lines.append("")
        return "\n".join(lines)


@dataclass
class CheckResult:
    ok: bool
    problems: list[str]
    order: list[str]
    spaces: list[tuple[str, str]]  # per stage (input space, output space)


def stage_spaces(run_info: Mapping[str, Any]) -> tuple[str, str]:
    """(input, output) data space of a proxy run."""
    inp = "packed_mosaic" if run_info.get("pre_demosaic") else run_info.get("data_space", "linear_rec2020")
    return inp, run_info.get("data_space", "linear_rec2020")


def check_pipeline(cfg: PipelineConfig, pipe_order: Sequence[str], run_infos: Sequence[Mapping[str, Any]]) -> CheckResult:
    """Order and data-space checks (see module docstring)."""
    problems: list[str] = []
    mods = [s.module for s in cfg.stages]
    for m in mods:
        if m not in pipe_order:
            problems.append(f"{m} is not a module of darktable's pipe")
    known = [m for m in mods if m in pipe_order]
    pos = [pipe_order.index(m) for m in known]
    if pos != sorted(pos):
        problems.append("stages are not in darktable's pipe order: expected " + " -> ".join(sorted(known, key=pipe_order.index)))
    if len(set(mods)) != len(mods):
        problems.append("a module appears twice (multiple instances are not supported)")
    spaces = []
    for s, info in zip(cfg.stages, run_infos):
        if info.get("module") != s.module:
            problems.append(f"run {s.run} is a proxy of {info.get('module')}, not {s.module}")
        spaces.append(stage_spaces(info))
    for i in range(1, len(spaces)):
        if spaces[i - 1][1] != spaces[i][0]:
            problems.append(f"{mods[i - 1]} outputs {spaces[i - 1][1]} but {mods[i]} expects {spaces[i][0]}")
    return CheckResult(not problems, problems, [m for m in pipe_order if m in mods], spaces)


class ProxyPipeline(nn.Module):
    """Chained proxies. ``forward(image (B,C,H,W), params: list of (B,P_i)
    normalised tensors, one per stage) -> (B,3,H,W) linear Rec2020``; with
    ``return_stages=True`` also every stage's output."""

    def __init__(self, proxies: Sequence[nn.Module], cfg: PipelineConfig | None = None) -> None:
        super().__init__()
        self.stages = nn.ModuleList(proxies)
        self.cfg = cfg

    @classmethod
    def load(cls, cfg: PipelineConfig, device: str = "cpu") -> "ProxyPipeline":
        from darkproxy.proxy import Proxy

        proxies = []
        for s in cfg.stages:
            if not s.run.is_dir():
                raise PipelineError(f"stage {s.module}: run folder {s.run} does not exist (train it first)")
            proxies.append(Proxy.load(s.run, device=device))
        return cls(proxies, cfg)

    @property
    def modules_names(self) -> list[str]:
        return [p.module for p in self.stages]

    def default_params(self, batch: int = 1, device: str | torch.device = "cpu") -> list[torch.Tensor]:
        """Per stage normalised params: defaults overridden by the config's ``fixed``."""
        out = []
        for i, p in enumerate(self.stages):
            vals = p.param_space.defaults()
            if self.cfg is not None:
                vals.update(self.cfg.stages[i].fixed)
            out.append(torch.as_tensor(p.param_space.normalize(vals), device=device).expand(batch, -1).clone())
        return out

    def free_mask(self) -> list[torch.Tensor]:
        """Per stage boolean mask of the params that `pipeline regress` optimises."""
        masks = []
        for i, p in enumerate(self.stages):
            names = p.param_space.names
            free = self.cfg.stages[i].free if self.cfg is not None else None
            if free is not None:
                unknown = set(free) - set(names)
                if unknown:
                    raise PipelineError(f"stage {p.module}: unknown free param(s) {', '.join(sorted(unknown))}; the proxy has {', '.join(names)}")
            fixed = set(self.cfg.stages[i].fixed) if self.cfg is not None else set()
            masks.append(torch.tensor([(free is None or n in free) and n not in fixed for n in names]))
        return masks

    def forward(self, image: torch.Tensor, params: Sequence[torch.Tensor], return_stages: bool = False):
        x = image
        outs = []
        for proxy, p in zip(self.stages, params):
            x = proxy(x, p)
            outs.append(x)
        return (x, outs) if return_stages else x


def chain_histories(dt, base, stages: Sequence[tuple[str, Mapping[str, Any]]]):
    """darktable histories for a chain: returns ``(input_sidecar, [stage_output_sidecars])``.

    ``base`` is the raw's default history; ``stages`` is ``[(module, params), ...]``
    in pipe order. Modules after the first stage that are not stages are disabled
    (pass-through modules stay on). Stage k's output history has stages > k disabled."""
    from darkproxy.darktable.tapout import PASS_THROUGH

    order = dt.schemas.pipe_order(base.iop_order_version)
    mods = [m for m, _ in stages]
    first = order.index(mods[0])
    base = base.compressed()
    others = [op for op in order[first + 1:] if op not in mods and op not in PASS_THROUGH
              and (it := base.find(op)) is not None and it.enabled]
    updates = {m: dict(p) for m, p in stages}
    full = dt.edit(base, updates=updates, enable=mods, disable=others)
    input_side = dt.edit(full, disable=mods)
    outs = []
    for k in range(len(mods)):
        outs.append(dt.edit(full, disable=mods[k + 1:]))
    return input_side, outs
