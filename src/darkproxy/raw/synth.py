"""Synthetic Bayer DNGs made from ordinary photos: the embedded default data.

The camera pipeline is inverted as in Brooks et al. 2019, "Unprocessing Images
for Learned Raw Denoising": sRGB -> linear sRGB (inverse transfer curve) -> XYZ
(D65) -> camera RGB through the DNG ColorMatrix1 -> inverse white balance
(a neutral lands on AsShotNeutral) -> exposure scaling -> mosaic on the chosen
CFA -> shot + read noise -> black and white levels at 12 or 14 bits, uint16.
The DNG tags carry the same matrix and neutral, so darktable's colour pipeline
(rawprepare, white balance, input matrix) undoes exactly what was done.

By default the as-shot neutral is the camera's D65 neutral (``ColorMatrix1 @
XYZ(D65)``), so darktable's modern chromatic adaptation ("camera reference"
white balance + colour calibration from the as-shot illuminant) and the legacy
as-shot white balance agree and leave colours untouched.

Fidelity check (``tests/raw/test_synth.py``): ``darktable-cli x.dng x.tif
--icc-type LIN_REC2020 --conf plugins/darkroom/workflow=none`` (no XMP; the
workflow setting only stops darktable auto-applying its tone mapping, filmic
and +0.7 EV exposure) gives back the photo in linear Rec2020 up to one exposure
gain: see :func:`reference_linear_rec2020` and :func:`gain_matched_psnr`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from darkproxy.errors import DarkproxyError, RawError
from darkproxy.raw.dng import CFA_PATTERNS, write_dng

# XYZ (D65) -> camera RGB of a common 14-bit DSLR (Adobe DNG converter's D65
# ColorMatrix2 for the Canon EOS 5D Mark II), the kind of matrix a real DNG carries.
CAMERA_MATRIX = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
# linear sRGB (D65) -> XYZ, IEC 61966-2-1
SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
D65_XYZ = np.array([0.95047, 1.0, 1.08883])
# linear Rec709/sRGB -> linear Rec2020 (ITU-R BT.2087), both D65
REC709_TO_REC2020 = np.array(
    [[0.6274040, 0.3292820, 0.0433136], [0.0690970, 0.9195400, 0.0113612], [0.0163916, 0.0880132, 0.8955950]]
)

# make_samples order: a procedural tone and colour chart (:func:`tone_chart`), then the
# colour photos shipped inside scikit-image's wheel (no download)
DEFAULT_SOURCES = (
    "chart",
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle",
    "immunohistochemistry",
    "retina",
    "colorwheel",
)
# more photos shipped inside installed wheels, by name only (not in make_samples' default set): scikit-image's
# other photos (colour: the Hubble deep field; grey: its cameraman, moon, coins, brick, grass, gravel, cell, clock,
# scanned page and text, and its checkerboard) and matplotlib's Grace Hopper. A grey photo is a neutral scene
MORE_SOURCES = (
    "hubble_deep_field",
    "grace_hopper",
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "gravel",
    "cell",
    "clock",
    "page",
    "text",
    "checkerboard",
)
BIT_DEPTHS = (12, 14, 16)


@dataclass(frozen=True)
class SynthRawSpec:
    """How to make a synthetic raw.

    ``cfa``: 2x2 pattern read row by row (RGGB, BGGR, GRBG, GBRG); ``bits``:
    white level ``2**bits - 1``; ``black_level``: default ``2**(bits - 4)``;
    ``size``: long side in pixels (both sides made even); ``noise``: shot-noise
    scale (variance = noise * signal, signal in white-level units) with read
    noise std ``noise / 4``; ``seed``: noise seed; ``headroom``: where the
    99.9th percentile of the white-balanced image lands relative to the white
    level (an auto exposure; above 1 the brightest photosites clip at the white level, as an
    over-exposed shot's do); ``wb``: as-shot white-balance multipliers
    (R, G, B; AsShotNeutral = 1 / wb), default the camera's D65 daylight;
    ``exposure_bias``: the camera's exposure compensation (EV) written as EXIF
    ExposureBiasValue (none by default; darktable's exposure module compensates it;
    a ``(numerator, denominator)`` pair is written as is); ``preview``: long side (px) of
    an embedded preview JPEG, the camera's own rendering (the photo the raw is made from,
    resized: a renderer other than darktable), 0 for none; ``preview_gain``: 0 (default), the preview is the
    photo as it is, whatever exposure the raw got; > 0, the preview follows the raw's exposure as a camera's
    JPEG does: the photo's linear light times the auto exposure's gain (:attr:`Unprocessed.exposure`) times
    ``preview_gain``, clipped to white (one gain for a shoot: every raw's preview is then the same function of
    its sensor values); ``orientation``: the TIFF/EXIF
    Orientation tag (1-8) the camera wrote (the mosaic and the preview stay as the
    sensor saw them)."""

    cfa: str = "RGGB"
    bits: int = 14
    size: int = 512
    noise: float = 2e-4
    seed: int = 0
    headroom: float = 0.85
    black_level: int | None = None
    wb: tuple[float, float, float] | None = None
    exposure_bias: float | tuple[int, int] | None = None
    preview: int = 0
    preview_gain: float = 0.0
    orientation: int = 1

    def validate(self) -> None:
        if self.cfa.upper() not in CFA_PATTERNS:
            raise RawError(f"unsupported CFA pattern {self.cfa!r}; use one of {', '.join(CFA_PATTERNS)}")
        if self.bits not in BIT_DEPTHS:
            raise RawError(f"bit depth must be 12, 14 or 16, got {self.bits}")
        if self.size < 2:
            raise RawError(f"size must be at least 2 pixels, got {self.size}")
        if self.black_level is not None and not 0 <= self.black_level < 2**self.bits - 1:
            raise RawError(f"black level {self.black_level} outside [0, {2**self.bits - 1})")
        if self.wb is not None and (len(self.wb) != 3 or min(self.wb) <= 0):
            raise RawError(f"wb must be three positive multipliers (R, G, B), got {self.wb}")
        if self.noise < 0 or not self.headroom > 0 or not self.preview_gain >= 0:
            raise RawError("noise and preview_gain must be >= 0 and headroom > 0")
        if self.preview < 0 or self.orientation not in range(1, 9):
            raise RawError(f"preview must be >= 0 px and orientation 1-8, got {self.preview}, {self.orientation}")


@dataclass(frozen=True)
class SynthRawInfo:
    """A written synthetic DNG. ``as_shot_neutral``: camera RGB of grey (G = 1);
    ``wb``: its reciprocal, the as-shot multipliers; ``color_matrix``: the DNG
    ColorMatrix1 (XYZ D65 -> camera); ``shape``: mosaic (H, W)."""

    path: Path
    cfa: str
    bits: int
    black: int
    white: int
    as_shot_neutral: tuple[float, float, float]
    color_matrix: list[list[float]]
    shape: tuple[int, int]
    source: str = ""
    written: bool = True  # False: make_samples kept an existing file

    @property
    def wb(self) -> tuple[float, float, float]:
        return tuple(float(1.0 / n) for n in self.as_shot_neutral)  # type: ignore[return-value]


@dataclass
class Unprocessed:
    """The result of :func:`unprocess`. ``mosaic``: uint16 (H, W) raw values;
    ``camera_rgb``: float64 (H, W, 3) noise-free, white-unbalanced camera RGB
    in units of (white - black), i.e. what rawprepare should give back at every
    site before mosaicking and noise (may exceed 1 where the sensor clips); ``exposure``: the auto
    exposure's gain (white-balanced camera RGB per unit of the photo's linear light)."""

    mosaic: np.ndarray
    camera_rgb: np.ndarray
    black: int
    white: int
    as_shot_neutral: np.ndarray
    exposure: float = 1.0


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve; input clipped to [0, 1], float64 out."""
    from darkproxy.colour.encodings import srgb_decode

    return srgb_decode(np.asarray(x, np.float64))


