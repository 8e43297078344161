"""darktable 4.2.1's and 5's local contrast (``bilat``, params version 3) as an exact stage: ``src/iop/bilat.c``.

A Lab module (``IOP_CS_LAB``; in the v3.0 pipe order after filmic rgb, before colorout). ``process()``
(``process_sse2`` on x86, the path darktable-cli takes) in either mode:

* **local laplacian filter** (``mode`` 1, the default; ``common/locallaplacian.c``,
  ``local_laplacian_internal`` with no preview boundary, as an export runs it): ``L / 100`` padded by
  replication by ``2^(n - 1)`` px on each side (``n = min(7, floor(log2(min(W, H))))`` levels), its gaussian
  pyramid (``gauss_reduce``: ``[1 4 6 4 1]^2 / 256`` at every other pixel, the coarse border copied from its
  neighbour); six copies remapped by ``curve_scalar`` about ``g_k = (k + 0.5) / 6`` (``midtone`` its sigma,
  ``sigma_s`` the shadows' and ``sigma_r`` the highlights' slope beyond ``2 sigma``, a quadratic bezier
  between, plus ``detail * c * exp(-c^2 / (2 sigma^2 / 3))``: the scalar path, ``expf``, as the SSE path's
  alignment test sends every pixel there; darktable 5 has no SSE path and takes ``dt_fast_expf``, emulated
  where :attr:`StageContext.darktable_version` is 5 or later), their gaussian pyramids, and the output pyramid
  assembled coarse to fine from the input's coarsest level: ``gauss_expand`` (``[1 4 6 4 1] / 8`` upsampling at clamped
  coordinates) plus each level's laplacian interpolated between the two remapped copies whose ``g`` bracket
  the input's gaussian there. a*, b* copied. The render scale changes nothing but the image's size (the
  filter has no spatial sigma).
* **bilateral grid** (``mode`` 0): ``common/bilateral.c`` on L with spatial sigma ``sigma_s / max(1 / scale,
  1)`` px and range sigma ``sigma_r`` (the grid :func:`~darkproxy.replica.ports.monochrome.bilateral_base`
  shares with monochrome), sliced with ``detail``: ``max(0, L - detail sigma_r' 0.04 grid)``.

Shapes: ``(B, 3, H, W)`` linear Rec2020 -> the same. Not pointwise. Values: darktable's float32 arithmetic
up to the order of its sums; gradients: the image and, in local laplacian mode, ``detail``, ``sigma_r``,
``sigma_s`` and ``midtone`` (piecewise smooth: the curve's branches and the bracketing ``g`` are chosen by
value); in bilateral mode the image and ``detail`` (the grid's geometry follows its sigmas in steps). Refused:
placements outside colorin..colorout; in local laplacian mode ``midtone`` <= 0 (a division by zero in
darktable) and images under 4 px; in bilateral mode ``sigma_r`` <= 0 (darktable's grid size is then undefined).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from darkproxy.errors import DarkproxyError
from darkproxy.replica.dtmath import fast_expf
from darkproxy.replica.ports.monochrome import bilateral_base, lab_placement
from darkproxy.replica.registry import StageContext, Values, column, one_value, register_exact
from darkproxy.replica.science import lab_to_working_rgb, straight_through, working_rgb_to_lab

Tensor = torch.Tensor

MAX_LEVELS, NUM_GAMMA = 7, 6
MODE_BILATERAL, MODE_LOCAL_LAPLACIAN = 0, 1
_K5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def num_levels(width: int, height: int) -> int:
    """``MIN(max_levels, 31 - __builtin_clz(MIN(wd, ht)))``: the pyramid's depth."""
    return min(MAX_LEVELS, min(width, height).bit_length() - 1)


def _kernel(x: Tensor, scale: float) -> Tensor:
    k = torch.tensor(_K5, dtype=x.dtype, device=x.device) / scale
    return torch.outer(k, k).reshape(1, 1, 5, 5)


def gauss_reduce(x: Tensor) -> Tensor:
    """``gauss_reduce``: ``(N, 1, h, w)`` -> ``(N, 1, (h - 1) // 2 + 1, (w - 1) // 2 + 1)``, the 5x5 binomial
    at every other pixel, the border rows and columns copies of their neighbours (``ll_fill_boundary1``)."""
    c = F.conv2d(x, _kernel(x, 16.0), stride=2, padding=2)
    return F.pad(c[..., 1:-1, 1:-1], (1, 1, 1, 1), mode="replicate")


