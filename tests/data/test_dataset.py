"""ModuleDataset over the documented on-disk format, written by write_sample_arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from darkproxy.data.dataset import ModuleDataset, load_dataset_info, read_manifest, write_sample_arrays
from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.errors import DatasetError

SPACE = ParamSpace.of(
    "exposure", [ParamSpec("exposure", "float", -2.0, 4.0, 0.0), ParamSpec("compensate", "bool", 0, 1, 0)]
)


def _ramp(h: int, w: int, k: float = 1.0) -> np.ndarray:
    """Image whose value encodes the pixel position (so crops can be located)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([yy / h, xx / w, (yy * w + xx) / (h * w)]) * k


def _exposure_dataset(root: Path, n: int = 6, h: int = 24, w: int = 40, **kw) -> Path:
    samples, splits = [], []
    for i in range(n):
        ev = -2.0 + i
        x = _ramp(h, w, 1.0 + 0.1 * i)
        samples.append((x, x * 2.0**ev, {"exposure": ev, "compensate": bool(i % 2)}))
        splits.append(("train", "train", "val")[i % 3])
    return write_sample_arrays(root, SPACE, samples, splits=splits, **kw)


def test_writer_follows_the_documented_format(tmp_path: Path) -> None:
    root = _exposure_dataset(tmp_path / "ds", pointwise=True)
    info = json.loads((root / "dataset.json").read_text())
    assert info["format"] == "darkproxy-dataset/1" and info["dtype"] == "float16"
    assert ParamSpace.from_json(info["param_space"]) == SPACE
    recs = read_manifest(root)
    assert len(recs) == 6
    for key in (
        "id",
        "raw",
        "module",
        "module_version",
        "darktable_version",
        "params",
        "params_norm",
        "upstream_hash",
        "files",
        "sha256",
        "shape",
        "split",
    ):
        assert key in recs[0], key
    arr = np.load(root / recs[0]["files"]["output"])
    assert arr.dtype == np.float16 and list(arr.shape) == recs[0]["shape"] == [3, 24, 40]
    di = load_dataset_info(root)
    assert (di.module, di.pre_demosaic, di.flip_invariant, di.pointwise, di.in_channels) == (
        "exposure",
        False,
        True,
        True,
        3,
    )
    assert di.param_space == SPACE


def test_the_store_verifier_accepts_it(tmp_path: Path) -> None:
    from darkproxy.data import store  # a plain import: a broken store must fail here, not skip

    rep = store.verify_dataset(_exposure_dataset(tmp_path / "ds"))
    assert rep.ok, rep.problems


def test_items_crops_and_params(tmp_path: Path) -> None:
    root = _exposure_dataset(tmp_path / "ds")
    ds = ModuleDataset(root, "train", crop=16, flips=False, seed=3)
    assert len(ds) == 4 and len(ModuleDataset(root, "val", crop=None)) == 2 and len(ModuleDataset(root, None)) == 6
    seen = set()
    for i in range(len(ds)):
        for _ in range(3):
            it = ds[i]
            x, y, p = it["input"], it["output"], it["params"]
            assert x.shape == y.shape == (3, 16, 16) and x.dtype == y.dtype == p.dtype == torch.float32
            rec = ds.records[i]
            ev = rec["params"]["exposure"]
            # same location in input and output: known maths holds on the crop
            torch.testing.assert_close(y, (x * 2.0**ev).half().float(), rtol=2e-3, atol=1e-4)
            torch.testing.assert_close(p, torch.tensor([(ev + 2.0) / 6.0, float(rec["params"]["compensate"])]))
            assert it["id"] == rec["id"]
            # locate the crop from the ramp and check it is inside the image
            k = 1.0 + 0.1 * int(rec["id"])
            y0, x0 = round(float(x[0, 0, 0]) / k * 24), round(float(x[1, 0, 0]) / k * 40)
            assert 0 <= y0 <= 24 - 16 and 0 <= x0 <= 40 - 16
            seen.add((y0, x0))
    assert len(seen) > 3  # crops are random
    full = ModuleDataset(root, "val", crop=None)[0]
    assert full["input"].shape == (3, 24, 40)
    big = ModuleDataset(root, "val", crop=100)[0]  # crop larger than the image is clamped
    assert big["input"].shape == (3, 24, 40)


def test_flips_only_when_flip_invariant(tmp_path: Path) -> None:
    root = _exposure_dataset(tmp_path / "ds")
    ds = ModuleDataset(root, "train", crop=None, flips=True, seed=0)
    flipped = 0
    for _ in range(12):
        it = ds[0]
        ev = ds.records[0]["params"]["exposure"]
        torch.testing.assert_close(it["output"], (it["input"] * 2.0**ev).half().float(), rtol=2e-3, atol=1e-4)
        x = it["input"]
        flipped += int(x[0, 0, 0] > x[0, -1, 0] or x[1, 0, 0] > x[1, 0, -1])
    assert flipped > 0
    root2 = _exposure_dataset(tmp_path / "ds2", flip_invariant=False)
    ds2 = ModuleDataset(root2, "train", crop=None, flips=True)
    ref = np.load(root2 / ds2.records[0]["files"]["input"]).astype(np.float32)
    for _ in range(6):
        np.testing.assert_array_equal(ds2[0]["input"].numpy(), ref)


def test_pre_demosaic_crops_align(tmp_path: Path) -> None:
    h, w = 16, 24
    m = np.arange(h * w, dtype=np.float32).reshape(h, w) / (h * w)
    packed = np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]])
    out = np.stack([m, 2 * m, 3 * m])
    root = write_sample_arrays(tmp_path / "ds", SPACE, [(packed, out, {"exposure": 0.0})], pre_demosaic=True)
    ds = ModuleDataset(root, "train", crop=6, flips=True, seed=1)
    assert not ds.flips and ds.info.in_channels == 4
    for _ in range(10):
        it = ds[0]
        x, y = it["input"].numpy(), it["output"].numpy()
        assert x.shape == (4, 3, 3) and y.shape == (3, 6, 6)
        np.testing.assert_allclose(x[0], y[0, 0::2, 0::2], rtol=1e-3)  # R at even row/col
        np.testing.assert_allclose(x[3], y[0, 1::2, 1::2], rtol=1e-3)  # B at odd row/col


def test_bad_datasets(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset.json"):
        load_dataset_info(tmp_path)
    (tmp_path / "dataset.json").write_text('{"format": "other"}')
    with pytest.raises(DatasetError, match="unsupported format"):
        ModuleDataset(tmp_path)
    root = _exposure_dataset(tmp_path / "ds")
    with pytest.raises(DatasetError, match="unknown split"):
        ModuleDataset(root, "validation")
    (root / read_manifest(root)[0]["files"]["input"]).unlink()
    with pytest.raises(DatasetError, match="cannot read"):
        ModuleDataset(root, "train")[0]
