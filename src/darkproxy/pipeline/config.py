"""Pipeline configs (TOML) and their checks: darktable's pipe order and the data space
between neighbouring stages (see :mod:`darkproxy.pipeline`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from darkproxy.errors import DarkproxyError
from darkproxy.proxy.locate import resolve_run


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
    def load(cls, path: str | os.PathLike[str]) -> PipelineConfig:
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
            try:
                run = resolve_run(str(s["run"])).expanduser()  # zoo:MODULE -> the zoo's folder
            except DarkproxyError as e:
                raise PipelineError(f"{p}: stage {i + 1}: {e}") from None
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
        lines = [f"name = {json.dumps(self.name)}", ""]
        for s in self.stages:
            lines += ["[[stage]]", f"module = {json.dumps(s.module)}", f"run = {json.dumps(str(s.run))}"]
            if s.free is not None:
                lines.append(f"free = {json.dumps(list(s.free))}")
            if s.fixed:
                # JSON strings and scalars are valid TOML keys and values; quoted keys keep dotted
                # param names (nested struct fields) from reading as nested tables
                lines.append(
                    "fixed = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in s.fixed.items()) + " }"
                )
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


def check_pipeline(
    cfg: PipelineConfig, pipe_order: Sequence[str], run_infos: Sequence[Mapping[str, Any]]
) -> CheckResult:
    """Order and data-space checks (see module docstring)."""
    problems: list[str] = []
    mods = [s.module for s in cfg.stages]
    for m in mods:
        if m not in pipe_order:
            problems.append(f"{m} is not a module of darktable's pipe")
    known = [m for m in mods if m in pipe_order]
    pos = [pipe_order.index(m) for m in known]
    if pos != sorted(pos):
        problems.append(
            "stages are not in darktable's pipe order: expected " + " -> ".join(sorted(known, key=pipe_order.index))
        )
    if len(set(mods)) != len(mods):
        problems.append("a module appears twice (multiple instances are not supported)")
    spaces = []
    for s, info in zip(cfg.stages, run_infos, strict=False):
        if info.get("module") != s.module:
            problems.append(f"run {s.run} is a proxy of {info.get('module')}, not {s.module}")
        spaces.append(stage_spaces(info))
    for i in range(1, len(spaces)):
        if spaces[i - 1][1] != spaces[i][0]:
            problems.append(f"{mods[i - 1]} outputs {spaces[i - 1][1]} but {mods[i]} expects {spaces[i][0]}")
    return CheckResult(not problems, problems, [m for m in pipe_order if m in mods], spaces)
