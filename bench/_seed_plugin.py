"""pytest plugin of bench/bench_test_noise.py's ``seeds`` group: every ``darkproxy.engines.train.train`` call of the
session trains with torch seed ``$DARKPROXY_BENCH_SEED`` instead of its config's (the tests' data stay as
they are). Loaded with ``-p _seed_plugin`` (bench/ on PYTHONPATH) before the test modules import ``train``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import darkproxy.engines.train as tr

    seed = int(os.environ["DARKPROXY_BENCH_SEED"])
    real = tr.train

    def seeded(dataset_dir: Any, run_dir: Any, config: tr.TrainConfig | None = None, *a: Any, **k: Any) -> Any:
        return real(dataset_dir, run_dir, dataclasses.replace(config or tr.TrainConfig(), seed=seed), *a, **k)

    tr.train = seeded  # type: ignore[assignment]
