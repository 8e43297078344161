"""The port tests' darktable side: each module's input and its outputs at several settings, all modules in one
darktable-cli batch on one raw."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def case_tapouts(
    dt: Any, cases: Mapping[str, tuple[Path, str, Sequence[Mapping[str, Any]]]], size: int = 96
) -> dict[str, tuple[np.ndarray, list[Any], list[np.ndarray]]]:
    """``{case: (darktable's input (3, H, W), the tap-out plans, darktable's outputs)}`` for ``cases``
    (``{case: (raw, module, [settings])}``, each on darktable's default history of its raw), rendered at ``size``
    px in one darktable-cli process."""
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import plan_tapout

    bases = {raw: dt.default_history(raw) for raw, _, _ in cases.values()}
    plans = {c: [plan_tapout(dt, bases[raw], m, e) for e in es] for c, (raw, m, es) in cases.items()}
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(cases[c][0], ps[0].input_sidecar, Path(td) / f"in-{c}.tif") for c, ps in plans.items()]
        jobs += [
            RenderJob(cases[c][0], p.output_sidecar, Path(td) / f"{c}-{i}.tif")
            for c, ps in plans.items()
            for i, p in enumerate(ps)
        ]
        imgs = [read_tiff(p) for p in dt.renderer(max_size=size).render_batch(jobs)]
    inputs, outputs = imgs[: len(plans)], iter(imgs[len(plans) :])
    return {c: (inp, ps, [next(outputs) for _ in ps]) for (c, ps), inp in zip(plans.items(), inputs, strict=True)}


def module_tapouts(
    dt: Any, raw: Path, edits: Mapping[str, Sequence[Mapping[str, Any]]], size: int = 96
) -> dict[str, tuple[np.ndarray, list[Any], list[np.ndarray]]]:
    """``{module: (darktable's input (3, H, W), the tap-out plans, darktable's outputs)}`` for ``edits``
    (``{module: [settings]}``) on darktable's default history of ``raw``, rendered at ``size`` px in one
    darktable-cli process (:func:`case_tapouts` with one raw)."""
    return case_tapouts(dt, {m: (raw, m, es) for m, es in edits.items()}, size)


def scaled_tapouts(
    dt: Any, cases: Mapping[str, tuple[Path, str, Sequence[Mapping[str, Any]]]], size: int = 96
) -> dict[str, list[tuple[np.ndarray, Any, np.ndarray, float]]]:
    """:func:`case_tapouts` with each case's render scale: ``{case: [(darktable's input, the tap-out plan,
    darktable's output, the render scale)]}``, one darktable-cli process."""
    from darkproxy.darktable.tapout import render_scale

    out = {}
    for c, (inp, plans, outs) in case_tapouts(dt, cases, size).items():
        scale = render_scale(cases[c][0], inp.shape)
        assert scale is not None
        out[c] = [(inp, p, o, scale) for p, o in zip(plans, outs, strict=True)]
    return out


def sized_tapouts(
    dt: Any, cases: Mapping[str, tuple[Path, str, Sequence[Mapping[str, Any]]]], size: int = 96
) -> dict[str, tuple[tuple[float, float], list[tuple[np.ndarray, Any, np.ndarray, float]]]]:
    """:func:`scaled_tapouts` with each case's raw full-resolution ``(width, height)``, which the ports whose
    radius follows the whole image read: ``{case: (full size, [(input, plan, output, render scale)])}``."""
    from darkproxy.darktable.tapout import raw_size

    out = {}
    for c, rows in scaled_tapouts(dt, cases, size).items():
        wh = raw_size(cases[c][0])
        assert wh is not None
        out[c] = ((float(wh[0]), float(wh[1])), rows)
    return out


def port_psnrs(
    op: Any,
    taps: Sequence[tuple[np.ndarray, Any, np.ndarray, float]],
    full_size: tuple[float, float] | None = None,
    version: tuple[int, ...] | None = None,
) -> tuple[list[float], list[float]]:
    """The exact stage ``op`` on each tap-out's input at its render scale (and the raw's ``full_size``, rendered by
    darktable ``version``): display PSNR against darktable's output, and the input's (how much the setting
    changed), per setting; each setting must be one ``op`` supports."""
    import torch

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.replica import StageContext

    psnrs, changed = [], []
    for inp, p, ref, scale in taps:
        ctx = StageContext(scale=scale, full_size=full_size, darktable_version=version)
        assert op.supports(p.params, ctx) is None, p.params
        changed.append(display_psnr(inp, ref))
        with torch.no_grad():
            psnrs.append(display_psnr(op.fn(torch.from_numpy(inp)[None], p.params, ctx)[0].numpy(), ref))
    return psnrs, changed


def check_port(
    dt: Any,
    expect: Any,
    module: str,
    label: str,
    taps: Sequence[tuple[np.ndarray, Any, np.ndarray, float]],
    bound: float,
    changed_below: float,
    full_size: tuple[float, float] | None = None,
) -> None:
    """The exact stage of ``module`` (for the installed darktable's params version) against every tap-out of a
    case: each setting must change the image (darktable's input to its output under ``changed_below`` dB: a setting
    that changes nothing tests nothing), and the worst setting's PSNR (``expect``ed as ``"{label}: worst setting
    psnr"``) must exceed ``bound``."""
    from darkproxy.replica import EXACT

    op = EXACT[module]
    assert dt.schemas.get(module).version in op.versions
    psnrs, changed = port_psnrs(op, taps, full_size=full_size, version=dt.install.version_tuple)
    print(f"\n{label}: {[round(v, 1) for v in psnrs]} dB (input vs output: {[round(v, 1) for v in changed]} dB)")
    assert max(changed) < changed_below, "settings that change nothing test nothing"
    expect(f"{label}: worst setting psnr", min(psnrs), ">", bound)


def camera_tapouts(
    dt: Any,
    module: str,
    cases: Mapping[str, tuple[Path, Sequence[Mapping[str, Any]]]],
    size: int = 96,
    outputs: bool | Sequence[str] = True,
) -> dict[str, tuple[Any, np.ndarray, list[np.ndarray], list[Any]]]:
    """For a module darktable runs before colorin, on camera RGB: ``{case: (the stage's context as the chain
    builds it (darktable's order, colorin's matrix fitted on the pair, the render scale, the raw's full-resolution
    size), darktable's input, its outputs, the tap-out plans)}`` for ``cases`` (``{case: (raw, [settings])}``), one
    darktable-cli process rendering each case's input, the same image on camera RGB (colorin passing it through)
    and the outputs (``outputs``: the cases that render them, all by default)."""
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import IDENTITY_SETTINGS, plan_tapout, raw_size, render_scale
    from darkproxy.replica import StageContext
    from darkproxy.replica.references import fit_camera_matrix

    bases = {c: dt.default_history(raw) for c, (raw, _) in cases.items()}
    plans = {c: [plan_tapout(dt, bases[c], module, e) for e in es] for c, (_, es) in cases.items()}
    rendered = {c: outputs is True or (outputs is not False and c in outputs) for c in cases}
    with tempfile.TemporaryDirectory() as td:
        jobs = []
        for c, ps in plans.items():
            raw = cases[c][0]
            camera = dt.edit(ps[0].input_sidecar, updates=dict(IDENTITY_SETTINGS))
            jobs += [RenderJob(raw, ps[0].input_sidecar, Path(td) / f"{c}-in.tif")]
            jobs += [RenderJob(raw, camera, Path(td) / f"{c}-cam.tif")]
            if rendered[c]:
                jobs += [RenderJob(raw, p.output_sidecar, Path(td) / f"{c}-{i}.tif") for i, p in enumerate(ps)]
        imgs = iter([read_tiff(p) for p in dt.renderer(max_size=size).render_batch(jobs)])
    out = {}
    for c, ps in plans.items():
        raw = cases[c][0]
        inp, cam = next(imgs), next(imgs)
        m, _ = fit_camera_matrix(inp, cam)
        order = dt.schemas.pipe_order(bases[c].iop_order_version)
        wh, scale = raw_size(raw), render_scale(raw, inp.shape)
        ctx = StageContext(
            scale=scale or 1.0,
            full_size=(float(wh[0]), float(wh[1])) if wh is not None else None,
            modules=tuple(o for o in order if o in ("demosaic", module, "colorin", "colorout")),
            camera_matrix=tuple(tuple(float(v) for v in row) for row in m),
            camera_input=cam[None],
            darktable_version=dt.install.version_tuple,
        )
        out[c] = (ctx, inp, [next(imgs) for _ in ps] if rendered[c] else [], ps)
    return out


def check_camera_port(
    dt: Any,
    expect: Any,
    module: str,
    label: str,
    tap: tuple[Any, np.ndarray, list[np.ndarray], list[Any]],
    bound: float,
    changed_below: float = 45.0,
) -> None:
    """:func:`check_port` for a case of :func:`camera_tapouts`: the stage in its context on darktable's input
    against each output."""
    import torch

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.replica import EXACT

    op = EXACT[module]
    assert dt.schemas.get(module).version in op.versions
    ctx, inp, outs, plans = tap
    x = torch.from_numpy(inp)[None]
    psnrs, changed = [], []
    for p, ref in zip(plans, outs, strict=True):
        assert op.supports(p.params, ctx) is None, p.params
        changed.append(display_psnr(inp, ref))
        with torch.no_grad():
            psnrs.append(display_psnr(op.fn(x, p.params, ctx)[0].numpy(), ref))
    print(f"\n{label}: {[round(v, 1) for v in psnrs]} dB (input vs output: {[round(v, 1) for v in changed]} dB)")
    assert max(changed) < changed_below, "settings that change nothing test nothing"
    expect(f"{label}: worst setting psnr", min(psnrs), ">", bound)
