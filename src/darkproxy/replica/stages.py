"""The replica's stage registry: exact differentiable implementations of darktable modules.

A stage of the replica is one enabled module of the history, of one of three kinds:

* ``"exact"``: darktable's maths is a fixed closed form, implemented here in torch
  (differentiable in the image and in the sliders listed in ``params``);
* ``"proxy"``: a trained proxy of the zoo (or any run folder);
* ``"passthrough"``: darktable's own tap-out after the module (no gradient reaches
  what is before it): the mosaic stages by design (the replica starts from
  darktable's demosaiced image), other modules only with ``--allow-missing``.

Adding an exact stage is one entry: a function ``fn(x, values, ctx) -> y`` decorated
with :func:`register_exact`. ``x``/``y`` are ``(B, 3, H, W)`` float32 tensors in
linear Rec2020 (darktable's working space, as every tap-out) unless the op says
``output="display"`` (sRGB-encoded display values in ``[0, 1]``, Rec709 primaries);
``values`` maps the module's param names to floats (the history's) or ``(B,)``
tensors (the sliders being regressed); ``ctx`` is the :class:`StageContext`.

Measured figures of each exact stage (display PSNR against darktable's tap-out,
the stage alone on darktable's own input): ``bench/results/replica.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from darkproxy.colorspace import rec2020_to_rec709_matrix, srgb_encode

Values = Mapping[str, Any]  # param name -> float (from the history) or (B,) tensor (regressed)


@dataclass(frozen=True)
class StageContext:
    """What an exact op may need beyond its params: ``scale`` (render scale, output
    px per raw px), ``modules`` (every module the history enables: an op may
    depend on another, as the display stage on filmic rgb's gamut mapping),
    ``orientation`` (the raw's EXIF orientation, darktable's flip encoding),
    ``output_profile`` (colorout's export profile, which filmic rgb v6 gamut-maps
    to: ``"srgb"`` for darktable's sRGB export, ``"lin_rec2020"`` for the float
    tap-outs) and ``exact`` (the modules the chain runs as exact stages)."""

    scale: float = 1.0
    modules: tuple[str, ...] = ()
    orientation: int = 0
    output_profile: str = "srgb"
    exact: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExactOp:
    """An exact differentiable implementation of a darktable module.

    ``params``: the sliders it is differentiable in (the ones ``replica regress``
    may free); ``output``: ``"linear"`` (linear Rec2020) or ``"display"`` (sRGB
    display values in ``[0, 1]``); ``supports(values, ctx)``: ``None`` when the
    history's setting is modelled, else the reason it is not; ``note``: how exact
    it is (shown in summaries); ``versions``: the module versions (darktable's
    params version, ``darktable:modversion`` in an XMP) whose maths it implements,
    empty for any (a history of another version runs through the proxy)."""

    module: str
    fn: Callable[[torch.Tensor, Values, StageContext], torch.Tensor]
    params: tuple[str, ...] = ()
    output: str = "linear"
    note: str = ""
    supports: Callable[[Values, StageContext], str | None] = field(default=lambda v, c: None)
    versions: tuple[int, ...] = ()


EXACT: dict[str, ExactOp] = {}

# modules whose input is the raw mosaic: the replica starts from darktable's demosaiced image
MOSAIC_NOTE = "darktable's own render (the replica starts after demosaic: the zoo's mosaic proxies reach 24-30 dB)"


def register_exact(
    module: str,
    params: tuple[str, ...] = (),
    output: str = "linear",
    note: str = "",
    supports: Callable[[Values, StageContext], str | None] | None = None,
    versions: tuple[int, ...] = (),
) -> Callable[[Callable[[torch.Tensor, Values, StageContext], torch.Tensor]], Any]:
    """Decorator: register ``fn`` as the exact stage of ``module``."""

    def deco(fn: Callable[[torch.Tensor, Values, StageContext], torch.Tensor]) -> Any:
        EXACT[module] = ExactOp(module, fn, params, output, note, supports or (lambda v, c: None), versions)
        return fn

    return deco


def _col(v: Any, x: torch.Tensor) -> torch.Tensor:
    """A param value (float or (B,) tensor) as a ``(B or 1, 1, 1, 1)`` tensor on ``x``'s device."""
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1, 1, 1)


