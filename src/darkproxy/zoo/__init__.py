"""The proxy zoo: one trained proxy per darktable module, over the sliders
:data:`darkproxy.data.ranges.ZOO_MODULES` lists, with its held-out fidelity.

A zoo folder holds ``MODULE/run.json``, ``MODULE/model.safetensors`` (what
:meth:`darkproxy.proxy.Proxy.load` reads) and ``MODULE/zoo.json`` (how it was
made and how it scored on raws it never saw). The package ships one for
darktable 4.2.1 (``darkproxy/zoo/weights``); ``DARKPROXY_ZOO`` points
``zoo:MODULE`` at another (e.g. one ``darkproxy zoo train`` wrote).

``zoo:MODULE`` is accepted wherever a run folder is (:func:`resolve_run`).
:func:`train_zoo` runs generate, train, eval and publish per module as
resumable stages (:class:`darkproxy.stages.Stages`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

from darkproxy.errors import DarkproxyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PREFIX = "zoo:"


def shipped_root() -> Path:
    """The zoo shipped with the package (trained for darktable 4.2.1)."""
    return Path(str(files("darkproxy.zoo") / "weights"))


def zoo_root() -> Path:
    """``$DARKPROXY_ZOO`` if set, else the shipped zoo."""
    env = os.environ.get("DARKPROXY_ZOO")
    return Path(env) if env else shipped_root()


def resolve_run(run: str | os.PathLike[str]) -> Path:
    """A run folder, or ``zoo:MODULE`` -> that module's folder in :func:`zoo_root`.
    Raises :class:`DarkproxyError` naming the modules the zoo has."""
    s = os.fspath(run)
    if not s.startswith(PREFIX):
        return Path(s)
    module = s[len(PREFIX) :]
    root = zoo_root()
    d = root / module
    if not (d / "run.json").is_file():
        have = ", ".join(r["module"] for r in list_zoo(root)) or "none"
        raise DarkproxyError(
            f"the zoo ({root}) has no proxy of {module!r} (it has: {have}); train one: darkproxy zoo train {module}"
        )
    return d


# ------------------------------------------------------------------------------ plan


@dataclass
class ModulePlan:
    """How one module's proxy is made (a :class:`ZooPlan` resolved for it)."""

    samples: int
    size: int | None  # None: full resolution (pre-demosaic modules)
    sampler: str
    time_budget_s: float
    eval_n: int
    eval_sampler: str
    steps: int | None = None  # a step count instead of the time budget (tests)
    threads: int | None = None  # torch CPU threads while training (None: train's default)
    arch: str = "auto"  # the architecture (auto: darktable's probe decides)


@dataclass
class ZooPlan:
    """The zoo's plan (``plan.toml``; see the shipped one for the meaning of each key)."""

    raw_size: int = 256
    train_sources: tuple[str, ...] = ("chart", "astronaut", "chelsea", "rocket", "immunohistochemistry")
    heldout_sources: tuple[str, ...] = ("coffee", "motorcycle")
    samples: int = 96
    size: int = 128
    sampler: str = "sparse"
    time_budget_s: float = 75.0
    eval_n: int = 8
    eval_sampler: str = "sparse"
    steps: int | None = None
    threads: int | None = None
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ZooPlan:
        """Read a plan file (default: the shipped ``plan.toml``); unknown keys fail."""
        p = Path(path) if path is not None else Path(str(files("darkproxy.zoo") / "plan.toml"))
        try:
            raw = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DarkproxyError(f"cannot read the zoo plan {p}: {e}") from None
        known = {f.name for f in fields(cls)}
        bad = sorted(set(raw) - known)
        if bad:
            raise DarkproxyError(f"{p}: unknown keys {', '.join(bad)} (known: {', '.join(sorted(known))})")
        for k in ("train_sources", "heldout_sources"):
            if k in raw:
                raw[k] = tuple(raw[k])
        return cls(**raw)

    def for_module(self, module: str, pre_demosaic: bool) -> ModulePlan:
        o = self.modules.get(module, {})
        bad = sorted(set(o) - {f.name for f in fields(ModulePlan)})
        if bad:
            raise DarkproxyError(f"zoo plan, [modules.{module}]: unknown keys {', '.join(bad)}")
        return ModulePlan(
            samples=int(o.get("samples", self.samples)),
            size=None if pre_demosaic else int(o.get("size", self.size)),
            sampler=str(o.get("sampler", self.sampler)),
            time_budget_s=float(o.get("time_budget_s", self.time_budget_s)),
            eval_n=int(o.get("eval_n", self.eval_n)),
            eval_sampler=str(o.get("eval_sampler", self.eval_sampler)),
            steps=o.get("steps", self.steps),
            threads=o.get("threads", self.threads),
            arch=str(o.get("arch", "auto")),
        )


