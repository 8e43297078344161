"""The dataset generation engine behind ``darkproxy generate``.

For each *render pair* ``j`` (``0 <= j < ceil(n / crops)``) the engine taps
``module`` out of raw ``raws[j % R]`` with params ``space.denormalize(U[j])``
(``U`` = the sampler's design, a deterministic function of ``(seed, j)`` for
sobol/uniform), and stores ``crops`` samples with ids ``j * crops + k``:

* ``crops == 1``: the full image, rendered with ``max_size = size``;
* ``crops == K > 1``: rendered with ``max_size = 2 * size``, then ``K`` random
  ``size`` x ``size`` crops (positions drawn from ``(seed, j)``; pre-demosaic
  inputs are cropped at the matching half-resolution position);
* ``scales`` given (``--scales LO:HI`` or a list): each pair is a *region* of
  the raw rendered at a render scale drawn from ``(seed, j)`` (log-uniform in
  ``LO:HI``, or the list in turn): ``size / s`` raw px cut by darktable's crop
  module and rendered at ``size`` px (:func:`~darkproxy.darktable.tapout.region_for_scale`;
  ``s = 1`` is a full-resolution crop). Local modules then see every scale
  they will be applied at; the measured scale is each sample's ``render_scale``.

Speed: the module *input* does not depend on the target's params, so it is
rendered once per raw (cached in ``DATASET/cache/``) unless an upstream module
is varied (parameter-less targets); outputs are rendered in batches of
``batch`` jobs per darktable-cli process, ``workers`` batches at a time
(threads driving darktable-cli subprocesses). A job darktable fails on is
retried once in its own process, then recorded in ``failed.jsonl``.

Resume: sample ids already in the manifest are skipped, a partial last
manifest line is truncated, orphan files are overwritten; the identity of the
run (module, params, ranges, sampler, seed, size, crops, raws...) is stored in
``dataset.json["settings"]`` and a different command is refused.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob, read_tiff
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import (
    Region,
    TapPlan,
    packed_input,
    plan_tapout,
    raw_size,
    region_for_scale,
    render_scale,
)
from darkproxy.darktable.xmp import Sidecar
from darkproxy.data.paramspace import ParamSpace
from darkproxy.data.ranges import UpstreamVariety, build_param_space, upstream_variety
from darkproxy.data.sampling import SAMPLERS, sample_unit
from darkproxy.data.store import (
    FORMAT,
    Dataset,
    JsonlAppender,
    read_jsonl,
    repair_jsonl,
    save_npy_atomic,
    write_json_atomic,
)
from darkproxy.errors import DarkproxyError, DarktableRenderError, DatasetError, ParamValueError, RawError
from darkproxy.progress import progress_bar, say

if TYPE_CHECKING:
    from darkproxy.data.probe import ProbeResult

RAW_EXTENSIONS = (
    ".dng",
    ".cr2",
    ".cr3",
    ".nef",
    ".nrw",
    ".arw",
    ".srf",
    ".sr2",
    ".raf",
    ".orf",
    ".rw2",
    ".pef",
    ".srw",
    ".3fr",
    ".iiq",
    ".x3f",
    ".erf",
    ".mef",
    ".mos",
    ".mrw",
    ".kdc",
    ".dcr",
    ".rwl",
)
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
    cluster: str | None = None  # a Ray address (ray, auto, ray://HOST:PORT): render on it (darkproxy.cluster)
    # render scales: (lo, hi) log-uniform, or a list taken in turn; None renders whole raws at `size`
    scales: tuple[float, float] | list[float] | None = None


@dataclass
class GenerateResult:
    """Counts of one run. ``total`` = samples now in the manifest."""

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


def find_raws(images: str | os.PathLike[str]) -> list[Path]:
    """Raw files directly in ``images`` (sorted by name). Raises
    :class:`DatasetError` when there are none."""
    d = Path(images)
    if not d.is_dir():
        raise DatasetError(f"--images {d}: not a folder")
    raws = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in RAW_EXTENSIONS)
    if not raws:
        raise DatasetError(f"no raw files in {d} (looked for {', '.join(RAW_EXTENSIONS[:8])}, ...)")
    return raws


def readable_raws(
    dt: Darktable, raws: Sequence[Path], warn: Callable[[str], None] | None = None
) -> tuple[list[Path], list[dict[str, str]]]:
    """Split ``raws`` into those darktable opens (its default history, cached
    per raw) and the others, ``[{"raw": name, "error": one line}]``, warning
    once per skipped raw. Raises :class:`DatasetError` when none is readable."""
    ok: list[Path] = []
    bad: list[dict[str, str]] = []
    for r in raws:
        try:
            dt.default_history(r)
            ok.append(Path(r))
        except (RawError, DarktableRenderError) as e:
            msg = " ".join(str(e).split())
            bad.append({"raw": Path(r).name, "error": msg if len(msg) <= 240 else msg[:237] + "..."})
            if warn:
                warn(f"warning: skipping {Path(r).name}: {bad[-1]['error']}")
    if not ok:
        raise DatasetError(
            f"none of the {len(raws)} raw file(s) could be read by darktable" + (f": {bad[0]['error']}" if bad else "")
        )
    return ok, bad


def assign_splits(raw_names: Sequence[str], seed: int = 0, val: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Split by source raw: raws are ordered by ``sha256(f"{seed}:{name}")``;
    the first ``max(1, round(val * R))`` go to ``val`` (when R >= 2), the next
    ``round(test * R)`` to ``test`` (when R >= 3 and at least one raw is left
    for train), the rest to ``train``. Deterministic; 2 raws -> one train, one val."""
    names = sorted(set(raw_names), key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    r = len(names)
    n_val = max(1, round(val * r)) if r >= 2 else 0
    n_test = round(test * r) if r >= 3 else 0
    n_test = min(n_test, max(r - n_val - 1, 0))
    out = {}
    for i, name in enumerate(names):
        out[name] = "val" if i < n_val else ("test" if i < n_val + n_test else "train")
    return out


def _crop_boxes(seed: int, j: int, k_count: int, h: int, w: int, size: int) -> list[tuple[int, int, int, int]]:
    """``k_count`` boxes (y, x, ch, cw) of ``size`` px (even-aligned), deterministic in (seed, j)."""
    ch, cw = min(size, h) // 2 * 2, min(size, w) // 2 * 2
    rng = np.random.default_rng([seed, j, 0xC0])
    boxes = []
    for _ in range(k_count):
        y = int(rng.integers(0, (h - ch) // 2 + 1)) * 2
        x = int(rng.integers(0, (w - cw) // 2 + 1)) * 2
        boxes.append((y, x, ch, cw))
    return boxes


def _describe_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    diffs = []
    for k in IDENTITY_KEYS:
        if old.get(k) != new.get(k):
            o, n = str(old.get(k)), str(new.get(k))
            diffs.append(f"{k}: {o[:60]} -> {n[:60]}")
    return "; ".join(diffs)


class Generator:
    """One ``generate`` run. Use :func:`generate` unless you need the pieces."""

    def __init__(
        self,
        dt: Darktable,
        images: str | Path,
        out: str | Path,
        opts: GenerateOptions,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.dt, self.opts, self.out = dt, opts, Path(out)
        self.progress = progress
        self.log = log or say
        if opts.n < 1:
            raise ParamValueError("-n must be >= 1")
        if opts.size < 16:
            raise ParamValueError("--size must be >= 16 px")
        if opts.crops < 1 or opts.workers < 1 or opts.batch < 1:
            raise ParamValueError("--crops, --workers and --batch must be >= 1")
        if opts.scales is not None:
            if opts.crops != 1:
                raise ParamValueError("--scales renders one region per sample: use it with --crops 1")
            vals = list(opts.scales)
            if not vals or any(not 0 < float(v) <= 1 for v in vals):
                raise ParamValueError("--scales: render scales are output px per raw px, in (0, 1]")
        if opts.sampler not in SAMPLERS:
            raise ParamValueError(f"unknown sampler {opts.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        self.all_raws = find_raws(images)
        self.schema = dt.schemas.get(opts.module)
        self.space: ParamSpace = build_param_space(self.schema, opts.params, opts.fixed, opts.ranges)
        self.variety: UpstreamVariety | None = None
        self._lock = threading.Lock()
        self.renders = 0
        self.images = 0
        self._scales: dict[tuple[str, tuple[int, ...], Any], float | None] = {}
        self._raw_sizes: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ setup
    def _load_bases(self) -> tuple[list[Path], dict[str, Sidecar], list[dict[str, Any]]]:
        """darktable's default history per raw; unreadable raws are skipped."""
        bases: dict[str, Sidecar] = {}
        bad: list[dict[str, Any]] = []

        def one(raw: Path) -> tuple[Path, Sidecar | Exception]:
            try:
                return raw, self.dt.default_history(raw)
            except (RawError, DarktableRenderError) as e:
                return raw, e

        with ThreadPoolExecutor(max_workers=self.opts.workers) as ex:
            for raw, res in ex.map(one, self.all_raws):
                if isinstance(res, Exception):
                    self.log(f"warning: skipping {raw.name}: {res}")
                    bad.append({"raw": raw.name, "stage": "open", "error": str(res)})
                else:
                    bases[raw.name] = res
        raws = [r for r in self.all_raws if r.name in bases]
        if not raws:
            raise DatasetError(
                f"none of the {len(self.all_raws)} raw file(s) in {self.all_raws[0].parent} "
                f"could be read by darktable: {bad[0]['error']}"
            )
        return raws, bases, bad

    def settings(self, raws: Sequence[Path]) -> dict[str, Any]:
        o = self.opts
        return {
            "module": o.module,
            "module_version": self.schema.version,
            "darktable_version": self.dt.version,
            "param_space": self.space.to_json(),
            "upstream_variety": self.variety.to_json() if self.variety else None,
            "sampler": o.sampler,
            "seed": o.seed,
            "size": o.size,
            "crops": o.crops,
            "raws": [r.name for r in raws],
            "scales": scales_json(o.scales),
            # not part of the identity: may change between runs
            "n": o.n,
            "workers": o.workers,
            "batch": o.batch,
        }

    # ------------------------------------------------------------------ run
    def run(self) -> GenerateResult:
        t0 = time.monotonic()
        o = self.opts
        self.out.mkdir(parents=True, exist_ok=True)
        raws, bases, bad = self._load_bases()
        if len(self.space) == 0:
            self.variety = upstream_variety(self.dt.schemas, o.module, next(iter(bases.values())).iop_order_version)
            if self.variety is None:
                self.log(
                    f"warning: {o.module} has no free params and no upstream module to vary: "
                    "variety comes from the raws only"
                )
        settings = self.settings(raws)
        info_path = self.out / "dataset.json"
        info: dict[str, Any] | None = None
        if info_path.is_file():
            info = Dataset.open(self.out).info
            old = info.get("settings", {})
            ident_old = {k: old.get(k) for k in IDENTITY_KEYS}
            ident_new = {k: settings.get(k) for k in IDENTITY_KEYS}
            if o.sampler in ("lhs", "grid"):
                ident_old["n"], ident_new["n"] = old.get("n"), o.n
            if json_norm(ident_old) != json_norm(ident_new):
                diff = (
                    _describe_diff(json_norm(ident_old), json_norm(ident_new))
                    or f"n: {ident_old.get('n')} -> {ident_new.get('n')} ({o.sampler} designs depend on n)"
                )
                raise DatasetError(
                    f"dataset {self.out} was generated with different settings: {diff}; "
                    "use another -o or the original command"
                )
        splits = assign_splits([r.name for r in raws], o.seed)
        pre = plan_tapout(self.dt, bases[raws[0].name], o.module, {}).pre_demosaic
        if pre and o.scales is not None:
            raise ParamValueError(
                f"--scales: {o.module} runs on the full-resolution mosaic (before demosaic): it has no render scale"
            )
        if info is None:
            probe = None
            if o.probe:
                probe = self._probe(raws[0], bases[raws[0].name])
            info = {
                "format": FORMAT,
                "module": o.module,
                "module_version": self.schema.version,
                "darktable_version": self.dt.version,
                "param_space": self.space.to_json(),
                "pre_demosaic": pre,
                "flip_invariant": not pre,
                "size": o.size,
                "render_max_size": None if pre else (o.size if o.crops == 1 else 2 * o.size),
                "scales": settings["scales"],
                "crops": o.crops,
                "dtype": "float16",
                "data_space": "linear_rec2020",
                "input_layout": "packed_mosaic_RG1G2B" if pre else "rgb",
                "sampler": o.sampler,
                "seed": o.seed,
                "n": o.n,
                "splits": splits,
                "skipped_raws": bad,
                "pointwise": None if probe is None else probe.pointwise,
                "position_dependent": None if probe is None else probe.position_dependent,
                "probe": None if probe is None else probe.to_json(),
                "upstream_variety": settings["upstream_variety"],
                "settings": settings,
            }
            write_json_atomic(info_path, info)
            with JsonlAppender(self.out / "failed.jsonl") as fl:
                for b in bad:
                    fl.append(b)
        elif info.get("n") != o.n or info.get("settings", {}).get("n") != o.n:
            info["n"] = o.n
            info["settings"] = {**info.get("settings", {}), "n": o.n, "workers": o.workers, "batch": o.batch}
            write_json_atomic(info_path, info)

        repair_jsonl(self.out / "manifest.jsonl")
        done = {str(r["id"]) for r in read_jsonl(self.out / "manifest.jsonl")}
        failed_before = {str(r["id"]) for r in read_jsonl(self.out / "failed.jsonl") if "id" in r}
        skip = done | (set() if o.retry_failed else failed_before)
        pairs = self._plan_pairs(raws, bases, skip)
        skipped = len([i for i in range(o.n) if f"{i:06d}" in done])
        written = 0
        failed_now: set[str] = set()
        (self.out / "samples").mkdir(exist_ok=True)
        bar = progress_bar(  # a tqdm bar on a terminal, a line every few seconds in a log
            total=o.n,
            initial=len(done & {f"{i:06d}" for i in range(o.n)}),
            unit="sample",
            desc=f"generate {o.module}",
            disable=not self.progress,
            smoothing=0.1,
        )
        try:
            shared = o.share_input and self.variety is None and o.scales is None  # regions differ per pair
            inputs = self._shared_inputs(pairs, bases, pre) if shared else {}
            batches = [pairs[i : i + o.batch] for i in range(0, len(pairs), o.batch)]
            with (
                JsonlAppender(self.out / "manifest.jsonl") as man,
                JsonlAppender(self.out / "failed.jsonl") as fl,
                ThreadPoolExecutor(max_workers=o.workers) as ex,
            ):
                pending: set[Future[tuple[list[dict[str, Any]], list[dict[str, Any]]]]] = set()
                it = iter(batches)
                try:
                    for batch in it:
                        pending.add(ex.submit(self._do_batch, batch, inputs, splits, pre))
                        if len(pending) >= o.workers * 2:
                            break
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            recs, fails = fut.result()
                            for rec in recs:
                                man.append(rec)
                                written += 1
                            for f in fails:
                                fl.append(f)
                                failed_now.add(f["id"])
                            bar.update(len(recs) + len(fails))
                            nxt = next(it, None)
                            if nxt is not None:
                                pending.add(ex.submit(self._do_batch, nxt, inputs, splits, pre))
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
        finally:
            bar.close()
        total = len({str(r["id"]) for r in read_jsonl(self.out / "manifest.jsonl")})
        all_failed = {str(r["id"]) for r in read_jsonl(self.out / "failed.jsonl") if "id" in r} - {
            str(r["id"]) for r in read_jsonl(self.out / "manifest.jsonl")
        }
        return GenerateResult(
            requested=o.n,
            total=total,
            written=written,
            skipped=skipped,
            failed=len(all_failed),
            failed_raws=[b["raw"] for b in bad],
            seconds=time.monotonic() - t0,
            renders=self.renders,
            images=self.images,
            pointwise=info.get("pointwise"),
        )

    # ------------------------------------------------------------------ pieces
    def _probe(self, raw: Path, base: Sidecar) -> ProbeResult | None:
        from darkproxy.data.probe import probe_pointwise

        # probe at a clearly non-identity setting: 3/4 of each free range
        params = self.space.denormalize(np.full(len(self.space), 0.75)) if len(self.space) else {}
        params = {**self.space.fixed, **params}
        try:
            res = probe_pointwise(self.dt, raw, self.opts.module, params, base=base)
        except DarkproxyError as e:
            self.log(f"warning: pointwise probe failed ({e}); recording pointwise=null")
            return None
        kind = "pointwise" if res.pointwise else "not pointwise" if res.pointwise is False else "undetermined"
        kind += ", position-dependent" if res.position_dependent else ""
        self.log(f"probe: {self.opts.module} is {kind} ({res.reason})")
        return res

    def _plan_pairs(self, raws: Sequence[Path], bases: Mapping[str, Sidecar], skip: set[str]) -> list[_Pair]:
        o = self.opts
        m = math.ceil(o.n / o.crops)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sobol balance warning for n != 2^k: harmless here
            U = sample_unit(self.space, m, o.sampler, o.seed)
            V = sample_unit(self.variety.space, m, "sobol", o.seed + 7919) if self.variety else None
        pairs = []
        for j in range(m):
            ids = [f"{j * o.crops + k:06d}" for k in range(o.crops) if j * o.crops + k < o.n]
            todo = [(i, k) for k, i in enumerate(ids) if i not in skip]
            if not todo:
                continue
            raw = raws[j % len(raws)]
            values = {**self.space.fixed, **self.space.denormalize(U[j])}
            base = bases[raw.name]
            up = None
            if V is not None and self.variety is not None:  # V is drawn iff there is a variety
                up = self.variety.space.denormalize(V[j])
                base = self.dt.edit(base, updates={self.variety.module: up})
            plan = plan_tapout(self.dt, base, o.module, values, region=self._region(raw, j))
            pairs.append(_Pair(j, raw, [i for i, _ in todo], [k for _, k in todo], U[j], values, up, plan))
        return pairs

    def _region(self, raw: Path, j: int) -> Region | None:
        """Pair ``j``'s region of ``raw`` and render scale (``None`` without ``--scales``)."""
        o = self.opts
        if o.scales is None:
            return None
        if raw.name not in self._raw_sizes:
            wh = raw_size(raw)
            if wh is None:
                raise RawError(f"{raw.name}: rawpy cannot read its size, which --scales needs")
            self._raw_sizes[raw.name] = wh
        rng = np.random.default_rng([o.seed, j, 0x5CA1E])
        if isinstance(o.scales, tuple):
            lo, hi = (float(v) for v in o.scales)
            s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        else:
            s = float(o.scales[j % len(o.scales)])
        return region_for_scale(self._raw_sizes[raw.name], o.size, s, rng)

    def _renderer(self, pre: bool, max_size: int | None = None) -> Renderer:
        """A renderer at the run's size (``max_size``: a region's)."""
        o = self.opts
        size = None if pre else (max_size or (o.size if o.crops == 1 else 2 * o.size))
        if o.cluster:  # renders as Ray tasks; this process still writes every file (darkproxy.cluster)
            from darkproxy.cluster import cluster_renderer

            return cluster_renderer(o.cluster, self.dt, max_size=size, workers=o.workers, log=self.log)
        return self.dt.renderer(max_size=size)

    def _count(self, r: Renderer) -> None:
        with self._lock:
            self.renders += r.renders
            self.images += r.images

    def _shared_inputs(self, pairs: Sequence[_Pair], bases: Mapping[str, Sidecar], pre: bool) -> dict[str, np.ndarray]:
        """Module input per raw (float32), cached as DATASET/cache/input-*.npy."""
        need: dict[str, _Pair] = {}
        for p in pairs:
            need.setdefault(p.raw.name, p)
        out: dict[str, np.ndarray] = {}
        todo = []
        cache = self.out / "cache"
        for name, p in need.items():
            path = cache / f"input-{Path(name).stem}-{p.plan.upstream_hash}-{self._renderer(pre).max_size}.npy"
            if path.is_file():
                try:
                    out[name] = np.load(path, allow_pickle=False)
                    continue
                except (ValueError, OSError):
                    pass
            todo.append((name, p, path))
        if not todo:
            return out
        if pre:
            for name, p, path in todo:
                out[name] = packed_input(p.raw, self.opts.module)
                save_npy_atomic(path, out[name])
            return out

        def batch(items: Sequence[tuple[str, _Pair, Path]]) -> dict[str, np.ndarray]:
            r = self._renderer(pre)
            with tempfile.TemporaryDirectory(prefix="darkproxy-gen-") as td:
                jobs = [
                    RenderJob(p.raw, p.plan.input_sidecar, Path(td) / f"in{i}.tif") for i, (_, p, _) in enumerate(items)
                ]
                res = r.render_batch(jobs)
                got: dict[str, np.ndarray] = {}
                for (name, p, path), x in zip(items, res, strict=True):
                    if isinstance(x, RenderFailure):  # retry once on its own
                        try:
                            x = r.render(p.raw, p.plan.input_sidecar, Path(td) / "retry.tif")
                        except DarktableRenderError as e:
                            raise DarktableRenderError(
                                f"darktable cannot render the {self.opts.module} input of {name}: {e}"
                            ) from None
                    got[name] = read_tiff(x)
                    save_npy_atomic(path, got[name])
            self._count(r)
            return got

        k = max(1, math.ceil(len(todo) / self.opts.workers))
        groups = [todo[i : i + min(k, self.opts.batch)] for i in range(0, len(todo), min(k, self.opts.batch))]
        with ThreadPoolExecutor(max_workers=self.opts.workers) as ex:
            for got in ex.map(batch, groups):
                out.update(got)
        return out

    def _do_batch(
        self, pairs: Sequence[_Pair], inputs: Mapping[str, np.ndarray], splits: Mapping[str, str], pre: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Render one batch and write its samples. Returns manifest records and failures."""
        recs: list[dict[str, Any]] = []
        fails: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="darkproxy-gen-") as td:
            tdp = Path(td)
            # one darktable-cli process per output size (regions clipped to a small raw shrink it)
            groups: dict[int | None, list[tuple[tuple[int, str], RenderJob]]] = {}
            for i, p in enumerate(pairs):
                g = groups.setdefault(p.max_size, [])
                g.append(((i, "out"), RenderJob(p.raw, p.plan.output_sidecar, tdp / f"o{i}.tif")))
                if p.raw.name not in inputs and not pre:
                    g.append(((i, "in"), RenderJob(p.raw, p.plan.input_sidecar, tdp / f"i{i}.tif")))
            got: dict[tuple[int, str], Path | str] = {}
            for max_size, group in groups.items():
                r = self._renderer(pre, max_size)
                jobs = [job for _, job in group]
                res = [x for j in jobs for x in r.render_batch([j])] if self.opts.per_render else r.render_batch(jobs)
                for ((i, role), job), x in zip(group, res, strict=True):
                    if isinstance(x, RenderFailure):
                        try:  # retry once, in its own darktable-cli process
                            got[(i, role)] = r.render(job.raw, job.sidecar, tdp / f"retry-{role}{i}.tif")
                        except DarktableRenderError as e:
                            got[(i, role)] = f"{x.message} | retry: {e}"
                    else:
                        got[(i, role)] = x
                self._count(r)
            for i, p in enumerate(pairs):
                errs = [v for k, v in got.items() if k[0] == i and isinstance(v, str)]
                if errs:
                    for sid in p.ids:
                        fails.append(
                            {
                                "id": sid,
                                "raw": p.raw.name,
                                "params": _jsonable(p.values),
                                "upstream_values": p.upstream_values,
                                "stage": "render",
                                "error": errs[0],
                            }
                        )
                    continue
                out = read_tiff(got[(i, "out")])
                if p.raw.name in inputs:
                    inp = inputs[p.raw.name]
                elif pre:
                    inp = packed_input(p.raw, self.opts.module)
                else:
                    inp = read_tiff(got[(i, "in")])
                got_recs, bad_values = self._write_samples(p, inp, out, splits[p.raw.name], pre)
                recs.extend(got_recs)
                fails.extend(bad_values)
        return recs, fails

    def _scale(self, raw: Path, out_shape: Sequence[int], region: Region | None = None) -> float | None:
        box = region.box if region is not None else None
        key = (raw.name, tuple(out_shape), box)
        if key not in self._scales:
            self._scales[key] = render_scale(self._raw_sizes.get(raw.name, raw), out_shape, box)
        return self._scales[key]

    def _write_samples(
        self, p: _Pair, inp: np.ndarray, out: np.ndarray, split: str, pre: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The manifest records of a pair's samples, and the failures of those
        whose values no file can hold (:func:`storable`)."""
        o = self.opts
        if inp.shape[1:] != out.shape[1:] and not pre:
            raise DarktableRenderError(f"{p.raw.name}: input {inp.shape} and output {out.shape} renders differ in size")
        scale = out.shape[1] // inp.shape[1] if pre else 1
        if o.crops == 1:
            boxes = [(0, 0, out.shape[1], out.shape[2])]
        else:
            boxes = _crop_boxes(o.seed, p.j, o.crops, out.shape[1], out.shape[2], o.size)
        names = self.space.names
        actual = {k: p.plan.params.get(k, p.values[k]) for k in names}
        norm = [round(float(x), 7) for x in self.space.normalize(actual)]
        recs, fails = [], []
        for sid, k in zip(p.ids, p.crops, strict=True):
            y, x, h, w = boxes[k]
            o_crop = out[:, y : y + h, x : x + w]
            i_crop = inp[:, y // scale : (y + h) // scale, x // scale : (x + w) // scale]
            (i_store, i_why), (o_store, o_why) = storable(i_crop), storable(o_crop)
            if o_store is not None and i_store is not None and (flat := degenerate_output(i_crop, o_crop)):
                o_store, o_why = None, flat
            if i_store is None or o_store is None:
                fails.append(
                    {
                        "id": sid,
                        "raw": p.raw.name,
                        "params": _jsonable(p.values),
                        "upstream_values": p.upstream_values,
                        "stage": "values",
                        "error": f"darktable's {'input' if i_store is None else 'output'}: {i_why or o_why}",
                    }
                )
                continue
            files = {"input": f"samples/{sid}_in.npy", "output": f"samples/{sid}_out.npy"}
            sha_in = save_npy_atomic(self.out / files["input"], i_store)
            sha_out = save_npy_atomic(self.out / files["output"], o_store)
            recs.append(
                {
                    "id": sid,
                    "raw": p.raw.name,
                    "module": o.module,
                    "module_version": p.plan.module_version,
                    "darktable_version": self.dt.version,
                    "params": _jsonable(actual),
                    "params_norm": norm,
                    "upstream_hash": p.plan.upstream_hash,
                    "upstream": {
                        "varied": ({self.variety.module: _jsonable(p.upstream_values)} if self.variety else {}),
                        "modules": [u["operation"] for u in p.plan.upstream],
                    },
                    "files": files,
                    "sha256": {"input": sha_in, "output": sha_out},
                    "shape": list(o_crop.shape),
                    "input_shape": list(i_crop.shape),
                    "split": split,
                    "render_scale": self._scale(p.raw, out.shape, p.plan.region),
                    **({"region": p.plan.region.to_json()} if p.plan.region is not None else {}),
                    "pair": p.j,
                    "crop": [y, x, h, w] if o.crops > 1 else None,
                    **(
                        {"dtype": "float32", "max_abs": float(np.abs(o_crop).max())}
                        if o_store.dtype != np.float16
                        else {}
                    ),
                }
            )
        return recs, fails


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
    import json

    return json.loads(json.dumps(obj, default=str))


def generate(
    dt: Darktable,
    images: str | Path,
    out: str | Path,
    opts: GenerateOptions,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Generate (or resume) dataset ``out`` from the raws in ``images``. See the module docstring."""
    return Generator(dt, images, out, opts, progress=progress, log=log).run()
