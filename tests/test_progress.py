"""Progress reads well in logs: a tqdm bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from darkproxy import progress as P
from tests.conftest import run_cli


class _Clock:
    """A fake ``time.monotonic`` for :mod:`darkproxy.progress`."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(P.time, "monotonic", c)
    return c


def test_log_progress_is_a_bounded_number_of_plain_lines(clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(P.INTERVAL_ENV, raising=False)
    log = io.StringIO()  # not a terminal
    bar = P.progress_bar(total=8000, initial=200, desc="train exposure", unit="step", file=log)
    assert isinstance(bar, P.LogProgress)
    for _ in range(7800):  # 7800 steps in 78 s of (fake) time
        clock.t += 0.01
        bar.update(1)
        bar.set_postfix(loss="0.0123", best="41.20dB")
    bar.close()
    bar.close()  # idempotent
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert 78 // 5 <= len(lines) <= 78 // 5 + 1  # one every 5 s, plus the final line
    assert re.fullmatch(
        r"train exposure: \d+/8000 steps \(\d+ %\), 100 step/s, eta \d+ (min \d\d )?s, loss 0.0123, best 41.20dB",
        lines[0],
    ), lines[0]
    assert lines[-1] == "train exposure: 8000/8000 steps (100 %), in 1 min 18 s, 100 step/s, loss 0.0123, best 41.20dB"


def test_interval_from_the_environment(clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P.INTERVAL_ENV, "20")
    log = io.StringIO()
    with P.progress_bar(total=None, desc="work", unit="sample", file=log) as bar:
        for _ in range(100):
            clock.t += 1.0
            bar.update(2)
    assert log.getvalue().splitlines() == [
        "work: 40 samples, 2 sample/s",
        "work: 80 samples, 2 sample/s",
        "work: 120 samples, 2 sample/s",
        "work: 160 samples, 2 sample/s",
        "work: 200 samples, 2 sample/s",
        "work: 200 samples, in 1 min 40 s, 2 sample/s",
    ]
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv(P.INTERVAL_ENV, bad)
        assert P.interval_s() == P.DEFAULT_INTERVAL_S


def test_a_terminal_gets_a_tqdm_bar() -> None:
    from tqdm import tqdm

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = P.progress_bar(total=3, desc="t", file=Tty())
    try:
        assert isinstance(bar, tqdm)
    finally:
        bar.close()


def test_quiet_and_disable_show_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    log = io.StringIO()
    with P.quiet():
        bar = P.progress_bar(total=2, desc="q", file=log)
        bar.update(2)
        bar.close()
        P.say("hidden")
    assert not P.is_quiet()
    bar = P.progress_bar(total=2, desc="q", file=log, disable=True)
    bar.update(2)
    bar.close()
    assert log.getvalue() == "" and capsys.readouterr().err == ""
    P.say("shown")
    assert capsys.readouterr().err == "shown\n"


def test_train_logs_plain_lines_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    """The real command, stderr a pipe: lines, no carriage returns, a final line."""
    from tests.engines.test_train import exposure_dataset

    ds = exposure_dataset(tmp_path / "ds", n=6, size=16, pointwise=True)
    r = run_cli(
        "train", str(ds), "-o", str(tmp_path / "run"), "--steps", "60", "--device", "cpu",
        env={P.INTERVAL_ENV: "0.5"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("train exposure (pointwise): ")]
    assert lines and lines[-1].startswith("train exposure (pointwise): 60/60 steps (100 %), in ")
    assert len(lines) <= 61 and len(r.stderr.splitlines()) <= len(lines) + 2  # nothing else floods the log
