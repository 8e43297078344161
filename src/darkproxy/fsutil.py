"""Atomic file writes: a file is either its old self or complete, never half-written.

Every writer in the package goes through :func:`atomic_path` (a temporary file
in the target's folder, ``os.replace``d into place on success and removed on
failure), so an interrupted run or a full disk never leaves a truncated
dataset sample, sidecar, checkpoint or report behind. JSON files go through
:func:`write_json`, the one JSON writer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` (parent folder created);
    write it inside the ``with`` block. On success it replaces ``path``; on any
    exception it is removed and the exception propagates. ``suffix`` lets
    writers that pick a format by extension (imageio, ffmpeg) see one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (fsynced before the rename unless
    ``fsync=False``). Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str, fsync: bool = True) -> Path:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """The package's JSON writer: ``obj`` as JSON, atomically (temporary file + rename), indented
    by ``indent`` (None: one line, for large machine-read caches); values JSON does not know
    are written as ``str(value)``."""
    write_text_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")
