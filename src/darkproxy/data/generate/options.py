"""What ``darkproxy generate`` is asked (:class:`GenerateOptions`), what it reports
(:class:`GenerateResult`), and the checks and JSON forms of its records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.darktable.render import RendererFactory
from darkproxy.darktable.tapout import TapPlan
from darkproxy.errors import DatasetError

# identity of a run: a resumed run must match these exactly
IDENTITY_KEYS = (
    "module",
    "module_version",
    "darktable_version",
    "param_space",
    "upstream_variety",
    "sampler",
    "seed",
    "size",
    "crops",
    "raws",
    "scales",
)


@dataclass
class GenerateOptions:
    """What to generate (the CLI's options). ``params``: free param names
    (None: the module's defaults, see :mod:`darkproxy.data.ranges`);
    ``fixed``/``ranges``: ``{name: value}`` / ``{name: (lo, hi)}``."""

    module: str
    n: int = 64
    params: list[str] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    sampler: str = "sobol"
    size: int = 512
    crops: int = 1
    workers: int = 2
    seed: int = 0
    batch: int = 12
    probe: bool = True
    retry_failed: bool = False
    share_input: bool = True  # render the module input once per raw (off only for benchmarks)
    per_render: bool = False  # one darktable-cli process per image (the slow baseline, for benchmarks)
    # max_size -> renderer (darkproxy.cluster.renderer_factory for --cluster); None: darktable-cli here
    renderer_factory: RendererFactory | None = None
    # render scales: (lo, hi) log-uniform, or a list taken in turn; None renders whole raws at `size`
    scales: tuple[float, float] | list[float] | None = None


class GenerateFailed(DatasetError):
    """darktable itself failed on samples (a crash or a timeout, after one retry) or
    no usable sample was stored: ``darkproxy generate`` exits 1."""

    exit_code = 1


@dataclass
class GenerateResult:
    """Counts of one run. ``total`` = samples now in the manifest. ``failed`` (those
    in ``failed.jsonl`` and not in the manifest, earlier runs included) =
    ``failed_render`` (darktable crashed or timed out, retry included: stage
    ``render``) + ``failed_values`` (darktable's image is no usable sample: a
    constant output from a non-constant input, NaN or inf values: stage ``values``)."""

    requested: int
    total: int
    written: int
    skipped: int  # already present
    failed: int  # samples darktable failed on (failed.jsonl), including earlier runs
    failed_raws: list[str]
    seconds: float
    renders: int  # darktable-cli processes
    images: int  # images rendered
    pointwise: bool | None
    failed_render: int = 0
    failed_values: int = 0

    @property
    def samples_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Pair:
    j: int
    raw: Path
    ids: list[str]
    crops: list[int]  # crop index k for each id
    u: np.ndarray  # normalised target params
    values: dict[str, Any]
    upstream_values: dict[str, Any] | None
    plan: TapPlan

    @property
    def max_size(self) -> int | None:
        return self.plan.region.max_size if self.plan.region is not None else None


FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


def scales_json(scales: tuple[float, float] | list[float] | None) -> dict[str, list[float]] | None:
    """``--scales`` as recorded: ``{"range": [lo, hi]}`` (drawn log-uniformly) or ``{"list": [...]}``."""
    if scales is None:
        return None
    return {"range": [float(v) for v in scales]} if isinstance(scales, tuple) else {"list": [float(v) for v in scales]}


def degenerate_output(inp: np.ndarray, out: np.ndarray) -> str:
    """Why darktable's ``out`` is no image of ``inp`` ("" when it is one): a
    constant output (e.g. all black) from an input that is not constant. Seen
    with denoiseprofile on DNGs it has no noise profile for, at every setting."""
    if float(np.ptp(out)) == 0.0 and float(np.ptp(inp)) > 0.0:
        return f"constant output ({float(out.flat[0]):.3g} everywhere) from a non-constant input"
    return ""


def storable(x: np.ndarray) -> tuple[np.ndarray | None, str]:
    """What a sample file holds: float16 when every value fits (the format's
    default), float32 when darktable produced finite values beyond float16's
    range (kept exactly, never cast to inf), None with the reason when some
    are NaN or infinite (the sample is recorded as failed, not stored)."""
    x = np.ascontiguousarray(x)
    bad = ~np.isfinite(x)
    if bad.any():
        fin = np.abs(x[~bad])
        top = f", largest finite |value| {float(fin.max()):.3g}" if fin.size else ""
        return None, f"{int(bad.sum())} NaN/inf values of {x.size}{top}"
    if float(np.abs(x).max(initial=0.0)) > FLOAT16_MAX:
        return np.ascontiguousarray(x.astype(np.float32)), ""
    return np.ascontiguousarray(x.astype(np.float16)), ""


def _jsonable(d: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating,)):
            v = float(v)
        elif isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, np.bool_):
            v = bool(v)
        out[k] = v
    return out


def json_norm(obj: Any) -> Any:
    """Round-trip through JSON (tuples -> lists) so settings compare as stored."""
    return json.loads(json.dumps(obj, default=str))
