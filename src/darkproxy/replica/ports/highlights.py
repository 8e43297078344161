"""darktable's highlight reconstruction (``highlights``, params version 4) as an exact mosaic stage:
``src/iop/highlights.c`` and ``opposed.c`` (Bayer paths).

* mode 0, "clip highlights": every photosite ``min(x, clip * min(processed_maximum))``, the
  minimum of the white balance coefficients (``processed_maximum`` after temperature); then
  ``processed_maximum`` becomes their maximum. Exact, differentiable in ``clip`` and (through
  the level) in the coefficients.
* mode 1, "reconstruct in LCh" (``process_lch_bayer``): at every site whose 2x2 block (the site
  at its top left) holds a photosite above the clip level, the block's R, B and brightest green
  give the lightness and, scaled to the chroma of the block clipped at the level, chroma and hue;
  the site takes its colour of that; the last row and column are clipped. Exact, differentiable.
* mode 2, "reconstruct color" (``interpolate_color``, a1ex's inpainting): four scans of the mosaic
  (each row left to right and back, each column down and up), each carrying the ratio of
  neighbouring photosites of the two colours, an exponential average updated where both are
  unclipped; a photosite at ``0.987 * clip * coefficient`` (less 1e-5) takes the mean over the four
  scans of its scan-neighbour times (or over) that ratio, both levels' maximum where the neighbour
  clips too; the image's outer photosites are kept. Exact (darktable's float32 running ratio),
  differentiable in the photosites and, where both clip, in ``clip``.
* mode 5, "inpaint opposed" (4.2's default for a raw never edited; ``opposed.c``'s
  ``_process_opposed`` as an export runs it: the whole mosaic, no cached chrominance): a photosite
  at or above ``0.987 * clip * coefficient`` (away from the image's edge) is rebuilt as the cube of
  the mean cube root of the two other colours' 3x3 means about it, plus a per-colour chrominance
  offset: the mean of ``x - that estimate`` over the unclipped photosites (above 3 % of the level,
  12.5 % for green) near clipped ones of their colour (a plane of 3x3-photosite cells, dilated by
  darktable's radius-3 disc), never below ``x``; every other photosite becomes ``max(x, 0)``. The
  clipped set does not depend on the coefficients (``x * c >= 0.987 * clip * c``): no gradient
  through it; the estimate and the offset are differentiable in the photosites.

  darktable 5 (:attr:`StageContext.darktable_version`; ``hlreconstruct/opposed.c``) computes it otherwise
  (:func:`opposed5`: another cell mask, offset and estimate window, the edge rebuilt too): ported from 5.4.1's
  source, 92.5-100 dB against 5.4.1's tap-outs where 4.2's port gives 58.5-62.9; under white balance's "as shot to
  reference" (its ``late_correction``, 5.4's default) its estimate reads the raw's D65 / as-shot ratio, known here
  for a DNG (its own tags), refused for other raws.

Other modes (guided laplacians, segmentation) are refused naming them.
"""

from __future__ import annotations

import torch

from darkproxy.errors import DarkproxyError
from darkproxy.replica.registry import StageContext, Values, cfa_map, column, register_exact

MODES = {0: "clip highlights", 1: "reconstruct in LCh", 2: "reconstruct color", 3: "guided laplacians"}
MODES |= {4: "segmentation based", 5: "inpaint opposed"}
OPPOSED_MAGIC = 0.987  # highlights_clip_magics[DT_IOP_HIGHLIGHTS_OPPOSED]


def _supported(v: Values, ctx: StageContext) -> str | None:
    mode = int(v.get("mode", 0))
    if mode not in (0, 1, 2, 5):
        return (
            f"highlights mode {mode} ({MODES.get(mode, 'unknown')}) is not modelled (clip, reconstruct in LCh, "
            "reconstruct color and inpaint opposed are)"
        )
    if mode == 5 and "temperature" not in ctx.modules:
        return "highlights inpaint opposed without white balance (temperature off) is not modelled"
    if mode == 5 and ctx.darktable5 and ctx.late_correction is None:
        return _LATE
    return None