# ------------------------------------------------------------------ exposure
def _exposure_supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", 0))
    return None if mode == 0 else f"exposure mode {mode} (deflicker) is not modelled"


@register_exact(
    "exposure",
    params=("exposure", "black"),
    note="darktable's formula (x - black) / (2^-exposure - black), exact (the camera matrix maps "
    "camera white to (1, 1, 1)); the EXIF exposure bias is taken as 0",
    supports=_exposure_supported,
)
def exposure(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    black = _col(v.get("black", -0.000244140625), x)
    ev = _col(v.get("exposure", 0.0), x)
    return (x - black) / (torch.exp2(-ev) - black)


# ------------------------------------------------------------------ colorin / gamma / finalscale
@register_exact("colorin", note="identity: every tap-out is already in linear Rec2020, colorin's output")
def colorin(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x


@register_exact("finalscale", note="identity: with darktable-cli --hq false the image is scaled at demosaic")
def finalscale(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x


@register_exact("gamma", output="display", note="identity on display values (its 8-bit quantisation is not modelled)")
def gamma(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x


def _flip_supported(v: Values, ctx: StageContext) -> str | None:
    o = int(v.get("orientation", -1))
    o = ctx.orientation if o < 0 else o
    return None if o == 0 else f"flip orientation {o} (a rotation) is not modelled"


@register_exact("flip", note="identity: the raw is not rotated (a rotation is refused)", supports=_flip_supported)
def flip(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    return x


# ------------------------------------------------------------------ sharpen
# linear Rec2020 (D50-adapted, darktable's working profile) -> XYZ D50; its rows' sums are the D50 white
REC2020_TO_XYZ_D50 = np.array(
    [[0.6734241, 0.1656411, 0.1251286], [0.2790177, 0.6753402, 0.0456377], [-0.0019300, 0.0299784, 0.7973330]]
)
_LAB_EPS = 216.0 / 24389.0
_LAB_KAPPA = 24389.0 / 27.0


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _LAB_EPS, t.clamp_min(_LAB_EPS) ** (1.0 / 3.0), (_LAB_KAPPA * t + 16.0) / 116.0)


def _lab_finv(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f**3 > _LAB_EPS, f**3, (116.0 * f - 16.0) / _LAB_KAPPA)


def _mix(x: torch.Tensor, m: np.ndarray) -> torch.Tensor:
    mt = torch.tensor(np.array(m), dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", mt, x)


@register_exact(
    "sharpen",
    params=("radius", "amount", "threshold"),
    note="darktable's sharpen.c: unsharp mask of CIE L* (Gaussian sigma = radius x render scale, cut at "
    "2.5 sigma), soft threshold, border of that width untouched; any render scale",
)
def sharpen(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    B, _, H, W = x.shape
    radius = _col(v.get("radius", 2.0), x).reshape(-1)
    amount = _col(v.get("amount", 0.5), x)
    threshold = _col(v.get("threshold", 0.5), x)
    sigma = (radius * ctx.scale).clamp_min(1e-3)  # (B,) or (1,)
    rs = [int(math.ceil(2.5 * float(s))) for s in sigma.detach().cpu().tolist()]
    r_max = max(rs)
    if r_max < 1 or 2 * r_max >= min(H, W):  # darktable leaves images this small untouched
        return x
    white = torch.as_tensor(REC2020_TO_XYZ_D50.sum(1), dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    xyz = _mix(x, REC2020_TO_XYZ_D50) / white
    f = _lab_f(xyz)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    L = 116.0 * fy - 16.0
    t = torch.arange(-r_max, r_max + 1, dtype=x.dtype, device=x.device)
    rt = torch.as_tensor(rs, dtype=x.dtype, device=x.device).reshape(-1, 1)
    k = torch.exp(-(t[None] ** 2) / (2.0 * sigma.reshape(-1, 1) ** 2)) * (t[None].abs() <= rt)
    k = k / k.sum(1, keepdim=True)  # (Bk, 2R+1), Bk = B or 1
    if k.shape[0] != B:
        k = k.expand(B, -1)
    # separable blur, one kernel per batch item (grouped convolutions)
    Lg = L.reshape(1, B, H, W)
    blur = torch.nn.functional.conv2d(Lg, k.reshape(B, 1, 2 * r_max + 1, 1), padding=(r_max, 0), groups=B)
    blur = torch.nn.functional.conv2d(blur, k.reshape(B, 1, 1, 2 * r_max + 1), padding=(0, r_max), groups=B)
    d = L - blur.reshape(B, 1, H, W)
    L2 = L + amount * torch.sign(d) * torch.relu(d.abs() - threshold)
    yy = torch.arange(H, device=x.device).reshape(1, 1, H, 1)
    xx = torch.arange(W, device=x.device).reshape(1, 1, 1, W)
    rb = torch.as_tensor(rs if len(rs) == B else rs * B, device=x.device).reshape(B, 1, 1, 1)
    inner = (yy >= rb) & (yy < H - rb) & (xx >= rb) & (xx < W - rb)
    L2 = torch.where(inner, L2, L)
    fy2 = (L2 + 16.0) / 116.0
    f2 = torch.cat([fy2 + (fx - fy), fy2, fy2 - (fy - fz)], 1)
    return _mix(_lab_finv(f2) * white, np.linalg.inv(REC2020_TO_XYZ_D50))


# ------------------------------------------------------------------ colorout: the display
# luminance weights of linear Rec709 in CIE 2006 Y (filmic rgb's Yrg space: XYZ D65 -> LMS 2006 -> Y)
_XYZ_D65_TO_LMS_2006 = np.array(
    [[0.257085, 0.859943, -0.031061], [-0.394427, 1.175800, 0.106423], [0.064856, -0.076250, 0.559067]]
)
_REC709_TO_XYZ_D65 = np.array(
    [[0.4123908, 0.3575843, 0.1804808], [0.2126390, 0.7151687, 0.0721923], [0.0193308, 0.1191948, 0.9505322]]
)
_Y2006_REC709 = np.array([0.68990272, 0.34832189, 0.0]) @ _XYZ_D65_TO_LMS_2006 @ _REC709_TO_XYZ_D65


def display_gamut_map(rgb709: torch.Tensor) -> torch.Tensor:
    """filmic rgb's gamut mapping to the export profile (darktable 4.x, v6 colour
    science), in closed form: each linear Rec709 pixel is mixed with the grey of
    its CIE 2006 luminance (constant luminance and hue in filmic's Yrg space)
    just enough to bring every channel into ``[0, 1]``; negative channels first
    raise the luminance by half the white that would cancel them, as filmic's
    heuristic does. ``(B, 3, H, W)`` -> same shape, in ``[0, 1]``."""
    w = torch.as_tensor(_Y2006_REC709, dtype=rgb709.dtype, device=rgb709.device).reshape(1, 3, 1, 1)
    wsum = float(_Y2006_REC709.sum())
    y = (rgb709 * w).sum(1, keepdim=True)
    off = torch.relu(-rgb709.amin(1, keepdim=True))
    y = (y + ((rgb709 + off) * w).sum(1, keepdim=True)) / 2.0
    grey = (y / wsum).clamp(0.0, 1.0)
    d = rgb709 - grey
    big = torch.full_like(d, 1e9)
    eps = 1e-9
    t_hi = torch.where(d > eps, (1.0 - grey) / torch.where(d > eps, d, torch.ones_like(d)), big)
    t_lo = torch.where(d < -eps, -grey / torch.where(d < -eps, d, -torch.ones_like(d)), big)
    t = torch.minimum(t_hi.amin(1, keepdim=True), t_lo.amin(1, keepdim=True)).clamp(0.0, 1.0)
    return (grey + t * d).clamp(0.0, 1.0)


@register_exact(
    "colorout",
    output="display",
    note="linear Rec2020 -> Rec709 primaries -> sRGB curve (darktable's sRGB export, exact in gamut); with "
    "filmic rgb's proxy, its gamut mapping to the sRGB export profile in closed form (the zoo's proxy learnt "
    "it for a Rec2020 output profile; the exact filmic rgb stage maps to ctx.output_profile itself)",
)
def colorout(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    rgb = _mix(x, rec2020_to_rec709_matrix())
    if "filmicrgb" in ctx.modules and "filmicrgb" not in ctx.exact:
        rgb = display_gamut_map(rgb)
    return srgb_encode(rgb)
