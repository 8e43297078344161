"""Dataset storage: atomic writes, crash repair, verification."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from darkproxy.data import store
from darkproxy.data.store import (
    DiskFull,
    JsonlAppender,
    read_jsonl,
    repair_jsonl,
    save_npy_atomic,
    verify_dataset,
)
from darkproxy.fsutil import write_json


def test_save_npy_atomic_and_digest(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float16).reshape(3, 2, 2)
    digest = save_npy_atomic(tmp_path / "x.npy", a)
    assert digest == hashlib.sha256((tmp_path / "x.npy").read_bytes()).hexdigest()
    assert np.array_equal(np.load(tmp_path / "x.npy"), a)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temp file left


def test_enospc_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(DiskFull, match="disk full"):
        save_npy_atomic(tmp_path / "x.npy", np.zeros((3, 2, 2), np.float16))
    assert list(tmp_path.iterdir()) == []


def test_partial_manifest_line_is_truncated(tmp_path: Path) -> None:
    p = tmp_path / "manifest.jsonl"
    p.write_bytes(b'{"id": "000000"}\n{"id": "0000')
    assert [r["id"] for r in read_jsonl(p)] == ["000000"]
    assert repair_jsonl(p) == len(b'{"id": "0000')
    with JsonlAppender(p) as a:
        a.append({"id": "000001"})
    assert p.read_bytes() == b'{"id": "000000"}\n{"id":"000001"}\n'


def _tiny_dataset(root: Path) -> None:
    write_json(
        root / "dataset.json",
        {
            "format": "darkproxy-dataset/1",
            "module": "exposure",
            "n": 2,
            "param_space": {"module": "exposure", "specs": [{}], "fixed": {}},
        },
        indent=1,
    )
    with JsonlAppender(root / "manifest.jsonl") as m:
        for i, raw, split in ((0, "a.dng", "train"), (1, "b.dng", "val")):
            sid = f"{i:06d}"
            arr = np.full((3, 4, 5), i + 1, np.float16)
            f = {"input": f"samples/{sid}_in.npy", "output": f"samples/{sid}_out.npy"}
            sha = {k: save_npy_atomic(root / v, arr) for k, v in f.items()}
            m.append(
                {
                    "id": sid,
                    "raw": raw,
                    "params": {"exposure": 1.0},
                    "params_norm": [0.5],
                    "module": "exposure",
                    "module_version": 6,
                    "darktable_version": "4.2.1",
                    "upstream_hash": "x",
                    "files": f,
                    "sha256": sha,
                    "shape": [3, 4, 5],
                    "split": split,
                }
            )


def test_verify_ok_and_each_problem(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path)
    rep = verify_dataset(tmp_path)
    assert rep.ok and rep.samples == 2, rep.problems
    # corrupt one byte of a sample file
    f = tmp_path / "samples/000001_out.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    rep = verify_dataset(tmp_path)
    assert not rep.ok and "000001" in rep.summary() and "sha256" in rep.summary()


def test_verify_duplicates_split_leak_and_nan(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path)
    recs = read_jsonl(tmp_path / "manifest.jsonl")
    nan = np.full((3, 4, 5), np.nan, np.float16)
    recs[1]["sha256"]["output"] = save_npy_atomic(tmp_path / "samples/000001_out.npy", nan)
    recs[1]["raw"] = "a.dng"  # same raw as sample 0, other split
    recs.append(dict(recs[0]))  # duplicate id
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    probs = " | ".join(verify_dataset(tmp_path).problems)
    assert "duplicate sample id 000000" in probs
    assert "two splits" in probs
    assert "non-finite" in probs
    # missing file
    os.remove(tmp_path / "samples/000000_in.npy")
    assert "missing" in " | ".join(verify_dataset(tmp_path).problems)
