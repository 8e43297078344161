"""darktable's demosaic (``demosaic``, params version 4) as an exact stage: RCD
(``src/iop/rcd_demosaic.c``, darktable 4.2's default for Bayer sensors) at full scale, then
darktable's resampling to the output size (``dt_iop_clip_and_zoom_roi``).

darktable-cli's export pipe always demosaics at full scale (``demosaic_qual_flags``:
``DT_DEV_PIXELPIPE_EXPORT`` -> ``DT_DEMOSAIC_FULL_SCALE``). RCD runs on tiles of 112 photosites
(94 valid, 9 of overlap; 6 at the image's own edges): each tile here is computed as darktable
computes it (vectorised torch: shifted planes, no per-pixel loop), including what its edges read
(the zeroed direction buffers, the low-pass buffer the P/Q buffer reuses, the P/Q high-pass
read through its half-width index), so that the seams match. The 6-photosite frame of the
image is ``rcd_ppg_border``: 3x3 averages on the outer 3, PPG's green and colour differences
within. Input: the white-balanced camera RGB mosaic ``(B, 1, H, W)``; output camera RGB
``(B, 3, H, W)`` (then resampled when ``ctx.out_size`` is smaller: :mod:`.resample`).
Refused: other methods, green equilibration, colour smoothing, images under 16 px.

darktable hands each thread chunks of 6 tiles (``schedule(dynamic, 6)``); a tile of even width
reads one P/Q column it did not compute, left by the thread's previous tile: emulated in order,
exact when a tile row's last tile is not the first of a chunk (any image up to 6 tiles: 564 px
wide; beyond, the few columns 6-9 px from such a tile's right edge are darktable's own
thread-dependent values).
"""

from __future__ import annotations

import torch

from darkproxy.replica.registry import StageContext, Values, cfa_map, register_exact

RCD = 5  # DT_IOP_DEMOSAIC_RCD
TILE, BORDER, MARGIN = 112, 9, 6  # RCD_TILESIZE, RCD_BORDER, RCD_MARGIN
EPS, EPSSQ = 1e-5, 1e-10


def _supported(v: Values, ctx: StageContext) -> str | None:
    method = int(v.get("demosaicing_method", RCD))
    if method != RCD:
        return f"demosaic method {method} is not modelled (RCD, {RCD}, is)"
    if int(v.get("green_eq", 0)) != 0:
        return f"demosaic green equilibration {int(v['green_eq'])} is not modelled (only 'no')"
    if int(v.get("color_smoothing", 0)) != 0:
        return f"demosaic colour smoothing {int(v['color_smoothing'])} is not modelled (only 'disabled')"
    return None


PAD = 4  # the farthest RCD reads from a photosite


