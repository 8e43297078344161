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

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from darkproxy.errors import DarkproxyError

if TYPE_CHECKING:
    from darkproxy.proxy import Proxy


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
            from darkproxy.zoo import resolve_run

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


class ProxyPipeline(nn.Module):
    """Chained proxies. ``forward(image (B,C,H,W), params: list of (B,P_i)
    normalised tensors, one per stage) -> (B,3,H,W) linear Rec2020``; with
    ``return_stages=True`` also every stage's output. :meth:`set_scale` gives
    the images' render scale to every stage (checked against each proxy's
    trained range)."""

    def __init__(self, proxies: Sequence[nn.Module], cfg: PipelineConfig | None = None) -> None:
        super().__init__()
        self.stages = nn.ModuleList(proxies)
        self.cfg = cfg
        self.scale: float | None = None

    def set_scale(self, scale: float | None) -> None:
        """Run every stage at render ``scale`` (raises
        :class:`~darkproxy.errors.ScaleError` when a stage was not trained at it)."""
        for p in self.stages:
            check = getattr(p, "check_scale", None)
            if check is not None:
                check(scale)
        self.scale = scale

    @property
    def proxies(self) -> list[Proxy]:
        """The stages as a typed list (``stages`` is their ``nn.ModuleList``)."""
        return cast("list[Proxy]", list(self.stages))

    @classmethod
    def load(cls, cfg: PipelineConfig, device: str = "cpu") -> ProxyPipeline:
        from darkproxy.proxy import Proxy

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
        for proxy, p in zip(self.stages, params, strict=False):
            x = proxy(x, p, scale=self.scale) if self.scale is not None else proxy(x, p)
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
    (:func:`darkproxy.regress.regress`) optimises all stages jointly.
    ``forward(image, u (B, sum P_i))``."""

    def __init__(self, pipe: ProxyPipeline) -> None:
        super().__init__()
        from darkproxy.data.paramspace import ParamSpace, ParamSpec

        self.pipe = pipe
        specs, fixed, self.sizes = [], {}, []
        for i, p in enumerate(pipe.proxies):
            self.sizes.append(len(p.param_space))
            for s in p.param_space.specs:
                specs.append(ParamSpec(f"{p.module}.{s.name}", s.kind, s.lo, s.hi, s.default, s.values, s.names))
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


def per_module(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"exposure.exposure": 1}`` -> ``{"exposure": {"exposure": 1}}``."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in flat.items():
        m, p = k.split(".", 1)
        out.setdefault(m, {})[p] = v
    return out


def _render_chain(
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


def pipeline_eval(
    dt,
    pipe: ProxyPipeline,
    images: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    n: int = 4,
    size: int | None = None,
    seed: int = 4321,
) -> dict[str, Any]:
    """darktable renders the whole chain from each raw with random params (in
    each proxy's training range, config ``fixed`` pinned); the chained proxies
    run from the first stage's input. Metrics per stage (against darktable's
    tap-out after that stage) and end to end, plus the identity baseline.
    Writes ``metrics.json`` and ``index.html``; returns the metrics."""
    import time

    from darkproxy.darktable.schema import write_json_atomic
    from darkproxy.darktable.tapout import render_scale
    from darkproxy.data.generate import find_raws, readable_raws
    from darkproxy.data.sampling import sample_params
    from darkproxy.evaluate import default_size, panel, summary_rows
    from darkproxy.viz.metrics import aggregate, compare
    from darkproxy.viz.report import HtmlReport

    t0 = time.time()
    out = Path(out_dir)
    raws, skipped = readable_raws(dt, find_raws(images), print)
    out.mkdir(parents=True, exist_ok=True)
    size = size or default_size(pipe.proxies[0].run_info)
    flat = FlatPipelineProxy(pipe)
    draws = sample_params(flat.param_space, n, "uniform", seed)
    names = pipe.modules_names
    stage_m: dict[str, list] = {m: [] for m in names}
    e2e, ident, rows = [], [], []
    rep = HtmlReport(f"darkproxy pipeline eval: {' -> '.join(names)} vs darktable {dt.version}")
    panels = []
    for i in range(n):
        raw = raws[i % len(raws)]
        vals = {**draws[i], **flat.param_space.fixed}
        pm = per_module(vals)
        inp, outs = _render_chain(dt, raw, stage_settings(pipe, pm), size)
        pipe.set_scale(render_scale(raw, inp.shape))
        with torch.no_grad():
            x = torch.from_numpy(inp)[None]
            u = torch.as_tensor(flat.param_space.normalize(vals))[None]
            _, preds = pipe(x, flat.split(u), return_stages=True)
        row: dict[str, Any] = {"sample": i, "raw": raw.name, "params": pm, "stages": {}}
        for m, pr, o in zip(names, preds, outs, strict=True):
            met = compare(pr[0].numpy(), o)
            stage_m[m].append(met)
            row["stages"][m] = met.to_json()
        final = compare(preds[-1][0].numpy(), outs[-1])
        idm = compare(inp, outs[-1])
        e2e.append(final)
        ident.append(idm)
        row["end_to_end"], row["identity"] = final.to_json(), idm.to_json()
        rows.append(row)
        panels.append((i, raw, inp, outs[-1], preds[-1][0].numpy(), final))
    metrics = {
        "pipeline": names,
        "runs": [str(getattr(p, "run_dir", None) or "") for p in pipe.stages],
        "darktable_version": dt.version,
        "n": n,
        "size": size,
        "seed": seed,
        "seconds": time.time() - t0,
        "stages": {m: aggregate(v) for m, v in stage_m.items()},
        "end_to_end": aggregate(e2e),
        "proxy": aggregate(e2e),
        "identity": aggregate(ident),
        "skipped_raws": skipped,
        "samples": rows,
    }
    write_json_atomic(out / "metrics.json", metrics)
    rep.add_text(
        f"{n} chains rendered fresh by darktable from {min(n, len(raws))} raw(s) at {size} px; the proxies are "
        "chained from the first stage's input (errors accumulate). Per-stage numbers compare stage k's "
        "chained proxy output with darktable's render after stage k. psnr: display PSNR pooled over "
        "samples, psnr_min / psnr_p05 its worst cases; pu21_psnr and hdrflip_mean on the unclipped "
        "scene-referred images.",
        "note",
    )
    if skipped:
        rep.add_text(
            "Skipped (darktable cannot open them): " + "; ".join(f"{b['raw']}: {b['error']}" for b in skipped),
            "warning",
        )
    rep.add_heading("Summary")
    rep.add_table(
        summary_rows(
            [
                *[(f"stage {k + 1}: {m}", metrics["stages"][m]) for k, m in enumerate(names)],
                ("end to end", metrics["end_to_end"]),
                ("identity (output = input)", metrics["identity"]),
            ]
        )
    )
    rep.add_heading("Side by side: input | darktable | proxy chain | error")
    for i, raw, inp, truth, pred, met in panels:
        rep.add_image(
            panel(inp, truth, pred), f"#{i} {raw.name}: end to end {met.psnr:.2f} dB", name=f"chain{i:03d}.png"
        )

    rep.write(out / "index.html")
    return metrics


def pipeline_regress(
    dt,
    pipe: ProxyPipeline,
    raw: str | os.PathLike[str],
    target: Any,
    out_dir: str | os.PathLike[str],
    iters: int = 300,
    restarts: int = 4,
    loss: str = "l1",
    seed: int = 0,
    video: bool = True,
    log: Any = None,
    target_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Recover every free param of every stage jointly through the chain.
    ``target``: path of a float TIFF (or a (3, H, W) array) rendered from ``raw``.
    Writes ``params.json`` (recovered params per module, ``proxy_psnr``,
    ``darktable_psnr`` of darktable's render of them vs the target),
    ``result.xmp`` (the raw's full default history with the recovered params:
    what a photographer opens), ``result_chain.xmp`` (the verification history,
    non-stage modules after the first stage disabled), and the optimisation
    frames/video/plot. ``darktable_psnr`` is measured on that chain history;
    with ``target_params`` ({module: {param: value}}) darktable also renders the
    full history with them and with the recovered params (``full_history_psnr``)."""
    import time

    import numpy as np

    from darkproxy.darktable.schema import write_json_atomic
    from darkproxy.recover import darktable_figures, defaults_figures, full_history_check
    from darkproxy.regress import RegressConfig, RegressError, regress
    from darkproxy.viz.images import read_image
    from darkproxy.viz.metrics import display_psnr
    from darkproxy.viz.video import write_optimisation_video

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = Path(raw)
    tgt = read_image(target, "target") if not isinstance(target, np.ndarray) else target.astype(np.float32)
    size = int(max(tgt.shape[-2:]))
    flat = FlatPipelineProxy(pipe)
    names = pipe.modules_names
    base = dt.default_history(raw)
    in_side, _ = chain_histories(dt, base, [(m, {}) for m in names])
    inp = dt.renderer(max_size=size).render_array(raw, in_side)
    if inp.shape != tgt.shape:
        raise RegressError(
            f"darktable renders {raw.name} at {inp.shape[2]}x{inp.shape[1]} but the target is "
            f"{tgt.shape[2]}x{tgt.shape[1]}: was the target rendered from this raw?"
        )
    from darkproxy.darktable.tapout import render_scale

    pipe.set_scale(render_scale(raw, inp.shape))
    free = flat.free_names()
    cfg = RegressConfig(iters=iters, restarts=restarts, loss=loss, seed=seed, params=free)
    res = regress(flat, inp, tgt, cfg)
    recovered = per_module(res.params)
    stages = stage_settings(pipe, recovered)
    _, outs = _render_chain(dt, raw, stages, size, with_input=False)
    dt_psnr = display_psnr(outs[-1], tgt)
    full = dt.edit(base, updates=dict(stages))
    full.write(out / "result.xmp")
    _, chain_sides = chain_histories(dt, base, stages)
    chain_sides[-1].write(out / "result_chain.xmp")
    files = write_optimisation_video(flat, inp, tgt, res, out) if video else {}
    result = {
        "pipeline": names,
        "raw": str(raw),
        "params": recovered,
        "free": free,
        "normalized": [float(x) for x in res.normalized],
        "proxy_psnr": res.proxy_psnr,
        "darktable_psnr": dt_psnr,
        **darktable_figures(outs[-1], tgt),
        "darktable_psnr_history": "the chain history (result_chain.xmp): non-stage modules after the first "
        "stage disabled",
        "full_history_psnr": None,
        "loss": res.loss,
        "loss_history": res.loss_history,
        "regress_seconds": res.seconds,
        "seconds": time.time() - t0,
        "iters": res.iters,
        "restarts": res.restarts,
        "files": files,
    }
    _, base_outs = _render_chain(dt, raw, stage_settings(pipe, {}), size, with_input=False)
    result.update(defaults_figures(base_outs[-1], tgt))
    if target_params is not None:
        result.update(full_history_check(dt, raw, dict(stages), dict(stage_settings(pipe, target_params)), size))
    result["seconds"] = time.time() - t0
    write_json_atomic(out / "params.json", result)
    return result
