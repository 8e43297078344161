"""The proxy zoo: curated modules only, resumable stages, ``zoo:MODULE`` wherever a run is,
the positional architecture picked by darktable's probe, and the shipped zoo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkproxy.errors import DarkproxyError
from darkproxy.jobsteps import JobSteps
from darkproxy.proxy.locate import list_zoo, resolve_run, shipped_root
from darkproxy.zoo import ZooPlan, check_modules, train_zoo
from darkproxy.zoo.training import _raws_key, _raws_stage
from tests.conftest import run_cli

TINY = """
raw_size = 96
train_sources = ["chart", "astronaut", "chelsea"]
heldout_sources = ["coffee"]
samples = 8
size = 48
steps = 60
eval_n = 2

# a local module over render scales: regions of larger raws, evaluated at two scales
[modules.denoiseprofile]
raw_size = 192
scales = [0.25, 1.0]
eval_scales = [0.25, 1.0]
"""


def test_uncurated_modules_and_bad_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DarkproxyError, match="no curated training ranges for grain"):
        check_modules(["exposure", "grain"])
    (tmp_path / "p.toml").write_text("samples = 4\nsteps_per_module = 3\n")
    with pytest.raises(DarkproxyError, match="unknown keys steps_per_module"):
        ZooPlan.load(tmp_path / "p.toml")
    for bad, why in (("scales = [0.5, 0.1]", "scales must be"), ("eval_scales = [0.5]", "eval_scales needs scales")):
        (tmp_path / "p.toml").write_text(f"[modules.sharpen]\n{bad}\n")
        with pytest.raises(DarkproxyError, match=why):
            ZooPlan.load(tmp_path / "p.toml").for_module("sharpen", pre_demosaic=False)
    (tmp_path / "p.toml").write_text("[modules.demosaic]\nscales = [0.1, 1.0]\n")
    with pytest.raises(DarkproxyError, match="before demosaic has no render scale"):
        ZooPlan.load(tmp_path / "p.toml").for_module("demosaic", pre_demosaic=True)
    (tmp_path / "p.toml").write_text('[modules.sharpen]\ntrain_sources = ["chart", "lena"]\n')
    with pytest.raises(DarkproxyError, match="unknown source 'lena'"):
        _raws_stage(JobSteps(tmp_path / "w0", print), tmp_path / "w0", ZooPlan(raw_size=32), 32, ("chart", "lena"))
    r = run_cli("zoo", "train", "grain", "--work", str(tmp_path / "w"), "-o", str(tmp_path / "z"))
    assert r.returncode != 0 and "no curated training ranges for grain" in r.stderr
    assert not (tmp_path / "w").exists()  # refused before any work


def test_a_module_made_from_photos_of_its_own(tmp_path: Path) -> None:
    """A module that names its own training photos gets raws of its own (another folder and stage, the plan's
    held-out photos); the others keep the plan's."""
    (tmp_path / "p.toml").write_text(
        'raw_size = 32\ntrain_sources = ["chart"]\nheldout_sources = ["coffee"]\n'
        '[modules.bilat]\ntrain_sources = ["camera", "grace_hopper"]\n'
    )
    plan = ZooPlan.load(tmp_path / "p.toml")
    mp, other = plan.for_module("bilat", pre_demosaic=False), plan.for_module("sharpen", pre_demosaic=False)
    assert mp.train_sources == ("camera", "grace_hopper") and other.train_sources == ("chart",)
    st = JobSteps(tmp_path / "w", print)
    train, held = _raws_stage(st, tmp_path / "w", plan, *_raws_key(plan, mp))
    assert train.parent.name.startswith("raws-") and train.parent != tmp_path / "w" / "raws"
    assert sorted(p.name for p in train.iterdir()) == ["camera.dng", "grace_hopper.dng"]
    assert sorted(p.name for p in held.iterdir()) == ["coffee.dng"]
    train0, _ = _raws_stage(st, tmp_path / "w", plan, *_raws_key(plan, other))
    assert train0 == tmp_path / "w" / "raws" / "train" and [p.name for p in train0.iterdir()] == ["chart.dng"]


