"""Exact ports that darktable 5.0 renders differently are refused there (darkproxy.replica.verified)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from darkproxy.replica.verified import DIFFERS_FROM_50, port_differs


def test_only_50_on_and_only_the_measured_ports_and_settings() -> None:
    assert port_differs("bilat", {}, None) is None and port_differs("bilat", {}, (4, 2, 1)) is None
    why = port_differs("bilat", {}, (5, 0, 1))
    assert why is not None and "46.7-47.8 dB" in why and "darktable 5.0.1" in why
    assert port_differs("bilat", {}, (5, 6, 0)) is not None  # measured on 5.0 (and 5.4), assumed to persist
    assert port_differs("exposure", {}, (5, 0, 1)) is None  # its tests pass on 5.0.1
    # color balance rgb: ported for darktable 5 (its 5.x maths by the context's version), no longer refused
    assert port_differs("colorbalancergb", {}, (5, 4, 1)) is None
    assert set(DIFFERS_FROM_50) == {"channelmixerrgb", "atrous", "bilat", "negadoctor"}
    # color calibration: 5.0's default (CAT16, as shot in camera) and the settings that matched run
    assert port_differs("channelmixerrgb", {"adaptation": 1, "illuminant": 10}, (5, 0, 1)) is None
    assert port_differs("channelmixerrgb", {"adaptation": 0, "illuminant": 1}, (5, 0, 1)) is None
    assert "full Bradford" in (port_differs("channelmixerrgb", {"adaptation": 2, "illuminant": 3}, (5, 0, 1)) or "")
    assert "black body" in (port_differs("channelmixerrgb", {"adaptation": 0, "illuminant": 6}, (5, 0, 1)) or "")
    assert port_differs("channelmixerrgb", {"adaptation": 2, "illuminant": 3}, (4, 2, 1)) is None


def test_plan_refuses_them_on_50_and_runs_them_on_42(dt, make_raw) -> None:
    """The installed darktable (4.2.1 in CI) runs local contrast exactly; the same plan told it runs on 5.0.1
    (only the version differs: the ports' own check on 5.0.1 is the chroot suite) refuses it in one line naming
    the figure, without running it labelled exact; color balance rgb runs there (its darktable 5 maths)."""
    from darkproxy.replica.plan import plan_replica, replica_coverage

    raw: Path = make_raw(source="coffee", size=96)
    edits = {"bilat": {"detail": 0.5}, "colorbalancergb": {"saturation_global": 0.3}}
    hist = dt.edit(dt.default_history(raw), updates=edits)
    here = {c.module: c for c in replica_coverage(dt, hist, raw)}
    if dt.install.version_tuple[:2] < (5, 0):
        assert here["bilat"].runs == "exact", here["bilat"]
    other = copy.copy(dt)
    other.install = dataclasses.replace(dt.install, version="5.0.1")
    cov = {c.module: c for c in replica_coverage(other, hist, raw)}
    assert cov["bilat"].runs == "refused" and "46.7-47.8 dB" in cov["bilat"].detail, cov["bilat"]
    assert "\n" not in cov["bilat"].detail and cov["colorbalancergb"].runs == "exact", cov["colorbalancergb"]
    plan = plan_replica(other, dt.edit(hist, disable=["bilat"]), raw)
    assert "bilat" not in {s.module for s in plan.stages} and "colorbalancergb" in {s.module for s in plan.stages}
