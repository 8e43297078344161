"""What every part of ``darkproxy match`` shares: its error, the log callback, an error as one line."""

from __future__ import annotations

from collections.abc import Callable

from darkproxy.errors import DarkproxyError

Log = Callable[[str], None]


class MatchError(DarkproxyError):
    """A reference that cannot be matched (unreadable, another scene, another framing...)."""


def first_line(e: BaseException) -> str:
    """An error as the one line a per-image row reports: its message's first line, else its type's name."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__
