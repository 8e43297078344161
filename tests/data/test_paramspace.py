"""ParamSpec / ParamSpace arithmetic (data/paramspace.py)."""

from __future__ import annotations

import numpy as np
import pytest

from darkproxy.data.paramspace import ParamSpec


def test_error_is_absolute_and_a_fraction_of_the_training_range() -> None:
    s = ParamSpec("exposure", "float", -2.0, 4.0, 0.0)
    assert s.error(1.5, 0.0) == (1.5, pytest.approx(0.25))
    assert s.error(-1.0, 2.0) == (3.0, pytest.approx(0.5))
    assert ParamSpec("radius", "int", 3, 3, 3).error(3, 3) == (0.0, 0.0)  # an empty range: no fraction


def test_an_angle_error_is_the_short_way_round() -> None:
    s = ParamSpec("hue", "float", 0.0, 360.0, 0.0, period=360.0)
    assert s.full_turn and s.error(359.0, 1.0) == (2.0, pytest.approx(2.0 / 360))
    assert s.error(10.0, 730.0)[0] == pytest.approx(0.0)  # two turns on: the same angle
    part = ParamSpec("hue_angle", "float", -30.0, 30.0, 0.0, period=360.0)  # an angle, not a whole turn
    assert not part.full_turn and part.error(-20.0, 25.0)[0] == pytest.approx(45.0)
    assert ParamSpec("x", "float", 0.0, 360.0, 0.0).error(359.0, 1.0)[0] == pytest.approx(358.0)


def test_unit_errors_wrap_only_whole_turns() -> None:
    from darkproxy.data.paramspace import ParamSpace

    sp = ParamSpace.of(
        "toy",
        [ParamSpec("hue", "float", 0.0, 1.0, 0.0, period=1.0), ParamSpec("gain", "float", 0.0, 1.0, 0.0)],
    )
    assert sp.unit_errors(np.array([0.98, 0.98]), np.array([0.03, 0.03])) == pytest.approx([0.05, 0.95])
