"""Training the zoo: generate, train, evaluate on held-out raws and publish, per module, as
resumable stages (:class:`darkproxy.jobsteps.JobSteps`); on a Ray cluster with ``cluster``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from darkproxy.data.ranges import ZOO_MODULES
from darkproxy.engines.evaluate import evaluate_proxy
from darkproxy.engines.train.checkpoint import checkpoint_config
from darkproxy.errors import DarkproxyError
from darkproxy.fsutil import write_bytes_atomic, write_json
from darkproxy.jobsteps import JobSteps
from darkproxy.zoo.plan import ModulePlan, ZooPlan


def pre_demosaic_module(schemas: Any, module: str) -> bool:
    """Does ``module`` run on the raw mosaic (up to and including demosaic)?"""
    from darkproxy.darktable.tapout import runs_on_mosaic

    return runs_on_mosaic(schemas.pipe_order(2), module)


def check_modules(modules: Sequence[str]) -> list[str]:
    """The modules to train (all of :data:`ZOO_MODULES` when empty); a module
    without curated ranges is refused in one line."""
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
    out.mkdir(parents=True, exist_ok=True)
    info = json.loads((run / "run.json").read_text())
    info["size"] = size
    info["zoo"] = True
    write_json(out / "run.json", info)
    write_bytes_atomic(out / "model.safetensors", (run / "model.safetensors").read_bytes())
    if (run / "metrics.json").is_file():  # training figures (regress-eval reads its seconds)
        write_json(out / "metrics.json", json.loads((run / "metrics.json").read_text()))
    write_json(out / "zoo.json", dict(record))
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
    mods = check_modules(modules)
    plan = plan or ZooPlan.load()
    work_p, out_p = Path(work), Path(out)
    st = JobSteps(work_p, log)
    # each module's raws (a local module's scales need larger raws; a module may name its own photos), each set
    # of raws made once
    raws_of = {m: _raws_key(plan, plan.for_module(m, pre_demosaic_module(dt.schemas, m))) for m in mods}
    dirs = {key: _raws_stage(st, work_p, plan, *key) for key in sorted(set(raws_of.values()))}
    records: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    done = {m for m in mods if all((st.dir / f"{s}-{m}.json").is_file() for s in ("generate", "train", "eval"))}
    if cluster and len(done) < len(mods):
        from darkproxy.cluster import train_zoo_modules

        for key in dirs:
            if todo := [m for m in mods if raws_of[m] == key and m not in done]:
                failures |= train_zoo_modules(
                    cluster, dt, todo, plan, work_p, *dirs[key], device, log, run_stages=run_module_stages
                )
    for m in mods:
        if m in failures:  # already reported by the cluster
            continue
        try:
            records.append(_train_module(dt, m, plan, st, work_p, out_p, *dirs[raws_of[m]], device, log))
        except DarkproxyError as e:  # one module's failure does not stop the others
            failures[m] = str(e).splitlines()[0]
            log(f"[zoo] {m}: failed: {failures[m]}")
    if failures:
        raise DarkproxyError(
            f"{len(failures)} of {len(mods)} modules failed ({'; '.join(f'{k}: {v}' for k, v in failures.items())}); "
            f"the other {len(records)} are published in {out_p}"
        )
    return records


def _raws_key(plan: ZooPlan, mp: ModulePlan) -> tuple[int, tuple[str, ...]]:
    """Which raws a module is made from: (long side, training photos)."""
    return mp.raw_size, mp.train_sources or plan.train_sources


def _raws_stage(st: JobSteps, work_p: Path, plan: ZooPlan, size: int, train: tuple[str, ...]) -> tuple[Path, Path]:
    """The synthetic raws of long side ``size`` from the photos ``train`` and the plan's held-out ones (stage
    ``raws``; ``raws-SIZE`` for a size other than the plan's; ``-`` and a digest of the photos' names for other
    photos than the plan's): their train and held-out folders."""
    from darkproxy.raw.synth import DEFAULT_SOURCES, MORE_SOURCES, make_samples

    name = "raws" if size == plan.raw_size else f"raws-{size}"
    if train != tuple(plan.train_sources):
        name += "-" + hashlib.sha256(",".join(train).encode()).hexdigest()[:8]
    root = work_p / name
    train_dir, held_dir = root / "train", root / "heldout"

    def raws() -> dict[str, Any]:
        wanted = list(dict.fromkeys((*train, *plan.heldout_sources)))
        if bad := [n for n in wanted if n not in DEFAULT_SOURCES + MORE_SOURCES]:
            known = ", ".join(DEFAULT_SOURCES + MORE_SOURCES)
            raise DarkproxyError(f"zoo plan: unknown source {bad[0]!r} (known: {known})")
        infos = make_samples(root / "all", size=size, names=wanted)
        by_name = {i.path.stem: i.path for i in infos}
        for d, names in ((train_dir, train), (held_dir, plan.heldout_sources)):
            d.mkdir(parents=True, exist_ok=True)
            for n in names:
                if not (d / f"{n}.dng").exists():
                    shutil.copyfile(by_name[n], d / f"{n}.dng")
        return {"train": list(train), "heldout": list(plan.heldout_sources), "raw_size": size}

    rplan = {**_raws_plan(plan, train), "raw_size": size}
    st.run(name, raws, plan=rplan)
    return train_dir, held_dir