@pytest.mark.slow
def test_tiny_zoo_trains_resumes_and_loads_as_zoo_module(dt, tmp_path: Path, monkeypatch, expect) -> None:
    from darkproxy.proxy import Proxy

    (tmp_path / "plan.toml").write_text(TINY)
    plan = ZooPlan.load(tmp_path / "plan.toml")
    logs: list[str] = []
    mods = ["exposure", "vignette", "denoiseprofile"]
    recs = train_zoo(dt, mods, tmp_path / "work", tmp_path / "zoo", plan, "cpu", logs.append)
    by = {r["module"]: r for r in recs}
    # darktable's probe: exposure is pointwise; vignette depends on the pixel's position; denoise is local
    assert by["exposure"]["arch"] == "pointwise" and by["vignette"]["arch"] == "positional"
    assert by["denoiseprofile"]["arch"] == "multiscale"
    for r in recs:  # 8 samples each: none failed, denoiseprofile's included (it rendered black from introspection's)
        assert r["samples"] == 8 and r["samples_failed"] == 0 and r["darktable_version"] == dt.version
        assert r["heldout_psnr_min"] <= r["heldout_psnr"] and np.isfinite(r["heldout_pu21_psnr"])
    assert by["exposure"]["heldout_n"] == 2 and by["exposure"]["scales"] is None
    # the local module: regions of the 192 px raws at scales 0.25-1, evaluated at each of the two
    dn = by["denoiseprofile"]
    assert dn["raw_size"] == 192 and dn["scales"] == [0.25, 1.0] and dn["heldout_n"] == 2
    assert [round(p["scale"], 2) for p in dn["heldout_per_scale"]] == [0.25, 1.0]
    assert all(p["n"] == 2 for p in dn["heldout_per_scale"])
    assert sorted(p.name for p in (tmp_path / "work" / "raws-192" / "heldout").iterdir()) == ["coffee.dng"]
    trained = json.loads((tmp_path / "zoo" / "denoiseprofile" / "run.json").read_text())["scale_range"]
    assert trained["lo"] <= 0.26 and trained["hi"] >= 0.9, trained
    # a rough 60-step exposure proxy still beats doing nothing on the held-out raw: 5.17 dB over the identity in
    # each of 10 fresh runs (bench/results/test_noise.md, darktable-more: std 4e-5); the old bound 5 sat 0.17 dB
    # under it, so the bound is 2 (a stated 3.2 dB of margin)
    expect("exposure.heldout_psnr - identity", by["exposure"]["heldout_psnr"] - by["exposure"]["identity_psnr"], ">", 2)
    # a re-run reuses every stage
    logs.clear()
    train_zoo(dt, mods, tmp_path / "work", tmp_path / "zoo", plan, "cpu", logs.append)
    assert sum("reused" in line for line in logs) == 2 + 3 * 3  # two raw sizes, three stages per module
    # more steps, as docs/zoo.md says: the plan's steps changed and the two stage records deleted; the dataset is
    # reused, the training redone (not resumed from the finished run's checkpoint)
    (tmp_path / "plan.toml").write_text(TINY.replace("steps = 60", "steps = 90"))
    longer = ZooPlan.load(tmp_path / "plan.toml")
    for stage in ("train", "eval"):
        (tmp_path / "work" / "stages" / f"{stage}-exposure.json").unlink()
    logs.clear()
    (again,) = train_zoo(dt, ["exposure"], tmp_path / "work", tmp_path / "zoo", longer, "cpu", logs.append)
    assert again["train_steps"] == 90 and again["samples"] == 8
    assert any("generate-exposure" in line and "reused" in line for line in logs), logs
    # zoo:MODULE wherever a run folder is
    monkeypatch.setenv("DARKPROXY_ZOO", str(tmp_path / "zoo"))
    assert [r["module"] for r in list_zoo()] == ["denoiseprofile", "exposure", "vignette"]
    p = Proxy.load("zoo:exposure")
    assert p.module == "exposure" and p.run_dir == (tmp_path / "zoo" / "exposure").resolve()
    with pytest.raises(DarkproxyError, match="has no proxy of 'sharpen'.*it has: denoiseprofile, exposure, vignette"):
        resolve_run("zoo:sharpen")
    r = run_cli("zoo", "list", "--json", env={"DARKPROXY_ZOO": str(tmp_path / "zoo")})
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {x["module"] for x in rows} == set(mods)
    assert all({"module", "arch", "params", "darktable_version", "heldout_psnr"} <= set(x) for x in rows)
    # the eval command takes zoo:MODULE, on a raw the zoo never saw
    ev = run_cli(
        "eval",
        "zoo:vignette",
        "--images",
        str(tmp_path / "work" / "raws" / "heldout"),
        "-n",
        "1",
        "-o",
        str(tmp_path / "ev"),
        env={"DARKPROXY_ZOO": str(tmp_path / "zoo")},
    )
    assert ev.returncode == 0, ev.stderr
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["module"] == "vignette" and m["run"] == str((tmp_path / "zoo" / "vignette").resolve())


def test_shipped_zoo_lists_every_curated_module() -> None:
    from darkproxy.data.ranges import ZOO_MODULES

    rows = list_zoo(shipped_root())
    assert len(rows) >= 20 and {r["module"] for r in rows} <= set(ZOO_MODULES)
    for r in rows:
        assert r["darktable_version"] == "4.2.1" and r["params"] == list(ZOO_MODULES[r["module"]].free)
        assert (shipped_root() / r["module"] / "model.safetensors").stat().st_size < 2_000_000
        assert r["heldout_n"] >= 4 and r["heldout_psnr_min"] <= r["heldout_psnr"]


