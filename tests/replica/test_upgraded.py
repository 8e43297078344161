"""The replica on items a darktable 3.4 sidecar wrote (channel mixer rgb v2, profiled denoise v10), which it
refused before darktable upgraded them for it (``Darktable.upgraded``), against darktable's own renders.

The two items of darktable's benchmark sidecar of darktable 3.4 (tests/fixtures/darktable-bench-3.4.xmp) put
into darktable's default history of a 256 px synthetic raw, the sidecar written as a user's and run as
``darkproxy replica RAW --xmp`` runs it (:func:`replica_history`), rendered at 128 px; darktable's export of the
sidecar as written is its export of the upgraded history (up to its render noise). Measured: the stages
alone 96.81 (channel mixer rgb) and 78.50 dB (profiled denoise), the replica 60.06 dB against darktable's
8-bit export, the same in 10 fresh runs (bench/results/test_noise.md, group replica-sigmoid: no spread); floors
8 dB below the stages, 4 dB below the replica.
"""

from __future__ import annotations

from pathlib import Path

from darkproxy.darktable.xmp import read_xmp

BENCH_34 = Path(__file__).parents[1] / "fixtures" / "darktable-bench-3.4.xmp"


def test_replica_runs_items_of_a_darktable_34_sidecar(dt, make_raw, tmp_path, expect) -> None:
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import render_references, replica_history
    from darkproxy.replica.run import build_chain, score_replica

    raw: Path = make_raw(source="coffee", size=256)
    old = read_xmp(BENCH_34)
    base = dt.default_history(raw)
    for m in ("channelmixerrgb", "denoiseprofile"):
        src = [it for it in old.items if it.operation == m][-1]
        base.set_item(m, params=src.params, modversion=src.modversion, enabled=True)
    xmp = base.write(tmp_path / "old.xmp")
    hist = replica_history(dt, raw, xmp, None)
    plan = plan_replica(dt, hist, raw)
    kinds = {s.module: (s.kind, s.upgraded_from) for s in plan.stages}
    assert kinds["channelmixerrgb"] == ("exact", 2) and kinds["denoiseprofile"] == ("exact", 10)
    # what the replica reads is what darktable runs: its export of the old sidecar is its export of the upgrade
    from darkproxy.replica.fit import render_exports
    from tests.darktable.render_noise import assert_same_render

    as_written, upgraded = render_exports(dt, raw, [read_xmp(xmp).compressed(), hist], 128)
    assert_same_render(as_written, upgraded, "the darktable 3.4 items vs darktable's upgrade of them")
    renders = render_references(dt, raw, plan, 128)
    _, fig = score_replica(build_chain(plan, renders), renders)
    st = {s["module"]: s for s in fig["stages"]}
    expect("channelmixerrgb.psnr_alone", st["channelmixerrgb"]["psnr_alone"], ">", 88.0)
    expect("denoiseprofile.psnr_alone", st["denoiseprofile"]["psnr_alone"], ">", 70.0)
    expect("replica.psnr", fig["psnr"], ">", 56.0)
