"""Ask darktable whether a module is *pointwise* (``out[p] = g(in[p])``).

darktable renders raws, not arbitrary images, so the probe works on the raw:

1. cut a central crop (<= ``crop`` px, even offsets: same CFA phase) of the raw's
   mosaic and write it as DNG ``A``; write DNG ``B`` whose mosaic is a random
   permutation of ``A``'s 2x2 Bayer blocks (same values, same CFA phase,
   destroyed spatial structure: every pixel gets a new neighbourhood);
2. tap the module out of both (input = module off, output = module on with
   the same params and the same upstream history), in one darktable-cli run;
3. demosaic mixes neighbours, so ``B``'s input is not a shuffle of ``A``'s; the
   probe instead tests the *relation*: for pixels of ``B`` whose input colour
   (linear Rec2020, 3 channels) nearly equals that of some pixel of ``A``
   (relative distance < ``match_tol``; on small crops the ``min_matches``
   closest pairs, up to 10x looser), a pointwise module gives (nearly) the
   same output. A spatial module (sharpen, blur, local contrast) sees very
   different neighbourhoods in ``A`` (smooth) and ``B`` (block noise) and
   gives different outputs.

Criterion: ``pointwise`` iff the 95th percentile of the matched pairs' relative
output difference is below ``out_tol`` + ``lipschitz`` x their relative input
distance (covers the slope of ``g`` over the small input mismatch). With too
few matches or a pre-demosaic module (its output passes through demosaic)
the answer is ``None`` (undetermined). Modules driven by global image
statistics look pointwise here (the histogram is preserved): that is what a
pixel-wise proxy can learn for a given image, and is reported as such.

Position dependence (vignette, graduatednd): the same run renders a *flat*
DNG ``F`` (every 2x2 block set to ``A``'s mean block). A pointwise or
band-pass module maps a flat image to a flat image; a module whose output
depends on where the pixel is does not. ``position_dependent`` iff the spread
of ``F``'s output luminance over its centre (p99 - p1, relative to the
median) exceeds ``position_tol`` plus ten times the spread of its input.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff
from darkproxy.darktable.session import Darktable
from darkproxy.darktable.tapout import plan_tapout
from darkproxy.darktable.xmp import Sidecar
from darkproxy.errors import DarktableRenderError, RawError


@dataclass
class ProbeResult:
    """Outcome of :func:`probe_pointwise`. Differences are relative (|a-b| / |b|,
    Euclidean over RGB, linear Rec2020)."""

    pointwise: bool | None
    max_abs_diff: float  # max |out_B - out_A[match]| over matched pixels
    p95_rel_out_diff: float
    p95_rel_in_dist: float
    threshold: float
    matched: int  # pixel pairs compared
    effect: float  # median relative change out vs in (0: module is an identity here)
    params: dict[str, Any]
    crop: int
    reason: str
    position_dependent: bool | None = None
    position_spread: float = float("nan")  # relative output spread of the flat image

    def to_json(self) -> dict[str, Any]:
        return {
            k: (float(v) if isinstance(v, (np.floating, float)) and not isinstance(v, bool) else v)
            for k, v in asdict(self).items()
        }


# ---------------------------------------------------------------------------- DNG writing


def write_mosaic_dng(
    mosaic: np.ndarray,
    path: str | Path,
    cfa: str = "RGGB",
    black: int = 0,
    white: int = 65535,
    color_matrix: np.ndarray | None = None,
    as_shot_neutral: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Path:
    """Write a Bayer mosaic as DNG (see :func:`darkproxy.raw.dng.write_dng`)."""
    from darkproxy.raw.dng import write_dng

    return write_dng(mosaic, path, cfa, black, white, color_matrix, as_shot_neutral, model="probe")


@dataclass
class RawMosaic:
    """A raw's visible mosaic and the metadata needed to write it back as DNG."""

    mosaic: np.ndarray  # uint16 (H, W)
    cfa: str  # e.g. "RGGB"
    black: int
    white: int
    color_matrix: np.ndarray  # XYZ -> camera (3, 3)
    neutral: tuple[float, float, float]


def read_mosaic(raw: str | Path) -> RawMosaic:
    """Read a Bayer raw with rawpy. Raises :class:`RawError` for non-Bayer raws."""
    import rawpy

    try:
        with rawpy.imread(str(raw)) as r:
            pat = np.asarray(r.raw_pattern)
            desc = r.color_desc.decode()
            if pat is None or pat.shape != (2, 2):
                raise RawError(f"{raw}: not a 2x2 Bayer raw (X-Trans/Foveon cannot be probed)")
            cfa = "".join(desc[i] for i in pat.ravel()).replace("G", "G")
            mos = np.array(r.raw_image_visible, dtype=np.uint16)
            black = int(round(float(np.mean(r.black_level_per_channel))))
            white = int(r.white_level)
            wb = np.asarray(r.camera_whitebalance[:3], dtype=np.float64)
            cm = np.asarray(r.rgb_xyz_matrix[:3], dtype=np.float64)
    except rawpy.LibRawError as e:
        raise RawError(f"cannot read {raw}: {e}") from None
    if not np.all(np.isfinite(cm)) or not np.any(cm):  # LibRaw knows no matrix for this camera
        cm = _dng_color_matrix(raw)
    wb = np.where(wb > 0, wb, 1.0)
    neutral = tuple(float(wb[1] / w) for w in wb)
    return RawMosaic(mos, cfa, black, white, cm, neutral)  # type: ignore[arg-type]


