"""darktable's demosaic kernels in torch: RCD (``src/iop/rcd_demosaic.c``, darktable 4.2's default for Bayer
sensors) as darktable tiles it, and PPG (``demosaic_ppg``) with RCD's border (``rcd_ppg_border``). The replica's
exact demosaic stage (:mod:`darkproxy.replica.ports.demosaic`) and the ``demosaic-rcd`` proxies' base
(:mod:`darkproxy.models.demosaic_rcd`) both run them.

RCD runs on tiles of 112 photosites
(94 valid, 9 of overlap; 6 at the image's own edges): each tile here is computed as darktable
computes it (vectorised torch: shifted planes, no per-pixel loop; the tiles of one shape run as one
batch), including what its edges read
(the zeroed direction buffers, the low-pass buffer the P/Q buffer reuses, the P/Q high-pass
read through its half-width index), so that the seams match. The 6-photosite frame of the
image is ``rcd_ppg_border``: 3x3 averages on the outer 3, PPG's green and colour differences
within. Input: the white-balanced camera RGB mosaic; output camera RGB.

darktable hands each thread chunks of 6 tiles (``schedule(dynamic, 6)``); a tile of even width
reads one P/Q column it did not compute, left by the thread's previous tile: emulated in order,
exact when a tile row's last tile is not the first of a chunk (any image up to 6 tiles: 564 px
wide; beyond, the few columns 6-9 px from such a tile's right edge are darktable's own
thread-dependent values). :func:`rcd_untiled` runs the whole mosaic as one tile instead (the same
values but those columns'), so that a proxy's result does not depend on where its tiles fall.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

RCD, PPG = 5, 0  # DT_IOP_DEMOSAIC_RCD, DT_IOP_DEMOSAIC_PPG
TILE, BORDER, MARGIN = 112, 9, 6  # RCD_TILESIZE, RCD_BORDER, RCD_MARGIN
EPS, EPSSQ = 1e-5, 1e-10
Shift = Callable[[int, int], torch.Tensor]  # (dy, dx) -> the tensor read at (row + dy, col + dx)


PAD = 4  # the farthest RCD reads from a photosite


def _s(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``t (..., H, W)`` read at ``(row + dy, col + dx)``, ``|dy|, |dx| <= 4``: zero outside (never read
    where it matters)."""
    h, w = t.shape[-2:]
    p = torch.nn.functional.pad(t, (PAD, PAD, PAD, PAD))
    return p[..., PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w]


SHIFTS = [(dy, dx) for dy in range(-PAD, PAD + 1) for dx in range(-PAD, PAD + 1)]