# ------------------------------------------------------------------------------ listing


def list_zoo(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The zoo's ``zoo.json`` records (sorted by module), each with ``module``,
    ``arch``, ``params``, ``darktable_version``, ``heldout_psnr`` and the rest
    of what :func:`publish` wrote."""
    r = Path(root) if root is not None else zoo_root()
    out = []
    if r.is_dir():
        for d in sorted(r.iterdir()):
            z = d / "zoo.json"
            if z.is_file() and (d / "run.json").is_file():
                out.append(json.loads(z.read_text()))
    return out


def schema_status(record: Mapping[str, Any], dt: Any) -> str:
    """``same``, ``same-struct`` (another darktable version, same module
    version and params size: usable, with a warning) or ``changed`` (retrain
    with ``darkproxy zoo train``) for a zoo record against darktable ``dt``."""
    if dt.version == record.get("darktable_version"):
        return "same"
    sch = dt.schemas.get(record["module"])
    same = sch.version == record.get("module_version") and sch.size == record.get("params_size")
    return "same-struct" if same else "changed"


def check_zoo_proxy(proxy: Any, dt: Any, warn: Callable[[str], None]) -> None:
    """Before a zoo proxy is compared with or applied to this darktable: same
    version: nothing; another version with the same module struct: one-line
    warning; a changed struct: :class:`DarkproxyError` (retrain). Other runs:
    nothing."""
    info = getattr(proxy, "run_info", {}) or {}
    run = getattr(proxy, "run_dir", None)
    if not info.get("zoo") or run is None or not (Path(run) / "zoo.json").is_file():
        return
    rec = json.loads((Path(run) / "zoo.json").read_text())
    status = schema_status(rec, dt)
    if status == "changed":
        raise DarkproxyError(
            f"zoo:{rec['module']} was trained on darktable {rec['darktable_version']}, whose {rec['module']} "
            f"params differ from darktable {dt.version}'s: retrain it (darkproxy zoo train {rec['module']})"
        )
    if status == "same-struct":
        warn(
            f"warning: zoo:{rec['module']} was trained on darktable {rec['darktable_version']} (this is "
            f"{dt.version}); the module's params are unchanged, its maths may not be"
        )


def pre_demosaic_module(schemas: Any, module: str) -> bool:
    """Does ``module`` run on the raw mosaic (up to and including demosaic)?"""
    from darkproxy.darktable.tapout import runs_on_mosaic

    return runs_on_mosaic(schemas.pipe_order(2), module)


# ------------------------------------------------------------------------------ training


def check_modules(modules: Sequence[str]) -> list[str]:
    """The modules to train (all of :data:`ZOO_MODULES` when empty); a module
    without curated ranges is refused in one line."""
    from darkproxy.data.ranges import ZOO_MODULES

    mods = list(modules) or list(ZOO_MODULES)
    bad = [m for m in mods if m not in ZOO_MODULES]
    if bad:
        raise DarkproxyError(
            f"no curated training ranges for {', '.join(bad)} (darkproxy.data.ranges.ZOO_MODULES): the zoo does not "
            "train over darktable's hard limits; train it by hand with darkproxy generate --params/--range"
        )
    return mods


def publish(run: Path, out: Path, record: Mapping[str, Any], size: int | None) -> dict[str, Any]:
    """Copy a finished run's ``run.json`` (with the render ``size`` it was
    trained at), ``model.safetensors`` and ``metrics.json`` to ``out`` with
    ``zoo.json``."""
    from darkproxy.darktable.schema import write_json_atomic
    from darkproxy.fsutil import write_bytes_atomic

    out.mkdir(parents=True, exist_ok=True)
    info = json.loads((run / "run.json").read_text())
    info["size"] = size
    info["zoo"] = True
    write_json_atomic(out / "run.json", info)
    write_bytes_atomic(out / "model.safetensors", (run / "model.safetensors").read_bytes())
    if (run / "metrics.json").is_file():  # training figures (regress-eval reads its seconds)
        write_json_atomic(out / "metrics.json", json.loads((run / "metrics.json").read_text()))
    write_json_atomic(out / "zoo.json", dict(record))
    return dict(record)


def train_zoo(
    dt: Any,
    modules: Sequence[str],
    work: str | os.PathLike[str],
    out: str | os.PathLike[str],
    plan: ZooPlan | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
    cluster: str | None = None,
) -> list[dict[str, Any]]:
    """Generate, train, evaluate (on the held-out raws) and publish a proxy per
    module into the zoo folder ``out``; ``work`` keeps the raws, datasets,
    runs, reports and stage records, so a re-run resumes at the first
    unfinished stage of each module. A module that fails is reported and the
    others go on; :class:`DarkproxyError` at the end names the failed ones.
    ``cluster`` (a Ray address, :mod:`darkproxy.cluster`): each module whose
    stages are not all done runs them as one Ray task, and its files are
    gathered into ``work`` before it is published here as without a cluster.
    Returns the published ``zoo.json`` records."""
    from darkproxy.raw.synth import make_samples
    from darkproxy.stages import Stages

    mods = check_modules(modules)
    plan = plan or ZooPlan.load()
    work_p, out_p = Path(work), Path(out)
    st = Stages(work_p, log)
    train_dir, held_dir = work_p / "raws" / "train", work_p / "raws" / "heldout"

    def raws() -> dict[str, Any]:
        infos = make_samples(work_p / "raws" / "all", size=plan.raw_size)
        by_name = {i.path.stem: i.path for i in infos}
        for d, names in ((train_dir, plan.train_sources), (held_dir, plan.heldout_sources)):
            d.mkdir(parents=True, exist_ok=True)
            for n in names:
                if n not in by_name:
                    raise DarkproxyError(f"zoo plan: unknown source {n!r} (known: {', '.join(by_name)})")
                if not (d / f"{n}.dng").exists():
                    shutil.copyfile(by_name[n], d / f"{n}.dng")
        return {"train": list(plan.train_sources), "heldout": list(plan.heldout_sources), "raw_size": plan.raw_size}

    st.run("raws", raws)
    records: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    todo = [m for m in mods if not all((st.dir / f"{s}-{m}.json").is_file() for s in ("generate", "train", "eval"))]
    if cluster and todo:
        from darkproxy.cluster import train_zoo_modules

        failures = train_zoo_modules(cluster, dt, todo, plan, work_p, train_dir, held_dir, device, log)
    for m in mods:
        if m in failures:  # already reported by the cluster
            continue
        try:
            records.append(_train_module(dt, m, plan, st, work_p, out_p, train_dir, held_dir, device, log))
        except DarkproxyError as e:  # one module's failure does not stop the others
            failures[m] = str(e).splitlines()[0]
            log(f"[zoo] {m}: failed: {failures[m]}")
    if failures:
        raise DarkproxyError(
            f"{len(failures)} of {len(mods)} modules failed ({'; '.join(f'{k}: {v}' for k, v in failures.items())}); "
            f"the other {len(records)} are published in {out_p}"
        )
    return records


def _train_module(
    dt: Any,
    m: str,
    plan: ZooPlan,
    st: Any,
    work_p: Path,
    out_p: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
    publish_it: bool = True,
) -> dict[str, Any]:
    """One module's stages (generate, train, eval) and its publication (``publish_it``
    False: the stages only, as a cluster's node runs them; returns ``{}``)."""
    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.data.ranges import ZOO_MODULES
    from darkproxy.evaluate import evaluate
    from darkproxy.proxy import Proxy
    from darkproxy.train import TrainConfig, train

    zm = ZOO_MODULES[m]
    pre = pre_demosaic_module(dt.schemas, m)
    mp = plan.for_module(m, pre)
    ds, run, ev = work_p / "datasets" / m, work_p / "runs" / m, work_p / "eval" / m

    def gen() -> dict[str, Any]:
        opts = GenerateOptions(
            module=m,
            n=mp.samples,
            params=list(zm.free),
            fixed=dict(zm.fixed),
            sampler=mp.sampler,
            size=mp.size or plan.raw_size,
            seed=0,
        )
        r = generate(dt, train_dir, ds, opts, progress=True, log=log)
        return {"samples": r.total, "failed": r.failed, "seconds": r.seconds, "pointwise": r.pointwise}

    def tr() -> dict[str, Any]:
        resume = (run / "checkpoint.pt").is_file()
        cfg = TrainConfig(
            device=device,
            steps=mp.steps,
            time_budget_s=None if mp.steps else mp.time_budget_s,
            threads=mp.threads,
            arch=mp.arch,
        )
        r = train(ds, run, cfg, resume=resume, overwrite=not resume)
        return {
            "arch": r.arch,
            "best_val_psnr": r.best_val_psnr,
            "val_identity_psnr": r.val_identity_psnr,
            "steps": r.steps,
            "seconds": r.seconds,
        }

    def evl() -> dict[str, Any]:
        res = evaluate(
            dt, Proxy.load(run), held_dir, ev, n=mp.eval_n, size=mp.size or plan.raw_size, sampler=mp.eval_sampler
        )
        return {
            k: res.metrics.get(k) for k in ("proxy", "identity", "baseline", "baseline_kind", "n", "size", "sampler")
        }

    g = st.run(f"generate-{m}", gen)
    t = st.run(f"train-{m}", tr)
    e = st.run(f"eval-{m}", evl)
    if not publish_it:
        return {}
    sch = dt.schemas.get(m)
    floats = [f.name for f in sch.scalar_fields if f.type in ("float", "double")]
    p, ident = e["proxy"], e["identity"]
    rec = {
        "module": m,
        "arch": t["arch"],
        "params": list(zm.free),
        "fixed": dict(zm.fixed),
        "note": zm.note,
        "float_params_in_schema": len(floats),
        "darktable_version": dt.version,
        "module_version": sch.version,
        "params_size": sch.size,
        "pre_demosaic": pre,
        "render_size": mp.size or plan.raw_size,
        "full_resolution": pre,
        "samples": g["samples"],
        "samples_failed": g["failed"],
        "sampler": mp.sampler,
        "generate_seconds": g["seconds"],
        "train_seconds": t["seconds"],
        "train_steps": t["steps"],
        "val_psnr": t["best_val_psnr"],
        "heldout_raws": list(plan.heldout_sources),
        "heldout_n": e["n"],
        "heldout_sampler": e["sampler"],
        "heldout_psnr": p["psnr"],
        "heldout_psnr_median": p.get("psnr_median"),
        "heldout_psnr_min": p["psnr_min"],
        "heldout_pu21_psnr": p["pu21_psnr"],
        "heldout_hdrflip_mean": p["hdrflip_mean"],
        "heldout_deltae_mean": p["deltae_mean"],
        "identity_psnr": ident["psnr"] if ident else None,
        "identity_pu21_psnr": ident["pu21_psnr"] if ident else None,
        "identity_deltae_mean": ident["deltae_mean"] if ident else None,
        # identity, or before demosaic the bilinear demosaic + oracle colour matrix
        "baseline_kind": e.get("baseline_kind") or "identity",
        "baseline_psnr": (e.get("baseline") or ident or {}).get("psnr"),
    }
    published = publish(run, out_p / m, rec, mp.size or plan.raw_size)
    log(
        f"[zoo] {m}: held out {p['psnr']:.1f} dB (worst {p['psnr_min']:.1f}), identity "
        f"{'-' if not ident else format(ident['psnr'], '.1f')} dB -> {out_p / m}"
    )
    return published


def eval_zoo(
    dt: Any,
    modules: Sequence[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n: int = 4,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """``darkproxy eval zoo:MODULE`` for each module (all of the zoo's when
    empty) on ``images``, reports under ``out/MODULE``. Returns
    ``[{module, proxy, identity}]``."""
    from darkproxy.evaluate import evaluate
    from darkproxy.proxy import Proxy

    mods = list(modules) or [r["module"] for r in list_zoo()]
    rows = []
    for m in mods:
        res = evaluate(dt, Proxy.load(PREFIX + m), images, Path(out) / m, n=n, progress=log)
        rows.append({"module": m, "proxy": res.metrics["proxy"], "identity": res.metrics["identity"]})
        log(f"[zoo eval] {m}: {res.metrics['proxy']['psnr']:.1f} dB")
    return rows
