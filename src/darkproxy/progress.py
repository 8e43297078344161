"""Progress of long work, and informational messages, as they read best where they go.

* :func:`progress_bar`: a tqdm bar when stderr is a terminal; otherwise (a log
  file, a pipe, CI) a plain line every few seconds, e.g. ``train exposure
  (pointwise): 1200/8000 steps (15 %), 12.3 step/s, eta 9 min 12 s, loss
  0.0123, best 41.20dB``, and a final line at the end: no carriage-return flood.
  ``$DARKPROXY_PROGRESS_SECONDS`` sets the seconds between lines (default 5).
* :func:`say`: one informational line on stderr.
* :func:`quiet`: turns both off (the command line's ``--quiet``); results and
  errors are not affected.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TextIO

INTERVAL_ENV = "DARKPROXY_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 5.0

_quiet = False


class Progress(Protocol):
    """What :func:`progress_bar` returns (the part of tqdm's interface the project uses)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> Any: ...

    def close(self) -> Any: ...


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Within the block (when ``on``), :func:`progress_bar` shows nothing and :func:`say` prints nothing."""
    global _quiet
    before = _quiet
    _quiet = bool(on) or before
    try:
        yield
    finally:
        _quiet = before


def is_quiet() -> bool:
    return _quiet


def say(msg: str) -> None:
    """An informational line on stderr (nothing under :func:`quiet`)."""
    if not _quiet:
        print(msg, file=sys.stderr, flush=True)


def interval_s() -> float:
    """Seconds between progress lines in a log: ``$DARKPROXY_PROGRESS_SECONDS`` (> 0), else 5."""
    try:
        v = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return v if v > 0 else DEFAULT_INTERVAL_S


def progress_bar(
    total: int | None,
    desc: str,
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    file: TextIO | None = None,
    **tqdm_kwargs: Any,
) -> Progress:
    """Progress of ``total`` ``unit``\\ s of work, ``initial`` of them already done:
    a tqdm bar when ``file`` (default stderr) is a terminal, else a
    :class:`LogProgress` (a line every :func:`interval_s` seconds and a final
    line). Nothing when ``disable`` or under :func:`quiet`. ``tqdm_kwargs`` go to
    the bar only. Use it as a context manager or call ``close()``."""
    out = sys.stderr if file is None else file
    if disable or _quiet:
        return _NoProgress()
    if _isatty(out):
        from tqdm.auto import tqdm

        kw = {"dynamic_ncols": True, **tqdm_kwargs}
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=out, **kw)
    return LogProgress(total, desc, unit, initial, interval_s(), out)


def _isatty(f: Any) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class LogProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` for a log: a line at most
    every ``interval`` seconds (when an update comes), and one final line on
    ``close`` (with the total time). The rate counts this run's work only (not
    ``initial``)."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int, interval: float, file: TextIO) -> None:
        self.total, self.desc, self.unit, self.interval, self.file = total, desc, unit, interval, file
        self.n = self._n0 = initial
        self.postfix: dict[str, Any] = {}
        self._t0 = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now, final=False)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(time.monotonic(), final=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, now: float, final: bool) -> str:
        """The progress line at time ``now`` (monotonic seconds)."""
        dt = now - self._t0
        done = self.n - self._n0
        parts = [f"{self.n}/{self.total} {self.unit}s" if self.total else f"{self.n} {self.unit}s"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        if final:
            parts.append(f"in {_duration(dt)}")
        rate = done / dt if dt > 0 else 0.0
        if done and dt > 0:
            parts.append(f"{_number(rate)} {self.unit}/s")
        if not final and self.total and done and self.n < self.total:
            parts.append(f"eta {_duration((self.total - self.n) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return f"{self.desc}: " + ", ".join(parts)

    def _write(self, now: float, final: bool) -> None:
        print(self.line(now, final), file=self.file, flush=True)


def _number(v: float) -> str:
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def _duration(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