def _dng_color_matrix(raw: str | Path) -> np.ndarray:
    """The DNG's ColorMatrix1 (XYZ -> camera) when LibRaw has none for the raw.
    Raises :class:`RawError` when no file tag holds one: the probe's DNGs would
    otherwise get a made-up matrix (the identity), and darktable would render
    other colours than the raw's."""
    import tifffile

    try:
        with tifffile.TiffFile(str(raw)) as tf:
            for page in tf.pages:
                tag = page.tags.get(50721)
                if tag is not None:
                    v = np.asarray(tag.value, dtype=np.float64)
                    if v.size == 18:  # rationals as (numerator, denominator) pairs
                        v = v[0::2] / v[1::2]
                    if v.size >= 9 and np.all(np.isfinite(v[:9])) and np.any(v[:9]):
                        return v[:9].reshape(3, 3)
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        raise RawError(f"{raw}: no colour matrix for this camera (LibRaw has none, and the file: {e})") from None
    raise RawError(f"{raw}: no colour matrix for this camera (LibRaw knows none and the file has no ColorMatrix1)")


def block_shuffle(mosaic: np.ndarray, seed: int = 0) -> np.ndarray:
    """Permute the 2x2 blocks of a mosaic (CFA phase preserved)."""
    h, w = mosaic.shape
    blocks = mosaic.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(-1, 2, 2)
    perm = np.random.default_rng(seed).permutation(len(blocks))
    out: np.ndarray = blocks[perm].reshape(h // 2, w // 2, 2, 2).transpose(0, 2, 1, 3).reshape(h, w)
    return out


# ---------------------------------------------------------------------------- probe


def compare_relation(
    a_in: np.ndarray,
    a_out: np.ndarray,
    b_in: np.ndarray,
    b_out: np.ndarray,
    match_tol: float = 2e-3,
    out_tol: float = 5e-3,
    lipschitz: float = 4.0,
    margin: int = 4,
    min_matches: int = 100,
) -> dict[str, Any]:
    """Test ``out = g(in)`` across two images (float32 (3, H, W) each): match
    pixels of B to A by input colour, compare outputs. Returns the statistics
    and ``pointwise`` (None when fewer than ``min_matches`` pairs match)."""
    from scipy.spatial import cKDTree

    def flat(x: np.ndarray) -> np.ndarray:
        x = x[:, margin : x.shape[1] - margin, margin : x.shape[2] - margin] if margin else x
        rows: np.ndarray = x.reshape(x.shape[0], -1).T.astype(np.float64)
        return rows

    ai, ao, bi, bo = flat(a_in), flat(a_out), flat(b_in), flat(b_out)
    ok_a = np.isfinite(ai).all(1) & np.isfinite(ao).all(1)
    ok_b = np.isfinite(bi).all(1) & np.isfinite(bo).all(1)
    ai, ao, bi, bo = ai[ok_a], ao[ok_a], bi[ok_b], bo[ok_b]
    eps = 1e-3
    effect = float(np.median(np.linalg.norm(ao - ai, axis=1) / (np.linalg.norm(ai, axis=1) + eps)))
    dist, idx = cKDTree(ai).query(bi, k=1)
    rel_in = dist / (np.linalg.norm(bi, axis=1) + eps)
    m = rel_in < match_tol
    if m.sum() < min_matches:  # small images: take the closest pairs, up to 10x looser
        cut = np.partition(rel_in, min(min_matches, len(rel_in) - 1))[min(min_matches, len(rel_in) - 1)]
        m = rel_in <= min(cut, 10 * match_tol)
    n = int(m.sum())
    if n < min_matches:
        return {
            "pointwise": None,
            "matched": n,
            "effect": effect,
            "max_abs_diff": float("nan"),
            "p95_rel_out_diff": float("nan"),
            "p95_rel_in_dist": float("nan"),
            "threshold": float("nan"),
            "reason": f"only {n} input colours of the shuffled image match the original (need {min_matches})",
        }
    diff = np.linalg.norm(bo[m] - ao[idx[m]], axis=1)
    rel_out = diff / (np.linalg.norm(ao[idx[m]], axis=1) + eps)
    p95_out, p95_in = float(np.percentile(rel_out, 95)), float(np.percentile(rel_in[m], 95))
    thr = out_tol + lipschitz * p95_in
    pw = bool(p95_out <= thr)
    return {
        "pointwise": pw,
        "matched": n,
        "effect": effect,
        "max_abs_diff": float(diff.max()),
        "p95_rel_out_diff": p95_out,
        "p95_rel_in_dist": p95_in,
        "threshold": thr,
        "reason": (
            f"p95 relative output difference {p95_out:.2e} {'<=' if pw else '>'} {thr:.2e} over "
            f"{n} pixels with matching input"
        ),
    }


def flat_spread(x: np.ndarray, margin: float = 0.125) -> float:
    """Relative spread of a (3, H, W) linear image's luminance over its centre
    (``margin`` of each side cut): ``(p99 - p1) / median``."""
    h, w = x.shape[1:]
    my, mx = int(h * margin), int(w * margin)
    y = x[:, my : h - my, mx : w - mx].astype(np.float64).mean(0)
    y = y[np.isfinite(y)]
    if not y.size:
        return float("nan")
    p1, med, p99 = np.percentile(y, [1, 50, 99])
    return float((p99 - p1) / max(abs(med), 1e-4))


def position_relation(f_in: np.ndarray, f_out: np.ndarray, position_tol: float = 0.02) -> tuple[bool, float, str]:
    """``(position_dependent, output spread, reason)`` from a flat image's
    input and output (see the module docstring)."""
    s_in, s_out = flat_spread(f_in), flat_spread(f_out)
    thr = position_tol + 10 * s_in
    dep = bool(s_out > thr)
    return (
        dep,
        s_out,
        (f"flat image: output spread {s_out:.2e} {'>' if dep else '<='} {thr:.2e} (input spread {s_in:.2e})"),
    )


def probe_pointwise(
    dt: Darktable,
    raw: str | Path,
    module: str,
    params: Mapping[str, Any] | None = None,
    base: Sidecar | None = None,
    crop: int = 192,
    seed: int = 0,
) -> ProbeResult:
    """Is ``module`` (with ``params``) pointwise on ``raw``? See the module docstring.
    Costs one darktable-cli run of 6 renders of a ``crop`` px crop."""
    params = dict(params or {})
    rm = read_mosaic(raw)
    h, w = rm.mosaic.shape
    c = min(crop, h, w) // 2 * 2
    y0, x0 = (h - c) // 4 * 2, (w - c) // 4 * 2
    a = rm.mosaic[y0 : y0 + c, x0 : x0 + c]
    b = block_shuffle(a, seed)
    blocks = a.reshape(c // 2, 2, c // 2, 2).astype(np.float64).mean(axis=(0, 2))
    flat = np.tile(np.round(blocks).astype(np.uint16), (c // 2, c // 2))
    with tempfile.TemporaryDirectory(prefix="darkproxy-probe-") as td:
        tdp = Path(td)
        pa = write_mosaic_dng(a, tdp / "a.dng", rm.cfa, rm.black, rm.white, rm.color_matrix, rm.neutral)
        pb = write_mosaic_dng(b, tdp / "b.dng", rm.cfa, rm.black, rm.white, rm.color_matrix, rm.neutral)
        pf = write_mosaic_dng(flat, tdp / "f.dng", rm.cfa, rm.black, rm.white, rm.color_matrix, rm.neutral)
        hist = base if base is not None else dt.default_history(raw)
        plan = plan_tapout(dt, hist, module, params)
        if plan.pre_demosaic:
            return ProbeResult(
                None,
                float("nan"),
                float("nan"),
                float("nan"),
                float("nan"),
                0,
                float("nan"),
                dict(plan.set_params),
                c,
                "pre-demosaic module: its output passes through demosaic, which mixes neighbours; undetermined",
            )
        jobs = [
            RenderJob(pa, plan.input_sidecar, tdp / "ai.tif"),
            RenderJob(pa, plan.output_sidecar, tdp / "ao.tif"),
            RenderJob(pb, plan.input_sidecar, tdp / "bi.tif"),
            RenderJob(pb, plan.output_sidecar, tdp / "bo.tif"),
            RenderJob(pf, plan.input_sidecar, tdp / "fi.tif"),
            RenderJob(pf, plan.output_sidecar, tdp / "fo.tif"),
        ]
        res: list[Path] = []
        for x in dt.renderer(max_size=None).render_batch(jobs):
            if isinstance(x, RenderFailure):
                raise DarktableRenderError(f"probe render failed: {x.message}")
            res.append(x)
        ai, ao, bi, bo, fi, fo = (read_tiff(p) for p in res)
    st = compare_relation(ai, ao, bi, bo)
    pos, spread, pos_reason = position_relation(fi, fo)
    return ProbeResult(
        st["pointwise"],
        st["max_abs_diff"],
        st["p95_rel_out_diff"],
        st["p95_rel_in_dist"],
        st["threshold"],
        st["matched"],
        st["effect"],
        {k: v for k, v in plan.set_params.items()},
        c,
        st["reason"] + "; " + pos_reason,
        pos,
        spread,
    )