def _module_stages(
    dt: Any,
    m: str,
    plan: ZooPlan,
    st: JobSteps,
    work_p: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One module's generate, train and eval stages (each resumable): their records."""
    from darkproxy.data.generate import GenerateOptions, generate
    from darkproxy.engines.train import TrainConfig, train
    from darkproxy.proxy import Proxy

    zm = ZOO_MODULES[m]
    mp = plan.for_module(m, pre_demosaic_module(dt.schemas, m))
    ds, run, ev = work_p / "datasets" / m, work_p / "runs" / m, work_p / "eval" / m

    def gen() -> dict[str, Any]:
        opts = GenerateOptions(
            module=m,
            n=mp.samples,
            params=list(zm.free),
            fixed=dict(zm.fixed),
            sampler=mp.sampler,
            size=mp.size or mp.raw_size,
            seed=0,
            scales=mp.scales,
        )
        r = generate(dt, train_dir, ds, opts, progress=True, log=log)
        return {"samples": r.total, "failed": r.failed, "seconds": r.seconds, "pointwise": r.pointwise}

    def tr() -> dict[str, Any]:
        cfg = TrainConfig(
            device=device,
            steps=mp.steps,
            time_budget_s=None if mp.steps else mp.time_budget_s,
            threads=mp.threads,
            arch=mp.arch,
            hparams=dict(mp.hparams),
        )
        # resume an interrupted training; a checkpoint saved under other settings (the plan's steps changed and
        # the stage record deleted, docs/zoo.md) is trained again from the start
        old = checkpoint_config(run)
        resume = old is not None and _same_training(old, asdict(cfg))
        r = train(ds, run, cfg, resume=resume, overwrite=not resume)
        return {
            "arch": r.arch,
            "best_val_psnr": r.best_val_psnr,
            "val_identity_psnr": r.val_identity_psnr,
            "steps": r.steps,
            "seconds": r.seconds,
        }

    def evl() -> dict[str, Any]:
        res = evaluate_proxy(
            dt,
            Proxy.load(run),
            held_dir,
            ev,
            n=mp.eval_n,
            size=mp.size or mp.raw_size,
            sampler=mp.eval_sampler,
            scales=mp.eval_scales,
        )
        keys = ("proxy", "identity", "baseline", "baseline_kind", "n", "size", "sampler", "per_scale")
        return {k: res.metrics.get(k) for k in keys}

    # what the stages are made of (no paths: a node's records are gathered here): another plan's record is refused
    # (hparams only when set, the photos as "train": the records of plans written before them stay valid)
    # each stage records what it uses: more training steps redo the training, not the data
    mp_rec = {k: v for k, v in asdict(mp).items() if k != "train_sources" and (k != "hparams" or v)}
    raws = _raws_plan(plan, _raws_key(plan, mp)[1])
    mplan = {"module": m, "free": list(zm.free), "fixed": dict(zm.fixed), **raws, **mp_rec}
    gen_plan = {k: v for k, v in mplan.items() if k not in TRAIN_KEYS + EVAL_KEYS}
    train_plan = {k: v for k, v in mplan.items() if k not in EVAL_KEYS}
    return (
        st.run(f"generate-{m}", gen, plan=gen_plan),
        st.run(f"train-{m}", tr, plan=train_plan, after=(f"generate-{m}",)),
        st.run(f"eval-{m}", evl, plan=mplan, after=(f"train-{m}",)),
    )


# the module plan's keys that only training, and only evaluation, use
TRAIN_KEYS = ("steps", "time_budget_s", "threads", "arch", "hparams")
EVAL_KEYS = ("eval_n", "eval_sampler", "eval_scales")


def _same_training(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's training config is the one the plan asks for (the device may differ)."""
    return {k: v for k, v in saved.items() if k != "device"} == {k: v for k, v in wanted.items() if k != "device"}


def _raws_plan(plan: ZooPlan, train: Sequence[str]) -> dict[str, Any]:
    return {"raw_size": plan.raw_size, "train": list(train), "heldout": list(plan.heldout_sources)}


def run_module_stages(
    dt: Any,
    module: str,
    plan: ZooPlan,
    work: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> None:
    """One module's stages in the work folder ``work``, without publishing: what a cluster node
    runs (handed to :func:`darkproxy.cluster.train_zoo_modules`)."""
    _module_stages(dt, module, plan, JobSteps(work, log), work, train_dir, held_dir, device, log)


def _zoo_record(
    dt: Any, m: str, plan: ZooPlan, g: dict[str, Any], t: dict[str, Any], e: dict[str, Any]
) -> dict[str, Any]:
    """``zoo.json`` of a module: how it was made and how it scored on the held-out raws."""
    zm = ZOO_MODULES[m]
    pre = pre_demosaic_module(dt.schemas, m)
    mp = plan.for_module(m, pre)
    sch = dt.schemas.get(m)
    p, ident = e["proxy"], e["identity"]
    rec = {
        "module": m,
        "arch": t["arch"],
        "params": list(zm.free),
        "fixed": dict(zm.fixed),
        "note": zm.note,
        "float_params_in_schema": sch.float_count,
        "darktable_version": dt.version,
        "module_version": sch.version,
        "params_size": sch.size,
        "pre_demosaic": pre,
        "render_size": mp.size or mp.raw_size,
        "raw_size": mp.raw_size,
        "scales": list(mp.scales) if mp.scales else None,
        "heldout_per_scale": e.get("per_scale"),
        "full_resolution": pre,
        "samples": g["samples"],
        "samples_failed": g["failed"],
        "sampler": mp.sampler,
        "generate_seconds": g["seconds"],
        "train_seconds": t["seconds"],
        "train_steps": t["steps"],
        "val_psnr": t["best_val_psnr"],
        "train_raws": list(_raws_key(plan, mp)[1]),
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
    return rec


def _train_module(
    dt: Any,
    m: str,
    plan: ZooPlan,
    st: JobSteps,
    work_p: Path,
    out_p: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One module's stages (generate, train, eval) and its publication into ``out_p``."""
    g, t, e = _module_stages(dt, m, plan, st, work_p, train_dir, held_dir, device, log)
    rec = _zoo_record(dt, m, plan, g, t, e)
    p, ident = e["proxy"], e["identity"]
    mp = plan.for_module(m, rec["pre_demosaic"])
    run = work_p / "runs" / m
    published = publish(run, out_p / m, rec, mp.size or mp.raw_size)
    log(
        f"[zoo] {m}: held out {p['psnr']:.1f} dB (worst {p['psnr_min']:.1f}), identity "
        f"{'-' if not ident else format(ident['psnr'], '.1f')} dB -> {out_p / m}"
    )
    return published
