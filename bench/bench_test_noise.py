"""The spread of every figure the tests assert, over repeated fresh runs: where each test's bound sits.

    PYTHONPATH=src .venv/bin/python bench/bench_test_noise.py [--runs 10]
        [--groups darktable,darktable-more,regress,replica,replica-fit,match,match-wb,match-batch,match-auto,
                  match-shared,match-cc,match-curve,defaults,train,seeds,renders]
        [--work /tmp/dp/noise-work]
        [--out bench/results]
        [--match /tmp/dp/noise_match.json] [--merge OTHER/test_noise.json] [--report-only]

Groups (each run ``--runs`` times, group after group in ``--groups`` order; resumable: runs already in
``OUT/test_noise.json`` are kept and skipped, each finished run is appended at once):

* ``darktable``, ``darktable-more``, ``regress``, ``replica``, ``replica-fit``, ``match``, ``match-wb``,
  ``match-batch``, ``match-auto``, ``match-shared``, ``match-cc``, ``match-curve``, ``defaults``: the tests
  whose figures come from darktable-cli's renders (datasets, trained proxies, regressions, the replica, the tiny
  demo and zoo):
  :data:`DARKTABLE_TESTS`, :data:`DARKTABLE_MORE_TESTS`, :data:`REGRESS_TESTS`, :data:`REPLICA_TESTS`,
  :data:`REPLICA_FIT_TESTS`, :data:`MATCH_TESTS`, one ``pytest`` session per run with a fresh ``--basetemp``,
  ``DARKPROXY_HOME`` and ``TMPDIR``, so that every fixture re-runs from scratch (renders, datasets, trainings).
* ``train``: tests/engines/test_train.py's trainings on synthetic data (no darktable), run as they are.
* ``seeds``: the same tests with torch's training seed set to the run's index (``bench/_seed_plugin.py``):
  the ``train`` runs are bit-identical on one machine, so this is the spread a bound must survive when
  anything changes the random stream (a torch release, another BLAS, an edit to the initialisation).
* ``renders``: darktable's own run-to-run noise: one raw and history rendered :data:`RENDERS` times in one
  darktable-cli process (the default history, as ``generate`` renders batches), and an exposure tap-out
  rendered by separate processes, each render against the first.

Every figure is recorded by the tests themselves (``expect`` in tests/conftest.py writes value, comparison
and bound to ``$DARKPROXY_TEST_FIGURES``). Writes ``OUT/test_noise.json`` (every run's figures) and
``test_noise.md``: per figure n, min / median / max, std, the bound of the latest run and the margin of the
worst run to it, in the figure's units and in standard deviations. A ``--match`` file (the runs of
tests/test_match.py ``--pairs``, written by its own measurement) gets a section of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# the darktable tests in two groups: the first (the tests of issue 25) measured first
DARKTABLE_TESTS = [
    "tests/test_demo.py",
    "tests/test_pipeline.py::test_check_and_eval",
    "tests/test_pipeline.py::test_joint_regression_recovers_hidden_params",
    "tests/engines/test_train_darktable.py",
    "tests/engines/test_evaluate.py::test_eval_writes_metrics_csv_and_report",
    "tests/engines/test_evaluate.py::test_sweep_frames_plot_and_video",
    "tests/engines/test_evaluate.py::test_eval_skips_an_unreadable_raw",
    "tests/engines/test_evaluate.py::test_pu21_catches_highlight_errors_display_psnr_misses",
]
DARKTABLE_MORE_TESTS = [
    "tests/engines/test_regress_eval.py::test_regress_eval_cli_budgets_balance_and_unreadable",
    "tests/data/test_scale.py::test_full_resolution_region_is_a_crop_of_the_full_size_render",
    "tests/test_zoo.py::test_tiny_zoo_trains_resumes_and_loads_as_zoo_module",
    "tests/test_zoo.py::test_shipped_zoo_proxy_evaluates_on_new_raws",
]
REGRESS_TESTS = [  # parametrised: exposure and colorbalancergb (2 test cases)
    "tests/engines/test_regress.py::test_hidden_params_recovered_and_darktable_agrees",
]
REPLICA_TESTS = [  # the exact ports and blends against darktable: its own render noise is their only spread
    "tests/replica/test_geometry.py::test_every_orientation_matches_darktable",
    "tests/replica/test_geometry.py::test_rotated_edit_runs_through_the_replica",
    "tests/replica/test_geometry.py::test_cropped_sharpened_edit_runs_through_the_replica",
    "tests/replica/test_ports.py::test_ports_match_darktable_tapouts",
    "tests/replica/test_blend.py::test_replica_uniform_blends_match_darktable",
    "tests/replica/test_blend.py::test_scene_rgb_blend_modes_match_darktable",
]
BILAT_TESTS = ["tests/replica/test_bilat.py::test_bilat_matches_darktable_tapouts"]  # parametrised: 2 scales
DENOISE_TESTS = [  # parametrised: 2 render scales
    "tests/replica/test_denoiseprofile.py::test_denoiseprofile_matches_darktable_in_camera_rgb",
    "tests/replica/test_denoiseprofile.py::test_denoiseprofile_through_the_replica",
]
SIGMOID_TESTS = [  # parametrised: 2 edits; and the replica on a darktable 3.4 sidecar's items darktable upgraded
    "tests/replica/test_sigmoid.py::test_sigmoid_matches_darktable",
    "tests/replica/test_upgraded.py::test_replica_runs_items_of_a_darktable_34_sidecar",
]
GRADUATEDND_TESTS = ["tests/replica/test_graduatednd.py::test_graduatednd_matches_darktable_tapouts_at_two_sizes"]
PPG_TESTS = ["tests/replica/test_mosaic.py::test_ppg_matches_darktable"]  # parametrised: 2 raws
HIGHLIGHTS_TESTS = [  # parametrised: 5 cases
    "tests/replica/test_mosaic.py::test_highlights_match_darktable_on_clipped_photosites"
]
REPLICA_FIT_TESTS = ["tests/replica/test_blend.py::test_blend_opacity_regressed_from_a_darktable_target"]
MATCH_TESTS = [
    "tests/test_match.py::test_match_darktable_reference_and_style",
    "tests/test_match.py::test_match_rawpy_reference",
    "tests/test_match.py::test_match_the_cameras_own_look_from_the_raw_alone",
]
MATCH_BATCH_TESTS = ["tests/match/test_batch.py::test_batch_matches_a_shoot_writes_sidecars_and_resumes"]
MATCH_AUTO_TESTS = ["tests/match/test_auto_chain.py::test_auto_chain_keeps_the_stages_the_reference_needs"]
MATCH_CC_TESTS = ["tests/match/test_color_calibration.py::test_match_fits_channel_gains_of_color_calibration"]
MATCH_SHARED_TESTS = ["tests/match/test_shared.py::test_shared_look_with_each_images_exposure"]
MATCH_WB_TESTS = ["tests/match/test_white_balance.py::test_match_recovers_a_look_with_white_balance"]
MATCH_CURVE_TESTS = ["tests/match/test_tone_curve.py::test_match_fits_the_nodes_of_a_tone_curve"]
MATCH_DISPLAY_TESTS = ["tests/match/test_tone_curve.py::test_a_display_referred_match_turns_filmic_off"]
MATCH_BILAT_TESTS = ["tests/match/test_local_contrast.py::test_match_fits_local_contrast"]
MATCH_DEMOSAIC_TESTS = [
    "tests/match/test_demosaic.py::test_choose_demosaic_finds_the_one_darktable_rendered_the_reference_with",
    "tests/match/test_demosaic.py::test_match_keeps_the_closest_demosaic_and_keep_leaves_it",
]
MATCH_PAIRS_DEMOSAIC_TESTS = ["tests/match/test_demosaic.py::test_pairs_choose_one_demosaic_for_the_shoot"]
DEFAULTS_TESTS = ["tests/darktable/test_defaults.py::test_modules_start_from_darktables_defaults_not_black"]
TRAIN_TESTS = [
    "tests/engines/test_train.py::test_pointwise_exposure_reaches_35db_and_writes_the_run",
    "tests/engines/test_train.py::test_spatial_variants_learn_an_unsharp_mask",
    "tests/engines/test_train.py::test_demosaic_trains_and_holds_out_train_when_no_val",
    "tests/engines/test_train.py::test_multiscale_learns_a_border_aware_unsharp_mask",
]
GROUPS = (
    "darktable",
    "darktable-more",
    "regress",
    "replica",
    "replica-bilat",
    "replica-highlights",
    "replica-denoise",
    "replica-ppg",
    "replica-graduatednd",
    "replica-sigmoid",
    "replica-fit",
    "match",
    "match-wb",
    "match-batch",
    "match-auto",
    "match-shared",
    "match-cc",
    "match-curve",
    "match-display",
    "match-bilat",
    "match-demosaic",
    "match-pairs-demosaic",
    "defaults",
    "train",
    "seeds",
    "renders",
)
GROUP_TESTS = {
    "darktable": DARKTABLE_TESTS,
    "darktable-more": DARKTABLE_MORE_TESTS,
    "regress": REGRESS_TESTS,
    "replica": REPLICA_TESTS,
    "replica-bilat": BILAT_TESTS,
    "replica-highlights": HIGHLIGHTS_TESTS,
    "replica-denoise": DENOISE_TESTS,
    "replica-ppg": PPG_TESTS,
    "replica-graduatednd": GRADUATEDND_TESTS,
    "replica-sigmoid": SIGMOID_TESTS,
    "replica-fit": REPLICA_FIT_TESTS,
    "match": MATCH_TESTS,
    "match-wb": MATCH_WB_TESTS,
    "match-batch": MATCH_BATCH_TESTS,
    "match-auto": MATCH_AUTO_TESTS,
    "match-shared": MATCH_SHARED_TESTS,
    "match-cc": MATCH_CC_TESTS,
    "match-curve": MATCH_CURVE_TESTS,
    "match-display": MATCH_DISPLAY_TESTS,
    "match-bilat": MATCH_BILAT_TESTS,
    "match-demosaic": MATCH_DEMOSAIC_TESTS,
    "match-pairs-demosaic": MATCH_PAIRS_DEMOSAIC_TESTS,
    "defaults": DEFAULTS_TESTS,
}
# parametrised tests: cases beyond one per listed test
EXTRA_CASES = {
    "darktable-more": 2,
    "regress": 1,
    "replica-bilat": 1,
    "replica-highlights": 4,
    "replica-denoise": 1,
    "replica-ppg": 1,
    "replica-sigmoid": 1,
}
GROUP_NOTES = {
    "darktable": "The tests of issue 25 and those sharing their fixtures (`exposure_run`, `colorbalance_run`).",
    "darktable-more": "The other darktable tests that assert figures (regress-eval, render scale, the zoo).",
    "replica": "The exact ports (flip, the pointwise ports, blend modes) against darktable's tap-outs and export.",
    "replica-bilat": "The exact local contrast (bilat: local laplacian and bilateral grid modes) against darktable's "
    "tap-outs at render scales 1 and 0.5.",
    "replica-highlights": "highlight reconstruction (inpaint opposed, darktable 4.2's default, reconstruct in LCh "
    "and reconstruct color) on over-exposed raws against darktable's render through the replica's demosaic.",
    "replica-denoise": "profiled denoise (wavelets) against darktable's camera-RGB tap-outs at render scales 1 and "
    "0.5, and through the replica (colorin's measured matrix).",
    "replica-ppg": "demosaic PPG from the mosaic against darktable, at full size and below it.",
    "replica-graduatednd": "graduated density on camera RGB (through colorin's measured matrix) against darktable's "
    "tap-outs at two sizes.",
    "replica-sigmoid": "sigmoid (both colour processings) against darktable's tap-out and export; until session 29 "
    "one edit in the `darktable` group (its rows there: the port before its commit_params emulation). From the "
    "second session of runs on: the replica on a darktable 3.4 sidecar's channel mixer rgb v2 and profiled denoise "
    "v10, upgraded by darktable.",
    "replica-fit": "A blend opacity regressed through the replica from darktable's export, and darktable's render "
    "of the result.",
    "regress": "Slider regression through the test proxies (`exposure_run`, `colorbalance_run`) on darktable targets "
    "at hidden sliders of a raw they never saw, and darktable's render of the recovered sliders.",
    "match": "`darkproxy match` on a darktable-made reference (hidden sliders, cropped and resized), a LibRaw-made "
    "one and the camera's embedded preview (no reference): the match against darktable's defaults, both rendered "
    "by darktable.",
    "match-wb": "`darkproxy match RAW REF --chain temperature,exposure,colorbalancergb,filmicrgb` from the raw's "
    "mosaic on a darktable-made reference with white balance among the hidden sliders.",
    "match-batch": "`darkproxy match --batch` on a three-raw shoot (a camera JPEG, an embedded preview, neither): "
    "each match against darktable's defaults, both rendered by darktable.",
    "match-auto": "`darkproxy match --chain auto` on a darktable-made reference (white balance, exposure, "
    "saturation hidden): the stages kept and the match against darktable's defaults.",
    "match-shared": "`darkproxy match --pairs --shared` and `--batch --shared` on a three-raw shoot (one look, "
    "three exposures; darktable-made references): the per-image exposures, the look against darktable's defaults "
    "and against one exposure for all (plain `--pairs`).",
    "match-cc": "`darkproxy match` with color calibration in the chain on a darktable-made reference (channel "
    "gains, colorfulness, exposure hidden): the gains' ratios, the match against the chain without it.",
    "match-curve": "`darkproxy match` with an rgb curve in the chain on a darktable-made reference (the curve's "
    "nodes and exposure hidden): the match against darktable's defaults.",
    "match-display": "`darkproxy match --chain exposure,rgbcurve,-filmicrgb` on a reference darktable made without "
    "a tone mapper (exposure clipping the highlights, an rgb curve): filmic turned off against left on, the "
    "style against result.xmp.",
    "match-bilat": "`darkproxy match` with local contrast in the chain on a darktable-made reference (detail, "
    "highlights, shadows and exposure hidden): the match against darktable's defaults.",
    "match-demosaic": "`darkproxy match`'s demosaic choice: on a reference darktable rendered with LMMSE, and end "
    "to end on the camera's embedded preview (`--demosaic choose` against `keep`).",
    "match-pairs-demosaic": "`darkproxy match --pairs`'s one demosaic for a shoot: two raws whose references "
    "darktable rendered with LMMSE, chosen on the fitted pair and given to the held-out one.",
    "defaults": "Modules added at darktable's defaults (`darktable.defaults.INIT_DEFAULTS`) against the history "
    "without them, and at introspection's defaults.",
    "train": "tests/test_train.py's trainings on synthetic data, run as they are: bit-identical from run to run.",
    "seeds": "The same trainings with torch's training seed set to 0..9 (`bench/_seed_plugin.py`): the spread a "
    "bound must survive when the random stream changes (a torch release, an edit to the initialisation).",
    "renders": "darktable's own noise: renders of one raw and history, each against the first; in one "
    "darktable-cli process (as `generate` and the tap-outs render) and in separate processes.",
}
RENDERS = 6  # renders per case in a "renders" run


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _resolve(nodeid: str) -> str:
    """``nodeid`` where its file is now: tests move as src/ does (tests mirror src), names stay unique."""
    path, _, name = nodeid.partition("::")
    if (ROOT / path).is_file():
        return nodeid
    found = sorted((ROOT / "tests").rglob(Path(path).name))
    if len(found) != 1:
        return nodeid  # pytest names the missing file; the run is not counted
    return str(found[0].relative_to(ROOT)) + (f"::{name}" if name else "")


def _complete(rec: dict[str, Any], n_tests: int) -> bool:
    """Every test ran to its end or failed only by its figures: a run broken by something else (an import
    error while the tree is being edited, a darktable crash) is kept for the record but not counted."""
    outs = rec.get("outcomes", {})
    return (
        bool(rec["figures"])
        and len(outs) >= n_tests
        and all(
            o == "passed" or (o == "failure" and rec["messages"].get(t, "").startswith(FIGURE_FAILURE))
            for t, o in outs.items()
        )
    )


FIGURE_FAILURE = "AssertionError: figures outside their bounds"


def run_pytest(group: str, index: int, work: Path) -> dict[str, Any]:
    """One fresh pytest session over the group's tests; its figures, outcomes and wall time."""
    tests = [_resolve(t) for t in GROUP_TESTS.get(group, TRAIN_TESTS)]
    d = work / f"{group}-{index}"
    shutil.rmtree(d, ignore_errors=True)
    (d / "tmp").mkdir(parents=True)
    figs, junit = d / "figures.jsonl", d / "junit.xml"
    env = dict(os.environ, DARKPROXY_TEST_FIGURES=str(figs), DARKPROXY_HOME=str(d / "home"), TMPDIR=str(d / "tmp"))
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + str(ROOT / "bench") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--basetemp", str(d / "pt")]
    cmd += ["--junitxml", str(junit)]
    if group == "seeds":
        env["DARKPROXY_BENCH_SEED"] = str(index)
        cmd += ["-p", "_seed_plugin"]
    t = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    durations: dict[str, float] = {}
    if junit.is_file():
        for tc in ET.parse(junit).getroot().iter("testcase"):
            key = f"{tc.get('classname')}::{tc.get('name')}"
            bad = next((c for c in tc if c.tag in ("failure", "error", "skipped")), None)
            outcomes[key] = "passed" if bad is None else bad.tag
            durations[key] = round(float(tc.get("time") or 0), 1)
            if bad is not None:
                messages[key] = (bad.get("message") or "")[:500]
    figures = [json.loads(ln) for ln in figs.read_text().splitlines()] if figs.is_file() else []
    rec = {"group": group, "index": index, "rc": p.returncode, "seconds": round(seconds, 1)}
    rec |= {"outcomes": outcomes, "messages": messages, "durations": durations, "figures": figures}
    rec["tail"] = p.stdout[-3000:] if p.returncode else ""
    rec["complete"] = _complete(rec, len(tests) + EXTRA_CASES.get(group, 0))
    shutil.rmtree(d, ignore_errors=True)
    return rec