_LATE = (
    "highlights: darktable 5's inpaint opposed reads darktable's D65 / as-shot ratio under white balance's 'as "
    "shot to reference' (5.4's default), known for a DNG only (or the white balance is unknown): not modelled"
)


def _maximum(v: Values, ctx: StageContext, pm: torch.Tensor) -> torch.Tensor:
    if int(v.get("mode", 0)) in (0, 1, 2):  # clipped to one level: highlights.c sets all three to their maximum
        return pm.amax(dim=1, keepdim=True).expand_as(pm)
    return pm  # opposed keeps the signal scene-referred


@register_exact(
    "highlights",
    params=("clip",),
    versions=(4,),
    mosaic=True,
    pointwise=False,
    maximum=_maximum,
    supports=_supported,
    note="exact: clip at clip x min(white balance coefficients); reconstruct in LCh; reconstruct color (the four "
    "scans); inpaint opposed (the opposed colours' cube-root means plus the chrominance offset near clipped "
    "photosites)",
)
def highlights(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` white-balanced camera RGB mosaic -> the same, highlights handled."""
    if ctx.processed_maximum is None:
        raise DarkproxyError("highlights: darktable's processed_maximum is unknown (the chain sets it)")
    pm = torch.as_tensor(ctx.processed_maximum, dtype=x.dtype, device=x.device).reshape(-1, 3)
    clip = column(v.get("clip", 1.0), x)
    mode = int(v.get("mode", 0))
    if mode == 2:
        return reconstruct_color(x, clip, pm, cfa_map(ctx, x.shape[-2], x.shape[-1], x.device))
    if mode in (0, 1):
        level = clip * pm.amin(dim=1).reshape(-1, 1, 1, 1)
        if mode == 1:
            return lch(x, level, cfa_map(ctx, x.shape[-2], x.shape[-1], x.device))
        return torch.minimum(x, level)
    fc = cfa_map(ctx, x.shape[-2], x.shape[-1], x.device)
    if ctx.darktable5:
        if ctx.late_correction is None:  # refused by the plan (_supported); a stage run on its own
            raise DarkproxyError(_LATE)
        return opposed5(x, clip, pm, fc, ctx.late_correction)
    return opposed(x, clip, pm, fc)


SQRT3 = 1.7320508075688772935274463415058723669
INPAINT_MAGIC = 0.987  # highlights.c, DT_IOP_HIGHLIGHTS_INPAINT: 0.987 * clip * processed_maximum[c], in double


def _scan(x: torch.Tensor, levels: torch.Tensor, lv: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of ``interpolate_color`` along the last axis of ``x (B, R, N)`` (``step`` +1 or -1), ``levels``
    the clip level of each photosite (float32, no gradient) and ``lv`` the same with its gradient in ``clip``
    -> (what the pass adds at each photosite, whether it is clipped), both ``(B, R, N)``; the outer photosites
    along the axis add nothing (the caller keeps the image's outer photosites)."""
    b, r, n = x.shape
    ratio = torch.ones(b, r, dtype=x.dtype, device=x.device)
    adds = [torch.zeros(b, r, dtype=x.dtype, device=x.device) for _ in range(n)]
    xf = x.detach().float()
    for k in range(1, n - 1) if step > 0 else range(n - 2, 0, -1):
        cur, nxt = x[..., k], x[..., k + step]
        cf, nf = xf[..., k], xf[..., k + step]
        c0, c1 = levels[..., k], levels[..., k + 1]  # darktable reads the level of the photosite at k + 1
        upd = (cf < c0) & (cf > 1e-5) & (nf < c1) & (nf > 1e-5)
        one = torch.ones_like(cur)
        safe_cur, safe_nxt = torch.where(upd, cur, one), torch.where(upd, nxt, one)
        r_k = safe_cur / safe_nxt if k & 1 else safe_nxt / safe_cur  # in[odd] / in[even]
        ratio = torch.where(upd, (3.0 * ratio + r_k) / 4.0, ratio)
        both = torch.maximum(lv[..., k], lv[..., k + 1])
        add = torch.where(nf >= c1 - 1e-5, both, nxt * ratio if k & 1 else nxt / ratio)
        adds[k] = add
    return torch.stack(adds, dim=-1), xf >= levels - 1e-5


def reconstruct_color(x: torch.Tensor, clip: torch.Tensor, pm: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """darktable's "reconstruct color" on a Bayer mosaic (``interpolate_color``, four passes).

    ``x (B, 1, H, W)`` white-balanced camera RGB mosaic, ``clip (B or 1, 1, 1, 1)``, ``pm (B or 1, 3)`` the white
    balance coefficients, ``fc (H, W)`` the CFA colours -> ``(B, 1, H, W)``."""
    b, _, h, w = x.shape
    lv = (INPAINT_MAGIC * clip.reshape(-1, 1, 1)) * pm[:, fc]  # (B or 1, H, W), with its gradient
    with torch.no_grad():
        levels = (INPAINT_MAGIC * clip.detach().double().reshape(-1, 1, 1) * pm.detach().double()[:, fc]).float()
    levels, lv = levels.expand(b, h, w), lv.expand(b, h, w)
    m = x[:, 0]
    a0, clipped = _scan(m, levels, lv, 1)
    a1, _ = _scan(m, levels, lv, -1)
    a2, _ = _scan(m.transpose(1, 2), levels.transpose(1, 2), lv.transpose(1, 2), 1)
    a3, _ = _scan(m.transpose(1, 2), levels.transpose(1, 2), lv.transpose(1, 2), -1)
    rebuilt = (a0 + a1 + a2.transpose(1, 2) + a3.transpose(1, 2)) / 4.0
    return torch.where(clipped & _inside(h, w, x.device), rebuilt, m)[:, None]


def _inside(h: int, w: int, device: torch.device) -> torch.Tensor:
    """``(h, w)`` bool: every photosite but the image's outer ones."""
    inner = torch.zeros(h, w, dtype=torch.bool, device=device)
    inner[1 : h - 1, 1 : w - 1] = True
    return inner


def lch(x: torch.Tensor, level: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """darktable's "reconstruct in LCh" on a Bayer mosaic (``process_lch_bayer``).

    ``x (B, 1, H, W)`` white-balanced camera RGB mosaic, ``level (B or 1, 1, 1, 1)`` the clip level (clip x
    the smallest white balance coefficient), ``fc (H, W)`` the CFA colours -> ``(B, 1, H, W)``."""
    h, w = x.shape[-2:]
    # the 2x2 block with each site (but the last row and column) at its top left
    vals = torch.stack([x[..., a : h - 1 + a, b : w - 1 + b] for a in (0, 1) for b in (0, 1)], dim=1)[:, :, 0]
    cols = torch.stack([fc[a : h - 1 + a, b : w - 1 + b] for a in (0, 1) for b in (0, 1)])  # (4, h-1, w-1)
    inf = torch.full_like(vals, float("inf"))
    r = torch.where(cols == 0, vals, torch.zeros_like(vals)).sum(1)
    bl = torch.where(cols == 2, vals, torch.zeros_like(vals)).sum(1)
    gmin = torch.where(cols == 1, vals, inf).amin(1)
    gmax = torch.where(cols == 1, vals, -inf).amax(1)
    lv = level.reshape(-1, 1, 1)
    ro, go, bo = torch.minimum(r, lv), torch.minimum(gmin, lv), torch.minimum(bl, lv)
    lum = (r + gmax + bl) / 3.0
    c, hue = SQRT3 * (r - gmax), 2.0 * bl - gmax - r
    co, ho = SQRT3 * (ro - go), 2.0 * bo - go - ro
    num, den = co * co + ho * ho, c * c + hue * hue
    rescale = (r != gmax) & (gmax != bl)
    # sqrt's slope is infinite at 0 (a block clipped in every channel): the where() keeps it out
    ratio = torch.where(num > 0, (num.clamp_min(1e-30) / den.clamp_min(1e-30)).sqrt(), torch.zeros_like(num))
    ratio = torch.where(rescale, ratio, torch.ones_like(ratio))
    c, hue = c * ratio, hue * ratio
    rgb = torch.stack((lum - hue / 6.0 + c / (2 * SQRT3), lum - hue / 6.0 - c / (2 * SQRT3), lum + hue / 3.0), 1)
    own = rgb.gather(1, fc[: h - 1, : w - 1].expand(rgb.shape[0], 1, h - 1, w - 1))[:, 0]
    clipped = (vals > lv[:, None]).any(1)
    inner = torch.where(clipped, own, x[:, 0, : h - 1, : w - 1])
    out = torch.minimum(x[:, 0], level.reshape(-1, 1, 1)).clone()  # the last row and column: clipped
    out[:, : h - 1, : w - 1] = inner
    return out[:, None]


HL_BORDER = 8  # hlrecovery_v2.c: the mask plane's border (cells)
HL_POWERF = 3.0
# segmentation.h's _test_dilate at radius 3: a 7x7 square without its four corners
_DILATE = torch.ones(1, 1, 7, 7)
_DILATE[..., 0, 0] = _DILATE[..., 0, -1] = _DILATE[..., -1, 0] = _DILATE[..., -1, -1] = 0.0


def _onehot(fc: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``fc (H, W)`` CFA colours -> ``(3, H, W)``: 1 where the site is of that colour."""
    return (fc[None] == torch.arange(3, device=fc.device)[:, None, None]).to(dtype)


def _refavg(x: torch.Tensor, fc: torch.Tensor, correction: tuple[float, float, float] | None = None) -> torch.Tensor:
    """hlrecovery_v2.c's ``_calc_refavg`` (linear) at every site: ``x (B, 1, H, W)`` non-negative mosaic,
    ``fc (H, W)`` -> ``(B, 1, H, W)``; meaningful away from the edge (the 3x3 window inside). With ``correction``,
    darktable 5's (segbased.c): each colour's mean times its correction before the cube root, and a window from
    ``max(0, r - 1)`` to below ``min(H - 1, r + 2)``, never the last row or column, meaningful at the edge too."""
    onehot = _onehot(fc, x.dtype)
    b, _, h, w = x.shape
    if correction is not None:
        onehot[:, h - 1, :] = 0.0
        onehot[:, :, w - 1] = 0.0
    box = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
    sums = torch.nn.functional.conv2d((x * onehot).reshape(b * 3, 1, h, w), box, padding=1).reshape(b, 3, h, w)
    counts = torch.nn.functional.conv2d(onehot[:, None], box, padding=1).reshape(1, 3, h, w)
    mean = sums / counts.clamp_min(1.0)
    if correction is not None:
        mean = torch.tensor(correction, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1) * mean
    # powf(mean, 1/3); the cube root's slope is infinite at 0, where the where() keeps it out
    root = torch.where(mean > 0, mean.clamp_min(1e-30) ** (1.0 / HL_POWERF), torch.zeros_like(mean))
    r, g, bl = root.unbind(1)
    opp = torch.stack((0.5 * (g + bl), 0.5 * (r + bl), 0.5 * (r + g)), dim=1) ** HL_POWERF
    return opp.gather(1, fc.expand(b, 1, h, w))


def _near_clipped(clipped: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """opposed.c's mask planes: ``clipped (B, H, W)`` bool (interior photosites at their level) ->
    ``(B, H, W)`` bool, the photosites whose 3x3-photosite cell, in their colour's plane, lies within
    darktable's dilation of a cell holding a clipped photosite of that colour."""
    b, h, w = clipped.shape
    pw = -(-(w // 3) // 2) * 2 + 2 * HL_BORDER  # dt_round_size(width / 3, 2) + 2 * HL_BORDER
    ph = -(-(h // 3) // 2) * 2 + 2 * HL_BORDER
    rows = HL_BORDER + torch.arange(h, device=fc.device) // 3
    cols = HL_BORDER + torch.arange(w, device=fc.device) // 3
    cell = (rows[:, None] * pw + cols[None, :]).expand(b, h, w)  # _raw_to_plane
    plane = torch.zeros(b, 3, ph * pw, device=fc.device)
    idx = (fc[None] * (ph * pw) + cell).reshape(b, -1)
    plane.reshape(b, -1).scatter_reduce_(1, idx, clipped.reshape(b, -1).float(), "amax")
    plane = plane.reshape(b * 3, 1, ph, pw)
    # _intimage_borderfill(.., 0, HL_BORDER): the top 8 rows, the bottom 9, 8 columns each side
    plane[..., :HL_BORDER, :] = 0
    plane[..., ph - HL_BORDER - 1 :, :] = 0
    plane[..., :HL_BORDER] = 0
    plane[..., pw - HL_BORDER :] = 0
    grown = torch.nn.functional.conv2d(plane, _DILATE.to(fc.device), padding=3) > 0
    inner = torch.zeros_like(grown)  # _dilating writes the inner cells only; the rest stays 0
    inner[..., HL_BORDER : ph - HL_BORDER, HL_BORDER : pw - HL_BORDER] = True
    grown = (grown & inner).reshape(b, 3, ph * pw)
    return grown.reshape(b, -1).gather(1, idx).reshape(b, h, w)


def opposed(x: torch.Tensor, clip: torch.Tensor, pm: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """darktable 4.2's inpaint opposed on a Bayer mosaic (``_process_opposed``, export quality).

    ``x (B, 1, H, W)`` white-balanced camera RGB mosaic (1 = the white level before white balance),
    ``clip (B or 1, 1, 1, 1)`` the module's clipping threshold, ``pm (B or 1, 3)`` the white balance
    coefficients (darktable's ``processed_maximum``), ``fc (H, W)`` the CFA colours -> ``(B, 1, H, W)``."""
    b, _, h, w = x.shape
    xin = x.clamp_min(0.0)
    with torch.no_grad():  # opposed.c: clips[c] = 0.987 * clip * temperature coeffs[c] (float32)
        clips = (OPPOSED_MAGIC * clip.detach().float()).reshape(-1, 1, 1) * pm.detach().float()[:, fc]
        clips = clips.expand(b, h, w)
        xf = xin.detach().float()[:, 0]
        at_level = xf >= clips
        interior = _inside(h, w, x.device)
        clipped = at_level & interior
        counts = clipped.reshape(b, -1).sum(1)
    if not bool(at_level.any()):
        return xin
    ref = _refavg(xin, fc)[:, 0]
    chroma = torch.zeros(b, 3, dtype=x.dtype, device=x.device)
    if bool((counts > 5).any()):
        with torch.no_grad():
            dark = clips * torch.tensor([0.03, 0.125, 0.03], device=x.device)[fc]
            use = _near_clipped(clipped, fc) & interior & (xf > dark) & (xf < clips) & (counts > 5)[:, None, None]
        onehot = _onehot(fc, x.dtype)
        diff = torch.where(use, xin[:, 0] - ref, torch.zeros_like(ref))
        total = torch.einsum("bhw,chw->bc", diff, onehot)
        n = torch.einsum("bhw,chw->bc", use.to(x.dtype), onehot)
        chroma = total / n.clamp_min(1.0)
    # interior clipped photosites: max(x, estimate + offset); a clipped one on the edge keeps its estimate x
    est = torch.where(clipped, ref, xin[:, 0]) + chroma.gather(1, fc.reshape(1, -1).expand(b, -1)).reshape(b, h, w)
    out = torch.where(at_level, torch.maximum(xin[:, 0], est), xin[:, 0])
    return out[:, None]


def _cells5(x: torch.Tensor, level: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """opposed.c's mask (darktable 5): per colour, the cells ``(mrow, mcol)`` (1 .. size/3 - 2) whose 3x3
    photosites about ``(3 mrow, 3 mcol)`` hold one at the level of a colour ``c``, the colour read as darktable reads
    it, ``FC(mrow + y, mcol + x)``; then dilated (cells 3 .. size/3 - 4) by the 7x7 disc without its corners.
    ``x (B, H, W)``, ``level (B, 3)`` -> ``(B, 3, H // 3, W // 3)`` bool."""
    b, h, w = x.shape
    mh, mw = h // 3, w // 3
    cells = torch.zeros(b, 3, mh, mw, dtype=torch.bool, device=x.device)
    if mh < 3 or mw < 3:
        return cells
    mr = torch.arange(1, mh - 1, device=x.device)
    mc = torch.arange(1, mw - 1, device=x.device)
    for y in (-1, 0, 1):
        for dx in (-1, 0, 1):
            colour = fc[(mr + y)[:, None], (mc + dx)[None, :]]  # darktable's FC(mrow + y, mcol + x)
            hit = x[:, (3 * mr + y)[:, None], (3 * mc + dx)[None, :]] >= level[:, colour]
            for c in range(3):
                cells[:, c, 1 : mh - 1, 1 : mw - 1] |= hit & (colour == c)
    grown = torch.nn.functional.conv2d(cells.reshape(b * 3, 1, mh, mw).float(), _DILATE.to(x.device), padding=3) > 0
    inner = torch.zeros_like(grown)  # _mask_dilated runs on cells 3 .. size/3 - 4 only (calloc: 0 elsewhere)
    inner[..., 3 : mh - 3, 3 : mw - 3] = True
    return (grown & inner).reshape(b, 3, mh, mw)


def opposed5(
    x: torch.Tensor,
    clip: torch.Tensor,
    pm: torch.Tensor,
    fc: torch.Tensor,
    correction: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """darktable 5's inpaint opposed on a Bayer mosaic (``hlreconstruct/opposed.c``'s ``_process_opposed``, export
    quality; ``correction``: darktable's chroma correction, :attr:`StageContext.late_correction`): the chrominance
    offset per colour is the mean of ``x - estimate`` over the photosites of rows and columns 3 .. size - 4 between
    20 % of their colour's level and the level, in a dilated cell (:func:`_cells5`), taken where more than 100 are;
    every photosite at its level becomes ``max(x, estimate + offset)`` (:func:`_refavg`), the image's edge
    included; the others ``max(x, 0)``. Shapes as :func:`opposed`."""
    b, _, h, w = x.shape
    xin = x.clamp_min(0.0)
    with torch.no_grad():  # clips[c] = 0.987 * clip * temperature coeffs[c] (float32)
        level = (OPPOSED_MAGIC * clip.detach().float()).reshape(-1, 1) * pm.detach().float()
        level = level.expand(b, 3)
        xf = x.detach().float()[:, 0]
        site = level[:, fc]  # (B, H, W)
        at_level = xin.detach().float()[:, 0] >= site
    ref = _refavg(xin, fc, correction)[:, 0]
    chroma = torch.zeros(b, 3, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        cells = _cells5(xf, level, fc)
        rows = torch.arange(h, device=x.device) // 3
        cols = torch.arange(w, device=x.device) // 3
        mh, mw = cells.shape[-2:]
        near = cells[:, :, rows.clamp(max=mh - 1)[:, None], cols.clamp(max=mw - 1)[None, :]]  # (B, 3, H, W)
        near = near.gather(1, fc.expand(b, 1, h, w))[:, 0]
        frame = torch.zeros(h, w, dtype=torch.bool, device=x.device)
        frame[3 : h - 3, 3 : w - 3] = True
        use = frame & near & (xf < site) & (xf > 0.2 * site)
    onehot = _onehot(fc, x.dtype)
    diff = torch.where(use, x[:, 0] - ref, torch.zeros_like(ref))
    total = torch.einsum("bhw,chw->bc", diff, onehot)
    n = torch.einsum("bhw,chw->bc", use.to(x.dtype), onehot)
    chroma = torch.where(n > 100.0, total / n.clamp_min(1.0), chroma)
    est = ref + chroma.gather(1, fc.reshape(1, -1).expand(b, -1)).reshape(b, h, w)
    return torch.where(at_level, torch.maximum(xin[:, 0], est), xin[:, 0])[:, None]
