"""The blend tests' darktable side: color balance rgb's tap-outs under several blends, in one darktable-cli
process, and the exact stage's unblended output on darktable's input."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def colorbalance_blend_taps(
    dt: Any, raw: Path, base: Any, histories: Sequence[Any]
) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """``(x, y, outputs)``: darktable's input to colorbalancergb ``(1, 3, H, W)`` linear Rec2020 (96 px), the
    exact stage's output on it at ``base``'s settings (unblended), and darktable's output of each of
    ``histories`` (``base`` with colorbalancergb's blend params changed) ``(3, H, W)``."""
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import plan_tapout
    from darkproxy.replica import EXACT, StageContext
    from darkproxy.replica.plan import plan_replica

    plans = [plan_tapout(dt, h, "colorbalancergb", {}) for h in histories]
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(raw, plans[0].input_sidecar, Path(td) / "in.tif")]
        jobs += [RenderJob(raw, p.output_sidecar, Path(td) / f"m{i}.tif") for i, p in enumerate(plans)]
        imgs = [read_tiff(p) for p in dt.renderer(max_size=96).render_batch(jobs)]
    x = torch.from_numpy(imgs[0])[None]
    values = {s.module: s.values for s in plan_replica(dt, base, raw).stages}["colorbalancergb"]  # the decoded item
    ctx = StageContext(darktable_version=dt.install.version_tuple)  # the running darktable's maths (5's differ)
    return x, EXACT["colorbalancergb"].fn(x, values, ctx), imgs[1:]
