"""Synthetic Bayer DNGs made from ordinary photos: the embedded default data.

The camera pipeline is inverted as in Brooks et al. 2019, "Unprocessing Images
for Learned Raw Denoising": sRGB -> linear sRGB (inverse transfer curve) -> XYZ
(D65) -> camera RGB through the DNG ColorMatrix1 -> inverse white balance
(camera RGB *is* white-unbalanced: a D65 neutral lands on AsShotNeutral) ->
exposure scaling -> mosaic on the chosen CFA -> shot + read noise -> black and
white levels at 12 or 14 bits. The DNG tags carry the same matrix and neutral,
so darktable's colour pipeline (white balance from AsShotNeutral, input matrix
from ColorMatrix1) undoes exactly what was done: its render matches the photo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from darkproxy.raw.dng import CFA_PATTERNS, write_dng

# XYZ (D65) -> camera RGB of a common 14-bit DSLR (Adobe DNG converter's ColorMatrix2
# for the Canon EOS 5D Mark II), the kind of matrix a real DNG carries.
CAMERA_MATRIX = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
# linear sRGB (D65) -> XYZ, IEC 61966-2-1
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65_XYZ = np.array([0.95047, 1.0, 1.08883])

# colour photos shipped inside scikit-image (no download)
DEFAULT_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "immunohistochemistry", "retina", "colorwheel")


@dataclass(frozen=True)
class SynthRawSpec:
    """How to make a synthetic raw. ``size``: long side in pixels (even);
    ``noise``: shot-noise scale (variance = noise * signal, in white-level
    units) with read noise ``noise / 4``; ``headroom``: where the brightest
    (white-balanced) source value lands relative to the white level."""

    cfa: str = "RGGB"
    bits: int = 14
    size: int = 512
    noise: float = 2e-4
    seed: int = 0
    headroom: float = 0.85
    black_level: int | None = None  # default 2^(bits-4)


@dataclass(frozen=True)
class SynthRawInfo:
    path: Path
    cfa: str
    bits: int
    black: int
    white: int
    as_shot_neutral: tuple[float, float, float]
    color_matrix: list[list[float]]
    shape: tuple[int, int]
    source: str = ""


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve, values in [0, 1]."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def default_source_images() -> dict[str, np.ndarray]:
    """scikit-image's colour photos as float (H, W, 3) sRGB in [0, 1]."""
    from skimage import data

    out: dict[str, np.ndarray] = {}
    for name in DEFAULT_SOURCES:
        img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        out[name] = _as_rgb_float(img)
    return out


def _as_rgb_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype.kind in "ui":
        img = img.astype(np.float64) / np.iinfo(img.dtype).max
    return np.clip(img.astype(np.float64), 0.0, 1.0)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any image imageio reads as float (H, W, 3) sRGB in [0, 1]."""
    import imageio.v3 as iio

    from darkproxy.errors import RawError

    try:
        return _as_rgb_float(iio.imread(path))
    except Exception as e:  # imageio raises many kinds
        raise RawError(f"cannot read image {path}: {e}") from None


def resize_long_side(img: np.ndarray, size: int) -> np.ndarray:
    """Resize so the long side is ``size`` (both sides even)."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(2, int(round(h * s / 2)) * 2), max(2, int(round(w * s / 2)) * 2)
    return resize(img, (nh, nw), anti_aliasing=s < 1, order=1)


