"""A zoo module's files from a node, written into the driver's work folder."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from darkproxy.cluster.ray_support import TEXT_SUFFIXES, ZOO_STAGES
from darkproxy.fsutil import write_bytes_atomic


def gather_zoo_module(res: Mapping[str, Any], work: Path, module: str) -> int:
    """Write a zoo task's files into ``work``: the module's earlier stage records and folders
    go first, the stage records come last (a driver killed half-way redoes the module). Text
    files get the work folder's path where they had the node's. Returns the number of files."""
    work = work.resolve()
    for s in ZOO_STAGES:
        (work / "stages" / f"{s}-{module}.json").unlink(missing_ok=True)
    for d in ("datasets", "runs", "eval"):
        shutil.rmtree(work / d / module, ignore_errors=True)
    src = str(res["root"])
    files: Mapping[str, bytes] = res["files"]
    for rel, data in files.items():
        write_bytes_atomic(work / rel, _rebase(rel, data, src, str(work)), fsync=False)
    for s in ZOO_STAGES:
        write_bytes_atomic(work / "stages" / f"{s}-{module}.json", res["stages"][s])
    return len(files) + len(ZOO_STAGES)


def _rebase(rel: str, data: bytes, src: str, dst: str) -> bytes:
    if Path(rel).suffix not in TEXT_SUFFIXES:
        return data
    try:
        return data.decode("utf-8").replace(src, dst).encode("utf-8")
    except UnicodeDecodeError:
        return data
