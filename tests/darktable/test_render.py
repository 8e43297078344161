"""Rendering through the real darktable-cli: exactness, batch mode, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob, read_tiff
from darkproxy.errors import DarktableRenderError, RawError
from tests.conftest import midtone_ratio, run_cli, stand_in_darktable
from tests.darktable.render_noise import assert_same_render
from tests.tonemap import tone_mapper


def _exposure_pair(dt, raw: Path, ev: float):
    base = dt.default_history(raw)
    order = base.pipe_order(dt.schemas)
    later = [
        op
        for op in order[order.index("exposure") + 1 :]
        if base.find(op) is not None and op not in ("colorin", "colorout", "gamma")
    ]
    off = dt.edit(base, disable=["exposure", *later])
    on = dt.edit(base, updates={"exposure": {"exposure": ev, "black": 0.0}}, disable=later)
    return off, on


@pytest.mark.parametrize("ev, expected", [(1.0, 2.0), (-1.0, 0.5)])
def test_exposure_is_exact(dt, tiny_raw: Path, tmp_path: Path, ev: float, expected: float) -> None:
    off, on = _exposure_pair(dt, tiny_raw, ev)
    r = dt.renderer(max_size=128)
    a, b = (
        read_tiff(p)
        for p in r.render_batch(
            [RenderJob(tiny_raw, off, tmp_path / "a.tif"), RenderJob(tiny_raw, on, tmp_path / "b.tif")]
        )
    )
    assert a.dtype == np.float32 and a.shape[0] == 3
    assert midtone_ratio(b, a) == pytest.approx(expected, abs=0.002 * expected)


def test_batch_equals_single_renders(dt, tiny_raw: Path, tmp_path: Path) -> None:
    off, on = _exposure_pair(dt, tiny_raw, 1.0)
    r = dt.renderer(max_size=96)
    batch = r.render_batch([RenderJob(tiny_raw, s, tmp_path / f"b{i}.tif") for i, s in enumerate([off, on, off])])
    assert r.renders == 1 and r.images == 3
    single = r.render(tiny_raw, on, tmp_path / "s.tif")
    b0, b1, b2 = (read_tiff(p) for p in batch)
    assert_same_render(b1, read_tiff(single), "batch vs single")
    assert_same_render(b0, b2, "twice in one batch")
    # and the batch kept its jobs apart: job 1 is job 0 at +1 EV, not job 0 again
    print(f"midtone ratio {midtone_ratio(b1, b0):.5f}")
    assert midtone_ratio(b1, b0) == pytest.approx(2.0, abs=0.004)


def test_missing_raw(dt, tmp_path: Path) -> None:
    with pytest.raises(RawError, match="does not exist"):
        dt.renderer().render(tmp_path / "nope.dng", None, tmp_path / "o.tif")


def test_corrupt_raw_names_input_and_darktable_message(dt, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.dng"
    bad.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    with pytest.raises(DarktableRenderError, match="corrupt.dng"):
        dt.renderer().render(bad, None, tmp_path / "o.tif")
    with pytest.raises(RawError, match="darktable cannot open .*corrupt.dng"):
        dt.default_history(bad)


def test_batch_reports_the_one_failing_job(dt, tiny_raw: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.dng"
    bad.write_bytes(b"\x00" * 4096)
    res = dt.renderer(max_size=64).render_batch(
        [RenderJob(tiny_raw, None, tmp_path / "ok.tif"), RenderJob(bad, None, tmp_path / "bad.tif")]
    )
    assert isinstance(res[0], Path) and res[0].is_file()
    assert isinstance(res[1], RenderFailure) and "corrupt.dng" in res[1].message


def test_timeout(dt, tiny_raw: Path, tmp_path: Path) -> None:
    r = dt.renderer(timeout=0.05)
    with pytest.raises(DarktableRenderError, match="timed out after 0.05 s"):
        r.render(tiny_raw, None, tmp_path / "o.tif")


def test_crash_is_reported(dt, tiny_raw: Path, tmp_path: Path) -> None:
    # a stand-in that dies like a segfaulting darktable-cli (error path only)
    fake = tmp_path / "darktable-cli"
    fake.write_text("#!/bin/sh\necho 'something broke' >&2\nkill -SEGV $$\n")
    fake.chmod(0o755)
    from dataclasses import replace

    r = Renderer(replace(dt.install, cli=fake))
    with pytest.raises(DarktableRenderError, match="crashed .signal 11. .*something broke"):
        r.render(tiny_raw, None, tmp_path / "o.tif")


def test_cli_render_with_set_and_errors(dt, tiny_raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from darkproxy.cli import main

    tone = tone_mapper(dt.default_history(tiny_raw))  # filmic rgb; darktable 5.4's default: sigmoid
    out = tmp_path / "r.tif"
    r = run_cli(
        "render",
        str(tiny_raw),
        "-o",
        str(out),
        "--set",
        "exposure.exposure=1",
        "--disable",
        tone,
        "--max-size",
        "64",
        "--save-xmp",
        str(tmp_path / "r.xmp"),
    )
    assert r.returncode == 0, r.stderr
    assert read_tiff(out).shape[1:] == (64, 64)
    from darkproxy.darktable.xmp import read_xmp

    assert not read_xmp(tmp_path / "r.xmp").find(tone).enabled
    for args, msg in [
        (["--set", "exposure.exposure=99"], "outside darktable's range"),
        (["--set", "exposure.nope=1"], "has no parameter 'nope'"),
        (["--set", "nosuch.x=1"], "unknown darktable module 'nosuch'"),
        (["--set", "exposure.exposure=abc"], "expects a number"),
        (["--xmp", str(tmp_path / "none.xmp")], "does not exist"),
    ]:  # in process (the real entry point ran above; a subprocess each cost ~2 s of suite time)
        capsys.readouterr()
        rc, err = main(["render", str(tiny_raw), "-o", str(tmp_path / "x.tif"), *args]), capsys.readouterr().err
        assert rc == 2, (args, err)
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    capsys.readouterr()
    rc = main(["render", str(tmp_path / "missing.dng"), "-o", str(tmp_path / "x.tif")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_config_template_renders_the_same(dt, tiny_raw: Path, tmp_path: Path) -> None:
    """A process started from the shared config template (darktable's data.db and darktablerc made once)
    renders what one started from an empty config dir renders: the default history (auto-applied presets
    from data.db) and an edit, in one batch each; the template is darktable's own, made once."""
    from dataclasses import replace

    from darkproxy.darktable.render import config_template

    template = config_template(dt.install, tmp_path / "root")
    assert template is not None and (template / "data.db").is_file() and (template / "darktablerc").is_file()
    assert config_template(dt.install, tmp_path / "root") == template  # made once
    edit = dt.edit(dt.default_history(tiny_raw), updates={"exposure": {"exposure": 0.6}})
    jobs = [RenderJob(tiny_raw, None, tmp_path / "d.tif"), RenderJob(tiny_raw, edit, tmp_path / "e.tif")]
    fresh = dt.renderer(max_size=96)
    fresh = replace(fresh, use_config_template=False)
    a = [read_tiff(p) for p in fresh.render_batch(jobs)]
    b = [read_tiff(p) for p in dt.renderer(max_size=96).render_batch(jobs)]
    for x, y, what in zip(a, b, ("defaults", "edit"), strict=True):
        assert_same_render(x, y, f"config template vs empty config dir, {what}")


def test_default_history_survives_one_crash_not_two(dt, tmp_path: Path) -> None:
    """darktable 4.2.1 now and then segfaults importing a raw (seen twice in ~30 imports of a 2048 px DNG): the
    default history is read once more, darktable's own; a second crash is a one-line error. A stand-in that
    crashes like darktable (error path only) on the first call, then runs the real darktable-cli."""
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    raw = tmp_path / "fresh.dng"  # not in the history cache
    write_synthetic_dng(default_source_images(["chelsea"])["chelsea"], raw, SynthRawSpec(size=64, seed=5))
    flag = tmp_path / "crashed"
    crash = f"if [ ! -e {flag} ]; then touch {flag}; echo 'backtrace written to /tmp/x' >&2; kill -SEGV $$; fi\n"
    once = stand_in_darktable(dt, tmp_path / "darktable-cli", crash)
    side = once.default_history(raw, refresh=True)
    assert flag.exists() and side.find("exposure") is not None
    always = "echo 'backtrace written to /tmp/x' >&2\nkill -SEGV $$\n"
    twice = stand_in_darktable(dt, tmp_path / "always-crashes", always)
    with pytest.raises(DarktableRenderError, match="crashed twice"):
        twice.default_history(raw, refresh=True)


def test_more_openmp_threads_than_cpus_asked_for(dt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """darktable sizes its per-thread buffers by the CPUs and runs its pipe with OMP_NUM_THREADS threads: on 2 CPUs,
    OMP_NUM_THREADS=8 or 16 made darktable-cli 4.2.1 abort every time it read a fresh raw (6 of 6, "corrupted size vs.
    prev_size"). darkproxy's darktable processes get at most the CPUs: the default history, a render and a
    single-thread render all work with 4x the CPUs in the environment, and agree."""
    import os

    from darkproxy.darktable.locate import darktable_env
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", str(4 * cpus))
    assert darktable_env()["OMP_NUM_THREADS"] == str(cpus) and darktable_env(1)["OMP_NUM_THREADS"] == "1"
    raw = tmp_path / "fresh.dng"  # not in the history cache: darktable reads it anew
    write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, SynthRawSpec(size=128, seed=7))
    side = dt.default_history(raw, refresh=True)
    a = dt.renderer(max_size=64).render_array(raw, side)
    b = dt.renderer(max_size=64, threads=4 * cpus).render_array(raw, side)  # asked for too many: the CPUs
    c = dt.renderer(max_size=64, threads=1).render_array(raw, side)
    assert_same_render(a, b, "OMP_NUM_THREADS 4x the CPUs vs threads=4x")
    assert_same_render(a, c, "vs one thread")


def test_openmp_threads_of_the_environment_are_darktables_own(
    dt, tiny_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OMP_NUM_THREADS`` in the environment (pytest's workers, a user's batch) reaches darktable as ``-t`` too:
    darktable 5.0.1 splits loops by its own count, so on 2 CPUs with ``OMP_NUM_THREADS=1`` and no ``-t`` the rows
    of the second half of a demosaic tap-out came out as whatever memory held (7 of 8 renders; 0 of 8 with
    ``-t 1``). On 4.2.1 both were clean; the check is that the render is finite and the command says so."""
    from darkproxy.darktable.tapout import tapout

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cmd = dt.renderer()._command(tiny_raw, None, "out.tif", Path("conf"))
    assert cmd[cmd.index("-t") :][:2] == ["-t", "1"] and cmd.index("-t") > cmd.index("--core")
    for _ in range(2):
        out = tapout(dt, tiny_raw, "demosaic", {}).output
        assert np.isfinite(out).all() and np.abs(out).max() < 10, np.abs(out).max()
