"""The suite on several workers (pytest-xdist: ``./run.sh test`` runs ``-n auto --dist loadscope``).

* Each worker gets its share of the CPUs as OpenMP's thread count (torch, numpy's BLAS and darktable-cli read it),
  set in the environment xdist starts them with: with every worker at every CPU, OpenMP's spinning threads fight each
  other and the suite runs slower than serially.
* Work goes out one test file at a time (its module fixtures set up once), except the files that use the session's
  trained proxies (:data:`TRAINED_FILES`): one unit, so that no two workers train them.
* The costliest unit first (seconds per file: :data:`DURATIONS`, written by ``pytest --store-durations``), so that
  no long file starts last while the other workers idle.

Imported by tests/conftest.py, whose namespace makes these functions pytest hooks.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
# the files whose tests use ``trained_run`` (tests/conftest.py); tests/test_parallel.py checks the list is complete
TRAINED_FILES = frozenset(
    {
        "tests/engines/test_evaluate.py",
        "tests/engines/test_regress.py",
        "tests/engines/test_regress_eval.py",
        "tests/engines/test_train_darktable.py",
        "tests/test_pipeline.py",
    }
)
TRAINED_UNIT = "trained-proxies"


def pytest_configure(config: pytest.Config) -> None:
    """Before xdist starts its workers: their ``OMP_NUM_THREADS`` = the CPUs / the workers (unless set)."""
    workers = getattr(config.option, "numprocesses", None)  # an int by now ("auto" resolved)
    if workers and not os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["OMP_NUM_THREADS"] = str(max(1, cpus // int(workers)))


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its file, or :data:`TRAINED_UNIT`."""
    path = nodeid.split("::", 1)[0]
    return TRAINED_UNIT if path in TRAINED_FILES else path


def unit_seconds(durations: dict[str, float]) -> dict[str, float]:
    """Seconds per work unit from seconds per file."""
    out: dict[str, float] = defaultdict(float)
    for path, s in durations.items():
        out[unit_of(path)] += s
    return dict(out)


class _CostliestFirst(OrderedDict):
    """xdist's work queue, popped costliest unit first (unknown units: the mean of the known)."""

    def __init__(self, seconds: dict[str, float]) -> None:
        super().__init__()
        self.seconds = seconds
        self.default = sum(seconds.values()) / len(seconds) if seconds else 0.0

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        key = max(self, key=lambda k: self.seconds.get(k, self.default))
        return key, self.pop(key)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write the seconds each test file took (setup, call and teardown) to {DURATIONS.name}, which orders "
        "the parallel run's work (serially measured numbers order it best)",
    )


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") not in ("loadscope", "loadfile"):
        return None  # xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            try:
                known = json.loads(DURATIONS.read_text())
            except (OSError, ValueError):
                known = {}
            self.workqueue = _CostliestFirst(unit_seconds(known))

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return Scheduling(config, log)


_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SECONDS[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.getoption("--store-durations") and not os.environ.get("PYTEST_XDIST_WORKER"):
        try:  # a run of some files updates theirs
            known = json.loads(DURATIONS.read_text())
        except (OSError, ValueError):
            known = {}
        known.update({k: round(v, 1) for k, v in _SECONDS.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
