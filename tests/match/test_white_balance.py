"""``darkproxy match`` with white balance among the sliders: ``--chain temperature,...`` starts the match from
the raw's mosaic (the replica's exact rawprepare, temperature, highlights and demosaic) so the coefficients get
a gradient; the reference is darktable's render of hidden sliders, white balance among them.

Bounds: see the test's comment (bench/results/test_noise.md, group "match")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli


def test_match_recovers_a_look_with_white_balance(dt, make_raw, tmp_path: Path, expect) -> None:
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.plan import _decode
    from darkproxy.viz.images import save_png, to_uint8

    raw = make_raw(source="coffee", size=128)
    base = dt.default_history(raw)
    t = _decode(dt, "temperature", base.find("temperature")).values
    hidden = {
        "temperature": {"red": t["red"] * 1.15, "blue": t["blue"] * 0.88},
        "exposure": {"exposure": 1.1},
        "colorbalancergb": {"saturation_global": 0.25},
    }
    save_png(tmp_path / "ref.png", to_uint8(render_export(dt, raw, dt.edit(base, updates=hidden), 128)))
    out = tmp_path / "m"
    chain = "temperature,exposure,colorbalancergb,tonemapper"  # the history's: filmic rgb or sigmoid
    args = ["--max-size", "128", "--iters", "150", "--restarts", "2", "--json"]
    r = run_cli("match", str(raw), str(tmp_path / "ref.png"), "--chain", chain, "-o", str(out), *args)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert {"temperature.red", "temperature.blue"} <= set(s["free"])
    assert [st["module"] for st in s["stages"]][:4] == ["rawprepare", "temperature", "highlights", "demosaic"]
    rel = {c: abs(s["params"][f"temperature.{c}"] / hidden["temperature"][c] - 1) for c in ("red", "blue")}
    print(f"\nΔE2000 {s['deltae_mean']:.3f} (defaults {s['default_deltae_mean']:.3f}); white balance errors {rel}")
    # the goal: ΔE2000 mean <= 1 on a darktable-made reference with white balance hidden. 10 fresh runs
    # (bench/results/test_noise.md, group match-wb) repeat exactly: ΔE2000 0.2601 (defaults 6.82), relative
    # errors red 0.50 %, blue 0.018 %; bounds: the goal (1.0) and 5 % (stated margins)
    expect("ΔE2000 mean, white balance hidden", s["deltae_mean"], "<", 1.0)
    expect("temperature.red relative error", rel["red"], "<", 0.05)
    expect("temperature.blue relative error", rel["blue"], "<", 0.05)
    # white balance is per raw: the style leaves it out (it carries the look's modules only)
    style = (out / "result.dtstyle").read_text()
    assert "<operation>temperature</operation>" not in style and "<operation>exposure</operation>" in style


def test_pairs_refuse_a_chain_on_the_mosaic(dt, make_raw, tmp_path: Path) -> None:
    import shutil

    from darkproxy.match import MatchError, match_pairs
    from darkproxy.viz.images import save_png

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    raw = make_raw(source="coffee", size=64)
    shutil.copyfile(raw, pairs / "a.dng")
    save_png(pairs / "a.png", np.zeros((48, 64, 3), np.uint8))  # refused before any reference is read
    with pytest.raises(MatchError, match="temperature runs on the raw's mosaic") as e:
        match_pairs(dt, pairs, tmp_path / "out", chain=["temperature", "exposure"], holdout=0)
    assert "\n" not in str(e.value)
