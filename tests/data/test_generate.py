"""`darkproxy generate` end to end with the real darktable-cli: resume after
SIGKILL, bad inputs, splits, crops, the exposure formula, the pointwise probe."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from darkproxy.data.generate import GenerateOptions, generate
from darkproxy.data.generate import engine as gen
from darkproxy.data.probe import probe_pointwise
from darkproxy.data.raws import assign_splits
from darkproxy.data.store import DiskFull, read_jsonl, verify_dataset
from tests.conftest import SRC, midtone_ratio, run_cli, stand_in_darktable


def _cmd(ds: Path, raws: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "exposure",
        "-o",
        str(ds),
        "--images",
        str(raws),
        "-n",
        "12",
        "--size",
        "128",
        "--batch",
        "2",
        "--workers",
        "1",
        "--quiet",
        "--no-probe",
        *extra,
    ]


@pytest.fixture(scope="module")
def resumed(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """12 exposure samples, the first run SIGKILLed part-way, then resumed."""
    ds = tmp_path_factory.mktemp("ds") / "exposure"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "darkproxy", *_cmd(ds, raw_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    man = ds / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if man.is_file() and len(man.read_bytes().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_jsonl(man)
    assert 0 < len(before) < 12, f"kill landed at {len(before)} samples"
    r = run_cli(*_cmd(ds, raw_dir))
    assert r.returncode == 0, r.stderr
    assert "12/12 samples" in r.stdout and f"{12 - len(before)} new" in r.stdout
    return ds, before


def test_resume_after_sigkill_gives_exactly_the_samples(resumed) -> None:
    ds, before = resumed
    recs = read_jsonl(ds / "manifest.jsonl")
    assert sorted(r["id"] for r in recs) == [f"{i:06d}" for i in range(12)]
    assert recs[: len(before)] == before  # earlier lines untouched
    r = run_cli("verify", str(ds))
    assert r.returncode == 0 and "ok: 12 samples verified" in r.stdout, r.stdout + r.stderr
    info = json.loads((ds / "dataset.json").read_text())
    assert info["pointwise"] is None and info["module"] == "exposure" and info["dtype"] == "float16"
    # same (seed, i) -> same params: a fresh uninterrupted run would give identical params
    assert len({json.dumps(r["params"], sort_keys=True) for r in recs}) == 12


def test_exposure_sample_matches_darktable_formula(resumed) -> None:
    """darktable's exposure: out = (in - black) * 2^ev / (1 - black * 2^ev)."""
    ds, _ = resumed
    for rec in read_jsonl(ds / "manifest.jsonl")[:3]:
        inp = np.load(ds / rec["files"]["input"]).astype(np.float64)
        out = np.load(ds / rec["files"]["output"]).astype(np.float64)
        assert list(out.shape) == rec["shape"] and out.shape[0] == 3
        ev, black = rec["params"]["exposure"], rec["params"]["black"]
        k = 2.0**ev
        m = (inp > 0.05) & (inp < 0.5)
        expected = (inp[m] - black) * k / (1 - black * k)
        rel = np.abs(out[m] - expected) / np.abs(expected)
        assert np.median(rel) < 2e-3 and np.percentile(rel, 99) < 1e-2, (ev, black)