@pytest.mark.slow
@pytest.mark.parametrize("module", ["colorbalancergb", "sharpen", "temperature"])  # pointwise, local, mosaic
def test_shipped_zoo_proxy_evaluates_on_new_raws(dt, make_raw, tmp_path: Path, module: str, expect) -> None:
    """`darkproxy eval zoo:MODULE` on a raw made here from a photo the zoo never trained on (one of
    its two held-out ones, with other sensor noise), at the zoo's render size, sliders drawn as the
    zoo trains them (sparse). With all 18 drawn at once colorbalancergb's proxy is worse than doing
    nothing (7.0 against 8.2 dB here): bench/results/zoo.md reports that column too."""
    from darkproxy.proxy.compat import schema_status
    from darkproxy.proxy.locate import list_zoo

    rec = {r["module"]: r for r in list_zoo(shipped_root())}[module]
    if schema_status(rec, dt) == "changed":  # darktable 5.0's temperature is v4: refused, retrain (tested below)
        pytest.skip(f"zoo:{module} was trained on a darktable whose {module} params differ from this one's")
    raws = tmp_path / "raws"
    raws.mkdir()
    assert "motorcycle" in rec["heldout_raws"]
    src = make_raw("motorcycle", size=256, seed=7)
    (raws / src.name).symlink_to(src)
    r = run_cli(
        "eval", f"zoo:{module}", "--images", str(raws), "-n", "2", "--sampler", "sparse", "-o", str(tmp_path / "ev")
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["module"] == module and m["n"] == 2
    if m["identity"] is not None:  # better than doing nothing, unless doing nothing is already near exact
        expect(f"{module}.identity.psnr", m["identity"]["psnr"])
        gain = expect(f"{module}.proxy.psnr - identity", m["proxy"]["psnr"] - m["identity"]["psnr"])
        assert gain > 0 or m["identity"]["psnr"] > 45, m


def test_zoo_proxy_on_another_darktable_version(monkeypatch) -> None:
    """darktable 5.x is not installable here: the same check runs against 4.2.1's own schema
    snapshot under another version number (same struct: a warning), and against a schema whose
    exposure struct grew (changed: refused, retrain)."""
    import dataclasses
    from types import SimpleNamespace

    from darkproxy.darktable.schema import load_schema_snapshot
    from darkproxy.proxy import Proxy
    from darkproxy.proxy.compat import check_zoo_proxy

    monkeypatch.delenv("DARKPROXY_ZOO", raising=False)
    proxy = Proxy.load("zoo:exposure")
    schemas = load_schema_snapshot("4.2.1")
    said: list[str] = []
    check_zoo_proxy(proxy, SimpleNamespace(version="4.2.1", schemas=schemas), said.append)
    assert said == []
    check_zoo_proxy(proxy, SimpleNamespace(version="5.4.0", schemas=schemas), said.append)
    assert len(said) == 1 and "trained on darktable 4.2.1 (this is 5.4.0)" in said[0]
    grown = dataclasses.replace(schemas.get("exposure"), size=schemas.get("exposure").size + 4)
    other = SimpleNamespace(get=lambda m: grown if m == "exposure" else schemas.get(m))
    with pytest.raises(DarkproxyError, match="retrain it \\(darkproxy zoo train exposure\\)"):
        check_zoo_proxy(proxy, SimpleNamespace(version="5.4.0", schemas=other), said.append)


def test_the_shipped_zoo_was_trained_with_the_shipped_plan() -> None:
    """Each shipped proxy's record matches what the shipped plan says of its module (samples, training
    photos, steps where the plan counts them, render scales, the architecture's settings): the plan is the
    zoo's documentation."""
    from darkproxy.data.paramspace import ParamSpace
    from darkproxy.data.ranges import periodic_encoding
    from darkproxy.models.registry import arch_hparams

    plan = ZooPlan.load()
    for r in list_zoo(shipped_root()):
        m = r["module"]
        mp = plan.for_module(m, bool(r["pre_demosaic"]))
        assert r["samples"] + r.get("samples_failed", 0) == mp.samples, m  # renders darktable failed are skipped
        if mp.steps is not None:  # the first zoo's entries trained by time budget
            assert r["train_steps"] == mp.steps, m
        if "train_sources" in plan.modules.get(m, {}):
            assert r["train_raws"] == list(mp.train_sources), m
        assert (r.get("scales") or None) == (list(mp.scales) if mp.scales else None), m
        run = json.loads((shipped_root() / m / "run.json").read_text())
        hp = {"periodic": [], **run["hparams"]}  # a run without angles (or from before them) records none
        assert {k: hp.get(k) for k in mp.hparams} == mp.hparams, m  # width, sigmas, tone bands
        if "periodic" not in mp.hparams and "periodic" in arch_hparams(run["arch"]):  # what train reads as angles
            assert hp["periodic"] == periodic_encoding(ParamSpace.from_json(run["param_space"])), m
        assert mp.arch in ("auto", run["arch"]), m