class _Shifts(torch.autograd.Function):
    """Every read of :data:`SHIFTS` of ``t (..., H, W)`` (views of one zero-padded copy). Its backward adds
    the reads' gradients into one padded buffer: autograd's would zero and copy a padded buffer per read."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h, w = t.shape[-2:]
        ctx.hw = (h, w)
        ctx.set_materialize_grads(False)
        p = torch.nn.functional.pad(t, (PAD, PAD, PAD, PAD))
        # (..., 9, 9, h, w): every read a view, made by two unbinds in the order of SHIFTS (a slice per read
        # costs 3x as much, a large share of RCD's time on small mosaics)
        u = p.unfold(-2, h, 1).unfold(-2, w, 1)
        return tuple(v for row in u.unbind(-4) for v in row.unbind(-3))

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> torch.Tensor | None:
        h, w = ctx.hw
        gp: torch.Tensor | None = None
        for (dy, dx), g in zip(SHIFTS, grads, strict=True):
            if g is None:
                continue
            if gp is None:
                gp = g.new_zeros((*g.shape[:-2], h + 2 * PAD, w + 2 * PAD))
            gp[..., PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w] += g
        return None if gp is None else gp[..., PAD : PAD + h, PAD : PAD + w]


def _sh(t: torch.Tensor) -> Shift:
    """``t``'s :func:`_s` reads from one zero-padded copy (the same values; one pad instead of one per read,
    one gradient buffer instead of one per read)."""
    if not (t.requires_grad and torch.is_grad_enabled()):
        h, w = t.shape[-2:]
        p = torch.nn.functional.pad(t, (PAD, PAD, PAD, PAD))
        return lambda dy, dx: p[..., PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w]
    reads = dict(zip(SHIFTS, _Shifts.apply(t), strict=True))
    return lambda dy, dx: reads[(dy, dx)]


def _box(
    h: int, w: int, r0: int, r1: int, c0: int, c1: int, device: torch.device, at: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """``(h, w)`` bool: rows ``r0 <= r < r1`` and columns ``c0 <= c < c1`` (``at``: the first row's and
    column's own coordinates)."""
    r = torch.arange(at[0], at[0] + h, device=device)[:, None]
    c = torch.arange(at[1], at[1] + w, device=device)[None, :]
    return (r >= r0) & (r < r1) & (c >= c0) & (c < c1)


def _intp(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return a * (b - c) + c


def _disc(d: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """RCD's refined discrimination: the neighbourhood's when it is more decided than the centre's."""
    return torch.where((0.5 - d).abs() < (0.5 - nb).abs(), nb, d)


def _hpf(cfa: torch.Tensor, c: Shift, dy: int, dx: int) -> torch.Tensor:
    """Square of RCD's colour-difference high-pass along the direction ``(dy, dx)`` (``c``: ``cfa``'s reads)."""
    s = lambda k: c(k * dy, k * dx)  # noqa: E731
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
    c = _sh(cfa)
    # Step 1: vertical / horizontal discrimination, zero where darktable leaves VH_Dir unset
    vv = _hpf(cfa, c, 1, 0)
    s1 = _sh(vv)
    vs = (s1(-1, 0) + vv + s1(1, 0)).clamp_min(EPSSQ)
    hh = _hpf(cfa, c, 0, 1)
    s1 = _sh(hh)
    hs = (s1(0, -1) + hh + s1(0, 1)).clamp_min(EPSSQ)
    vh = torch.where(inner, vs / (vs + hs), zero)
    sv = _sh(vh)
    vh_nb = 0.25 * (sv(-1, -1) + sv(-1, 1) + sv(1, -1) + sv(1, 1))
    vh_disc = _disc(vh, vh_nb)
    # Step 2: low-pass at the red and blue sites (rows / columns 2 .. n-3)
    lpf = cfa + 0.5 * (c(-1, 0) + c(1, 0) + c(0, -1) + c(0, 1)) + 0.25 * (c(-1, -1) + c(-1, 1) + c(1, -1) + c(1, 1))
    lpf = torch.where(_box(h, w, 2, h - 2, 2, w - 2, dev) & rb, lpf, zero)
    # Step 3: green at the red and blue sites
    sl = _sh(lpf)
    n_grad = EPS + (c(-1, 0) - c(1, 0)).abs() + (cfa - c(-2, 0)).abs() + (c(-1, 0) - c(-3, 0)).abs()
    n_grad = n_grad + (c(-2, 0) - c(-4, 0)).abs()
    s_grad = EPS + (c(-1, 0) - c(1, 0)).abs() + (cfa - c(2, 0)).abs() + (c(1, 0) - c(3, 0)).abs()
    s_grad = s_grad + (c(2, 0) - c(4, 0)).abs()
    w_grad = EPS + (c(0, -1) - c(0, 1)).abs() + (cfa - c(0, -2)).abs() + (c(0, -1) - c(0, -3)).abs()
    w_grad = w_grad + (c(0, -2) - c(0, -4)).abs()
    e_grad = EPS + (c(0, -1) - c(0, 1)).abs() + (cfa - c(0, 2)).abs() + (c(0, 1) - c(0, 3)).abs()
    e_grad = e_grad + (c(0, 2) - c(0, 4)).abs()
    two = lpf + lpf
    n_est = c(-1, 0) * two / (EPS + lpf + sl(-2, 0))
    s_est = c(1, 0) * two / (EPS + lpf + sl(2, 0))
    w_est = c(0, -1) * two / (EPS + lpf + sl(0, -2))
    e_est = c(0, 1) * two / (EPS + lpf + sl(0, 2))
    v_est = (s_grad * n_est + n_grad * s_est) / (n_grad + s_grad)
    h_est = (w_grad * e_est + e_grad * w_est) / (e_grad + w_grad)
    g = torch.where(inner & rb, _intp(vh_disc, h_est, v_est), cfa)
    return g, vh_disc, lpf


def _diag_hpfs(cfa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RCD step 4.0's P and Q high-passes of a tile ``cfa (B, h, w)``, valid 3 in from its edges."""
    c = _sh(cfa)
    return _hpf_diag(cfa, c, 1), _hpf_diag(cfa, c, -1)


def _pq_buffers(
    diag: tuple[torch.Tensor, torch.Tensor], stale: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The P/Q buffers a tile reads: its own high-passes 3 in from its edges, ``stale`` (the previous tile's)
    outside."""
    h, w = diag[0].shape[-2:]
    box = _box(h, w, 3, h - 3, 3, w - 3, diag[0].device)
    return torch.where(box, diag[0], stale[0]), torch.where(box, diag[1], stale[1])


def rcd_tile(
    cfa: torch.Tensor, fc: torch.Tensor, stale: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One RCD tile as darktable computes it: ``cfa (B, h, w)`` (``max(x, 0) / scaler``),
    ``fc (h, w)`` its CFA colours, ``stale``: the P/Q high-pass buffers ``(B, h, w)`` as the
    previous tile left them (darktable reads one column past what a tile of even width
    computes) -> ``(rgb (B, 3, h, w)`` before the final ``scaler * max(0, .)``, P, Q buffers)."""
    p_hpf, q_hpf = _pq_buffers(_diag_hpfs(cfa), stale)
    return _rcd_rest(cfa, fc, p_hpf, q_hpf), p_hpf, q_hpf


def _rcd_rest(cfa: torch.Tensor, fc: torch.Tensor, p_hpf: torch.Tensor, q_hpf: torch.Tensor) -> torch.Tensor:  # noqa: PLR0915
    """RCD steps 0-4 of tiles ``cfa (B, h, w)`` (a batch of tiles of one shape and CFA phase), ``fc (h, w)``,
    given their P/Q buffers ``(B, h, w)`` (:func:`_pq_buffers`) -> rgb ``(B, 3, h, w)`` before the final
    ``scaler * max(0, .)``."""
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
    sg = _sh(g)
    # Step 4.0-4.1: diagonal discrimination. P/Q high-passes are stored at odd columns and read through
    # darktable's half-width index: at an even column the centre and lower terms come from column + 1
    even = (torch.arange(w, device=dev) % 2 == 0)[None, :].expand(h, w)
    sp, sq = _sh(p_hpf), _sh(q_hpf)
    p_stat = torch.where(even, sp(-1, -1) + sp(0, 1) + sp(1, 1), sp(-1, 0) + p_hpf + sp(1, 2)).clamp_min(EPSSQ)
    q_stat = torch.where(even, sq(-1, 1) + sq(0, 1) + sq(1, -1), sq(-1, 2) + q_hpf + sq(1, 0)).clamp_min(EPSSQ)
    # PQ_Dir reuses the low-pass buffer: unset entries keep the low-pass values
    pq = torch.where(inner & rb, p_stat / (p_stat + q_stat), lpf)
    spq = _sh(pq)
    pq_nb = 0.25 * (spq(-1, -1) + spq(-1, 1) + spq(1, -1) + spq(1, 1))
    pq_disc = _disc(pq, pq_nb)
    # Step 4.2: red at blue sites, blue at red sites
    new = []
    for plane in (plane_r, plane_b):
        q = _sh(plane)
        nw_grad = EPS + (q(-1, -1) - q(1, 1)).abs() + (q(-1, -1) - q(-3, -3)).abs() + (g - sg(-2, -2)).abs()
        ne_grad = EPS + (q(-1, 1) - q(1, -1)).abs() + (q(-1, 1) - q(-3, 3)).abs() + (g - sg(-2, 2)).abs()
        sw_grad = EPS + (q(-1, 1) - q(1, -1)).abs() + (q(1, -1) - q(3, -3)).abs() + (g - sg(2, -2)).abs()
        se_grad = EPS + (q(-1, -1) - q(1, 1)).abs() + (q(1, 1) - q(3, 3)).abs() + (g - sg(2, 2)).abs()
        nw_est = q(-1, -1) - sg(-1, -1)
        ne_est = q(-1, 1) - sg(-1, 1)
        sw_est = q(1, -1) - sg(1, -1)
        se_est = q(1, 1) - sg(1, 1)
        p_est = (nw_grad * se_est + se_grad * nw_est) / (nw_grad + se_grad)
        q_est = (ne_grad * sw_est + sw_grad * ne_est) / (ne_grad + sw_grad)
        new.append(g + _intp(pq_disc, q_est, p_est))
    plane_r = torch.where(inner & (fc == 2), new[0], plane_r)
    plane_b = torch.where(inner & (fc == 0), new[1], plane_b)
    # Step 4.3: red and blue at green sites
    n1 = EPS + (g - sg(-2, 0)).abs()
    s1 = EPS + (g - sg(2, 0)).abs()
    w1 = EPS + (g - sg(0, -2)).abs()
    e1 = EPS + (g - sg(0, 2)).abs()
    out = []
    for plane in (plane_r, plane_b):
        q = _sh(plane)
        sn_abs = (q(-1, 0) - q(1, 0)).abs()
        ew_abs = (q(0, -1) - q(0, 1)).abs()
        n_g = n1 + sn_abs + (q(-1, 0) - q(-3, 0)).abs()
        s_g = s1 + sn_abs + (q(1, 0) - q(3, 0)).abs()
        w_g = w1 + ew_abs + (q(0, -1) - q(0, -3)).abs()
        e_g = e1 + ew_abs + (q(0, 1) - q(0, 3)).abs()
        n_e = q(-1, 0) - sg(-1, 0)
        s_e = q(1, 0) - sg(1, 0)
        w_e = q(0, -1) - sg(0, -1)
        e_e = q(0, 1) - sg(0, 1)
        v_e = (n_g * s_e + s_g * n_e) / (n_g + s_g)
        h_e = (e_g * w_e + w_g * e_e) / (e_g + w_g)
        out.append(torch.where(inner & green, g + _intp(vh_disc, h_e, v_e), plane))
    return torch.stack([out[0], g, out[1]], dim=1)


def _hpf_diag(cfa: torch.Tensor, c: Shift, sx: int) -> torch.Tensor:
    """Square of RCD's high-pass along the diagonal ``(1, sx)`` (P: ``sx = 1``, Q: ``sx = -1``; ``c``: ``cfa``'s
    reads)."""
    s = lambda k: c(k, k * sx)  # noqa: E731
    return ((s(-3) - s(-1) - s(1) + s(3)) - 3.0 * (s(-2) + s(2)) + 6.0 * cfa) ** 2


def ppg_border(  # noqa: PLR0915  a maths kernel
    x: torch.Tensor,
    fc: torch.Tensor,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    clamp: bool = True,
    clamp_out: bool = False,
) -> torch.Tensor:
    """``rcd_ppg_border``: ``x (B, H, W)`` the mosaic -> ``(B, 3, H, W)``, valid outside the
    ``[6, H - 6) x [6, W - 6)`` interior (3x3 averages on the outer 3 photosites, PPG within).
    ``rows``, ``cols``: compute only that window of the image (``(B, 3, r1 - r0, c1 - c0)``): each output reads
    the photosites up to 4 away, so a window's values are the whole image's except within 4 of a cut that
    is not the image's edge. ``clamp=False``: ``demosaic_ppg`` itself, valid everywhere (RCD's border reads
    every photosite as ``max(x, 0)``, PPG as it is); ``clamp_out``: darktable 5's ``demosaic_ppg``
    (``demosaicing/ppg.c``, 5.4.1), which stores every pass's values as ``max(value, 0)``."""
    full_h, full_w = x.shape[-2:]
    (r0, r1), (c0, c1) = rows or (0, full_h), cols or (0, full_w)
    x, fc = x[:, r0:r1, c0:c1], fc[r0:r1, c0:c1]
    bsz, h, w = x.shape
    dev = x.device
    pos = x.clamp_min(0.0) if clamp else x
    ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=dev)
    k3 = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=dev)
    avg = []
    for col in range(3):
        m = (fc == col).to(x.dtype)
        ssum = torch.nn.functional.conv2d((pos * m)[:, None], k3, padding=1)[:, 0]
        cnt = torch.nn.functional.conv2d((ones * m), k3, padding=1)[0, 0]
        a = torch.where((fc == col) | (cnt <= 0), pos, ssum / cnt.clamp_min(1.0))
        avg.append(a.clamp_min(0.0) if clamp_out else a)
    outer = ~_box(h, w, 3, full_h - 3, 3, full_w - 3, dev, (r0, c0))
    # PPG green at red / blue sites (loop 2), the photosite's own value at green sites
    p = _sh(pos)
    guessx = (p(0, -1) + pos + p(0, 1)) * 2.0 - p(0, 2) - p(0, -2)
    diffx = ((p(0, -2) - pos).abs() + (p(0, 2) - pos).abs() + (p(0, -1) - p(0, 1)).abs()) * 3.0
    diffx = diffx + ((p(0, 3) - p(0, 1)).abs() + (p(0, -3) - p(0, -1)).abs()) * 2.0
    guessy = (p(-1, 0) + pos + p(1, 0)) * 2.0 - p(2, 0) - p(-2, 0)
    diffy = ((p(-2, 0) - pos).abs() + (p(2, 0) - pos).abs() + (p(-1, 0) - p(1, 0)).abs()) * 3.0
    diffy = diffy + ((p(3, 0) - p(1, 0)).abs() + (p(-3, 0) - p(-1, 0)).abs()) * 2.0
    gy = torch.maximum(torch.minimum(guessy * 0.25, torch.maximum(p(-1, 0), p(1, 0))), torch.minimum(p(-1, 0), p(1, 0)))
    gx = torch.maximum(torch.minimum(guessx * 0.25, torch.maximum(p(0, -1), p(0, 1))), torch.minimum(p(0, -1), p(0, 1)))
    ppg = torch.where(fc == 1, pos, torch.where(diffx > diffy, gy, gx))
    ppg = ppg.clamp_min(0.0) if clamp_out else ppg
    g0 = torch.where(outer, avg[1], ppg)  # the green every later step reads
    # loop 3: the missing colours from colour differences (own colours: max(x, 0))
    gs = _sh(g0)
    kept = pos.clamp_min(0.0) if clamp_out else pos  # darktable 5: the own colour as loop 2 stored it
    own = _sh(kept) if clamp_out else p
    red_right = _s(fc, 0, 1) == 0  # FC(j, i + 1) == 0: red in the same row
    vert = (own(-1, 0) + own(1, 0) + 2.0 * g0 - gs(-1, 0) - gs(1, 0)) * 0.5
    horiz = (own(0, -1) + own(0, 1) + 2.0 * g0 - gs(0, -1) - gs(0, 1)) * 0.5
    diff1 = (own(-1, -1) - own(1, 1)).abs() + (gs(-1, -1) - g0).abs() + (gs(1, 1) - g0).abs()
    guess1 = own(-1, -1) + own(1, 1) + 2.0 * g0 - gs(-1, -1) - gs(1, 1)
    diff2 = (own(-1, 1) - own(1, -1)).abs() + (gs(-1, 1) - g0).abs() + (gs(1, -1) - g0).abs()
    guess2 = own(-1, 1) + own(1, -1) + 2.0 * g0 - gs(-1, 1) - gs(1, -1)
    diag = torch.where(diff1 > diff2, guess2 * 0.5, torch.where(diff1 < diff2, guess1 * 0.5, (guess1 + guess2) * 0.25))
    r3 = torch.where(fc == 0, kept, torch.where(fc == 2, diag, torch.where(red_right, horiz, vert)))
    b3 = torch.where(fc == 2, kept, torch.where(fc == 0, diag, torch.where(red_right, vert, horiz)))
    if clamp_out:
        r3, b3 = r3.clamp_min(0.0), b3.clamp_min(0.0)
    ring = ~_box(h, w, 1, full_h - 1, 1, full_w - 1, dev, (r0, c0))
    r = torch.where(ring, avg[0], r3)
    b = torch.where(ring, avg[2], b3)
    return torch.stack([r, g0, b], dim=1)


def rcd(x: torch.Tensor, fc: torch.Tensor, scaler: torch.Tensor, margin: int = MARGIN) -> torch.Tensor:
    """darktable's ``rcd_demosaic``: ``x (B, 1, H, W)`` white-balanced camera RGB mosaic, ``fc (H, W)``
    its CFA colours, ``scaler (B,)`` darktable's ``max(processed_maximum)`` -> camera RGB ``(B, 3, H, W)``;
    ``margin``: ``RCD_MARGIN``, the frame ``rcd_ppg_border`` fills (6; darktable 5.4's ``demosaicing/rcd.c``: 7).

    The tiles run as one batch per tile shape (every tile starts at an even row and column: one CFA phase);
    only the P/Q buffers' hand-over from tile to tile runs in darktable's order."""
    mosaic = x[:, 0]
    bsz, h, w = mosaic.shape
    sc = scaler.reshape(-1, 1, 1).to(x.dtype)
    cfa = mosaic.clamp_min(0.0) * (1.0 / sc)
    valid = TILE - 2 * BORDER
    nv = 1 + int((h - 2 * BORDER - 1) / valid)  # C division (truncates towards zero)
    nh = 1 + int((w - 2 * BORDER - 1) / valid)
    boxes = [
        (tv * valid, min(tv * valid + TILE, h), th * valid, min(th * valid + TILE, w))
        for tv in range(nv)
        for th in range(nh)
    ]
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        groups.setdefault((r1 - r0, c1 - c0), []).append(k)
    tiles: dict[tuple[int, int], torch.Tensor] = {}  # tile shape -> cfa (n * B, h, w)
    diag: dict[tuple[int, int], tuple[tuple[torch.Tensor, ...], ...]] = {}  # its P / Q high-passes, tile by tile
    for shape, ks in groups.items():  # a grid of tiles 94 apart: two unfolds (views; one cheap backward)
        r0, c0 = boxes[ks[0]][0], boxes[ks[0]][2]
        r_end, c_end = boxes[ks[-1]][1], boxes[ks[-1]][3]
        grid = cfa[:, r0:r_end, c0:c_end].unfold(1, shape[0], valid).unfold(2, shape[1], valid)
        assert grid.shape[1] * grid.shape[2] == len(ks)
        tiles[shape] = grid.permute(1, 2, 0, 3, 4).reshape(-1, *shape)
        pd, qd = _diag_hpfs(tiles[shape])
        # unbind, not indexing: one backward for all tiles instead of a full-size one per tile
        diag[shape] = (pd.reshape(len(ks), bsz, *shape).unbind(0), qd.reshape(len(ks), bsz, *shape).unbind(0))
    # the P/Q buffers persist from tile to tile (one thread runs up to 6 tiles in order: schedule(dynamic, 6));
    # the first tile's unset entries are taken as zero (never read inside the image's valid area here)
    p_buf = torch.zeros(bsz, TILE, TILE, dtype=x.dtype, device=x.device)
    q_buf = torch.zeros_like(p_buf)
    pq: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        th_, tw_ = r1 - r0, c1 - c0
        i = groups[(th_, tw_)].index(k)
        pds, qds = diag[(th_, tw_)]
        p_t, q_t = _pq_buffers((pds[i], qds[i]), (p_buf[:, :th_, :tw_], q_buf[:, :th_, :tw_]))
        pq[k] = (p_t, q_t)
        p_buf = torch.cat([torch.cat([p_t, p_buf[:, :th_, tw_:]], dim=2), p_buf[:, th_:]], dim=1)
        q_buf = torch.cat([torch.cat([q_t, q_buf[:, :th_, tw_:]], dim=2), q_buf[:, th_:]], dim=1)
    rgbs: dict[int, torch.Tensor] = {}
    for shape, ks in groups.items():
        n = len(ks)
        p_hpf = torch.stack([pq[k][0] for k in ks]).reshape(-1, *shape)
        q_hpf = torch.stack([pq[k][1] for k in ks]).reshape(-1, *shape)
        r0, _, c0, _ = boxes[ks[0]]
        rgb = _rcd_rest(tiles[shape], fc[r0 : r0 + shape[0], c0 : c0 + shape[1]], p_hpf, q_hpf)
        rgbs |= dict(zip(ks, rgb.reshape(n, bsz, 3, *shape).unbind(0), strict=True))
    rows = []
    for tv in range(nv):
        cols = []
        for th in range(nh):
            k = tv * nh + th
            r0, r1, c0, c1 = boxes[k]
            fr = r0 + (margin if tv == 0 else BORDER)
            lr = r1 - (margin if tv == nv - 1 else BORDER)
            fcol = c0 + (margin if th == 0 else BORDER)
            lcol = c1 - (margin if th == nh - 1 else BORDER)
            cols.append(rgbs[k][..., fr - r0 : lr - r0, fcol - c0 : lcol - c0])
        rows.append(torch.cat(cols, dim=-1))
    return _framed(sc[:, None] * torch.cat(rows, dim=-2).clamp_min(0.0), mosaic, fc, margin)


FRAME_REACH = MARGIN + 4  # the frame's 6 photosites and what they read


def cfa_colours(pattern: Sequence[int], h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The CFA colour (0 R, 1 G, 2 B) of every site of an ``(h, w)`` Bayer mosaic: ``(h, w)`` int64, from the
    colours of its top-left 2x2 block, row by row (darktable's ``FC(row, col, filters)``)."""
    pat = torch.as_tensor(pattern, dtype=torch.int64, device=device).reshape(2, 2)
    return pat[torch.arange(h, device=device)[:, None] % 2, torch.arange(w, device=device)[None, :] % 2]


def _framed(interior: torch.Tensor, mosaic: torch.Tensor, fc: torch.Tensor, m: int = MARGIN) -> torch.Tensor:
    """RCD's ``interior (B, 3, H - 2m, W - 2m)`` inside ``rcd_ppg_border``'s ``m``-photosite frame of ``mosaic
    (B, H, W)``, PPG computed on strips ``m + 4`` photosites wide along the edges only (``H, W >= 2 m``)."""
    h, w = mosaic.shape[-2:]
    r = m + 4  # the frame and what it reads (FRAME_REACH at darktable 4.2's margin)
    top = ppg_border(mosaic, fc, (0, r))[..., :m, :]
    bottom = ppg_border(mosaic, fc, (h - r, h))[..., r - m :, :]
    left = ppg_border(mosaic, fc, None, (0, r))[..., m : h - m, :m]
    right = ppg_border(mosaic, fc, None, (w - r, w))[..., m : h - m, r - m :]
    return torch.cat([top, torch.cat([left, interior, right], dim=-1), bottom], dim=-2)


def rcd_untiled(x: torch.Tensor, fc: torch.Tensor, scaler: torch.Tensor) -> torch.Tensor:
    """darktable's RCD over the whole mosaic as one tile: ``x (B, 1, H, W)`` white-balanced camera RGB mosaic,
    ``fc (H, W)`` its CFA colours, ``scaler (B,)`` -> camera RGB ``(B, 3, H, W)``. :func:`rcd`'s values but in
    the P/Q columns darktable's tiles hand over (none in a mosaic of one tile, up to 112 photosites a side):
    a window's result is the whole mosaic's but within 10 photosites of a cut (RCD's 6-photosite frame
    and what RCD reads), whatever the window."""
    mosaic = x[:, 0]
    h, w = mosaic.shape[-2:]
    sc = scaler.reshape(-1, 1, 1).to(x.dtype)
    cfa = mosaic.clamp_min(0.0) * (1.0 / sc)
    zero = torch.zeros_like(cfa)
    rgb = sc[:, None] * rcd_tile(cfa, fc, (zero, zero))[0].clamp_min(0.0)
    if min(h, w) < 2 * MARGIN:  # no interior: PPG's frame over the whole (tiny) mosaic
        inside = _box(h, w, MARGIN, h - MARGIN, MARGIN, w - MARGIN, x.device)
        return torch.where(inside, rgb, ppg_border(mosaic, fc))
    return _framed(rgb[..., MARGIN : h - MARGIN, MARGIN : w - MARGIN], mosaic, fc)