def tone_chart(hues: int = 22, values: int = 8, dynamic_range: float = 512.0, tile: int = 16) -> np.ndarray:
    """A procedural chart of flat tiles, float64 ``(H, W, 3)`` ``srgb_display``
    in [0, 1]: ``hues`` hue columns plus two grey columns, and rows of
    ``values`` linear-light levels from 1 down to ``1 / dynamic_range``
    (log-spaced) at saturation 1 and 0.5. Photos leave corners of the colour
    and tone space empty (deep shadows, saturated colours at every level);
    a pointwise proxy only learns what its data shows it, so the sample set
    starts with this chart."""
    from skimage.color import hsv2rgb

    lin = np.geomspace(1.0, 1.0 / dynamic_range, values)
    v = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)  # sRGB-encoded levels
    rows = [(s, vv) for s in (1.0, 0.5) for vv in v]
    hsv = np.zeros((len(rows), hues + 2, 3))
    for i, (sat, vv) in enumerate(rows):
        hsv[i, :hues, 0] = np.arange(hues) / hues
        hsv[i, :hues, 1] = sat
        hsv[i, :, 2] = vv
    rgb = hsv2rgb(hsv)
    return np.repeat(np.repeat(rgb, tile, axis=0), tile, axis=1)


def default_source_images(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The sample images (``DEFAULT_SOURCES`` or ``names`` among them and :data:`MORE_SOURCES`) as float64
    (H, W, 3) ``srgb_display`` in [0, 1]: :func:`tone_chart` and the photos of scikit-image (and one of
    matplotlib's), loaded from the installed wheels, offline; a grey photo has three equal channels."""
    from skimage import data

    out: dict[str, np.ndarray] = {}
    for name in names or DEFAULT_SOURCES:
        if name not in DEFAULT_SOURCES + MORE_SOURCES:
            raise RawError(f"unknown sample image {name!r}; choose from {', '.join(DEFAULT_SOURCES + MORE_SOURCES)}")
        if name == "chart":
            out[name] = tone_chart()
            continue
        if name == "grace_hopper":
            import matplotlib.cbook

            out[name] = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
            continue
        img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        out[name] = _as_rgb_float(img)
    return out


def _as_rgb_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim == 3 and img.shape[2] in (1, 2):  # grey (+ alpha)
        img = np.repeat(img[..., :1], 3, axis=2)
    if img.ndim != 3 or img.shape[2] < 3:
        raise RawError(f"expected an (H, W, 3) colour image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype.kind in "ui":
        img = img.astype(np.float64) / np.iinfo(img.dtype).max
    return np.clip(img.astype(np.float64), 0.0, 1.0)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any image imageio reads as float64 (H, W, 3) sRGB in [0, 1]."""
    import imageio.v3 as iio

    if not Path(path).is_file():
        raise RawError(f"source image {path} does not exist")
    try:
        img = iio.imread(os.fspath(path))

    except Exception as e:  # imageio raises many kinds
        raise RawError(f"cannot read image {path}: {type(e).__name__}: {e}") from None
    if img.ndim == 4:  # animated / multi-page: first frame
        img = img[0]
    return _as_rgb_float(img)


def resize_long_side(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, C) so the long side is ``size`` (both sides even,
    anti-aliased when shrinking). Unchanged when already that shape."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(2, int(round(h * s / 2)) * 2), max(2, int(round(w * s / 2)) * 2)
    if (nh, nw) == (h, w):
        return np.asarray(img, np.float64)
    return resize(img, (nh, nw), anti_aliasing=s < 1, order=1)


def camera_neutral(wb: Sequence[float] | None = None) -> np.ndarray:
    """AsShotNeutral (camera RGB of grey, G = 1): ``1 / wb``, or by default the
    D65 white seen through ``CAMERA_MATRIX``."""
    n = 1.0 / np.asarray(wb, np.float64) if wb is not None else CAMERA_MATRIX @ D65_XYZ
    return n / n[1]


def unprocess(image_srgb: np.ndarray, spec: SynthRawSpec) -> Unprocessed:
    """sRGB photo ((H, W, 3), float in [0, 1] or integer) -> raw Bayer mosaic
    (see the module docstring). Deterministic for a given ``spec.seed``."""
    spec.validate()
    img = resize_long_side(_as_rgb_float(image_srgb), spec.size)
    xyz = srgb_to_linear(img) @ SRGB_TO_XYZ.T
    # ColorMatrix1 maps XYZ to camera RGB normalised so that D65 gives the D65 neutral;
    # scaling each channel by neutral/neutral_D65 re-lights the scene with the as-shot illuminant
    neutral = camera_neutral(spec.wb)
    balanced = (xyz @ CAMERA_MATRIX.T) / camera_neutral()
    # auto exposure; a neutral above 1 (a channel more sensitive than green) must not clip either
    peak = float(np.percentile(balanced, 99.9)) * max(1.0, float(neutral.max()))
    scale = spec.headroom / max(peak, 1e-6)
    cam = np.clip(balanced * neutral * scale, 0.0, None)  # the sensor has no negative response
    h, w = cam.shape[:2]
    mosaic = np.empty((h, w))
    for k, c in enumerate(spec.cfa.upper()):
        i, j = divmod(k, 2)
        mosaic[i::2, j::2] = cam[i::2, j::2, "RGB".index(c)]
    rng = np.random.default_rng(spec.seed)
    sigma = np.sqrt(spec.noise * mosaic + (spec.noise / 4) ** 2)
    noisy = mosaic + rng.normal(size=mosaic.shape) * sigma
    white = 2**spec.bits - 1
    black = spec.black_level if spec.black_level is not None else 2 ** (spec.bits - 4)
    raw = np.clip(np.round(black + noisy * (white - black)), 0, white).astype(np.uint16)
    return Unprocessed(raw, cam, black, white, neutral, scale)


def write_synthetic_dng(
    image_srgb: np.ndarray, path: str | os.PathLike[str], spec: SynthRawSpec = SynthRawSpec(), source: str = ""
) -> SynthRawInfo:
    """Unprocess ``image_srgb`` (float (H, W, 3) sRGB in [0, 1], or uint8) and
    write a Bayer DNG at ``path`` (atomically, via a temp file + os.replace).
    Raises :class:`RawError` for an invalid spec."""
    u = unprocess(image_srgb, spec)
    preview = None
    if spec.preview:
        rgb = _as_rgb_float(np.asarray(image_srgb))
        if spec.preview_gain:
            from darkproxy.colour.encodings import srgb_encode

            rgb = np.asarray(srgb_encode(srgb_to_linear(rgb) * u.exposure * spec.preview_gain))  # clips to white
        preview = (np.clip(resize_long_side(rgb, spec.preview), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    r, g, b = (float(x) for x in u.as_shot_neutral)
    neutral = (r, g, b)
    p = write_dng(
        u.mosaic,
        path,
        spec.cfa.upper(),
        u.black,
        u.white,
        CAMERA_MATRIX,
        neutral,
        model=f"synthetic {spec.bits}-bit",
        exposure_bias=spec.exposure_bias,
        preview=preview,
        orientation=spec.orientation,
    )
    return SynthRawInfo(
        Path(p),
        spec.cfa.upper(),
        spec.bits,
        u.black,
        u.white,
        neutral,
        CAMERA_MATRIX.tolist(),
        (int(u.mosaic.shape[0]), int(u.mosaic.shape[1])),
        source,
    )


def read_synthetic_info(path: str | os.PathLike[str], source: str = "") -> SynthRawInfo:
    """The :class:`SynthRawInfo` of an existing DNG (its tags, via tifffile).
    Raises :class:`RawError` when it is missing, unreadable or not a CFA DNG."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            tags = {t.code: t.value for t in page.tags.values()}
            if tags.get(262) != 32803 or 33422 not in tags or page.dtype != np.uint16:
                raise RawError(f"{p} is not a 16-bit CFA DNG")
            page.asarray()  # the pixel data must be all there
            cfa = "".join("RGB"[int(c)] for c in bytes(tags[33422]))
            white = int(np.ravel(tags[50717])[0])
            black = int(np.ravel(tags[50714])[0])
            cm = np.asarray(tags[50721], np.float64).reshape(-1, 2)
            cm = (cm[:, 0] / cm[:, 1]).reshape(3, 3)
            n = np.asarray(tags[50728], np.float64).reshape(-1, 2)
            # AsShotNeutral of an RGB CFA: one value per colour (kept as read, not checked here)
            neutral = cast("tuple[float, float, float]", tuple(float(x) for x in n[:, 0] / n[:, 1]))
            shape = (int(page.shape[0]), int(page.shape[1]))
    except RawError:
        raise
    except Exception as e:  # tifffile raises many kinds on truncated or foreign files
        raise RawError(f"cannot read DNG {p}: {type(e).__name__}: {e}") from None
    return SynthRawInfo(p, cfa, int(white).bit_length(), black, white, neutral, cm.tolist(), shape, source, False)


def make_samples(
    out_dir: str | os.PathLike[str],
    count: int | None = None,
    size: int = 512,
    sources: Iterable[str | os.PathLike[str]] | None = None,
    cfa: str = "RGGB",
    bits: int = 14,
    seed: int = 0,
    overwrite: bool = False,
    names: Sequence[str] | None = None,
) -> list[SynthRawInfo]:
    """Write synthetic DNGs ``<name>.dng`` into ``out_dir``: from image files
    ``sources`` (name = file stem), or from the photos named ``names`` (:func:`default_source_images`;
    default ``DEFAULT_SOURCES``; with ``count`` larger than that they repeat as
    ``name-2`` ... with other noise seeds). Idempotent: an existing file that
    reads back with the requested CFA, bit depth and long side is kept, not
    rewritten (unless ``overwrite``); others are (re)written atomically.
    Raises :class:`DarkproxyError` for bad arguments, :class:`RawError` for
    unreadable sources."""
    spec0 = SynthRawSpec(cfa=cfa.upper(), bits=bits, size=size, seed=seed)
    spec0.validate()
    if count is not None and count < 1:
        raise DarkproxyError("--count must be >= 1")
    items: list[tuple[str, Path | None]]  # (name, image file or None for a scikit-image photo)
    items = [(Path(s).stem, Path(s)) for s in sources] if sources else [(n, None) for n in names or DEFAULT_SOURCES]
    if count is not None:
        items = (items * (count // len(items) + 1))[:count]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded: dict[tuple[str, Path | None], np.ndarray] = {}
    infos: list[SynthRawInfo] = []
    seen: dict[str, int] = {}
    for i, (name, src) in enumerate(items):
        seen[name] = seen.get(name, 0) + 1
        stem = name if seen[name] == 1 else f"{name}-{seen[name]}"
        path = out / f"{stem}.dng"
        if path.is_file() and not overwrite:
            try:
                info = read_synthetic_info(path, stem)
                if (info.cfa, info.bits, max(info.shape)) == (spec0.cfa, bits, max(2, int(round(size / 2)) * 2)):
                    infos.append(info)
                    continue
            except RawError:
                pass  # corrupt or foreign: rewrite it
        if (name, src) not in loaded:
            loaded[(name, src)] = load_image(src) if src is not None else default_source_images([name])[name]
        spec = SynthRawSpec(cfa=spec0.cfa, bits=bits, size=size, seed=seed + i)
        infos.append(write_synthetic_dng(loaded[(name, src)], path, spec, source=stem))
    return infos


# ---------------------------------------------------------------------------- fidelity


def reference_linear_rec2020(image_srgb: np.ndarray, size: int) -> np.ndarray:
    """The source photo as darktable should render its synthetic raw: resized
    like :func:`unprocess`, float64 (3, H, W) ``linear_rec2020`` in [0, 1]."""
    img = resize_long_side(_as_rgb_float(image_srgb), size)
    return np.moveaxis(srgb_to_linear(img) @ REC709_TO_REC2020.T, -1, 0)


def gain_matched_psnr(render: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``(gain, psnr)``: the least-squares exposure gain mapping ``render`` onto
    ``reference`` (both ``linear_rec2020``, same shape) and the PSNR (dB) of
    ``gain * render`` vs ``reference`` in ``srgb_display`` (clip + sRGB curve,
    data range 1), the project's metric space."""
    from darkproxy.colour.metrics import display_psnr

    r = np.asarray(render, np.float64)
    ref = np.asarray(reference, np.float64)
    if r.shape != ref.shape:
        raise ValueError(f"render {r.shape} and reference {ref.shape} differ in shape")
    gain = float((r * ref).sum() / max(float((r * r).sum()), 1e-12))
    return gain, display_psnr(r * gain, ref)
