"""Turning linear Rec2020 images into pictures: display encoding, error maps,
side-by-side panels with labels, PNG output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

# linear Rec2020 -> linear Rec709/sRGB primaries (ITU-R BT.2087 inverse; D65 both)
REC2020_TO_REC709 = np.array([[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]])


def _hwc(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, np.float32)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a[:3], 0, -1)
    return a[..., :3]


def to_display(img_linear_rec2020: np.ndarray) -> np.ndarray:
    """float (3, H, W) or (H, W, 3) linear Rec2020 -> uint8 (H, W, 3) sRGB display
    (Rec2020 -> Rec709 primaries, clip to [0, 1], sRGB transfer curve)."""
    a = _hwc(img_linear_rec2020) @ REC2020_TO_REC709.T.astype(np.float32)
    a = np.clip(a, 0.0, 1.0)
    a = np.where(a <= 0.0031308, 12.92 * a, 1.055 * np.power(a, 1 / 2.4) - 0.055)
    return (a * 255 + 0.5).astype(np.uint8)


def error_map(a: np.ndarray, b: np.ndarray, gain: float = 10.0) -> np.ndarray:
    """Amplified absolute difference of two linear images, on display-encoded
    values, as a uint8 (H, W, 3) heat map (matplotlib 'inferno')."""
    from matplotlib import colormaps

    da = to_display(a).astype(np.float32) / 255
    db = to_display(b).astype(np.float32) / 255
    err = np.clip(np.abs(da - db).max(-1) * gain, 0, 1)
    return (colormaps["inferno"](err)[..., :3] * 255).astype(np.uint8)


def annotate(img: np.ndarray, text: str, scale: int = 0) -> np.ndarray:
    """Write ``text`` on a dark band at the top of a uint8 (H, W, 3) image."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(np.asarray(img, np.uint8))
    size = scale or max(10, im.width // 28)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, im.width, size + 6], fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, gap: int = 4) -> np.ndarray:
    """uint8 (H, W, 3) panels next to each other (padded to the tallest), each
    labelled."""
    ims = [np.asarray(im, np.uint8) for im in images]
    if labels:
        ims = [annotate(im, lab) for im, lab in zip(ims, labels)]
    h = max(im.shape[0] for im in ims)
    ims = [np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0))) for im in ims]
    sep = np.full((h, gap, 3), 255, np.uint8)
    out = [ims[0]]
    for im in ims[1:]:
        out += [sep, im]
    return np.concatenate(out, axis=1)


def save_png(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write a uint8 image as PNG (atomically)."""
    import imageio.v3 as iio

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp.png")
    iio.imwrite(tmp, np.asarray(img, np.uint8))
    os.replace(tmp, p)
    return p