def _s(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``t (..., H, W)`` read at ``(row + dy, col + dx)``, ``|dy|, |dx| <= 4``: zero outside (never read
    where it matters)."""
    h, w = t.shape[-2:]
    p = torch.nn.functional.pad(t, (PAD, PAD, PAD, PAD))
    return p[..., PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w]


def _box(h: int, w: int, r0: int, r1: int, c0: int, c1: int, device: torch.device) -> torch.Tensor:
    """``(h, w)`` bool: rows ``r0 <= r < r1`` and columns ``c0 <= c < c1``."""
    r = torch.arange(h, device=device)[:, None]
    c = torch.arange(w, device=device)[None, :]
    return (r >= r0) & (r < r1) & (c >= c0) & (c < c1)


def _intp(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return a * (b - c) + c


def _disc(d: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """RCD's refined discrimination: the neighbourhood's when it is more decided than the centre's."""
    return torch.where((0.5 - d).abs() < (0.5 - nb).abs(), nb, d)


def _hpf(cfa: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Square of RCD's colour-difference high-pass along the direction ``(dy, dx)``."""
    s = lambda k: _s(cfa, k * dy, k * dx)  # noqa: E731
    return ((s(-3) - s(-1) - s(1) + s(3)) - 3.0 * (s(-2) + s(2)) + 6.0 * cfa) ** 2


def _rcd_green(cfa: torch.Tensor, fc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RCD steps 1-3 on a tile: ``cfa (B, h, w)``, ``fc (h, w)`` -> (green ``(B, h, w)``: interpolated at the
    red and blue sites 4 in from the edges, the CFA elsewhere; the refined vertical / horizontal
    discrimination; the low-pass at the red and blue sites)."""
    h, w = cfa.shape[-2:]
    dev = cfa.device
    rb = fc != 1
    zero = torch.zeros_like(cfa)
    inner = _box(h, w, 4, h - 4, 4, w - 4, dev)
    # Step 1: vertical / horizontal discrimination, zero where darktable leaves VH_Dir unset
    vv = _hpf(cfa, 1, 0)
    vs = (_s(vv, -1, 0) + vv + _s(vv, 1, 0)).clamp_min(EPSSQ)
    hh = _hpf(cfa, 0, 1)
    hs = (_s(hh, 0, -1) + hh + _s(hh, 0, 1)).clamp_min(EPSSQ)
    vh = torch.where(inner, vs / (vs + hs), zero)
    vh_nb = 0.25 * (_s(vh, -1, -1) + _s(vh, -1, 1) + _s(vh, 1, -1) + _s(vh, 1, 1))
    vh_disc = _disc(vh, vh_nb)
    # Step 2: low-pass at the red and blue sites (rows / columns 2 .. n-3)
    lpf = (
        cfa
        + 0.5 * (_s(cfa, -1, 0) + _s(cfa, 1, 0) + _s(cfa, 0, -1) + _s(cfa, 0, 1))
        + 0.25 * (_s(cfa, -1, -1) + _s(cfa, -1, 1) + _s(cfa, 1, -1) + _s(cfa, 1, 1))
    )
    lpf = torch.where(_box(h, w, 2, h - 2, 2, w - 2, dev) & rb, lpf, zero)
    # Step 3: green at the red and blue sites
    c = lambda dy, dx: _s(cfa, dy, dx)  # noqa: E731
    n_grad = EPS + (c(-1, 0) - c(1, 0)).abs() + (cfa - c(-2, 0)).abs() + (c(-1, 0) - c(-3, 0)).abs()
    n_grad = n_grad + (c(-2, 0) - c(-4, 0)).abs()
    s_grad = EPS + (c(-1, 0) - c(1, 0)).abs() + (cfa - c(2, 0)).abs() + (c(1, 0) - c(3, 0)).abs()
    s_grad = s_grad + (c(2, 0) - c(4, 0)).abs()
    w_grad = EPS + (c(0, -1) - c(0, 1)).abs() + (cfa - c(0, -2)).abs() + (c(0, -1) - c(0, -3)).abs()
    w_grad = w_grad + (c(0, -2) - c(0, -4)).abs()
    e_grad = EPS + (c(0, -1) - c(0, 1)).abs() + (cfa - c(0, 2)).abs() + (c(0, 1) - c(0, 3)).abs()
    e_grad = e_grad + (c(0, 2) - c(0, 4)).abs()
    two = lpf + lpf
    n_est = c(-1, 0) * two / (EPS + lpf + _s(lpf, -2, 0))
    s_est = c(1, 0) * two / (EPS + lpf + _s(lpf, 2, 0))
    w_est = c(0, -1) * two / (EPS + lpf + _s(lpf, 0, -2))
    e_est = c(0, 1) * two / (EPS + lpf + _s(lpf, 0, 2))
    v_est = (s_grad * n_est + n_grad * s_est) / (n_grad + s_grad)
    h_est = (w_grad * e_est + e_grad * w_est) / (e_grad + w_grad)
    g = torch.where(inner & rb, _intp(vh_disc, h_est, v_est), cfa)
    return g, vh_disc, lpf


def rcd_tile(
    cfa: torch.Tensor, fc: torch.Tensor, stale: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: PLR0915  a maths kernel
    """One RCD tile as darktable computes it: ``cfa (B, h, w)`` (``max(x, 0) / scaler``),
    ``fc (h, w)`` its CFA colours, ``stale``: the P/Q high-pass buffers ``(B, h, w)`` as the
    previous tile left them (darktable reads one column past what a tile of even width
    computes) -> ``(rgb (B, 3, h, w)`` before the final ``scaler * max(0, .)``, P, Q buffers)."""
    h, w = cfa.shape[-2:]
    dev = cfa.device
    green = fc == 1
    rb = ~green
    row_has = [(fc == c).any(dim=1, keepdim=True).expand(h, w) for c in (0, 2)]
    zero = torch.zeros_like(cfa)
    inner = _box(h, w, 4, h - 4, 4, w - 4, dev)
    # Step 0: rgb[c0] = rgb[c1] = cfa for the two colours of each row, the third zeroed (partial tiles' memset)
    plane_r = torch.where(row_has[0], cfa, zero)
    plane_b = torch.where(row_has[1], cfa, zero)
    g, vh_disc, lpf = _rcd_green(cfa, fc)
    # Step 4.0-4.1: diagonal discrimination. P/Q high-passes are stored at odd columns and read through
    # darktable's half-width index: at an even column the centre and lower terms come from column + 1
    p_hpf = torch.where(_box(h, w, 3, h - 3, 3, w - 3, dev), _hpf_diag(cfa, 1), stale[0])
    q_hpf = torch.where(_box(h, w, 3, h - 3, 3, w - 3, dev), _hpf_diag(cfa, -1), stale[1])
    even = (torch.arange(w, device=dev) % 2 == 0)[None, :].expand(h, w)
    p_stat = torch.where(
        even,
        _s(p_hpf, -1, -1) + _s(p_hpf, 0, 1) + _s(p_hpf, 1, 1),
        _s(p_hpf, -1, 0) + p_hpf + _s(p_hpf, 1, 2),
    ).clamp_min(EPSSQ)
    q_stat = torch.where(
        even,
        _s(q_hpf, -1, 1) + _s(q_hpf, 0, 1) + _s(q_hpf, 1, -1),
        _s(q_hpf, -1, 2) + q_hpf + _s(q_hpf, 1, 0),
    ).clamp_min(EPSSQ)
    # PQ_Dir reuses the low-pass buffer: unset entries keep the low-pass values
    pq = torch.where(inner & rb, p_stat / (p_stat + q_stat), lpf)
    pq_nb = 0.25 * (_s(pq, -1, -1) + _s(pq, -1, 1) + _s(pq, 1, -1) + _s(pq, 1, 1))
    pq_disc = _disc(pq, pq_nb)
    # Step 4.2: red at blue sites, blue at red sites
    new = []
    for plane in (plane_r, plane_b):
        q = lambda dy, dx, p=plane: _s(p, dy, dx)  # noqa: E731
        nw_grad = EPS + (q(-1, -1) - q(1, 1)).abs() + (q(-1, -1) - q(-3, -3)).abs() + (g - _s(g, -2, -2)).abs()
        ne_grad = EPS + (q(-1, 1) - q(1, -1)).abs() + (q(-1, 1) - q(-3, 3)).abs() + (g - _s(g, -2, 2)).abs()
        sw_grad = EPS + (q(-1, 1) - q(1, -1)).abs() + (q(1, -1) - q(3, -3)).abs() + (g - _s(g, 2, -2)).abs()
        se_grad = EPS + (q(-1, -1) - q(1, 1)).abs() + (q(1, 1) - q(3, 3)).abs() + (g - _s(g, 2, 2)).abs()
        nw_est = q(-1, -1) - _s(g, -1, -1)
        ne_est = q(-1, 1) - _s(g, -1, 1)
        sw_est = q(1, -1) - _s(g, 1, -1)
        se_est = q(1, 1) - _s(g, 1, 1)
        p_est = (nw_grad * se_est + se_grad * nw_est) / (nw_grad + se_grad)
        q_est = (ne_grad * sw_est + sw_grad * ne_est) / (ne_grad + sw_grad)
        new.append(g + _intp(pq_disc, q_est, p_est))
    plane_r = torch.where(inner & (fc == 2), new[0], plane_r)
    plane_b = torch.where(inner & (fc == 0), new[1], plane_b)
    # Step 4.3: red and blue at green sites
    n1 = EPS + (g - _s(g, -2, 0)).abs()
    s1 = EPS + (g - _s(g, 2, 0)).abs()
    w1 = EPS + (g - _s(g, 0, -2)).abs()
    e1 = EPS + (g - _s(g, 0, 2)).abs()
    out = []
    for plane in (plane_r, plane_b):
        q = lambda dy, dx, p=plane: _s(p, dy, dx)  # noqa: E731
        sn_abs = (q(-1, 0) - q(1, 0)).abs()
        ew_abs = (q(0, -1) - q(0, 1)).abs()
        n_g = n1 + sn_abs + (q(-1, 0) - q(-3, 0)).abs()
        s_g = s1 + sn_abs + (q(1, 0) - q(3, 0)).abs()
        w_g = w1 + ew_abs + (q(0, -1) - q(0, -3)).abs()
        e_g = e1 + ew_abs + (q(0, 1) - q(0, 3)).abs()
        n_e = q(-1, 0) - _s(g, -1, 0)
        s_e = q(1, 0) - _s(g, 1, 0)
        w_e = q(0, -1) - _s(g, 0, -1)
        e_e = q(0, 1) - _s(g, 0, 1)
        v_e = (n_g * s_e + s_g * n_e) / (n_g + s_g)
        h_e = (e_g * w_e + w_g * e_e) / (e_g + w_g)
        out.append(torch.where(inner & green, g + _intp(vh_disc, h_e, v_e), plane))
    return torch.stack([out[0], g, out[1]], dim=1), p_hpf, q_hpf


def _hpf_diag(cfa: torch.Tensor, sx: int) -> torch.Tensor:
    """Square of RCD's high-pass along the diagonal ``(1, sx)`` (P: ``sx = 1``, Q: ``sx = -1``)."""
    s = lambda k: _s(cfa, k, k * sx)  # noqa: E731
    return ((s(-3) - s(-1) - s(1) + s(3)) - 3.0 * (s(-2) + s(2)) + 6.0 * cfa) ** 2


def ppg_border(x: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:  # noqa: PLR0915  a maths kernel
    """``rcd_ppg_border``: ``x (B, H, W)`` the mosaic -> ``(B, 3, H, W)``, valid outside the
    ``[6, H - 6) x [6, W - 6)`` interior (3x3 averages on the outer 3 photosites, PPG within)."""
    bsz, h, w = x.shape
    dev = x.device
    pos = x.clamp_min(0.0)
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=dev)
    k3 = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=dev)
    avg = []
    for col in range(3):
        m = (fc == col).to(x.dtype)
        ssum = torch.nn.functional.conv2d((pos * m)[:, None], k3, padding=1)[:, 0]
        cnt = torch.nn.functional.conv2d((ones * m), k3, padding=1)[0, 0]
        avg.append(torch.where((fc == col) | (cnt <= 0), pos, ssum / cnt.clamp_min(1.0)))
    outer = ~_box(h, w, 3, h - 3, 3, w - 3, dev)
    # PPG green at red / blue sites (loop 2), the photosite's own value at green sites
    p = lambda dy, dx: _s(pos, dy, dx)  # noqa: E731
    guessx = (p(0, -1) + pos + p(0, 1)) * 2.0 - p(0, 2) - p(0, -2)
    diffx = ((p(0, -2) - pos).abs() + (p(0, 2) - pos).abs() + (p(0, -1) - p(0, 1)).abs()) * 3.0
    diffx = diffx + ((p(0, 3) - p(0, 1)).abs() + (p(0, -3) - p(0, -1)).abs()) * 2.0
    guessy = (p(-1, 0) + pos + p(1, 0)) * 2.0 - p(2, 0) - p(-2, 0)
    diffy = ((p(-2, 0) - pos).abs() + (p(2, 0) - pos).abs() + (p(-1, 0) - p(1, 0)).abs()) * 3.0
    diffy = diffy + ((p(3, 0) - p(1, 0)).abs() + (p(-3, 0) - p(-1, 0)).abs()) * 2.0
    gy = torch.maximum(torch.minimum(guessy * 0.25, torch.maximum(p(-1, 0), p(1, 0))), torch.minimum(p(-1, 0), p(1, 0)))
    gx = torch.maximum(torch.minimum(guessx * 0.25, torch.maximum(p(0, -1), p(0, 1))), torch.minimum(p(0, -1), p(0, 1)))
    ppg = torch.where(fc == 1, pos, torch.where(diffx > diffy, gy, gx))
    g0 = torch.where(outer, avg[1], ppg)  # the green every later step reads
    # loop 3: the missing colours from colour differences (own colours: max(x, 0))
    gs = lambda dy, dx: _s(g0, dy, dx)  # noqa: E731
    own = lambda dy, dx: _s(pos, dy, dx)  # noqa: E731
    red_right = _s(fc, 0, 1) == 0  # FC(j, i + 1) == 0: red in the same row
    vert = (own(-1, 0) + own(1, 0) + 2.0 * g0 - gs(-1, 0) - gs(1, 0)) * 0.5
    horiz = (own(0, -1) + own(0, 1) + 2.0 * g0 - gs(0, -1) - gs(0, 1)) * 0.5
    diff1 = (own(-1, -1) - own(1, 1)).abs() + (gs(-1, -1) - g0).abs() + (gs(1, 1) - g0).abs()
    guess1 = own(-1, -1) + own(1, 1) + 2.0 * g0 - gs(-1, -1) - gs(1, 1)
    diff2 = (own(-1, 1) - own(1, -1)).abs() + (gs(-1, 1) - g0).abs() + (gs(1, -1) - g0).abs()
    guess2 = own(-1, 1) + own(1, -1) + 2.0 * g0 - gs(-1, 1) - gs(1, -1)
    diag = torch.where(diff1 > diff2, guess2 * 0.5, torch.where(diff1 < diff2, guess1 * 0.5, (guess1 + guess2) * 0.25))
    r3 = torch.where(fc == 0, pos, torch.where(fc == 2, diag, torch.where(red_right, horiz, vert)))
    b3 = torch.where(fc == 2, pos, torch.where(fc == 0, diag, torch.where(red_right, vert, horiz)))
    ring = ~_box(h, w, 1, h - 1, 1, w - 1, dev)
    r = torch.where(ring, avg[0], r3)
    b = torch.where(ring, avg[2], b3)
    return torch.stack([r, g0, b], dim=1)


def rcd(x: torch.Tensor, fc: torch.Tensor, scaler: torch.Tensor) -> torch.Tensor:
    """darktable's ``rcd_demosaic``: ``x (B, 1, H, W)`` white-balanced camera RGB mosaic, ``fc (H, W)``
    its CFA colours, ``scaler (B,)`` darktable's ``max(processed_maximum)`` -> camera RGB ``(B, 3, H, W)``."""
    mosaic = x[:, 0]
    bsz, h, w = mosaic.shape
    out = ppg_border(mosaic, fc)
    sc = scaler.reshape(-1, 1, 1).to(x.dtype)
    cfa = mosaic.clamp_min(0.0) * (1.0 / sc)
    valid = TILE - 2 * BORDER
    nv = 1 + int((h - 2 * BORDER - 1) / valid)  # C division (truncates towards zero)
    nh = 1 + int((w - 2 * BORDER - 1) / valid)
    # the P/Q buffers persist from tile to tile (one thread runs up to 6 tiles in order: schedule(dynamic, 6));
    # the first tile's unset entries are taken as zero (never read inside the image's valid area here)
    p_buf = torch.zeros(bsz, TILE, TILE, dtype=x.dtype, device=x.device)
    q_buf = torch.zeros_like(p_buf)
    rows = []
    for tv in range(nv):
        r0, r1 = tv * valid, min(tv * valid + TILE, h)
        fr = r0 + (MARGIN if tv == 0 else BORDER)
        lr = r1 - (MARGIN if tv == nv - 1 else BORDER)
        cols = []
        for th in range(nh):
            c0, c1 = th * valid, min(th * valid + TILE, w)
            fcol = c0 + (MARGIN if th == 0 else BORDER)
            lcol = c1 - (MARGIN if th == nh - 1 else BORDER)
            th_, tw_ = r1 - r0, c1 - c0
            rgb, p_t, q_t = rcd_tile(
                cfa[:, r0:r1, c0:c1], fc[r0:r1, c0:c1], (p_buf[:, :th_, :tw_], q_buf[:, :th_, :tw_])
            )
            p_buf = torch.cat([torch.cat([p_t, p_buf[:, :th_, tw_:]], dim=2), p_buf[:, th_:]], dim=1)
            q_buf = torch.cat([torch.cat([q_t, q_buf[:, :th_, tw_:]], dim=2), q_buf[:, th_:]], dim=1)
            cols.append(sc[:, None] * rgb[..., fr - r0 : lr - r0, fcol - c0 : lcol - c0].clamp_min(0.0))
        rows.append(torch.cat(cols, dim=-1))
    interior = torch.cat(rows, dim=-2)
    top, left = MARGIN, MARGIN
    return torch.cat(
        [
            out[..., :top, :],
            torch.cat([out[..., top : h - MARGIN, :left], interior, out[..., top : h - MARGIN, w - MARGIN :]], dim=-1),
            out[..., h - MARGIN :, :],
        ],
        dim=-2,
    )


@register_exact(
    "demosaic",
    versions=(4,),
    mosaic=True,
    pointwise=False,
    supports=_supported,
    note="RCD at full scale as darktable tiles it (ppg border, 112 px tiles), vectorised; then darktable's "
    "lanczos3 resampling to the output size; the chain then applies colorin's camera matrix, measured from "
    "darktable's renders (colorin is the identity after it)",
)
def demosaic(x: torch.Tensor, v: Values, ctx: StageContext) -> torch.Tensor:
    """``x (B, 1, H, W)`` white-balanced camera RGB mosaic -> camera RGB ``(B, 3, h, w)`` (``ctx.out_size``)."""
    from darkproxy.errors import DarkproxyError

    h, w = x.shape[-2:]
    if h < 16 or w < 16:
        raise DarkproxyError(f"demosaic: RCD refuses a {w}x{h} mosaic (under 16 px), as darktable does")
    if ctx.processed_maximum is None:
        raise DarkproxyError("demosaic: darktable's processed_maximum is unknown (the chain sets it)")
    pm = torch.as_tensor(ctx.processed_maximum, dtype=x.dtype, device=x.device).reshape(-1, 3)
    y = rcd(x, cfa_map(ctx, h, w, x.device), pm.amax(dim=1))
    if ctx.out_size is None or tuple(ctx.out_size) == (h, w):
        return y
    from darkproxy.replica.ports.resample import clip_and_zoom

    return clip_and_zoom(y, ctx.out_size)