def run_renders(index: int, work: Path) -> dict[str, Any]:
    """darktable's own noise: the same raw and history rendered by two darktable-cli processes."""
    import numpy as np

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.session import Darktable
    from darkproxy.darktable.tapout import tapout
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng

    d = work / f"renders-{index}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    os.environ["DARKPROXY_HOME"] = str(d / "home")
    t = time.monotonic()
    dt = Darktable()
    cases = []
    # the tests' raws (64-128 px synthetic DNGs) and darktable's default history: RENDERS renders in one
    # darktable-cli process, as generate and the tap-outs render; then an exposure tap-out in separate processes
    for source, size in (("astronaut", 64), ("coffee", 96)):
        raw = d / f"{source}-{size}.dng"
        write_synthetic_dng(default_source_images()[source], raw, SynthRawSpec(size=size))
        hist = dt.default_history(raw)
        jobs = [RenderJob(raw, hist, d / f"{source}-{size}-{k}.tif") for k in range(RENDERS)]
        outs = dt.renderer(max_size=size).render_batch(jobs)
        imgs = [read_tiff(p) for p in outs if isinstance(p, Path)]
        assert len(imgs) == RENDERS, outs
        cases.append((f"default history, {source} {size} px, one process", imgs))
    taps = [tapout(dt, raw, "exposure", {"exposure": 1.5}, max_size=96) for _ in range(RENDERS // 2)]
    cases.append((f"exposure tap-out output, coffee 96 px, {RENDERS // 2} processes", [tp.output for tp in taps]))
    figures = []
    for what, imgs in cases:  # every render against the first: the worst pair
        diffs = [np.abs(x - imgs[0]) for x in imgs[1:]]
        psnr = min(float(display_psnr(x, imgs[0])) for x in imgs[1:])
        n_diff = sum(bool(x.any()) for x in diffs)
        figures += [
            {"test": "darktable renders", "name": f"{what}: renders differing from the first", "value": n_diff},
            {"test": "darktable renders", "name": f"{what}: display psnr", "value": psnr},
            {"test": "darktable renders", "name": f"{what}: max abs diff", "value": max(float(x.max()) for x in diffs)},
            {
                "test": "darktable renders",
                "name": f"{what}: values differing",
                "value": max(float((x > 0).mean()) for x in diffs),
            },
        ]
    shutil.rmtree(d, ignore_errors=True)
    return {"group": "renders", "index": index, "rc": 0, "seconds": round(time.monotonic() - t, 1), "figures": figures}


# ------------------------------------------------------------------------------ report
def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (group, test, figure): the spread over runs, the latest bound and the worst run's margin to it."""
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["group"], r["index"])):
        for f in r["figures"]:
            file, _, test = f["test"].partition("::")  # by file name: a test file that moved is the same test
            by.setdefault((r["group"], f"{Path(file).name}::{test}" if test else file, f["name"]), []).append(f)
    rows = []
    for (group, test, name), fs in by.items():
        v = [f["value"] for f in fs]
        op, bound = fs[-1].get("op"), fs[-1].get("bound")
        std = statistics.stdev(v) if len(v) > 1 else 0.0
        row = {"group": group, "test": test, "name": name, "n": len(v), "min": min(v), "median": statistics.median(v)}
        row |= {"max": max(v), "mean": statistics.fmean(v), "std": std, "op": op, "bound": bound}
        if op is not None and bound is not None:
            worst = min(v) if op.startswith(">") else max(v)
            margin = worst - bound if op.startswith(">") else bound - worst
            row |= {"worst": worst, "margin": margin, "margin_std": margin / std if std > 0 else None}
            row["missed"] = sum(
                1
                for x in v
                if (x <= bound if op == ">" else x < bound if op == ">=" else x >= bound if op == "<" else x > bound)
            )
        rows.append(row)
    return rows


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def near(row: dict[str, Any]) -> bool:
    """A bound closer to the worst run than the policy allows: under 3 std of the figure, or, for a figure
    without spread, under 5 % of the worst run's magnitude."""
    if "margin" not in row:
        return False
    if row["std"] > 0 and row["margin"] < 3 * row["std"]:
        return True
    return row["margin"] < 0.05 * abs(row["worst"])