def unprocess(image_srgb: np.ndarray, spec: SynthRawSpec) -> tuple[np.ndarray, int, int, np.ndarray]:
    """sRGB photo -> raw mosaic. Returns (uint16 (H, W), black, white, as_shot_neutral)."""
    img = resize_long_side(_as_rgb_float(image_srgb), spec.size)
    lin = srgb_to_linear(img)
    xyz = lin @ SRGB_TO_XYZ.T
    cam = xyz @ CAMERA_MATRIX.T  # white-unbalanced camera RGB
    neutral = CAMERA_MATRIX @ D65_XYZ
    neutral = neutral / neutral[1]
    balanced = cam / neutral
    scale = spec.headroom / max(float(np.percentile(balanced, 99.9)), 1e-6)
    cam = np.clip(cam * scale, 0.0, None)
    h, w = cam.shape[:2]
    mosaic = np.empty((h, w))
    idx = {"R": 0, "G": 1, "B": 2}
    for k, c in enumerate(spec.cfa.upper()):
        i, j = divmod(k, 2)
        mosaic[i::2, j::2] = cam[i::2, j::2, idx[c]]
    rng = np.random.default_rng(spec.seed)
    noisy = mosaic + rng.normal(size=mosaic.shape) * np.sqrt(spec.noise * np.clip(mosaic, 0, None) + (spec.noise / 4) ** 2)
    white = 2**spec.bits - 1
    black = spec.black_level if spec.black_level is not None else 2 ** (spec.bits - 4)
    raw = np.clip(np.round(black + noisy * (white - black)), 0, white).astype(np.uint16)
    return raw, black, white, neutral


def write_synthetic_dng(image_srgb: np.ndarray, path: str | os.PathLike[str], spec: SynthRawSpec = SynthRawSpec(),
                        source: str = "") -> SynthRawInfo:
    """Unprocess ``image_srgb`` (float (H, W, 3) in [0, 1] or uint8) and write a
    Bayer DNG at ``path`` (atomically). See the module docstring."""
    if spec.cfa.upper() not in CFA_PATTERNS:
        from darkproxy.errors import RawError

        raise RawError(f"unsupported CFA pattern {spec.cfa!r}; use one of {', '.join(CFA_PATTERNS)}")
    if spec.bits not in (12, 14, 16):
        from darkproxy.errors import RawError

        raise RawError(f"bit depth must be 12, 14 or 16, got {spec.bits}")
    raw, black, white, neutral = unprocess(image_srgb, spec)
    p = write_dng(raw, path, spec.cfa, black, white, CAMERA_MATRIX, tuple(float(x) for x in neutral),
                  model=f"synthetic {spec.bits}-bit")
    return SynthRawInfo(Path(p), spec.cfa.upper(), spec.bits, black, white, tuple(float(x) for x in neutral),
                        CAMERA_MATRIX.tolist(), raw.shape, source)


def make_samples(out_dir: str | os.PathLike[str], count: int | None = None, size: int = 512,
                 sources: Iterable[str | os.PathLike[str]] | None = None, cfa: str = "RGGB", bits: int = 14,
                 seed: int = 0, overwrite: bool = False) -> list[SynthRawInfo]:
    """Write synthetic DNGs into ``out_dir``: from image files ``sources``, or
    from scikit-image's photos (the first ``count``). Existing files are kept
    (idempotent) unless ``overwrite``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sources:
        items = [(Path(s).stem, Path(s)) for s in sources]
    else:
        items = list(default_source_images().items())
    if count is not None:
        if count < 1:
            from darkproxy.errors import DarkproxyError

            raise DarkproxyError("--count must be >= 1")
        items = (items * (count // len(items) + 1))[:count] if count > len(items) else items[:count]
    infos = []
    seen: dict[str, int] = {}
    for i, (name, src) in enumerate(items):
        seen[name] = seen.get(name, 0) + 1
        stem = name if seen[name] == 1 else f"{name}-{seen[name]}"
        path = out / f"{stem}.dng"
        spec = SynthRawSpec(cfa=cfa, bits=bits, size=size, seed=seed + i)
        if path.is_file() and not overwrite:
            infos.append(SynthRawInfo(path, spec.cfa, bits, 0, 0, (1.0, 1.0, 1.0), CAMERA_MATRIX.tolist(), (0, 0), stem))
            continue
        img = load_image(src) if isinstance(src, Path) else src
        infos.append(write_synthetic_dng(img, path, spec, source=stem))
    return infos
