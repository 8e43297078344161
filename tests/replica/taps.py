"""The port tests' darktable side: each module's input and its outputs at several settings, all modules in one
darktable-cli batch on one raw."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def module_tapouts(
    dt: Any, raw: Path, edits: Mapping[str, Sequence[Mapping[str, Any]]], size: int = 96
) -> dict[str, tuple[np.ndarray, list[Any], list[np.ndarray]]]:
    """``{module: (darktable's input (3, H, W), the tap-out plans, darktable's outputs)}`` for ``edits``
    (``{module: [settings]}``) on darktable's default history of ``raw``, rendered at ``size`` px in one
    darktable-cli process."""
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import plan_tapout

    base = dt.default_history(raw)
    plans = {m: [plan_tapout(dt, base, m, e) for e in es] for m, es in edits.items()}
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(raw, ps[0].input_sidecar, Path(td) / f"in-{m}.tif") for m, ps in plans.items()]
        jobs += [
            RenderJob(raw, p.output_sidecar, Path(td) / f"{m}-{i}.tif")
            for m, ps in plans.items()
            for i, p in enumerate(ps)
        ]
        imgs = [read_tiff(p) for p in dt.renderer(max_size=size).render_batch(jobs)]
    inputs, outputs = imgs[: len(plans)], iter(imgs[len(plans) :])
    return {m: (inp, ps, [next(outputs) for _ in ps]) for (m, ps), inp in zip(plans.items(), inputs, strict=True)}