def test_split_by_raw(resumed) -> None:
    ds, _ = resumed
    split_of: dict[str, set] = {}
    for r in read_jsonl(ds / "manifest.jsonl"):
        split_of.setdefault(r["raw"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert sorted(s.pop() for s in split_of.values()) == ["train", "val"]
    many = assign_splits([f"r{i}.dng" for i in range(20)], seed=0)
    assert list(many.values()).count("val") == 2 and list(many.values()).count("test") == 2
    assert many == assign_splits([f"r{i}.dng" for i in reversed(range(20))], seed=0)


def test_other_settings_refused_and_verify_detects_corruption(resumed, raw_dir: Path, tmp_path: Path) -> None:
    ds, _ = resumed
    copy = tmp_path / "copy"
    shutil.copytree(ds, copy)
    r = run_cli(
        "generate",
        "exposure",
        "-o",
        str(copy),
        "--images",
        str(raw_dir),
        "-n",
        "12",
        "--size",
        "96",
        "--quiet",
        "--no-probe",
    )
    assert r.returncode == 2 and "generated with different settings" in r.stderr and "size: 128 -> 96" in r.stderr
    f = copy / "samples" / "000003_out.npy"
    f.write_bytes(f.read_bytes()[:-8])
    r = run_cli("verify", str(copy))
    assert r.returncode == 1 and "000003" in r.stdout and len(r.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["exposure", "--images", "EMPTY"], "no raw files in"),
        (["nosuchmodule"], "unknown darktable module"),
        (["exposure", "--params", "exposure,nope"], "has no parameter 'nope'"),
        (["exposure", "--range", "exposure=2:1"], "empty range"),
    ],
)
def test_bad_inputs_one_line_exit_2(raw_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    if "--images" not in args:
        args += ["--images", str(raw_dir)]
    r = run_cli("generate", *args, "-o", str(tmp_path / "ds"), "-n", "2", "--quiet", "--no-probe")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unreadable_raw_is_skipped_and_recorded(dt, raw_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "raws"
    d.mkdir()
    shutil.copy(raw_dir / "astronaut.dng", d / "astronaut.dng")
    (d / "broken.dng").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    logs: list[str] = []
    res = generate(
        dt, d, tmp_path / "ds", GenerateOptions("exposure", n=2, size=64, probe=False), progress=False, log=logs.append
    )
    assert res.total == 2 and res.failed_raws == ["broken.dng"]
    assert any("skipping broken.dng" in m for m in logs)
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert [b["raw"] for b in info["skipped_raws"]] == ["broken.dng"]
    assert [f["raw"] for f in read_jsonl(tmp_path / "ds" / "failed.jsonl")] == ["broken.dng"]
    assert {r["raw"] for r in read_jsonl(tmp_path / "ds" / "manifest.jsonl")} == {"astronaut.dng"}


def test_darktable_failure_retried_then_recorded(
    dt, raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Error path provoked by a stub: the first pair of every batch fails, retry included."""
    from darkproxy.darktable.render import Renderer, RenderFailure

    real = Renderer.render_batch
    calls = []

    def flaky(self, jobs):
        calls.append([j.out.name for j in jobs])
        res = real(self, jobs)
        return [
            RenderFailure(j, "stub failure") if j.out.name in ("o0.tif", "retry-out0.tif") else r
            for j, r in zip(jobs, res, strict=True)
        ]

    monkeypatch.setattr(Renderer, "render_batch", flaky)
    res = generate(
        dt, raw_dir, tmp_path / "ds", GenerateOptions("exposure", n=6, size=64, batch=3, probe=False), progress=False
    )
    assert res.failed == 2 and res.total == 4
    fails = read_jsonl(tmp_path / "ds" / "failed.jsonl")
    assert sorted(f["id"] for f in fails) == ["000000", "000003"]
    assert all("stub failure" in f["error"] and "retry" in f["error"] for f in fails)
    assert ["retry-out0.tif"] in calls  # retried alone
    monkeypatch.setattr(Renderer, "render_batch", real)
    res2 = generate(
        dt,
        raw_dir,
        tmp_path / "ds",
        GenerateOptions("exposure", n=6, size=64, batch=3, probe=False, retry_failed=True),
        progress=False,
    )
    assert res2.total == 6 and res2.written == 2 and res2.failed == 0


def test_a_crashed_batch_is_rendered_one_per_process(dt, raw_dir: Path, tmp_path: Path) -> None:
    """darktable 4.2.1 segfaults now and then in a batch it renders the next time (a zoo run lost a module to
    one): a batch whose darktable-cli crashes is rendered again one image per process, nothing lost. A stand-in
    that crashes like darktable (error path only) on every batch (a folder as input), else runs the real one."""
    crash = f'if [ -d "$1" ]; then echo crashed >> {tmp_path / "crashes"}; kill -SEGV $$; fi\n'
    crashy = stand_in_darktable(dt, tmp_path / "darktable-cli", crash)
    logs: list[str] = []
    opts = GenerateOptions("exposure", n=2, size=48, batch=2, probe=False)
    res = generate(crashy, raw_dir, tmp_path / "ds", opts, progress=False, log=logs.append)
    assert res.total == 2 and res.failed == 0 and verify_dataset(tmp_path / "ds").ok
    assert (tmp_path / "crashes").read_text().count("crashed") >= 1  # a batch crashed, every sample is there
    assert any("crashed (signal 11)" in m and "one per process" in m for m in logs), logs


def test_disk_full_stops_cleanly_and_resumes(
    dt, raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = gen.save_npy_atomic
    count = {"n": 0}

    def filling(path, arr):
        count["n"] += 1
        if count["n"] > 7:  # 2 cached inputs + 1st batch (2 samples x 2 files), fails in the 2nd
            raise DiskFull(f"disk full writing {path}: free some space and re-run the same command to resume")
        return real(path, arr)

    monkeypatch.setattr(gen, "save_npy_atomic", filling)
    opts = GenerateOptions("exposure", n=6, size=64, batch=2, workers=1, probe=False)
    with pytest.raises(DiskFull, match="re-run the same command"):
        generate(dt, raw_dir, tmp_path / "ds", opts, progress=False)
    assert 0 < len(read_jsonl(tmp_path / "ds" / "manifest.jsonl")) < 6
    monkeypatch.setattr(gen, "save_npy_atomic", real)
    res = generate(dt, raw_dir, tmp_path / "ds", opts, progress=False)
    assert res.total == 6 and verify_dataset(tmp_path / "ds").ok


def test_crops_and_parameterless_module(dt, raw_dir: Path, tmp_path: Path) -> None:
    res = generate(
        dt, raw_dir, tmp_path / "crops", GenerateOptions("exposure", n=6, size=48, crops=3, probe=False), progress=False
    )
    recs = read_jsonl(tmp_path / "crops" / "manifest.jsonl")
    assert res.total == 6 and all(r["shape"] == [3, 48, 48] for r in recs)
    by_pair = {}
    for r in recs:
        by_pair.setdefault(r["pair"], []).append(r)
    assert len(by_pair) == 2 and all(len({tuple(r["crop"]) for r in v}) == 3 for v in by_pair.values())
    assert all(len({json.dumps(r["params"]) for r in v}) == 1 for v in by_pair.values())
    # colorin has no free params: upstream exposure is varied and recorded per sample
    res = generate(
        dt, raw_dir, tmp_path / "colorin", GenerateOptions("colorin", n=3, size=48, probe=False), progress=False
    )
    recs = read_jsonl(tmp_path / "colorin" / "manifest.jsonl")
    evs = [r["upstream"]["varied"]["exposure"]["exposure"] for r in recs]
    assert res.total == 3 and len(set(evs)) == 3
    # ...and darktable really applied it: two inputs of one raw differ by the recorded exposures
    # (3 samples of 2 raws: at least one such pair)
    pairs = [(a, b) for i, a in enumerate(recs) for b in recs[i + 1 :] if a["raw"] == b["raw"]]
    assert pairs
    for a, b in pairs:
        ia, ib = (np.load(tmp_path / "colorin" / r["files"]["input"]).astype(np.float64) for r in (a, b))
        ea, eb = (r["upstream"]["varied"]["exposure"]["exposure"] for r in (a, b))
        print(f"\ncolorin inputs: ratio {midtone_ratio(ia, ib):.4f}, 2^(ev_a - ev_b) {2.0 ** (ea - eb):.4f}")
        assert midtone_ratio(ia, ib) == pytest.approx(2.0 ** (ea - eb), rel=0.01)
    assert len({r["upstream_hash"] for r in recs}) == 3 and all(r["params_norm"] == [] for r in recs)
    assert verify_dataset(tmp_path / "colorin").ok


def test_probe_exposure_pointwise_sharpen_not(dt, raw_dir: Path) -> None:
    raw = raw_dir / "astronaut.dng"
    e = probe_pointwise(dt, raw, "exposure", {"exposure": 2.0, "black": 0.02})
    assert e.pointwise is True and e.matched >= 100 and e.effect > 1.0
    s = probe_pointwise(dt, raw, "sharpen", {"radius": 2.0, "amount": 1.5, "threshold": 0.5})
    assert s.pointwise is False and s.p95_rel_out_diff > 10 * s.threshold
    # neither depends on where the pixel is: a flat image stays flat
    assert e.position_dependent is False and s.position_dependent is False


def test_probe_catches_position_dependence(dt, raw_dir: Path) -> None:
    """vignette and graduatednd darken by position: not pointwise, and not band-pass either
    (a flat image comes out with a gradient), which is what picks the positional architecture."""
    raw = raw_dir / "astronaut.dng"
    v = probe_pointwise(dt, raw, "vignette", {"brightness": -0.8, "scale": 40.0, "falloff_scale": 60.0})
    g = probe_pointwise(dt, raw, "graduatednd", {"density": 2.0, "hardness": 50.0, "offset": 50.0})
    for r in (v, g):
        assert r.pointwise is False and r.position_dependent is True, r.reason
        assert r.position_spread > 0.1


def test_storable_never_casts_to_inf() -> None:
    """darktable's float32 can exceed float16 (colorbalancergb reached 2e10): such samples are kept
    as float32, exactly; NaN/inf ones are refused with a count, never stored."""
    from darkproxy.data.generate import storable

    ok, why = storable(np.full((3, 4, 4), 0.5, np.float32))
    assert ok.dtype == np.float16 and why == ""
    big = np.full((3, 4, 4), 0.5, np.float32)
    big[0, 1, 1] = 2e10
    kept, _ = storable(big)
    assert kept.dtype == np.float32 and kept[0, 1, 1] == np.float32(2e10) and np.isfinite(kept).all()
    bad = big.copy()
    bad[1, 2, 2] = np.nan
    bad[2, 0, 0] = np.inf
    none, why = storable(bad)
    assert none is None and "2 NaN/inf values of 48" in why and "2e+10" in why

    # darktable's denoiseprofile renders all black on DNGs it has no noise profile for: no sample
    from darkproxy.data.generate import degenerate_output

    img = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    assert "constant output (0 everywhere)" in degenerate_output(img, np.zeros_like(img))
    assert degenerate_output(img, 2 * img) == "" and degenerate_output(np.ones_like(img), np.ones_like(img)) == ""


def test_probe_recorded_in_dataset_json(raw_dir: Path, tmp_path: Path) -> None:
    r = run_cli(
        "generate",
        "sharpen",
        "-o",
        str(tmp_path / "ds"),
        "--images",
        str(raw_dir),
        "-n",
        "2",
        "--size",
        "64",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["pointwise"] is False and info["probe"]["matched"] >= 100
    assert [s["name"] for s in info["param_space"]["specs"]] == ["radius", "amount", "threshold"]


def test_readable_raws_skips_unreadable_files(dt, tiny_raw: Path, tmp_path: Path) -> None:
    from darkproxy.data.raws import readable_raws
    from darkproxy.errors import DatasetError

    bad = tmp_path / "truncated.dng"
    bad.write_bytes(tiny_raw.read_bytes()[:2000])
    junk = tmp_path / "notraw.dng"
    junk.write_text("not a raw")
    warnings: list[str] = []
    ok, skipped = readable_raws(dt, [tiny_raw, bad, junk], warnings.append)
    assert ok == [tiny_raw] and [s["raw"] for s in skipped] == ["truncated.dng", "notraw.dng"]
    assert all("\n" not in s["error"] and s["error"] for s in skipped)
    assert warnings == [f"warning: skipping {s['raw']}: {s['error']}" for s in skipped]
    with pytest.raises(DatasetError, match="none of the 2"):
        readable_raws(dt, [bad, junk])


def test_exit_status_degenerate_images_warn_darktable_failures_fail(
    tiny_raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """darktable's temperature with every coefficient 0 renders all black (a degenerate image):
    on a grid of red, green, blue in 0:1 that is the first sample (the second has one at 1). A few
    such samples are a warning with their count (exit 0, the rest stored); all of them is no
    dataset (exit 1); a darktable that times out is exit 1 too."""
    from darkproxy.cli import main

    raws = tmp_path / "raws"
    raws.mkdir()
    shutil.copy(tiny_raw, raws / "tiny.dng")
    args = ["generate", "temperature", "--images", str(raws), "--size", "64", "--params", "red,green,blue"]
    args += ["--range", "red=0:1", "--range", "green=0:1", "--range", "blue=0:1", "--sampler", "grid"]
    args += ["--no-probe", "--quiet", "--workers", "1"]
    assert main([*args, "-n", "2", "-o", str(tmp_path / "few")]) == 0
    out, err = capsys.readouterr()
    assert "1/2 samples" in out and "1 degenerate images" in out
    assert err.strip().splitlines() == [
        f"darkproxy: warning: 1 sample(s) left out: darktable's image was degenerate (constant, NaN or inf; "
        f"see {tmp_path / 'few'}/failed.jsonl); 1 stored"
    ]
    fails = read_jsonl(tmp_path / "few" / "failed.jsonl")
    assert [(f["id"], f["stage"], f["params"]) for f in fails] == [
        ("000000", "values", {"red": 0.0, "green": 0.0, "blue": 0.0})
    ]
    assert "constant output (0 everywhere)" in fails[0]["error"]
    assert verify_dataset(tmp_path / "few").ok

    assert main([*args, "-n", "1", "-o", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: no usable sample stored" in err[0] and "degenerate for all 1" in err[0], err

    (tmp_path / "slow.toml").write_text("render_timeout = 0.3\n")  # darktable-cli cannot render in 0.3 s
    assert main([*args, "-n", "2", "-o", str(tmp_path / "timeout"), "--config", str(tmp_path / "slow.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "darktable-cli timed out after 0.3 s" in err[0], err


def test_renderer_factory_renders_every_image(dt, raw_dir: Path, tmp_path: Path) -> None:
    """A renderer factory (what ``--cluster`` hands in) renders every image at the run's
    size, and the dataset is byte for byte the one darktable-cli here makes."""
    made = []

    def factory(max_size: int | None):
        r = dt.renderer(max_size=max_size)
        made.append(r)
        return r

    opts = dict(n=3, size=48, batch=2, workers=1, probe=False)
    res = generate(dt, raw_dir, tmp_path / "f", GenerateOptions("exposure", **opts, renderer_factory=factory), False)
    ref = generate(dt, raw_dir, tmp_path / "d", GenerateOptions("exposure", **opts), False)
    assert made and {r.max_size for r in made} == {48}
    assert res.renders == sum(r.renders for r in made) > 0 and res.images == sum(r.images for r in made) == ref.images
    sha = [r["sha256"] for r in read_jsonl(tmp_path / "f" / "manifest.jsonl")]
    assert res.written == 3 and sha == [r["sha256"] for r in read_jsonl(tmp_path / "d" / "manifest.jsonl")]
