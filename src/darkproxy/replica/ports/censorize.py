"""darktable 4.2.1's censorize (``censorize``, params version 1) as an exact stage, without pixelation:
``src/iop/censorize.c``.

An RGB module (``IOP_CS_RGB``; in the v3.0 order right after colorin, on the working profile's linear Rec2020).
``process()``: the input blurred by common/gaussian.c's recursive gaussian at ``radius_1 x render scale`` (each
pass's input clamped to ``[0, inf)``: :func:`~darkproxy.replica.ports.lowpass.gaussian_blur`), then at
``radius_2 x render scale``, then each pixel times ``1 + noise' z`` clamped at 0 (and 0 where its green is 0:
darktable divides by it); with both blurs the noise is also applied before the second, whose input is the buffer
``process()`` noises first, where ``noise' = noise x
min(render scale, 1)`` and ``z`` is darktable's Box-Muller gaussian from a xoshiro128+ state seeded per pixel
(``splitmix32`` of its column and row: ``develop/noise_generator.h``), emulated bit for bit up to float32
``sinf`` / ``cosf`` / ``logf`` (:func:`pixel_noise`). The noise is keyed to the pixel's place in the render, so the
stage runs on whole-image exports (regions are other pixels).

Refused: pixelation (``pixelate`` > 0): darktable paints its blocks over ``[top left, bottom right)`` with the
bottom right clamped to the last row and column, which are then never written: the last row and column of its
buffer are uninitialised memory, blurred into the result by ``radius_2``.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise. Gradients: the image, ``radius_1``,
``radius_2`` and ``noise``.
"""

from __future__ import annotations

import numpy as np
import torch

from darkproxy.replica.ports.lowpass import gaussian_blur
from darkproxy.replica.registry import StageContext, Values, column, register_exact

Tensor = torch.Tensor

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix32(seed: np.ndarray) -> np.ndarray:
    """``splitmix32(seed)`` for a ``uint64`` array (wrapping products, as C's ``uint64_t``)."""
    s = seed.astype(np.uint64)
    with np.errstate(over="ignore"):
        r = (s ^ (s >> np.uint64(33))) * np.uint64(0x62A9D9ED799705F5)
        r = (r ^ (r >> np.uint64(28))) * np.uint64(0xCB24D0A5C88C35B3)
    return (r >> np.uint64(32)).astype(np.uint32)


def _xoshiro(state: list[np.ndarray]) -> np.ndarray:
    """``xoshiro128plus``: advances the four ``uint32`` arrays of ``state`` in place, returns the float32 draw."""
    with np.errstate(over="ignore"):
        result = state[0] + state[3]
    t = state[1] << np.uint32(9)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = (state[3] << np.uint32(11)) | (state[3] >> np.uint32(21))
    return (result >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def gaussian_draws(i: np.ndarray, j: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` successive ``gaussian_noise`` standard draws ``z`` (float32, the broadcast shape of ``i`` and ``j``)
    from the state ``{splitmix32(j + 1), splitmix32((j + 1)(i + 3)), splitmix32(1337), splitmix32(666)}`` of the
    ``uint64`` arrays ``i`` and ``j`` advanced four times: Box-Muller, the cosine where ``i`` or ``j`` is odd, the
    sine elsewhere (``develop/noise_generator.h``, as censorize and diffuse seed it)."""
    i, j = np.broadcast_arrays(i.astype(np.uint64), j.astype(np.uint64))
    shape = i.shape
    state = [
        _splitmix32(j + np.uint64(1)),
        _splitmix32((j + np.uint64(1)) * (i + np.uint64(3))),
        np.full(shape, _splitmix32(np.array([1337]))[0], np.uint32),
        np.full(shape, _splitmix32(np.array([666]))[0], np.uint32),
    ]
    for _ in range(4):
        _xoshiro(state)
    flip = ((i % np.uint64(2)) == 1) | ((j % np.uint64(2)) == 1)
    out = []
    for _ in range(n):
        u1 = np.maximum(_xoshiro(state), np.float32(np.finfo(np.float32).tiny))
        u2 = _xoshiro(state)
        radius = np.sqrt(np.float32(-2.0) * np.log(u1)).astype(np.float32)
        angle = (2.0 * np.pi * u2.astype(np.float64)).astype(np.float32)  # 2.f * M_PI * u2 in double, as a float
        out.append(np.where(flip, radius * np.cos(angle), radius * np.sin(angle)).astype(np.float32))
    return out


def pixel_noise(height: int, width: int) -> np.ndarray:
    """``make_noise``'s standard gaussian ``z`` per pixel ``(H, W)`` float32: :func:`gaussian_draws` of each
    pixel's row ``i`` and column ``j``, one draw."""
    i = np.arange(height, dtype=np.uint64)[:, None]
    j = np.arange(width, dtype=np.uint64)[None, :]
    return gaussian_draws(i, j, 1)[0]


def _supports(v: Values, ctx: StageContext) -> str | None:
    if float(torch.as_tensor(v.get("pixelate", 0.0)).max()) > 0.0:
        return (
            "censorize: pixelation leaves the last row and column of darktable's buffer unwritten (uninitialised "
            "memory, blurred into the result): not reproducible"
        )
    return None


@register_exact(
    "censorize",
    params=("radius_1", "radius_2", "noise"),
    versions=(1,),
    pointwise=False,
    note="darktable's censorize.c without pixelation: common/gaussian.c's blurs at radius x render scale (clamped "
    "at 0), the per-pixel seeded xoshiro128+ Box-Muller noise; whole-image exports at any scale",
    supports=_supports,
)
def censorize(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """censorize on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    zero = torch.zeros(1, 3, 1, 1, dtype=x.dtype, device=x.device)
    inf = torch.full_like(zero, float("inf"))
    s1, s2 = (column(v.get(k, 0.0), x).reshape(-1) * ctx.scale for k in ("radius_1", "radius_2"))
    noise = column(v.get("noise", 0.0), x) * min(ctx.scale, 1.0)
    blur1, blur2, noisy = (bool((t.detach() != 0.0).any()) for t in (s1, s2, noise))  # darktable skips a 0
    z = torch.from_numpy(pixel_noise(*x.shape[-2:])).to(x.dtype).to(x.device) if noisy else None

    def add_noise(img: Tensor) -> Tensor:
        # gaussian_noise(g, noise g) / g for the green g: 1 + noise z; NaN where g = 0, which fmaxf turns to 0
        assert z is not None
        eps = torch.where(img[:, 1:2] == 0.0, torch.zeros_like(img[:, 1:2]), 1.0 + noise * z)
        return (img * eps).clamp_min(0.0)

    def blur(img: Tensor, sigma: Tensor) -> Tensor:
        return gaussian_blur(img, torch.where(sigma > 0.0, sigma, torch.full_like(sigma, 1e-6)), 0, zero, inf)

    y = blur(x, s1) if blur1 else x
    if blur2:
        if noisy and blur1:  # process() noises its output buffer before the second blur, which reads it then
            y = add_noise(y)
        y = blur(y, s2)
    return add_noise(y) if noisy else y
