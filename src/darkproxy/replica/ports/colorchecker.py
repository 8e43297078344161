"""darktable 4.2.1's color look up table (``colorchecker``, params version 2) as an exact stage:
``src/iop/colorchecker.c``.

A Lab module (``IOP_CS_LAB``: darktable converts the working profile's RGB to CIE Lab D50 around it,
:func:`~darkproxy.replica.science.working_rgb_to_lab`). ``commit_params()`` fits a thin plate spline through the
``num_patches`` source -> target Lab pairs: the ``(N + 4)``-square system ``[[R, P], [P^T, 0]] [c; d] = [f; 0]``
with ``R_ij = phi(source_i, source_j)`` and ``P = [1, L, a, b]`` of the sources, solved per channel in double
(here ``torch.linalg.solve``, float64: LU with partial pivoting, as ``gauss_make_triangular``; the coefficients are
stored as float). ``process()``: per pixel and channel ``d_0 + d_1 L + d_2 a + d_3 b + sum_k c_k phi(Lab,
source_k)``, where ``phi(x, y) = r^2 fastlog(max(1e-8, r^2))``, ``r^2`` the squared Lab distance and ``fastlog``
common/math.h's bit-trick logarithm, emulated bit for bit.

Refused: 1 to 4 patches (darktable's reduced systems for them are not ported); with none it is the identity.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Pointwise. Gradients: the image (``fastlog`` through the
true logarithm's derivative) and the target patches ``target_L[k]``, ``target_a[k]``, ``target_b[k]`` (through
the solve).
"""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.ports.profile_gamma import fastlog2
from darkproxy.replica.registry import StageContext, Values, coeff_columns, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor

MAX_PATCHES = 49
_LN2 = 0.6931471805599453  # DT_M_LN2f
_CHANNELS = ("L", "a", "b")
PARAMS = tuple(f"target_{c}[{k}]" for c in _CHANNELS for k in range(MAX_PATCHES))


def _f32(v: float) -> Tensor:
    return torch.tensor(v, dtype=torch.float32)


def fastlog(x: Tensor) -> Tensor:
    """common/math.h's ``fastlog`` of positive float32 ``x``: ``DT_M_LN2f x fastlog2``
    (:func:`~darkproxy.replica.ports.profile_gamma.fastlog2`). Gradient: the true logarithm's."""
    fast = (_f32(_LN2) * fastlog2(x.detach().to(torch.float32))).to(x.dtype)
    smooth = torch.log(x)
    return straight_through(fast, smooth)


def kernel(x: Tensor, y: Tensor) -> Tensor:
    """``kernel(x, y)``: ``r^2 fastlog(max(1e-8, r^2))`` of Lab ``x`` and ``y`` (``(..., 3)``, broadcast)."""
    d = x - y
    r2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
    return r2 * fastlog(r2.clamp_min(1e-8))


def _array(v: Values, name: str, n: int, x: Tensor) -> Tensor:
    """Elements ``0..n-1`` of the array param ``name`` as ``(B or 1, n)``."""
    return coeff_columns(v, tuple(f"{name}[{k}]" for k in range(n)), x)


def _supports(v: Values, ctx: StageContext) -> str | None:
    n = min(int(one_value(v.get("num_patches", 0), "colorchecker: num_patches")), MAX_PATCHES)
    if 1 <= n <= 4:
        return f"colorchecker with {n} patches: darktable's reduced systems for 1-4 patches are not ported"
    return None


@register_exact(
    "colorchecker",
    params=PARAMS,
    versions=(2,),
    note="darktable's colorchecker.c: the thin plate spline through the patches in Lab (its system solved in "
    "double), fastlog emulated; 1-4 patches refused",
    supports=_supports,
)
def colorchecker(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """color look up table on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    n = min(int(one_value(v.get("num_patches", 0), "colorchecker: num_patches")), MAX_PATCHES)
    if n == 0:
        return x
    src = torch.stack([_array(v, f"source_{c}", n, x) for c in _CHANNELS], -1)  # (Bs, n, 3)
    tgt = torch.stack([_array(v, f"target_{c}", n, x) for c in _CHANNELS], -1)  # (Bt, n, 3)
    src = src.detach().to(torch.float32)  # darktable's floats; no gradient in the sources
    bs = max(src.shape[0], tgt.shape[0])
    R = kernel(src[:, :, None, :], src[:, None, :, :]).to(torch.float64)  # (Bs, n, n)
    P = torch.cat([torch.ones_like(src[..., :1]), src], -1).to(torch.float64)  # (Bs, n, 4)
    A = torch.zeros(src.shape[0], n + 4, n + 4, dtype=torch.float64, device=x.device)
    A[:, :n, :n], A[:, :n, n:], A[:, n:, :n] = R, P, P.transpose(1, 2)
    zeros = tgt.new_zeros(tgt.shape[0], 4, 3, dtype=torch.float64)
    rhs = torch.cat([tgt.to(torch.float64), zeros], 1)  # the targets are floats in the blob already
    try:
        coeff = torch.linalg.solve(A.expand(bs, -1, -1), rhs.expand(bs, -1, -1))
    except RuntimeError:  # darktable keeps its identity coefficients then; two equal source patches do this
        raise DarkproxyError("colorchecker: the patches' spline system is singular (two sources alike?)") from None
    coeff = coeff.to(x.dtype)  # darktable's floats for a float32 image
    lab = working_rgb_to_lab(x).permute(0, 2, 3, 1)  # (B, H, W, 3)
    phi = [kernel(lab, src[:, k, None, None, :].to(x.dtype)) for k in range(n)]
    out = []
    for c in range(3):
        cf = coeff[:, :, c].reshape(bs, n + 4, 1, 1)
        o = cf[:, n] + (cf[:, n + 1] * lab[..., 0] + cf[:, n + 2] * lab[..., 1] + cf[:, n + 3] * lab[..., 2])
        for k in range(n):
            o = o + cf[:, k] * phi[k]
        out.append(o)
    return lab_to_working_rgb(torch.stack(out, 1))
