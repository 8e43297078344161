"""The replica's stage registry: exact differentiable implementations of darktable modules.

A stage of the replica is one enabled module of the history, of one of three kinds:

* ``"exact"``: darktable's maths is a fixed closed form, implemented here in torch
  (differentiable in the image and in the sliders listed in ``params``);
* ``"proxy"``: a trained proxy of the zoo (or any run folder);
* ``"passthrough"``: darktable's own tap-out after the module (no gradient reaches
  what is before it): the mosaic stages by default (the replica starts from
  darktable's demosaiced image; ``--from-mosaic`` runs them as exact ports from the
  raw's CFA, ``mosaic=True`` ops: :mod:`darkproxy.replica.mosaicplan`), other modules
  only with ``--allow-missing``.

Adding an exact stage is one file in :mod:`darkproxy.replica.ports` (imported by its
``__init__``): a function ``fn(x, values, ctx) -> y`` decorated with
:func:`register_exact`. ``x``/``y`` are ``(B, 3, H, W)`` float32 tensors in linear
Rec2020 (darktable's working space, as every tap-out) unless the op says
``output="display"`` (sRGB-encoded display values in ``[0, 1]``, Rec709 primaries);
``values`` maps the module's param names to floats (the history's) or ``(B,)``
tensors (the sliders being regressed); ``ctx`` is the :class:`StageContext`.

Measured figures of each exact stage (display PSNR against darktable's tap-out,
the stage alone on darktable's own input): ``bench/results/replica.md``; the pointwise
ports added since (velvia, vibrance, colorcontrast, colorcorrection, colorize, splittoning) and flip:
``tests/replica/test_ports.py``, ``tests/replica/test_geometry.py`` and their spread in
``bench/results/test_noise.md`` ("replica").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from darkproxy.darktable.params import param_value
from darkproxy.raw.demosaic import cfa_colours

Values = Mapping[str, Any]  # param name -> float (from the history) or (B,) tensor (regressed)


@dataclass(frozen=True)
class StageContext:
    """What an exact op may need beyond its params: ``scale`` (render scale, output
    px per raw px), ``modules`` (every module the history enables: an op may
    depend on another, as the display stage on filmic rgb's gamut mapping),
    ``orientation`` (the raw's EXIF orientation, darktable's flip encoding; ``None``
    when it could not be read), ``exposure_bias`` (the raw's EXIF exposure bias in EV
    as darktable reads it; ``None`` when not read), ``output_profile`` (colorout's
    export profile, which filmic rgb v6 gamut-maps to: ``"srgb"`` for darktable's
    sRGB export, ``"lin_rec2020"`` for the float tap-outs) and ``exact`` (the
    modules the chain runs as exact stages)."""

    scale: float = 1.0
    modules: tuple[str, ...] = ()
    orientation: int | None = 0
    exposure_bias: float | None = None
    # the raw's highlight preservation bias (EV) darktable 5.4's exposure v7 adds back where
    # ``compensate_hilite_pres`` asks (:func:`darkproxy.raw.exif.read_highlight_preservation`); ``None``: not read
    highlight_bias: float | None = None
    output_profile: str = "srgb"
    exact: tuple[str, ...] = ()
    # the mosaic stages' (--from-mosaic): the CFA colour (0 R, 1 G, 2 B) of the 2x2 sites of rawprepare's
    # output, row by row; darktable's ``processed_maximum`` (B, 3) at the stage's input (set by the chain
    # as it runs: it follows the sliders); the output size (H, W)
    # demosaic resamples to; colorin's camera RGB -> linear Rec2020 matrix measured from darktable
    cfa: tuple[int, int, int, int] | None = None
    processed_maximum: Any = field(default=None, compare=False)
    out_size: tuple[int, int] | None = None
    # (H, W) of rawprepare's output, the whole image the export scale is of, where the mosaic stages run on
    # demosaic's region of it (darktable 4.8 on below full size: resample.demosaic_roi); ``None``: their input's
    mosaic_size: tuple[int, int] | None = None
    camera_matrix: tuple[tuple[float, ...], ...] | None = None
    # (width, height) in raw px at full resolution of the image the chain starts from (darktable's
    # ``buf_in`` of a module after the geometry stages: the raw's visible size, turned by flip, cut by
    # crop): where a position-dependent module (vignette, graduated density) puts its centre and its
    # radii; ``None`` when unknown (such a stage is then refused)
    full_size: tuple[float, float] | None = None
    # (width, height) darktable-cli's export checks its render against before it corrects the export scale
    # upwards (``pipe->iwidth - origin[0]``, ``iheight - origin[1]``: references.export_room): with a crop, the
    # crop's input less its left and top cut; ``None``: :attr:`full_size`
    export_room: tuple[float, float] | None = None
    # the darktable whose renders the chain reproduces (``(major, minor, patch)``): its export's size and scale
    # rule (:mod:`darkproxy.darktable.exportsize`); ``None``: darktable before 4.8
    darktable_version: tuple[int, ...] | None = None
    # (width, height) of the raw as darktable's pipe takes it (``pipe->iwidth``, ``iheight``: rawpy's visible
    # size), not cut by a crop: soften's radius is 1 % of its diagonal; ``None``: :attr:`full_size` (the same
    # where no crop cuts the image)
    image_size: tuple[float, float] | None = None
    # the white balance module's coefficients (red, green, blue: darktable's ``dsc.temperature.coeffs``), ``None``
    # without it; the green channel's (a, b) of darktable's automatic noise profile for the raw where darkproxy
    # knows it (:func:`darkproxy.darktable.noiseprofile.auto_profile`), else ``None``
    wb_coeffs: tuple[float, float, float] | None = None
    noise_profile: tuple[float, float] | None = None
    # darktable's chroma correction darktable 5's inpaint opposed reads: (1, 1, 1), or under white balance's "as
    # shot to reference" (temperature v4's preset 4, its ``late_correction``) the raw's D65 over its as-shot
    # coefficients (R, G, B); ``None``: not known
    late_correction: tuple[float, float, float] | None = None
    # exposure's deflicker (mode 1) reads the raw: ``(histogram, black, white)``, the (65536,) counts of the raw's
    # photosite values inside rawprepare's crop and rawprepare's black level and white point (darktable's
    # ``pipe->dsc.rawprepare``); ``None`` unless an enabled exposure deflickers
    raw_levels: Any = field(default=None, compare=False)
    # darktable's own camera-RGB render of the chain's input ``(1, 3, H, W)`` (colorin passing it through), where
    # the chain measured colorin's matrix from it: a stage on camera RGB whose input is that image reads it rather
    # than the matrix's inverse of its Rec2020 render (values near 0, where a stage may be steep, stay darktable's)
    camera_input: Any = field(default=None, compare=False)

    @property
    def darktable5(self) -> bool:
        """Whether the running darktable is 5.0 or later, whose maths several ports follow where it changed."""
        return self.darktable_version is not None and self.darktable_version >= (5, 0)


@dataclass(frozen=True)
class ExactOp:
    """An exact differentiable implementation of a darktable module.

    ``params``: the sliders it is differentiable in (the ones ``replica regress``
    may free); ``output``: ``"linear"`` (linear Rec2020) or ``"display"`` (sRGB
    display values in ``[0, 1]``); ``supports(values, ctx)``: ``None`` when the
    history's setting is modelled, else the reason it is not; ``note``: how exact
    it is (shown in summaries); ``versions``: the module versions (darktable's
    params version, ``darktable:modversion`` in an XMP) whose params it reads;
    ``reads_params``: ``False`` for a stage whose output does not depend on the
    module's params (an identity: any version runs); ``pointwise(values, ctx)``: whether
    each output pixel depends only on the same input pixel at these settings (the
    regression engine then may fit on a subset of pixels). A stage that reads params
    declares its versions: the chain hands it the history's values decoded at one
    of them (an older item upgraded as darktable does, :mod:`darkproxy.darktable.legacy`),
    never defaults in place of values it could not decode. ``mosaic``: a stage before
    darktable's demosaic (``--from-mosaic``): its input is the CFA ``(B, 1, H, W)`` (demosaic's
    output is camera RGB ``(B, 3, h, w)``); ``maximum(values, ctx, pm)``: how it changes
    darktable's ``processed_maximum`` ``pm`` (B, 3), which later mosaic stages read."""

    module: str
    fn: Callable[[torch.Tensor, Values, StageContext], torch.Tensor]
    params: tuple[str, ...] = ()
    output: str = "linear"
    note: str = ""
    supports: Callable[[Values, StageContext], str | None] = field(default=lambda v, c: None)
    versions: tuple[int, ...] = ()
    reads_params: bool = True
    pointwise: Callable[[Values, StageContext], bool] = field(default=lambda v, c: True)
    mosaic: bool = False
    maximum: Callable[[Values, StageContext, torch.Tensor], torch.Tensor] | None = None


