"""ParamSpec / ParamSpace arithmetic (data/paramspace.py)."""

from __future__ import annotations

import pytest

from darkproxy.data.paramspace import ParamSpec


def test_error_is_absolute_and_a_fraction_of_the_training_range() -> None:
    s = ParamSpec("exposure", "float", -2.0, 4.0, 0.0)
    assert s.error(1.5, 0.0) == (1.5, pytest.approx(0.25))
    assert s.error(-1.0, 2.0) == (3.0, pytest.approx(0.5))
    assert ParamSpec("radius", "int", 3, 3, 3).error(3, 3) == (0.0, 0.0)  # an empty range: no fraction
