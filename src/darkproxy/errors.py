"""Error types. Every error a user can provoke is a :class:`DarkproxyError`;
the CLI prints its message on one line and exits non-zero (no traceback)."""

from __future__ import annotations


class DarkproxyError(Exception):
    """Base class for user-facing errors (one-line message, exit code ``exit_code``)."""

    exit_code: int = 2


class DarktableNotFound(DarkproxyError):
    """darktable-cli (or its libraries) is missing or not executable."""


class DarktableRenderError(DarkproxyError):
    """darktable-cli crashed, timed out or wrote no output."""

    exit_code = 3


class DarktableCrash(DarktableRenderError):
    """darktable-cli died of a signal (4.2.1 segfaults now and then on the same input it renders the next time)."""


class UnknownModule(DarkproxyError):
    """A module name darktable does not know (or has no introspection for)."""


class UnknownParam(DarkproxyError):
    """A parameter name the module's schema does not have."""


class ParamValueError(DarkproxyError):
    """A parameter value of the wrong type or outside darktable's $MIN/$MAX."""


class XmpError(DarkproxyError):
    """A malformed, truncated or unsupported XMP sidecar or params blob."""


class RawError(DarkproxyError):
    """A missing, unreadable or corrupt raw file."""


class DatasetError(DarkproxyError):
    """A dataset that is missing, inconsistent or fails verification."""


class ScaleError(DarkproxyError):
    """A render scale a proxy was not trained on (or none given to one that needs it)."""
