"""The scene-to-display tone mapper a darktable's default history enables: filmic rgb up to 5.0, sigmoid from 5.2
on (its workflow default), for tests that edit or switch off "the" tone mapper on any darktable."""

from __future__ import annotations

from typing import Any


def tone_mappers(history: Any) -> list[str]:
    """The tone mappers ``history`` enables, in darktable's order of preference (filmic rgb, sigmoid)."""
    return [m for m in ("filmicrgb", "sigmoid") if (it := history.find(m)) is not None and it.enabled]


def tone_mapper(history: Any) -> str:
    """The one tone mapper ``history`` enables (filmic rgb where none is)."""
    found = tone_mappers(history)
    return found[0] if found else "filmicrgb"
