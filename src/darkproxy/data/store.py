"""Dataset storage (``darkproxy-dataset/1``, see ``docs/dataset-format.md``):
atomic file writes, an append-only fsynced manifest, resume and verification.

Crash safety: every file is written to a temporary name in its final folder,
fsynced, then ``os.replace``d into place; a manifest line is appended (and
fsynced) only after the sample's files are complete. After a crash, the only
possible damage is a partial *last* manifest line (truncated on open) and
orphan temp/sample files (ignored; rewritten on resume).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy import fsutil
from darkproxy.errors import DatasetError

FORMAT = "darkproxy-dataset/1"
SPLITS = ("train", "val", "test")


class DiskFull(DatasetError):
    """The disk filled up while writing; the dataset is consistent and resumable."""


def _oserror(e: OSError, path: Path) -> DatasetError:
    if e.errno == errno.ENOSPC:
        return DiskFull(f"disk full writing {path}: free some space and re-run the same command to resume")
    return DatasetError(f"cannot write {path}: {e.strerror or e}")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """temp file in the same folder + fsync + ``os.replace``. Raises
    :class:`DiskFull` on ENOSPC (the temp file is removed)."""
    try:
        fsutil.write_bytes_atomic(path, data)
    except OSError as e:
        raise _oserror(e, Path(path)) from None


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def save_npy_atomic(path: Path, arr: np.ndarray) -> str:
    """Write ``arr`` as .npy atomically; returns the file's sha256 (hex)."""
    data = npy_bytes(arr)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of ``path`` (a partial or corrupt last line is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def repair_jsonl(path: Path) -> int:
    """Truncate a partial last line (no trailing newline) left by a crash.
    Returns the number of bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


class JsonlAppender:
    """Append JSON lines, each flushed and fsynced before returning."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        repair_jsonl(self.path)
        try:
            self._f = open(self.path, "ab")  # noqa: SIM115 - held open for appends, closed by close()
        except OSError as e:
            raise _oserror(e, self.path) from None

    def append(self, obj: Mapping[str, Any]) -> None:
        line = (json.dumps(obj, sort_keys=False, separators=(",", ":")) + "\n").encode()
        pos = self._f.tell()
        try:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            # leave no partial line behind (ENOSPC mid-write)
            try:
                self._f.truncate(pos)
                self._f.flush()
            except OSError:
                pass
            raise _oserror(e, self.path) from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------- reading / verifying


def read_dataset_json(root: str | os.PathLike[str]) -> dict[str, Any]:
    """``ROOT/dataset.json`` as a dict; :class:`DatasetError` if it is missing,
    corrupt or not ``darkproxy-dataset/1``."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{root} is not a darkproxy dataset (no dataset.json)")
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is corrupt: {e}") from None

    if info.get("format") != FORMAT:
        raise DatasetError(f"{path}: unsupported format {info.get('format')!r} (expected {FORMAT})")
    return info


@dataclass
class Dataset:
    """A dataset folder: ``info`` (dataset.json) and the manifest records."""

    root: Path
    info: dict[str, Any]
    records: list[dict[str, Any]]

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Dataset:
        root = Path(root)
        return cls(root, read_dataset_json(root), read_jsonl(root / "manifest.jsonl"))

    @property
    def failed(self) -> list[dict[str, Any]]:
        return read_jsonl(self.root / "failed.jsonl")


@dataclass
class VerifyReport:
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.samples} samples verified"
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{len(self.problems)} problem(s) in {self.samples} samples: {first}{more}"


def _partial_last_line(path: Path) -> bool:
    if not path.is_file():
        return False
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


def verify_dataset(root: str | os.PathLike[str], check_values: bool = True) -> VerifyReport:
    """Check every sample against the manifest: files exist, sha256 match,
    ``.npy`` shape/dtype (float16, (C, H, W), C in 3/4) match, values finite,
    ids unique, each raw in exactly one split, and the documented fields present."""
    ds = Dataset.open(root)
    rep = VerifyReport(samples=len(ds.records))
    p = rep.problems
    if _partial_last_line(ds.root / "manifest.jsonl"):
        p.append("manifest.jsonl ends with a partial line (interrupted run; re-run generate to repair)")
    seen: set[str] = set()
    split_of: dict[str, str] = {}
    required = (
        "id",
        "raw",
        "params",
        "params_norm",
        "module",
        "module_version",
        "darktable_version",
        "upstream_hash",
        "files",
        "sha256",
        "shape",
        "split",
    )
    n_params = len(ds.info.get("param_space", {}).get("specs", []))
    for rec in ds.records:
        sid = str(rec.get("id"))
        missing = [k for k in required if k not in rec]
        if missing:
            p.append(f"sample {sid}: missing field(s) {', '.join(missing)}")
            continue
        if sid in seen:
            p.append(f"duplicate sample id {sid}")
        seen.add(sid)
        if rec["split"] not in SPLITS:
            p.append(f"sample {sid}: unknown split {rec['split']!r}")
        prev = split_of.setdefault(rec["raw"], rec["split"])
        if prev != rec["split"]:
            p.append(f"raw {rec['raw']} is in two splits ({prev}, {rec['split']})")
        if rec["module"] != ds.info.get("module"):
            p.append(f"sample {sid}: module {rec['module']} != dataset module {ds.info.get('module')}")
        if len(rec["params_norm"]) != n_params:
            p.append(f"sample {sid}: {len(rec['params_norm'])} normalised params, param_space has {n_params}")
        elif not all(0.0 <= float(x) <= 1.0 for x in rec["params_norm"]):
            p.append(f"sample {sid}: params_norm outside [0, 1]")
        for role in ("input", "output"):
            rel = rec["files"].get(role)
            if rel is None:
                p.append(f"sample {sid}: no {role} file")
                continue
            path = ds.root / rel
            if not path.is_file():
                p.append(f"sample {sid}: {rel} is missing")
                continue
            digest = sha256_file(path)
            if digest != rec["sha256"].get(role):
                p.append(f"sample {sid}: {rel} sha256 mismatch (corrupt or modified)")
                continue
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                p.append(f"sample {sid}: {rel} is not a readable .npy ({e})")
                continue
            want = rec.get("dtype", "float16") if role == "output" else ("float16", "float32")
            if arr.dtype.name not in ((want,) if isinstance(want, str) else want):
                p.append(f"sample {sid}: {rel} has dtype {arr.dtype}, expected {want}")
            if arr.ndim != 3 or arr.shape[0] not in (3, 4):
                p.append(f"sample {sid}: {rel} has shape {arr.shape}, expected (C, H, W)")
            elif role == "output" and list(arr.shape) != list(rec["shape"]):
                p.append(f"sample {sid}: {rel} has shape {list(arr.shape)}, manifest says {rec['shape']}")
            if check_values and not np.isfinite(np.asarray(arr)).all():
                p.append(f"sample {sid}: {rel} has non-finite values")
    expected = ds.info.get("n")
    if isinstance(expected, int):
        nfail = len({str(r.get("id")) for r in ds.failed if r.get("id") is not None} - seen)
        if len(seen) + nfail < expected:
            p.append(f"incomplete: {len(seen)} of {expected} samples ({nfail} failed); re-run generate to finish")
    return rep
