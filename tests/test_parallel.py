"""tests/_parallel.py: the work units of a parallel run and their order."""

from __future__ import annotations

import json

import pytest

from tests._parallel import DURATIONS, TRAINED_FILES, TRAINED_UNIT, _CostliestFirst, unit_of, unit_seconds


def test_every_file_that_trains_the_session_proxies_is_one_unit(request: pytest.FixtureRequest) -> None:
    """A file using ``trained_run`` missing from TRAINED_FILES would train the proxies again on another worker."""
    users = {it.nodeid.split("::", 1)[0] for it in request.session.items if "trained_run" in it.fixturenames}
    assert users <= TRAINED_FILES, users - TRAINED_FILES
    assert all((request.config.rootpath / f).is_file() for f in TRAINED_FILES)


def test_units_merge_the_trained_files_and_pop_costliest_first() -> None:
    assert unit_of("tests/test_pipeline.py::test_check_and_eval") == TRAINED_UNIT
    assert unit_of("tests/match/test_shared.py::test_shared_refusals") == "tests/match/test_shared.py"
    seconds = unit_seconds({"tests/test_pipeline.py": 10.0, "tests/engines/test_regress.py": 20.0, "tests/a.py": 25.0})
    assert seconds == {TRAINED_UNIT: 30.0, "tests/a.py": 25.0}
    q = _CostliestFirst(seconds)
    for k in ("tests/b.py", "tests/a.py", TRAINED_UNIT):  # tests/b.py: unknown, the mean of the known (27.5)
        q[k] = {k: False}
    assert [q.popitem(last=False)[0] for _ in range(3)] == [TRAINED_UNIT, "tests/b.py", "tests/a.py"]


def test_the_durations_name_files_that_exist(request: pytest.FixtureRequest) -> None:
    known = json.loads(DURATIONS.read_text())
    assert known and all(s >= 0 for s in known.values())
    gone = [f for f in known if not (request.config.rootpath / f).is_file()]
    assert not gone, f"{gone}: rerun pytest --store-durations (or drop them from {DURATIONS.name})"