def _clamped(n: int, device: torch.device) -> Tensor:
    """Fine indices ``0..n-1`` clamped to ``[1, ((n - 1) & ~1) - 1]``: where ``gauss_expand`` and
    ``ll_laplacian`` evaluate (``ll_fill_boundary2`` copies the rest)."""
    return torch.arange(n, device=device).clamp(1, ((n - 1) & ~1) - 1)


def gauss_expand(c: Tensor, height: int, width: int) -> Tensor:
    """``gauss_expand`` / ``ll_expand_gaussian``: the coarse ``(N, 1, h', w')`` upsampled to ``(N, 1, height,
    width)`` through ``[1 4 6 4 1] / 8`` in each axis, at clamped coordinates."""
    e = F.conv_transpose2d(c, _kernel(c, 8.0), stride=2, padding=2)
    return e.index_select(-2, _clamped(height, c.device)).index_select(-1, _clamped(width, c.device))


def gammas(x: Tensor) -> Tensor:
    """The six remapping centres ``(k + 0.5) / 6`` in float32, as ``(1, 6, 1, 1)`` in ``x``'s dtype."""
    g = (torch.arange(NUM_GAMMA, dtype=torch.float32) + 0.5) / float(NUM_GAMMA)
    return g.to(x.dtype).to(x.device).reshape(1, NUM_GAMMA, 1, 1)


def curve(
    x: Tensor,
    g: Tensor,
    sigma: Tensor,
    shadows: Tensor,
    highlights: Tensor,
    clarity: Tensor,
    fast_exp: bool = False,
) -> Tensor:
    """``curve_scalar``: the remapping of ``x`` about ``g`` (broadcast), a quadratic bezier within ``2 sigma``
    of ``g``, slopes ``shadows`` above and ``highlights`` below beyond it, plus the midtone contrast: its
    gaussian through ``expf`` (darktable 4.2) or, ``fast_exp``, ``dt_fast_expf`` of a float32 argument
    (darktable 5: its values, the function it approximates differentiated)."""
    c = x - g
    two_s = 2.0 * sigma
    t_up = torch.clamp(c / two_s, 0.0, 1.0)
    t_dn = torch.clamp(-c / two_s, 0.0, 1.0)
    up = g + sigma * 2.0 * (1.0 - t_up) * t_up + t_up * t_up * (sigma + sigma * shadows)
    dn = g - sigma * 2.0 * (1.0 - t_dn) * t_dn + t_dn * t_dn * (-sigma - sigma * highlights)
    val = torch.where(c > 0.0, up, dn)
    val = torch.where(c > two_s, g + sigma + shadows * (c - sigma), val)
    val = torch.where(c < -two_s, g - sigma + highlights * (c + sigma), val)
    arg = -(c * c) / (2.0 * sigma * sigma / 3.0)
    if not fast_exp:
        return val + clarity * c * torch.exp(arg)
    a32 = arg.detach().float()
    gauss = straight_through(fast_expf(a32, exact=True).to(x.dtype), fast_expf(arg, exact=False))
    return val + clarity * c * gauss


