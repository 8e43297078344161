"""What every part of ``darkproxy match`` shares: its error and the log callback."""

from __future__ import annotations

from collections.abc import Callable

from darkproxy.errors import DarkproxyError

Log = Callable[[str], None]


class MatchError(DarkproxyError):
    """A reference that cannot be matched (unreadable, another scene, another framing...)."""
