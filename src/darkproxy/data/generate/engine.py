"""The generation engine (:class:`Generator`): plan the render pairs, probe the module,
render inputs and outputs in batches, write the samples (see the package docstring)."""

from __future__ import annotations

import math
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from darkproxy.darktable.render import BatchRenderer, RenderFailure, RenderJob, read_tiff, render_jobs
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import Region, packed_input, plan_tapout, raw_size, region_for_scale, render_scale
from darkproxy.darktable.xmp import Sidecar
from darkproxy.data.generate.options import (
    IDENTITY_KEYS,
    GenerateOptions,
    GenerateResult,
    _jsonable,
    _Pair,
    degenerate_output,
    json_norm,
    scales_json,
    storable,
)
from darkproxy.data.paramspace import ParamSpace
from darkproxy.data.ranges import UpstreamVariety, build_param_space, upstream_variety
from darkproxy.data.raws import assign_splits, find_raws
from darkproxy.data.sampling import SAMPLERS, sample_unit
from darkproxy.data.store import FORMAT, Dataset, JsonlAppender, read_jsonl, repair_jsonl, save_npy_atomic
from darkproxy.errors import DarkproxyError, DarktableRenderError, DatasetError, ParamValueError, RawError
from darkproxy.fsutil import write_json
from darkproxy.progress import progress_bar, say

if TYPE_CHECKING:
    from darkproxy.data.probe import ProbeResult


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
        info = self._existing_info(settings)
        splits = assign_splits([r.name for r in raws], o.seed)
        pre = plan_tapout(self.dt, bases[raws[0].name], o.module, {}).pre_demosaic
        if pre and o.scales is not None:
            raise ParamValueError(
                f"--scales: {o.module} runs on the full-resolution mosaic (before demosaic): it has no render scale"
            )
        info = self._write_info(info, settings, raws, bases, bad, splits, pre)
        repair_jsonl(self.out / "manifest.jsonl")
        done = {str(r["id"]) for r in read_jsonl(self.out / "manifest.jsonl")}
        failed_before = {str(r["id"]) for r in read_jsonl(self.out / "failed.jsonl") if "id" in r}
        skip = done | (set() if o.retry_failed else failed_before)
        pairs = self._plan_pairs(raws, bases, skip)
        skipped = len([i for i in range(o.n) if f"{i:06d}" in done])
        written = self._render_all(pairs, bases, splits, pre, done)
        stored = {str(r["id"]) for r in read_jsonl(self.out / "manifest.jsonl")}
        stage = {str(r["id"]): r.get("stage") for r in read_jsonl(self.out / "failed.jsonl") if "id" in r}
        all_failed = set(stage) - stored
        values = {i for i in all_failed if stage[i] == "values"}
        return GenerateResult(
            requested=o.n,
            total=len(stored),
            written=written,
            skipped=skipped,
            failed=len(all_failed),
            failed_raws=[b["raw"] for b in bad],
            seconds=time.monotonic() - t0,
            renders=self.renders,
            images=self.images,
            pointwise=info.get("pointwise"),
            failed_render=len(all_failed - values),
            failed_values=len(values),
        )

    # ------------------------------------------------------------------ steps of run
    def _existing_info(self, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """The dataset's ``dataset.json`` when resuming (None for a new one); another
        identity (:data:`IDENTITY_KEYS`) than ``settings`` is refused."""
        o = self.opts
        if not (self.out / "dataset.json").is_file():
            return None
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
        return info

    def _write_info(
        self,
        info: dict[str, Any] | None,
        settings: dict[str, Any],
        raws: Sequence[Path],
        bases: Mapping[str, Sidecar],
        bad: Sequence[dict[str, Any]],
        splits: dict[str, str],
        pre: bool,
    ) -> dict[str, Any]:
        """A new dataset's ``dataset.json`` (after the pointwise probe) and its skipped raws, or
        a resumed one's with the new ``n``. Returns the info."""
        o = self.opts
        info_path = self.out / "dataset.json"
        if info is None:
            probe = self._probe(raws[0], bases[raws[0].name]) if o.probe else None
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
                "skipped_raws": list(bad),
                "pointwise": None if probe is None else probe.pointwise,
                "position_dependent": None if probe is None else probe.position_dependent,
                "probe": None if probe is None else probe.to_json(),
                "upstream_variety": settings["upstream_variety"],
                "settings": settings,
            }
            write_json(info_path, info, indent=1)
            with JsonlAppender(self.out / "failed.jsonl") as fl:
                for b in bad:
                    fl.append(b)
        elif info.get("n") != o.n or info.get("settings", {}).get("n") != o.n:
            info["n"] = o.n
            info["settings"] = {**info.get("settings", {}), "n": o.n, "workers": o.workers, "batch": o.batch}
            write_json(info_path, info, indent=1)
        return info

    def _render_all(
        self, pairs: Sequence[_Pair], bases: Mapping[str, Sidecar], splits: Mapping[str, str], pre: bool, done: set[str]
    ) -> int:
        """Render every pair in batches (``workers`` in flight), appending samples to the manifest
        and failures to ``failed.jsonl`` as batches finish. Returns the samples written."""
        o = self.opts
        written = 0
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
        return written

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
        wh = self._full_size(raw)
        if wh is None:
            raise RawError(f"{raw.name}: rawpy cannot read its size, which --scales needs")
        rng = np.random.default_rng([o.seed, j, 0x5CA1E])
        if isinstance(o.scales, tuple):
            lo, hi = (float(v) for v in o.scales)
            s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        else:
            s = float(o.scales[j % len(o.scales)])
        return region_for_scale(wh, o.size, s, rng)

    def _full_size(self, raw: Path) -> tuple[int, int] | None:
        """``raw``'s full-resolution ``(width, height)`` (rawpy; read once): each sample records it, as the
        radius of soften follows it (``data.scale.FULL_SIZE_RADIUS``)."""
        if raw.name not in self._raw_sizes:
            wh = raw_size(raw)
            if wh is None:
                return None
            self._raw_sizes[raw.name] = wh
        return self._raw_sizes[raw.name]

    def _renderer(self, pre: bool, max_size: int | None = None) -> BatchRenderer:
        """A renderer at the run's size (``max_size``: a region's)."""
        o = self.opts
        size = None if pre else (max_size or (o.size if o.crops == 1 else 2 * o.size))
        if o.renderer_factory is not None:  # e.g. Ray tasks; this process still writes every file
            return o.renderer_factory(size)
        return self.dt.renderer(max_size=size)

    def _count(self, r: BatchRenderer) -> None:
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
                res = render_jobs(r, jobs, self.opts.per_render, self.log)
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
                res = render_jobs(r, jobs, self.opts.per_render, self.log)
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
                    **({"full_size": list(wh)} if not pre and (wh := self._full_size(p.raw)) else {}),
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
