"""``tonemapper`` in a match chain: the history's own tone mapper (filmic rgb up to darktable 5.0, sigmoid from
5.2 on), and one tone mapper at a time (darktable would apply both)."""

from __future__ import annotations

from pathlib import Path

from tests.tonemap import tone_mapper


def test_tonemapper_is_the_historys_and_one_runs_at_a_time(dt, make_raw, tmp_path: Path) -> None:
    from darkproxy.match.fit import DEFAULT_CHAIN, plan_history, resolve_chain

    raw = make_raw(source="coffee", size=32)
    base = dt.default_history(raw)
    own = tone_mapper(base)  # darktable's default history's
    other = "sigmoid" if own == "filmicrgb" else "filmicrgb"
    assert resolve_chain(dt, raw, None, DEFAULT_CHAIN) == ["exposure", "colorbalancergb", own]
    assert resolve_chain(dt, raw, None, ["exposure", "-tonemapper", "rgbcurve"]) == ["exposure", f"-{own}", "rgbcurve"]
    # naming the other tone mapper turns the history's off; a sidecar that enables the other one is followed
    assert resolve_chain(dt, raw, None, ["exposure", other]) == ["exposure", other, f"-{own}"]
    xmp = dt.edit(base, updates={other: {}}, disable=[own]).write(tmp_path / "other.xmp")
    assert resolve_chain(dt, raw, xmp, ["exposure", "tonemapper"]) == ["exposure", other]
    # the plan runs one tone mapper: the chain's
    _, plan = plan_history(dt, raw, ["exposure", other], None)
    assert other in plan.modules and own not in plan.modules
    # a chain without a tone mapper leaves the history's as it is
    assert resolve_chain(dt, raw, None, ["exposure", "colorbalancergb"]) == ["exposure", "colorbalancergb"]