def local_laplacian(
    L: Tensor,
    sigma: Tensor,
    shadows: Tensor,
    highlights: Tensor,
    clarity: Tensor,
    fast_exp: bool = False,
) -> Tensor:
    """``local_laplacian_internal`` on L* ``(B, 1, H, W)`` (``[0, 100]``, more allowed) -> L* the same shape;
    the sliders ``(B or 1, 1, 1, 1)``; ``fast_exp``: darktable 5's curve (:func:`curve`)."""
    B, _, H, W = L.shape
    last = num_levels(W, H) - 1
    supp = 1 << last
    pad = F.pad(L * 0.01, (supp, supp, supp, supp), mode="replicate")
    g = gammas(L)
    # the input's gaussian pyramid, and the six remapped copies' (batched as B * 6 images)
    padded = [pad]
    for _ in range(last):
        padded.append(gauss_reduce(padded[-1]))
    rem = curve(pad, g, sigma, shadows, highlights, clarity, fast_exp)  # (B, 6, h, w)
    bufs = [rem.reshape(B * NUM_GAMMA, 1, *rem.shape[-2:])]
    for _ in range(last):
        bufs.append(gauss_reduce(bufs[-1]))
    out = padded[last]
    gv = g.reshape(-1)
    k = torch.arange(NUM_GAMMA, device=L.device).reshape(1, NUM_GAMMA, 1, 1)
    for lev in range(last - 1, -1, -1):
        h, w = padded[lev].shape[-2:]
        lap = (bufs[lev] - gauss_expand(bufs[lev + 1], h, w)).reshape(B, NUM_GAMMA, h, w)
        v = padded[lev]
        with torch.no_grad():  # the bracketing copies: hi the first g above v (1..5), lo the one below
            hi = 1 + (v.unsqueeze(2) >= gv[1 : NUM_GAMMA - 1].reshape(1, 1, -1, 1, 1)).sum(2)  # (B, 1, h, w)
        lo = hi - 1
        a = torch.clamp((v - gv[lo]) / (gv[hi] - gv[lo]), 0.0, 1.0)
        # the interpolation as weights over the six copies (a gather's backward costs more)
        wts = torch.where(k == lo, 1.0 - a, torch.where(k == hi, a, torch.zeros_like(a)))
        out = gauss_expand(out, h, w) + (lap * wts).sum(1, keepdim=True)
    return 100.0 * out[..., supp : supp + H, supp : supp + W]


def spatial_scale(ctx: StageContext) -> float:
    """``fmaxf(piece->iscale / roi_in->scale, 1)`` (``iscale`` 1 in an export)."""
    return max(1.0 / ctx.scale, 1.0)


def _one(value: object, name: str) -> float:
    """A bilateral-mode sigma: one value (the grid's geometry follows it in steps: no gradient, no batch of
    different values)."""
    return one_value(value, f"bilat: the bilateral mode's {name} sets darktable's grid; it cannot be fitted")


def _mode(v: Values) -> int:
    return int(v.get("mode", MODE_LOCAL_LAPLACIAN))


def _supports(v: Values, ctx: StageContext) -> str | None:
    why = lab_placement("bilat")(v, ctx)
    if why:
        return why
    mode = _mode(v)
    if mode == MODE_LOCAL_LAPLACIAN:
        if float(torch.as_tensor(v.get("midtone", 0.5)).min()) <= 0.0:
            return "bilat: midtone range <= 0 divides by zero in darktable's local laplacian; not modelled"
        return None
    if mode == MODE_BILATERAL:
        if float(v.get("sigma_r", 0.5)) <= 0.0:
            return "bilat: bilateral mode with range <= 0 (darktable's grid size is then undefined); not modelled"
        return None
    return f"bilat: mode {mode} is not one darktable 4.2.1 has"


@register_exact(
    "bilat",
    params=("detail", "sigma_r", "sigma_s", "midtone"),
    versions=(3,),
    pointwise=False,
    note="darktable's bilat.c: local laplacian filter (locallaplacian.c: the remapped pyramids, six "
    "gammas, replicated padding) or bilateral grid (bilateral.c at the render scale); any render scale",
    supports=_supports,
)
def bilat(x: Tensor, v: Values, ctx: StageContext) -> Tensor:
    """local contrast on ``x`` ``(B, 3, H, W)`` linear Rec2020 -> the same."""
    lab = working_rgb_to_lab(x)
    L = lab[:, 0:1]
    if _mode(v) == MODE_BILATERAL:
        sigma_s = _one(v.get("sigma_s", 0.5), "sigma_s") / spatial_scale(ctx)
        sigma_r = _one(v.get("sigma_r", 0.5), "sigma_r")
        det = v.get("detail", 0.25)
        out_l = bilateral_base(L, sigma_s, sigma_r, column(det, x) if isinstance(det, Tensor) else float(det))
    elif min(L.shape[-2:]) < 4:  # darktable reads past its pyramid there
        raise DarkproxyError("bilat: darktable's local laplacian on an image under 4 px is not modelled")
    else:
        out_l = local_laplacian(
            L,
            column(v.get("midtone", 0.5), x),
            column(v.get("sigma_s", 0.5), x),
            column(v.get("sigma_r", 0.5), x),
            column(v.get("detail", 0.25), x),
            fast_exp=ctx.darktable5,
        )
    return lab_to_working_rgb(torch.cat([out_l, lab[:, 1:3]], 1))