EXACT: dict[str, ExactOp] = {}

# modules whose input is the raw mosaic: the replica starts from darktable's demosaiced image
MOSAIC_NOTE = "darktable's own render (the replica starts after demosaic: the zoo's mosaic proxies reach 24-30 dB)"
# geometry with only per-pixel exact stages of the chain before it (which commute with it): darktable's render
# with it is the replica's input (at render scales below 1 darktable samples a rotated or cropped image on its
# own grid: rotating its unrotated render instead differs by half an output pixel, 25 dB at scale 0.5; the exact
# flip stage is exact at scale 1; crop has no exact stage)
GEOMETRY_FIRST = ("flip", "crop")
GEOMETRY_NOTE = (
    "darktable's own render: only per-pixel stages come before it in the chain (they commute with it), so the "
    "replica starts from its output"
)


def register_exact(
    module: str,
    params: tuple[str, ...] = (),
    output: str = "linear",
    note: str = "",
    supports: Callable[[Values, StageContext], str | None] | None = None,
    versions: tuple[int, ...] = (),
    reads_params: bool = True,
    pointwise: bool | Callable[[Values, StageContext], bool] = True,
    mosaic: bool = False,
    maximum: Callable[[Values, StageContext, torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[Callable[[torch.Tensor, Values, StageContext], torch.Tensor]], Any]:
    """Decorator: register ``fn`` as the exact stage of ``module`` (``versions`` is
    required unless ``reads_params=False``)."""
    if reads_params and not versions:
        raise ValueError(f"exact stage {module}: declare the params versions it reads (versions=...)")

    def deco(fn: Callable[[torch.Tensor, Values, StageContext], torch.Tensor]) -> Any:
        local = pointwise if callable(pointwise) else (lambda v, c, p=bool(pointwise): p)
        EXACT[module] = ExactOp(
            module,
            fn,
            params,
            output,
            note,
            supports or (lambda v, c: None),
            versions,
            reads_params,
            local,
            mosaic,
            maximum,
        )
        return fn

    return deco


def column(v: Any, x: torch.Tensor) -> torch.Tensor:
    """A param value (float or (B,) tensor) as a ``(B or 1, 1, 1, 1)`` tensor on ``x``'s device."""
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1, 1, 1)


def one_value(v: Any, why: str) -> float:
    """A param that sets discrete geometry (a grid's size, an integer radius): its one value as a float, no
    gradient; :class:`~darkproxy.errors.DarkproxyError` ``why`` for a batch of different values (it cannot be
    fitted)."""
    from darkproxy.errors import DarkproxyError

    t = torch.as_tensor(v).detach().reshape(-1)
    if t.numel() > 1 and not bool((t == t[0]).all()):
        raise DarkproxyError(why)
    return float(t[0])


def cfa_map(ctx: StageContext, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The CFA colour (0 R, 1 G, 2 B) of every site of an ``(h, w)`` mosaic: ``(h, w)`` int64,
    from ``ctx.cfa`` (darktable's ``FC(row, col, filters)`` for a Bayer sensor)."""
    if ctx.cfa is None:
        raise ValueError("a mosaic stage needs the CFA pattern (StageContext.cfa): the chain sets it --from-mosaic")
    return cfa_colours(ctx.cfa, h, w, device)


def coeff_columns(v: Values, names: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """Params ``names`` (floats or (B,) tensors; a name may be an array element, ``red[0]``: a regressed slider
    where the values hold it, else the array's element) as a ``(B or 1, len(names))`` tensor on ``x``'s device."""
    cols = [torch.as_tensor(param_value(v, n), dtype=x.dtype, device=x.device).reshape(-1) for n in names]
    b = max(c.shape[0] for c in cols)
    return torch.stack([c.expand(b) for c in cols], dim=1)


# the largest difference between a stage's input and colorin's matrix applied to darktable's camera render for the
# two to count as the same image, relative to the image's maximum (the matrix's fit leaves 3-4e-5: measured on
# two synthetic raws at 128 px)
CAMERA_MATCH = 2e-4


def through_camera_rgb(
    x: torch.Tensor, ctx: StageContext, module: str, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn`` (the module's maths on its own input space) on ``x`` ``(B, 3, H, W)`` linear Rec2020: where the pipe
    (``ctx.modules``, in order) runs ``module`` before colorin, on camera RGB, back through colorin's matrix as
    darktable's renders measure it (``ctx.camera_matrix``; where ``x`` is the image ``ctx.camera_input`` is
    darktable's camera render of, that render), ``fn``, and the matrix again; elsewhere ``fn(x)``.
    Raises :class:`ValueError` when the matrix is needed and was not measured."""
    mods = ctx.modules
    if not (module in mods and "colorin" in mods and mods.index(module) < mods.index("colorin")):
        return fn(x)
    if ctx.camera_matrix is None:
        raise ValueError(
            f"{module} runs on camera RGB before colorin: colorin's camera matrix is not measured "
            "(the chain measures it from darktable's renders)"
        )
    m64 = torch.as_tensor(ctx.camera_matrix, dtype=torch.float64)
    m, m_inv = (t.to(x.dtype).to(x.device) for t in (m64, torch.linalg.inv(m64)))
    cam = torch.einsum("ij,bjhw->bihw", m_inv, x)
    own = ctx.camera_input
    if own is not None and tuple(own.shape[-2:]) == tuple(x.shape[-2:]):
        own = torch.as_tensor(own, dtype=x.dtype, device=x.device).reshape(1, 3, *x.shape[-2:])
        back = torch.einsum("ij,bjhw->bihw", m, own)
        scale = x.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1.0)
        same = (back - x.detach()).abs().amax(dim=(1, 2, 3)) < CAMERA_MATCH * scale  # (B,): this image, unchanged
        # darktable's values, the matrix's gradient (straight through)
        cam = torch.where(same[:, None, None, None], own + (cam - cam.detach()), cam)
    return torch.einsum("ij,bjhw->bihw", m, fn(cam))