POLICY = (
    "Policy (issue 25): a test's bound sits at least 3 standard deviations of the figure beyond its worst run "
    "(`margin / std` >= 3), or, where the runs do not spread (bit-identical: no darktable render in them "
    "differed) or 3 std would no longer test anything, a margin stated in the test's comment. `near` marks "
    "bounds closer than that (or, without spread, within 5 % of the worst run): the ones to re-check when "
    "the code they measure changes."
)


def _table(rows: list[dict[str, Any]], with_test: bool = True) -> list[str]:
    head = "| test | figure |" if with_test else "| figure |"
    lines = [
        head + " n | min | median | max | std | bound | margin | margin / std | (mean - bound) / std | missed | near |",
        "|---" * (head.count("|") - 1) + "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        test = r["test"].split("::")[-1] if "::" in r["test"] else r["test"]
        bound = f"{r['op']} {_g(r['bound'])}" if r["op"] else "-"
        ms = r.get("margin_std")
        z = None
        if "margin" in r and r["std"] > 0:
            z = (r["mean"] - r["bound"]) / r["std"] * (1 if r["op"].startswith(">") else -1)
        cells = [test, r["name"]] if with_test else [r["name"]]
        cells += [str(r["n"]), _g(r["min"]), _g(r["median"]), _g(r["max"]), _g(r["std"]), bound]
        cells += [_g(r.get("margin")), "-" if ms is None else f"{ms:.1f}", "-" if z is None else f"{z:.1f}"]
        cells += [str(r.get("missed", "-")), "**near**" if near(r) else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(out: Path, data: dict[str, Any], match: Path | None) -> None:
    rows = summarise(data["runs"])
    m = data["meta"]
    lines = [
        "# Test figures: spread over fresh runs, and the tests' bounds",
        "",
        f"Measured by `bench/bench_test_noise.py` ({m['date']}, {m['nproc']} cores, {m['cpu']}, torch {m['torch']}; "
        "a machine shared with other work). Each run is a fresh pytest session (new DARKPROXY_HOME, basetemp, "
        "TMPDIR): every darktable render, dataset and training of the fixtures is redone. `bound` is the bound of "
        "the latest run (the test's bound now), `margin` the distance of the worst run to it (in the figure's units "
        "and in standard deviations), `missed` the runs outside it. Figures without a bound are context (baselines).",
        "",
        POLICY,
        "",
    ]
    for group in GROUPS:
        runs = [r for r in data["runs"] if r["group"] == group]
        if not runs:
            continue
        secs = [r["seconds"] for r in runs]
        n_ok = sum(r.get("complete", True) for r in runs)
        lines += [
            f"## {group}",
            "",
            GROUP_NOTES.get(group, ""),
            "",
            f"{len(runs)} runs ({n_ok} complete: every test ran to its end; a partial run's figures count too), "
            f"{min(secs):.0f}-{max(secs):.0f} s each; exit codes {sorted({r['rc'] for r in runs})}.",
            "",
        ]
        for r in runs:
            for t, o in r.get("outcomes", {}).items():
                if o in ("failure", "error"):
                    msg = r.get("messages", {}).get(t, "").splitlines()[:1] or [""]
                    lines.append(f"- run {r['index']}: `{t}` {o}: {msg[0][:200]}")
        if any(o in ("failure", "error") for r in runs for o in r.get("outcomes", {}).values()):
            lines.append("")
        lines += [*_table([r for r in rows if r["group"] == group]), ""]
    if match is not None and match.is_file():  # a list of {"test", "run", figure: value, ...}
        mruns = json.loads(match.read_text())
        figs = [
            {"test": r.get("test", "test_match"), "name": k, "value": v}
            for r in mruns
            for k, v in r.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        mrows = summarise([{"group": "match", "index": 0, "figures": figs}])
        lines += [
            f"## test_match --pairs (runs measured by the match work, from {match})",
            "",
            *_table(mrows),
            "",
        ]
    (out / "test_noise.md").write_text("\n".join(lines))
    data["summary"] = rows
    _write_json(out / "test_noise.json", data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--work", default="/tmp/dp/noise-work")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--match", default="/tmp/dp/noise_match.json", help="test_match --pairs runs (JSON), if any")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--merge", action="append", default=[], help="another run's test_noise.json: add its runs")
    ap.add_argument("--max-broken", type=int, default=20, help="runs that may fail to complete before giving up")
    ap.add_argument("--pause", type=float, default=120.0, help="seconds to wait after a run that did not complete")
    args = ap.parse_args()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "test_noise.json"
    from darkproxy.machine import machine_info

    data = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    data["meta"] = machine_info()
    match = Path(args.match) if args.match else None
    for other in args.merge:  # runs measured at the same time into another --out
        have = {(r["group"], r["index"]) for r in data["runs"]}
        data["runs"] += [r for r in json.loads(Path(other).read_text())["runs"] if (r["group"], r["index"]) not in have]
    groups = [g for g in args.groups.split(",") if g]
    for g in groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g!r}; expected some of {', '.join(GROUPS)}")
    broken = 0
    while not args.report_only:
        todo = [g for g in groups if sum(r["group"] == g and r.get("complete", True) for r in data["runs"]) < args.runs]
        if not todo:
            break
        g = todo[0]  # in --groups order
        i = max((r["index"] for r in data["runs"] if r["group"] == g), default=-1) + 1
        print(f"{time.strftime('%H:%M:%S')} {g} run {i} ...", flush=True)
        rec = run_renders(i, work) if g == "renders" else run_pytest(g, i, work)
        print(f"  rc {rec['rc']}, {rec['seconds']} s, {len(rec['figures'])} figures", flush=True)
        if rec["figures"]:  # a partial run's figures are measurements too; only complete runs count
            data["runs"].append(rec)
            write_report(out, data, match)
        if not rec.get("complete", True):
            broken += 1
            print(f"  not complete: {rec.get('messages') or rec.get('tail', '')[-1500:]}", flush=True)
            if broken > args.max_broken:
                print(f"giving up after {broken} runs that did not complete", flush=True)
                return 1
            time.sleep(args.pause)  # the tree may be mid-edit: let it settle
    write_report(out, data, match)
    print((out / "test_noise.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
