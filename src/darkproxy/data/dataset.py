"""Reading a ``darkproxy-dataset/1`` folder (``docs/dataset-format.md``) for
training: :func:`load_dataset_info`, the torch :class:`ModuleDataset`, and
:func:`write_sample_arrays`, a minimal writer of the same format from in-memory
arrays (tests, synthetic data; ``darkproxy generate`` is the real producer).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from darkproxy.data.paramspace import ParamSpace
from darkproxy.data.ranges import with_periods
from darkproxy.data.scale import ScaleRange, sample_scale
from darkproxy.data.store import FORMAT, read_dataset_json
from darkproxy.errors import DatasetError
from darkproxy.fsutil import write_bytes_atomic

SPLITS = ("train", "val", "test")


@dataclass
class DatasetInfo:
    """``dataset.json``. ``pointwise`` is the generator's darktable probe
    result (``None``: not probed / undetermined); ``raw`` keeps every field."""

    root: Path
    module: str
    module_version: int | None
    darktable_version: str | None
    param_space: ParamSpace
    pre_demosaic: bool
    flip_invariant: bool
    data_space: str = "linear_rec2020"
    size: int | None = None
    dtype: str = "float16"
    pointwise: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return 4 if self.pre_demosaic else 3


def load_dataset_info(root: str | os.PathLike[str]) -> DatasetInfo:
    """Parse ``ROOT/dataset.json``; :class:`DatasetError` if missing or not
    ``darkproxy-dataset/1``."""
    root = Path(root)
    path = root / "dataset.json"
    d = read_dataset_json(root)
    try:
        space = with_periods(ParamSpace.from_json(d["param_space"]))
        pre = bool(d.get("pre_demosaic", False))
        return DatasetInfo(
            root=root,
            module=d["module"],
            module_version=d.get("module_version"),
            darktable_version=d.get("darktable_version"),
            param_space=space,
            pre_demosaic=pre,
            flip_invariant=bool(d.get("flip_invariant", not pre)),
            data_space=d.get("data_space", "linear_rec2020"),
            size=d.get("size"),
            dtype=d.get("dtype", "float16"),
            pointwise=d.get("pointwise"),
            raw=d,
        )
    except (KeyError, TypeError) as e:
        raise DatasetError(f"{path}: missing or malformed field {e}") from None


def read_manifest(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Complete lines of ``ROOT/manifest.jsonl`` (a partial last line left by
    an interrupted generator is skipped)."""
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class ModuleDataset(Dataset[dict[str, Any]]):
    """Samples of one split (``None``: all) as float32 tensors.

    Item: ``{"input": (C, h, w), "output": (3, H, W), "params": (P,) in [0, 1],
    "id": str, "origin": (4,)}``, both images linear_rec2020 (``C = 4``, ``h, w = H/2, W/2``
    for a pre-demosaic dataset's packed mosaic). ``crop``: random square crop
    of the *output* side (the input crop covers the same area; even offsets
    for a mosaic), clamped to the image; ``None`` keeps full images.
    ``flips``: random horizontal/vertical flips, only applied when the dataset
    is ``flip_invariant``. ``origin`` = ``(y0, x0, H, W)``: where the (flipped)
    crop lies in the full output image, in output px. ``indices`` restricts to a subset of the split
    (positions in :attr:`records`). Randomness comes from ``seed`` (and the
    torch worker id), so a given seed gives the same crops."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = "train",
        crop: int | None = 128,
        flips: bool = True,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        center_crop: bool = False,
    ) -> None:
        self.root = Path(root)
        self.info = load_dataset_info(self.root)
        if split is not None and split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        recs = [r for r in read_manifest(self.root) if split is None or r.get("split") == split]
        if indices is not None:
            recs = [recs[i] for i in indices]
        self.records = recs
        self.split = split
        self.crop = crop
        self.center_crop = center_crop
        self.flips = bool(flips and self.info.flip_invariant and not self.info.pre_demosaic)
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._mmaps: dict[str, np.ndarray] = {}  # open memmaps (np.load per item is ~15 % of a step)
        self._rng_worker: int | None = None
        self.space = self.info.param_space
        # set by training: a scale-conditioned proxy gets the render scale as one more param
        self.scale_range: ScaleRange | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen their own memmaps
        return {**self.__dict__, "_mmaps": {}, "_rng": None, "_rng_worker": None}

    def _generator(self) -> np.random.Generator:
        wi = torch.utils.data.get_worker_info()
        wid = -1 if wi is None else wi.id
        if self._rng is None or self._rng_worker != wid:
            self._rng = np.random.default_rng([self.seed, wid + 1])
            self._rng_worker = wid
        return self._rng

    def params_of(self, rec: Mapping[str, Any]) -> np.ndarray:
        """Normalised ``(P,)`` float32 params of a manifest record; ``(P + 1,)``
        when :attr:`scale_range` is conditioned (the render scale's feature last)."""
        if "params_norm" in rec and len(rec["params_norm"]) == len(self.space):
            u: np.ndarray = np.clip(np.asarray(rec["params_norm"], np.float32), 0.0, 1.0)
        else:
            u = np.clip(self.space.normalize(rec.get("params", {})), 0.0, 1.0)
        if self.scale_range is not None and self.scale_range.conditioned:
            s = sample_scale(rec, self.scale_range.basis)
            if not s:
                raise DatasetError(
                    f"sample {rec.get('id')}: no render_scale (or full_size), which a scale-conditioned proxy needs"
                )
            u = np.append(u, np.float32(self.scale_range.feature(float(s)))).astype(np.float32)
        return u

    def nonfinite_ids(self) -> list[str]:
        """Ids of this split's samples holding NaN or inf (a dataset written
        before ``generate`` refused them, or edited by hand)."""
        return [
            str(r.get("id"))
            for r in self.records
            if not all(np.isfinite(np.asarray(self._load(r, role))).all() for role in ("input", "output"))
        ]

    def _load(self, rec: Mapping[str, Any], role: str) -> np.ndarray:
        rel = rec["files"][role]
        arr = self._mmaps.get(rel)
        if arr is not None:
            return arr
        path = self.root / rel
        try:
            loaded: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"sample {rec.get('id')}: cannot read {path}: {e}") from None
        if loaded.ndim != 3:
            raise DatasetError(f"sample {rec.get('id')}: {path} has shape {loaded.shape}, expected (C, H, W)")
        if len(self._mmaps) < 4096:  # bounded: each memmap is a kernel mapping
            self._mmaps[rel] = loaded
        return loaded

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        xin, xout = self._load(rec, "input"), self._load(rec, "output")
        s = 2 if self.info.pre_demosaic else 1  # output px per input px
        H, W = xout.shape[1:]
        if xin.shape[1] * s != H or xin.shape[2] * s != W:
            raise DatasetError(f"sample {rec.get('id')}: input {xin.shape} does not match output {xout.shape}")
        rng = self._generator()
        y, x = 0, 0
        if self.crop is not None:
            ch, cw = min(self.crop, H), min(self.crop, W)
            ch, cw = ch - ch % s, cw - cw % s
            if self.center_crop:
                y, x = (H - ch) // 2, (W - cw) // 2
            else:
                y, x = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
            y, x = y - y % s, x - x % s
            xout = xout[:, y : y + ch, x : x + cw]
            xin = xin[:, y // s : (y + ch) // s, x // s : (x + cw) // s]
        a, b = np.asarray(xin, dtype=np.float32), np.asarray(xout, dtype=np.float32)
        ch, cw = b.shape[1:]
        if self.flips:
            if rng.random() < 0.5:
                a, b, x = a[:, :, ::-1], b[:, :, ::-1], W - x - cw
            if rng.random() < 0.5:
                a, b, y = a[:, ::-1], b[:, ::-1], H - y - ch
        return {
            "input": torch.from_numpy(np.ascontiguousarray(a)),
            "output": torch.from_numpy(np.ascontiguousarray(b)),
            "params": torch.from_numpy(self.params_of(rec)),
            "id": str(rec.get("id")),
            "origin": torch.tensor([y, x, H, W]),
        }


class PixelBatches:
    """Endless random *pixel* batches for per-pixel MLP proxies
    (:class:`~darkproxy.models.layers.PixelMLP`: ``pointwise``, ``multiscale``).

    Each batch draws ``batch`` samples (with replacement) and ``pixels``
    random pixels of each, channels last::

        {"features": (batch, pixels, F), "input": (batch, pixels, 3),
         "output": (batch, pixels, 3), "params": (batch, P)}

    float32, images linear_rec2020, params normalised. ``features`` maps a
    whole input image ``(1, 3, H, W)`` to ``(1, F, H, W)`` (the model's fixed
    features, computed once per image, so neighbourhood features are exact);
    ``None`` uses the input itself. Many samples per batch means many param
    vectors per optimiser step, which is what a param-conditioned proxy
    learns from (a colorbalancergb proxy trained better per CPU second this
    way than with crop batches of the same pixel count, in an A/B run that
    was not kept as a bench).

    Samples are held in memory (on ``device``, so that a GPU gathers its own
    batches) up to ``cache_bytes``. A split whose features do not fit keeps
    every sample and a random subset of each one's pixels (the features are
    still computed on the whole image): a pool of a few samples would teach
    the few param vectors it holds (a bilat proxy's 220 features per pixel
    held 145 of 1000 samples in 2 GB). Those pixels are redrawn once the
    batches have drawn each about ``reuse`` times (a pass over the split's
    features per redraw). Where even ``min_pixels`` per sample do not fit,
    a random subset of the samples with ``min_pixels`` each is served, drawn
    anew every ``refresh_every`` batches. Deterministic for a given ``seed``."""

    def __init__(
        self,
        ds: ModuleDataset,
        batch: int,
        pixels: int,
        seed: int = 0,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: Any = "cpu",
        cache_bytes: int = 2 << 30,
        refresh_every: int = 1000,
        min_pixels: int = 1024,
        reuse: float = 8.0,
    ) -> None:
        if ds.info.pre_demosaic:
            raise DatasetError("pixel batches need an RGB input (this dataset's input is a packed mosaic)")
        if not len(ds):
            raise DatasetError(f"{ds.root}: no samples in split {ds.split!r}")
        self.ds, self.batch, self.pixels = ds, int(batch), int(pixels)
        self.features, self.device = features, device
        self.rng = np.random.default_rng([seed, 7])  # which samples are in the pool
        # batch draws happen where the pool lives: no host round trip per step
        self.gen = torch.Generator(device=device).manual_seed(int(seed) * 7919 + 7)
        self.params = torch.from_numpy(np.stack([ds.params_of(r) for r in ds.records]).astype(np.float32)).to(device)
        self.cache_bytes, self.refresh_every = int(cache_bytes), int(refresh_every)
        self.min_pixels, self.reuse = int(min_pixels), float(reuse)
        self._served = 0
        self._load_pool()

    def _sample(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rec = self.ds.records[i]
        xin, xout = self.ds._load(rec, "input"), self.ds._load(rec, "output")
        if xin.shape != xout.shape:
            raise DatasetError(f"sample {rec.get('id')}: input {xin.shape} does not match output {xout.shape}")
        x = torch.from_numpy(np.asarray(xin, np.float32))
        y = torch.from_numpy(np.asarray(xout, np.float32)).flatten(1).T
        if self.features is None:
            f = x.flatten(1).T
        else:
            with torch.no_grad():
                f = self.features(x[None].to(self.device))[0].float().flatten(1).T
        dev = self.device
        return f.contiguous().to(dev), x.flatten(1).T.contiguous().to(dev), y.contiguous().to(dev)

    def _load_pool(self) -> None:
        """Load (or re-draw) the samples and pixels batches come from."""
        n = len(self.ds)
        order = self.rng.permutation(n) if self._served else np.arange(n)
        first = self._sample(int(order[0]))
        per_pixel = 4 * sum(t.shape[1] for t in first)  # bytes: features, input, output
        sides = [sh for r in self.ds.records if isinstance(sh := r.get("shape"), list) and len(sh) == 3]
        # pixels in the split (records without shapes: as large as the first)
        total = sum(int(sh[1]) * int(sh[2]) for sh in sides) if len(sides) == n else n * len(first[0])
        # pixels per sample: all of them when the split fits, else the most that keeps every sample
        fits = total * per_pixel <= self.cache_bytes
        keep_px = None if fits else max(self.min_pixels, self.cache_bytes // (per_pixel * n))
        feats: list[torch.Tensor] = []
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        keep: list[int] = []
        used = 0
        for k, i in enumerate(order):
            f, x, y = first if k == 0 else self._sample(int(i))
            if keep_px is not None and len(f) > keep_px:
                at = torch.from_numpy(np.sort(self.rng.choice(len(f), keep_px, replace=False))).to(f.device)
                f, x, y = f[at], x[at], y[at]
            size = per_pixel * len(f)
            if keep and used + size > self.cache_bytes:
                break
            feats.append(f)
            xs.append(x)
            ys.append(y)
            keep.append(int(i))
            used += size
        dev = self.device
        self.pool = torch.as_tensor(keep, device=dev)
        self.partial = len(keep) < n
        self.lens = torch.as_tensor([len(x) for x in xs], device=dev)
        self.starts = torch.cumsum(self.lens, 0) - self.lens
        self.F, self.X, self.Y = torch.cat(feats), torch.cat(xs), torch.cat(ys)
        del feats, xs, ys
        # when to redraw: a subset of the samples as before; a subset of the pixels once each is drawn ~reuse times
        if self.partial:
            self.refresh_at: int | None = self._served + self.refresh_every
        elif keep_px is not None:
            self.refresh_at = self._served + max(1, round(self.reuse * len(self.X) / (self.batch * self.pixels)))
        else:
            self.refresh_at = None

    def __iter__(self) -> PixelBatches:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.refresh_at is not None and self._served >= self.refresh_at:
            self._load_pool()
        self._served += 1
        dev = self.X.device
        j = torch.randint(0, len(self.pool), (self.batch,), generator=self.gen, device=dev)
        u = torch.rand((self.batch, self.pixels), generator=self.gen, device=dev)
        k = self.starts[j][:, None] + (u * self.lens[j][:, None]).long()
        return {"features": self.F[k], "input": self.X[k], "output": self.Y[k], "params": self.params[self.pool[j]]}


# ----------------------------------------------------------------------------- writer


def write_sample_arrays(
    root: str | os.PathLike[str],
    space: ParamSpace,
    samples: Sequence[tuple[np.ndarray, np.ndarray, Mapping[str, Any]]],
    splits: Sequence[str] | None = None,
    raws: Sequence[str] | None = None,
    module_version: int = 0,
    darktable_version: str = "synthetic",
    pre_demosaic: bool = False,
    flip_invariant: bool | None = None,
    pointwise: bool | None = None,
    extra_info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a small dataset in ``darkproxy-dataset/1`` format.

    ``samples``: ``(input (C, h, w), output (3, H, W), params {name: value})``
    with linear_rec2020 arrays (stored as float16). ``splits[i]`` (default
    ``"train"``) and ``raws[i]`` (default ``"synthetic_<i>.dng"``) per sample.
    ``pointwise`` is stored as the probe result when not ``None``. Overwrites
    ``dataset.json`` and ``manifest.jsonl``. Returns ``root``."""
    root = Path(root)
    (root / "samples").mkdir(parents=True, exist_ok=True)
    if flip_invariant is None:
        flip_invariant = not pre_demosaic
    size = 0
    lines = []
    for i, (xin, xout, params) in enumerate(samples):
        sid = f"{i:06d}"
        xin16, xout16 = np.asarray(xin, np.float16), np.asarray(xout, np.float16)
        if not (np.isfinite(xin16).all() and np.isfinite(xout16).all()):
            raise DatasetError(f"sample {sid}: non-finite values (beyond float16 range?)")
        size = max(size, *xout16.shape[1:])
        files, sha = {}, {}
        for role, arr in (("input", xin16), ("output", xout16)):
            rel = f"samples/{sid}_{'in' if role == 'input' else 'out'}.npy"
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            write_bytes_atomic(root / rel, buf.getvalue(), fsync=False)
            files[role], sha[role] = rel, hashlib.sha256(buf.getvalue()).hexdigest()
        pvals = {**space.defaults(), **dict(params)}
        lines.append(
            {
                "id": sid,
                "raw": raws[i] if raws else f"synthetic_{i}.dng",
                "module": space.module,
                "module_version": module_version,
                "darktable_version": darktable_version,
                "params": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in pvals.items()},
                "params_norm": [float(v) for v in space.normalize(pvals)],
                "upstream_hash": hashlib.sha256(b"synthetic").hexdigest(),
                "upstream": {},
                "files": files,
                "sha256": sha,
                "shape": list(xout16.shape),
                "split": splits[i] if splits else "train",
            }
        )
    info = {
        "format": FORMAT,
        "module": space.module,
        "module_version": module_version,
        "darktable_version": darktable_version,
        "param_space": space.to_json(),
        "pre_demosaic": pre_demosaic,
        "flip_invariant": flip_invariant,
        "size": size,
        "dtype": "float16",
        "data_space": "linear_rec2020",
        "sampler": "given",
        "seed": 0,
        "n": len(lines),
        "pointwise": pointwise,
        **dict(extra_info or {}),
    }
    write_bytes_atomic(root / "dataset.json", (json.dumps(info, indent=1) + "\n").encode(), fsync=False)
    write_bytes_atomic(root / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in lines).encode(), fsync=False)
    return root


def split_indices(n: int, frac: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into (kept, held_out) with ``round(frac * n)`` (at
    least 1, at most ``n - 1``) held out at random."""
    k = min(max(1, round(frac * n)), max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    held = sorted(int(i) for i in perm[:k])
    kept = sorted(int(i) for i in perm[k:])
    if not held or not kept:
        warnings.warn("too few samples to hold any out", stacklevel=2)
    return kept, held
