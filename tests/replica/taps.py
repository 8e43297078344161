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
