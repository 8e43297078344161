"""Blending and masks in the replica against darktable's tap-outs, per blend mode and mask kind (issue 28).

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python bench/bench_blending.py [--settings 8] [--size 128]
        [--seed 28] [--batch 150] [--work /tmp/dp/blending] [--out bench/results] [--fresh] [--only WORDS]

Issue 28's goal: every module instance the replica runs reproduces darktable's tap-out at >= 45 dB median
with each blend mode and mask kind at random settings. This measures it, kind by kind.

The image: a synthetic 14-bit RGGB DNG (:mod:`darkproxy.raw.synth`, scikit-image's ``coffee``, ``--size`` px
long side), rendered at that size (render scale 1), with darktable's default history for it plus exposure
+1 EV and a color balance rgb edit (:data:`EDIT`). The modules blended: color balance rgb (after colorin: its
pipe is the working profile's linear Rec2020, the replica's own space) for every blend mode of darktable's
scene-referred RGB blend and every parametric-mask kind, and random drawn masks (circles, ellipses,
gradients and groups of them, written into the sidecar's masks history: :func:`_drawn`), and its blend through
exposure's raster mask (a random drawn one: :func:`_raster`; the replica's chain from exposure on,
:func:`_replica`); exposure (before colorin: camera RGB) for uniform opacity, normal reversed, modes of the
scene-RGB blend and a mode through a drawn mask (:mod:`darkproxy.replica.blend_camera`: colorin's matrix measured
on darktable's camera RGB input to exposure); in the Lab and RGB (display) blend colour spaces (color balance
rgb again: :mod:`darkproxy.replica.blend_lab`,
:mod:`darkproxy.replica.blend_display`) each mode of each
(reversed at random), each of their mask channels, and everything at once (breakpoints in
:data:`SPACE_SPANS`, measured quantiles of those channels). Each kind (:func:`kinds`) draws ``--settings``
random settings (seeded per kind: opacity 10-100 %, blend fulcrum -2..2 EV where the mode uses it, mask ranges
drawn inside each channel's 5-95 % quantiles on darktable's own input and unblended output (in an intersection
of several channels, the channels after the first wide: :func:`_mask`), polarity, combine mode, the mask's contrast and
brightness, boost factors, feathering and blur radii 0.5-20 px), written into the module's blend params
(:class:`darkproxy.darktable.blendop.BlendParams`, blendop version 11).

Per setting: the replica plans the history (:func:`darkproxy.replica.plan.plan_replica`); a refusal is
recorded with its one line. Otherwise darktable-cli renders the module's tap-out (every later module off:
:func:`darkproxy.darktable.tapout.plan_tapout`; linear Rec2020 float TIFF, ``--hq false``), many settings per
darktable-cli process (``--batch``), and the replica runs the module's stage blended as its chain runs it
(:meth:`darkproxy.replica.chain.ReplicaChain.stage_alone`: the exact stage, then
:mod:`darkproxy.replica.blend` / :mod:`darkproxy.replica.mask`) on darktable's input to the module (its
tap-out with the module off). Figure: display PSNR (:func:`darkproxy.colour.metrics.display_psnr`, the
linear images display-encoded) of the replica against darktable's tap-out. Beside it, as checks of the
harness: darktable's blended output against its own unblended one (how much the blend changes darktable's
result, and what a replica ignoring the blend would score, its unblended stage being within darktable's noise
of darktable's: near darktable's noise would mean the setting did nothing) and, for masks, the mean of the
replica's mask over the opacity (the part of the image it selects). darktable's run-to-run noise: a few
settings rendered twice in one darktable-cli process, and once more in a process of their own, PSNR between
the renders. A kind meets the goal when none of
its settings is refused and its median is >= 45 dB; refused kinds count as not met.

Resumable: every darktable render is kept under ``WORK/renders`` (keyed by the sidecar's digest) and reused
(``--fresh``: render again). Writes ``OUT/blending.json`` and ``OUT/blending.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from darkproxy.darktable.blendop import (  # noqa: E402
    BLEND_MODES,
    BLEND_NORMAL,
    BLEND_REVERSE,
    BLEND_VERSION,
    BLENDIF_RGB_MASK,
    COMBINE_INCL,
    COMBINE_INV,
    CS_RGB_SCENE,
    DISPLAY_MODES,
    LAB_MODES,
    MASK_DRAWN,
    MASK_ENABLED,
    MASK_PARAMETRIC,
    MASK_RASTER,
    SCENE_RGB_MODES,
    SIZE,
    BlendParams,
    decode_blendop,
    item_blend,
)
from darkproxy.darktable.masks import (  # noqa: E402
    BRUSH,
    ELLIPSE_PROPORTIONAL,
    GRADIENT_LINEAR,
    GRADIENT_SIGMOIDAL,
    PATH,
    STATE_INVERSE,
    BrushPoint,
    Circle,
    Ellipse,
    Form,
    Gradient,
    GroupMember,
    PathPoint,
    Point,
    write_forms,
)

GOAL = 45.0  # dB, median per kind
EDIT = {"saturation_global": 0.45, "contrast": 0.3, "vibrance": 0.2, "global_Y": 0.2}  # color balance rgb
EXPOSURE = 1.0  # EV, exposure's own setting
MODULE = "colorbalancergb"  # after colorin: every mode and mask
# scene RGB's blend-if channels (blend.h): 0 g (luminance), 1-3 R G B, 8-10 Jz Cz hz; + 4: the module's output
CHANNELS = {0: "g", 1: "R", 2: "G", 3: "B", 8: "Jz", 9: "Cz", 10: "hz"}
OUT = 4
ALL_CHANNELS = [c + off for off in (0, OUT) for c in CHANNELS]
BOOSTABLE = [c for c in ALL_CHANNELS if c not in (10, 14)]  # hz has no boost factor
JZ_OFFSET = float(np.float32(-6.64385619))  # blend.c: the default boost of Jz and Cz (the GUI's zero)
DEFAULT_BOOST = tuple(JZ_OFFSET if ch in (8, 9, 12, 13) else 0.0 for ch in range(16))
DEFAULT_RANGES = (0.0, 0.0, 1.0, 1.0) * 16
# the modes darktable's GUI offers in RGB (scene) (blend_gui.c), in its order; the legacy ones it shows only
# for a history that has them; every other mode code falls back to normal in scene RGB (_choose_blend_func)
GUI_MODES = [0x18, 0x04, 0x26, 0x06, 0x07, 0x17, 0x05, 0x28, 0x29, 0x21, 0x22, 0x23, 0x10, 0x11]
LEGACY_MODES = [0x08, 0x25, 0x27]
FULCRUM_MODES = {0x04, 0x06, 0x07, 0x25, 0x26, 0x27, 0x21, 0x22, 0x23}  # _blendif_blend_parameter_enabled
FALLBACK_MODES = [c for c, n in BLEND_MODES.items() if c not in SCENE_RGB_MODES and "obsolete" not in n]
# the Lab and RGB (display) blend colour spaces (replica/blend_lab.py, blend_display.py): every mode code each
# implements, and where their mask channels lie on the image in slider units (5-95 % quantiles of color balance
# rgb's input and unblended output at 128 px, this EDIT, measured 2026-12-03; capped at the slider's [0, 1]):
# Lab L/100 (0, +4 out), a/256 + 0.5 (1), b/256 + 0.5 (2), C/(128 sqrt 2) (8), h (9); display gray, R, G, B
# (0-3), H, S, L of HSL (8-10)
SPACES = {2: ("Lab", sorted(LAB_MODES)), 3: ("RGB (display)", sorted(DISPLAY_MODES))}
SPACE_SPANS = {
    2: {0: (0.092, 1.0), 1: (0.522, 0.75), 2: (0.532, 0.753), 8: (0.069, 0.482), 9: (0.083, 0.199),
        4: (0.527, 1.0), 5: (0.507, 0.769), 6: (0.508, 0.794), 12: (0.02, 0.521), 13: (0.063, 0.199)},
    3: {0: (0.01, 1.0), 1: (0.02, 1.0), 2: (0.006, 0.976), 3: (0.002, 0.653), 8: (0.018, 0.106), 9: (0.302, 1.0),
        10: (0.012, 0.953), 4: (0.207, 1.0), 5: (0.222, 1.0), 6: (0.2, 1.0), 7: (0.149, 1.0), 12: (0.017, 0.105),
        13: (0.0, 1.0), 14: (0.21, 1.0)},
}  # fmt: skip
# blend.h dt_develop_mask_feathering_guide_t: in / out, before / after the blur
IN_BEFORE, OUT_BEFORE, IN_AFTER, OUT_AFTER = 0x01, 0x02, 0x05, 0x06
GUIDES = (IN_BEFORE, OUT_BEFORE, IN_AFTER, OUT_AFTER)
SPAN_Q = (5.0, 95.0)  # where mask breakpoints are drawn: these quantiles of the channel on the image

Draw = Callable[[np.random.Generator, dict[int, tuple[float, float]]], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A blend mode or mask kind: ``draw(rng, spans)`` -> the blend params' fields of one random setting
    (``spans``: channel -> (lo, hi) in the channel's units, where its values lie on the image)."""

    name: str
    group: str
    module: str
    draw: Draw


# ----------------------------------------------------------------- random settings
def _opacity(rng: np.random.Generator) -> float:
    return round(float(rng.uniform(10.0, 100.0)), 2)


def _uniform(mode: int, reverse: bool, fulcrum: bool = True) -> Draw:
    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        p = round(float(rng.uniform(-2.0, 2.0)), 3) if fulcrum and mode in FULCRUM_MODES else 0.0
        return {"blend_mode": mode | (BLEND_REVERSE if reverse else 0), "blend_parameter": p, "opacity": _opacity(rng)}

    return draw


def _mask(
    rng: np.random.Generator,
    spans: dict[int, tuple[float, float]],
    chans: list[int],
    inverted: tuple[int, ...] = (),
    combine: int = 0,
    open_end: bool = False,
    boost: dict[int, float] | None = None,
    wide: bool = False,
) -> dict[str, Any]:
    """A parametric mask on ``chans``: per channel 4 sorted breakpoints drawn inside its span (darktable's
    slider units: the value / 2^boost, the slider's [0, 1]); ``open_end``: one end at the slider's end;
    ``wide``: the channels after the first keep most of their span (the lower pair in its lowest 30 %, the upper
    end open: an intersection of narrow ranges would select next to nothing)."""
    params, boosts, blendif = list(DEFAULT_RANGES), list(DEFAULT_BOOST), 0
    for k, ch in enumerate(chans):
        if boost and ch in boost:
            boosts[ch] = boost[ch]
        f = 2.0 ** boosts[ch]
        lo, hi = (min(max(v / f, 0.0), 1.0) for v in spans[ch])
        if wide and k:
            v = sorted(round(float(lo + (hi - lo) * x), 4) for x in rng.uniform(0.0, 0.3, 2)) + [1.0, 1.0]
        else:
            v = sorted(round(float(lo + (hi - lo) * x), 4) for x in rng.uniform(0.0, 1.0, 4))
        if open_end:
            if rng.integers(2):
                v[:2] = [0.0, 0.0]
            else:
                v[2:] = [1.0, 1.0]
        params[4 * ch : 4 * ch + 4] = v
        blendif |= 1 << ch
    for ch in inverted:
        blendif |= 1 << (ch + 16)
    if combine & COMBINE_INCL:  # darktable's GUI inverts the unused channels' polarity with this combine mode
        blendif ^= (BLENDIF_RGB_MASK & ~blendif) << 16
    return {
        "mask_mode": MASK_ENABLED | MASK_PARAMETRIC,
        "blendif": blendif,
        "blendif_parameters": tuple(params),
        "blendif_boost_factors": tuple(boosts),
        "mask_combine": combine,
        "opacity": _opacity(rng),
    }


def _radius(rng: np.random.Generator) -> float:
    """A feathering or blur radius in px: 0.5-20 (the GUI's sliders go to 250 and 100 px; the renders are
    ``--size`` px wide)."""
    return round(float(rng.uniform(0.5, 20.0)), 2)


def _pick(rng: np.random.Generator, lo: int, hi: int, pool: list[int] = ALL_CHANNELS) -> list[int]:
    return [int(c) for c in rng.choice(pool, size=int(rng.integers(lo, hi + 1)), replace=False)]


def _masked(**kw: Any) -> Draw:
    """A mask kind: ``one`` channel, or ``n`` (lo, hi) random channels; flags as in :func:`_mask`."""
    one, n, pool = kw.pop("one", None), kw.pop("n", (2, 3)), kw.pop("pool", ALL_CHANNELS)
    flip, mode, tone, boosted = (kw.pop(k, False) for k in ("flip", "mode", "tone", "boosted"))
    guides, blur = kw.pop("guides", ()), kw.pop("blur", False)

    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        chans = [one] if one is not None else _pick(rng, *n, pool)
        inv = tuple(c for c in chans if rng.integers(2)) if flip else ()
        if flip and not inv:
            inv = (chans[0],)
        combine = kw.get("combine", 0)
        if combine == -1:  # any of the four
            combine = int(rng.integers(4))
        boost = None
        if boosted:  # the GUI's boost slider (soft range 0-3 EV) over the channel's default
            boost = {
                c: DEFAULT_BOOST[c] + round(float(rng.uniform(0.0, 3.0)), 3) for c in chans if c not in (10, 14)
            }  # hz: no boost
        wide = not combine & COMBINE_INCL  # an intersection: the channels after the first wide
        d = _mask(rng, spans, chans, inv, combine, kw.get("open_end", False), boost, wide)
        if tone:
            d |= {"contrast": round(float(rng.uniform(-1, 1)), 3), "brightness": round(float(rng.uniform(-1, 1)), 3)}
        if guides:  # the GUI's feathering radius (0-250 px) and guide
            d |= {"feathering_radius": _radius(rng), "feathering_guide": int(rng.choice(guides))}
        if blur:  # the GUI's blur radius (0-100 px)
            d["blur_radius"] = _radius(rng)
        if mode:
            d["blend_mode"] = int(rng.choice(GUI_MODES)) | (BLEND_REVERSE if rng.integers(2) else 0)
            d["blend_parameter"] = round(float(rng.uniform(-2.0, 2.0)), 3)
        return d

    return draw


def _refused(extra: Callable[[np.random.Generator], dict[str, Any]], mask: bool = False) -> Draw:
    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        base = _mask(rng, spans, _pick(rng, 1, 2)) if mask else {"opacity": _opacity(rng)}
        return base | extra(rng)

    return draw


RASTER_SOURCE = "exposure"  # a raster mask's source (before MODULE, nothing between moves the pixels)


def _raster(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """MODULE through exposure's raster mask (inverted at random, any GUI mode): ``source``, exposure's own
    blend, a drawn group mask (:func:`_drawn`: before colorin, a drawn mask is exact; a parametric one is not)."""
    source = _drawn(("circle", "ellipse", "gradient"), group=True)(rng, spans)
    d: dict[str, Any] = {"mask_mode": MASK_ENABLED | MASK_RASTER, "raster_mask_source": RASTER_SOURCE}
    d |= {"raster_mask_instance": 0, "raster_mask_id": 0, "raster_mask_invert": bool(rng.integers(2))}
    d |= {"blend_mode": int(rng.choice(GUI_MODES)) | (BLEND_REVERSE if rng.integers(2) else 0)}
    return d | {"blend_parameter": round(float(rng.uniform(-2.0, 2.0)), 3), "opacity": _opacity(rng), "source": source}


GROUP_ID = 1000  # the drawn kinds' group (the blend's mask_id); its shapes 1001...


def _shape(rng: np.random.Generator, kind: str) -> Point:
    """A random drawn shape inside the image: a circle, an ellipse (its feather proportional or not) or a gradient
    (linear or sigmoid, curved), sizes as fractions of the image's smaller side, feathers 0.02-0.2."""
    c = (round(float(rng.uniform(0.25, 0.75)), 4), round(float(rng.uniform(0.25, 0.75)), 4))
    if kind == "circle":
        return Circle(c, round(float(rng.uniform(0.08, 0.35)), 4), round(float(rng.uniform(0.02, 0.2)), 4))
    if kind == "ellipse":
        prop = bool(rng.integers(2))
        border = float(rng.uniform(0.1, 0.6) if prop else rng.uniform(0.02, 0.2))
        radii = (round(float(rng.uniform(0.08, 0.4)), 4), round(float(rng.uniform(0.08, 0.4)), 4))
        rot = round(float(rng.uniform(0.0, 180.0)), 2)
        return Ellipse(c, radii, rot, round(border, 4), ELLIPSE_PROPORTIONAL if prop else 0)
    state = GRADIENT_LINEAR if rng.integers(2) else GRADIENT_SIGMOIDAL
    rot, comp = round(float(rng.uniform(-180.0, 180.0)), 2), round(float(rng.uniform(0.05, 0.5)), 4)
    return Gradient(c, rot, comp, 0.0, round(float(rng.uniform(-1.0, 1.0)), 3), state)


def _path_shape(rng: np.random.Generator) -> tuple[PathPoint, ...]:
    """A random drawn path: 3-6 corners about a centre (angles in order, radii 0.12-0.35: convex or concave),
    darktable's catmull-rom handles or sharp corners (every handle on its corner), clockwise or not, feathers
    0.01-0.12 (before and after each corner)."""
    n = int(rng.integers(3, 7))
    cx, cy = (float(rng.uniform(0.4, 0.6)) for _ in range(2))
    ang = np.sort(rng.uniform(0.0, 2 * np.pi, n)) * (1 if rng.integers(2) else -1)
    rad = rng.uniform(0.12, 0.35, n)
    c = [(round(cx + r * np.cos(a), 4), round(cy + r * np.sin(a), 4)) for a, r in zip(ang, rad, strict=True)]
    sharp = bool(rng.integers(2))
    out = []
    for k in range(n):
        p1, p2, p3 = c[k - 1], c[k], c[(k + 1) % n]
        ctrl1 = p2 if sharp else ((p1[0] + 6 * p2[0] - p3[0]) / 6, (p1[1] + 6 * p2[1] - p3[1]) / 6)
        ctrl2 = p2 if sharp else ((-p1[0] + 6 * p2[0] + p3[0]) / 6, (-p1[1] + 6 * p2[1] + p3[1]) / 6)
        border = (round(float(rng.uniform(0.01, 0.12)), 4), round(float(rng.uniform(0.01, 0.12)), 4))
        out.append(PathPoint(p2, ctrl1, ctrl2, border, 2 if sharp else 1))
    return tuple(out)


def _brush_shape(rng: np.random.Generator) -> tuple[BrushPoint, ...]:
    """A random brush stroke: 2-5 corners left to right (catmull-rom handles, the ends repeated), each corner's
    size 0.03-0.12, hardness 0.1-1 and density 0.3-1 (equal to the previous corner's at random: darktable stamps
    where they change)."""
    n = int(rng.integers(2, 6))
    xs = np.sort(rng.uniform(0.15, 0.85, n))
    c = [(round(float(x), 4), round(float(rng.uniform(0.25, 0.75)), 4)) for x in xs]
    out: list[BrushPoint] = []
    for k in range(n):
        p1, p2, p3 = c[max(k - 1, 0)], c[k], c[min(k + 1, n - 1)]
        ctrl1 = ((p1[0] + 6 * p2[0] - p3[0]) / 6, (p1[1] + 6 * p2[1] - p3[1]) / 6)
        ctrl2 = ((-p1[0] + 6 * p2[0] + p3[0]) / 6, (-p1[1] + 6 * p2[1] + p3[1]) / 6)
        size = round(float(rng.uniform(0.03, 0.12)), 4)
        hd = (round(float(rng.uniform(0.1, 1.0)), 3), round(float(rng.uniform(0.3, 1.0)), 3))
        if out and rng.integers(2):
            size, hd = out[-1].border[0], (out[-1].hardness, out[-1].density)
        out.append(BrushPoint(p2, ctrl1, ctrl2, (size, size), hd[1], hd[0], 2))
    return tuple(out)


def _drawn(shapes: tuple[str, ...] = (), group: bool = False, inverted: bool = False, parametric: bool = False) -> Draw:
    """A drawn-mask kind: one shape of ``shapes`` (each of them in a group when ``group``: the later ones
    combined by a random union, intersection, difference or exclusion, inverted or not, at 30-100 % opacity),
    the mask inverted (``inverted``), a parametric mask beside it (``parametric``: one channel, an end open, so
    that the two together still select a part of the image). The forms go into the
    sidecar's masks history (the draw's ``forms``)."""

    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        kinds_ = list(shapes) if group else [str(rng.choice(shapes))]
        forms, members = [], []
        for k, kind in enumerate(kinds_):
            own = {"path": _path_shape, "brush": _brush_shape}.get(kind)
            shape = own(rng) if own is not None else (_shape(rng, kind),)
            forms.append(Form.of(GROUP_ID + 1 + k, f"{kind} #{k}", *shape))
            state = 3  # USE | SHOW: the first shape; the later ones combined (the GUI's union by default)
            if k:
                state |= int(rng.choice([8, 16, 32, 64])) | (STATE_INVERSE if rng.integers(2) else 0)
            op = round(float(rng.uniform(0.3, 1.0)), 3) if k else 1.0
            members.append(GroupMember(GROUP_ID + 1 + k, GROUP_ID, state, op))
        forms.append(Form.of(GROUP_ID, "group #1", *members))
        d = _mask(rng, spans, _pick(rng, 1, 1), open_end=True) if parametric else {"opacity": _opacity(rng)}
        combine = d.get("mask_combine", 0) | (0x04 if inverted else 0)  # DEVELOP_COMBINE_MASKS_POS
        mode = d.get("mask_mode", MASK_ENABLED) | MASK_DRAWN
        return d | {"mask_mode": mode, "mask_id": GROUP_ID, "mask_combine": combine, "forms": forms}

    return draw


def _drawn_mode(mode: int) -> Draw:
    """A drawn circle, ellipse or gradient (:func:`_drawn`) blended in ``mode`` (reversed at random)."""
    drawn, mode_of = _drawn(("circle", "ellipse", "gradient")), _uniform(mode, False)

    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        d = drawn(rng, spans) | mode_of(rng, spans)
        return d | {"blend_mode": mode | (BLEND_REVERSE if rng.integers(2) else 0)}

    return draw


def _shape_text(p: Point) -> str:
    """``circle((0.41, 0.52), 0.2, 0.1)``: a shape's fields, rounded."""

    def r(v: Any) -> Any:
        return round(v, 3) if isinstance(v, float) else tuple(r(w) for w in v) if isinstance(v, tuple) else v

    return type(p).__name__.lower() + str(tuple(r(v) for v in dataclasses.astuple(p)))


def _brush(rng: np.random.Generator) -> dict[str, Any]:
    brush = Form(GROUP_ID + 1, BRUSH, "brush #1", b"\0" * 44, 1)  # a stroke of one corner
    group = Form.of(GROUP_ID, "group #1", GroupMember(GROUP_ID + 1, GROUP_ID, 3, 1.0))
    return {"mask_mode": MASK_ENABLED | MASK_DRAWN, "mask_id": GROUP_ID, "forms": [brush, group]}


def _in_space(cst: int, draw: Draw) -> Draw:
    """``draw`` in blend colour space ``cst``, reversed at random (Lab's and RGB (display)'s modes use no fulcrum)."""

    def d(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        f = draw(rng, spans) | {"blend_cst": cst, "blend_parameter": 0.0}
        return f | {"blend_mode": f["blend_mode"] | (BLEND_REVERSE if rng.integers(2) else 0)}

    return d


def _space_masked(cst: int, chans: list[int] | None) -> Draw:
    """A parametric mask in ``cst`` on ``chans`` (``None``: 2-3 random channels, polarity, any combine, tone
    curve, boost 0-3 EV, a random mode of the space, feathering by either guide, blur), breakpoints in
    :data:`SPACE_SPANS`."""

    def draw(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        sp = SPACE_SPANS[cst]
        many = chans is None
        ch = chans or [int(c) for c in rng.choice(sorted(sp), size=int(rng.integers(2, 4)), replace=False)]
        combine = int(rng.integers(4)) if many else 0
        boostable = (0, 4, 8, 12) if cst == 2 else tuple(range(8))  # Lab L, C; gray, R, G, B (not a, b, hues)
        boost = {c: round(float(rng.uniform(0.0, 3.0)), 3) if many and c in boostable else 0.0 for c in ch}
        inv = tuple(c for c in ch if rng.integers(2)) if many else ()
        d = _mask(rng, sp, ch, inv, combine, False, boost, not combine & COMBINE_INCL)
        if combine & COMBINE_INCL:  # _mask inverted scene RGB's unused channels: the space's instead
            mask_bits = 0x3377 if cst == 2 else 0x77FF
            d["blendif"] = (d["blendif"] & 0xFFFF) | ((sum(1 << c for c in inv) ^ (mask_bits & ~d["blendif"])) << 16)
        d["blendif_boost_factors"] = tuple(boost.get(c, 0.0) for c in range(16))  # no scene Jz/Cz offset here
        d["blend_cst"] = cst
        if many:
            d |= {"contrast": round(float(rng.uniform(-1, 1)), 3), "brightness": round(float(rng.uniform(-1, 1)), 3)}
            d |= {"feathering_radius": _radius(rng), "feathering_guide": int(rng.choice(GUIDES))}
            d["blur_radius"] = _radius(rng)
            d["blend_mode"] = int(rng.choice(SPACES[cst][1])) | (BLEND_REVERSE if rng.integers(2) else 0)
        return d

    return draw


def kinds() -> list[Kind]:
    """Every kind measured, in report order."""
    out: list[Kind] = []
    for code in GUI_MODES + LEGACY_MODES:
        name = BLEND_MODES[code] + (
            " (legacy)" if code in LEGACY_MODES and "deprecated" not in BLEND_MODES[code] else ""
        )
        for rev in (False, True):
            out.append(Kind(name + (", reversed" if rev else ""), "mode", MODULE, _uniform(code, rev)))

    def fallback(rng: np.random.Generator, spans: dict[int, tuple[float, float]]) -> dict[str, Any]:
        return _uniform(int(rng.choice(FALLBACK_MODES)), bool(rng.integers(2)))(rng, spans)

    out.append(Kind("a display-only mode code (darktable runs normal in scene RGB)", "mode", MODULE, fallback))
    for off, side in ((0, "in"), (OUT, "out")):
        for ch, name in CHANNELS.items():
            out.append(Kind(f"{name} {side}", "mask", MODULE, _masked(one=ch + off)))
    out += [
        Kind("channel polarity inverted", "mask", MODULE, _masked(n=(1, 2), flip=True)),
        Kind("mask inverted (exclusive, inverted)", "mask", MODULE, _masked(n=(1, 2), combine=COMBINE_INV)),
        Kind("several channels, exclusive", "mask", MODULE, _masked(n=(2, 4))),
        Kind("several channels, inclusive", "mask", MODULE, _masked(n=(2, 3), combine=COMBINE_INCL)),
        Kind("inclusive and inverted", "mask", MODULE, _masked(n=(2, 3), combine=COMBINE_INCL | COMBINE_INV)),
        Kind("open ranges (a pair at the slider's end)", "mask", MODULE, _masked(n=(1, 2), open_end=True)),
        Kind("mask contrast and brightness", "mask", MODULE, _masked(n=(1, 2), tone=True)),
        Kind("boost factors (0-3 EV)", "mask", MODULE, _masked(n=(1, 2), boosted=True, pool=BOOSTABLE)),
        Kind("mask with another blend mode", "mask", MODULE, _masked(n=(1, 2), mode=True)),
        Kind("feathering guided by the input", "mask", MODULE, _masked(n=(1, 2), guides=(IN_BEFORE, IN_AFTER))),
        Kind("feathering guided by the output", "mask", MODULE, _masked(n=(1, 2), guides=(OUT_BEFORE, OUT_AFTER))),
        Kind("mask blur", "mask", MODULE, _masked(n=(1, 2), blur=True)),
        Kind(
            "feathering and blur (either guide, either order)",
            "mask",
            MODULE,
            _masked(n=(1, 2), guides=GUIDES, blur=True),
        ),
        Kind(
            "all at once (channels, polarity, combine, tone, boost, mode, feathering, blur)",
            "mask",
            MODULE,
            _masked(n=(2, 4), flip=True, combine=-1, tone=True, boosted=True, mode=True, guides=GUIDES, blur=True),
        ),
        Kind("uniform opacity, exposure (before colorin)", "uniform", "exposure", _uniform(BLEND_NORMAL, False)),
        Kind("normal reversed, exposure (before colorin)", "uniform", "exposure", _uniform(BLEND_NORMAL, True)),
        *(
            Kind(f"{BLEND_MODES[c]}, exposure (before colorin: camera RGB)", "uniform", "exposure", _uniform(c, r))
            for c, r in ((0x04, False), (0x26, True), (0x07, False), (0x10, False), (0x22, False), (0x29, False))
        ),
        Kind("multiply, drawn mask, exposure (before colorin)", "uniform", "exposure", _drawn_mode(0x04)),
        Kind("parametric mask, exposure (before colorin: camera RGB)", "uniform", "exposure", _masked(n=(1, 2))),
        Kind(
            "parametric mask, all at once, exposure (before colorin)",
            "uniform",
            "exposure",
            _masked(n=(2, 4), flip=True, combine=-1, tone=True, boosted=True, mode=True, guides=GUIDES, blur=True),
        ),
        Kind("drawn circle", "drawn", MODULE, _drawn(("circle",))),
        Kind("drawn ellipse (feather proportional or not)", "drawn", MODULE, _drawn(("ellipse",))),
        Kind("drawn gradient (linear or sigmoid, curved)", "drawn", MODULE, _drawn(("gradient",))),
        Kind(
            "drawn group (circle, ellipse, gradient: union, intersection, difference, exclusion; inverted shapes)",
            "drawn",
            MODULE,
            _drawn(("circle", "ellipse", "gradient"), group=True),
        ),
        Kind("drawn path (convex or concave, smooth or sharp corners)", "drawn", MODULE, _drawn(("path",))),
        Kind(
            "drawn group with a path (and a circle, an ellipse)",
            "drawn",
            MODULE,
            _drawn(("path", "circle", "ellipse"), group=True),
        ),
        Kind("drawn brush stroke (size, hardness, density)", "drawn", MODULE, _drawn(("brush",))),
        Kind("drawn group with a brush stroke (and a path)", "drawn", MODULE, _drawn(("brush", "path"), group=True)),
        Kind("drawn mask inverted", "drawn", MODULE, _drawn(("circle", "ellipse", "gradient"), inverted=True)),
        Kind("drawn and parametric mask", "drawn", MODULE, _drawn(("circle", "ellipse", "gradient"), parametric=True)),
        Kind("raster mask (exposure's drawn mask; inverted, any mode)", "mask", MODULE, _raster),
    ]
    for cst, (space, modes) in SPACES.items():  # Lab, RGB (display): each mode (reversed at random), each channel
        for code in modes:
            out.append(Kind(f"{space}: {BLEND_MODES[code]}", "space", MODULE, _in_space(cst, _uniform(code, False))))
        names = {2: {0: "L", 1: "a", 2: "b", 8: "C", 9: "h"}, 3: CHANNELS | {8: "H", 9: "S", 10: "L"}}[cst]
        for ch, name in names.items():
            for off, side in ((0, "in"), (OUT, "out")):
                out.append(Kind(f"{space}: mask {name} {side}", "space", MODULE, _space_masked(cst, [ch + off])))
        out.append(Kind(f"{space}: mask, all at once (channels, polarity, combine, tone, boost, mode, feathering, "
                        "blur)", "space", MODULE, _space_masked(cst, None)))  # fmt: skip
    refused: list[tuple[str, str, Draw]] = [
        ("blend colour space Lab, exposure (before colorin)", "exposure", _refused(lambda r: {"blend_cst": 2})),
        ("drawn brush of one corner (not ported)", MODULE, _refused(_brush)),
        ("mask details threshold", MODULE, _refused(lambda r: {"details": float(r.uniform(0.1, 1.0))}, mask=True)),
        ("uniform opacity, colorin", "colorin", _uniform(BLEND_NORMAL, False)),
    ]
    out += [Kind(n, "expected refused", m, d) for n, m, d in refused]
    return out


# ----------------------------------------------------------------- darktable
def _key(side: Any, tag: str, salt: str) -> str:
    return hashlib.sha256((salt + tag + side.to_string()).encode()).hexdigest()[:24] + (f"-{tag}" if tag else "")


def render_cached(
    dt: Any, raw: Path, size: int, jobs: list[tuple[str, Any]], cache: Path, batch: int, salt: str, fresh: bool
) -> tuple[dict[str, np.ndarray], dict[str, str], float, int]:
    """``jobs`` (name, sidecar; a name ending in ``#dup`` is a second render of the sidecar in the same process as
    the first: keep pairs together; ``NAME#TAG``: a render of its own in the cache) rendered by darktable-cli,
    ``batch`` per process, kept under ``cache``.
    -> (name -> (3, H, W) array, name -> failure message, seconds, processes)."""
    from darkproxy.darktable.render import RenderFailure, RenderJob, read_tiff

    cache.mkdir(parents=True, exist_ok=True)
    paths = {n: cache / f"{_key(s, n.partition('#')[2], salt)}.npy" for n, s in jobs}
    todo = [(n, s) for n, s in jobs if fresh or not paths[n].is_file()]
    chunks: list[list[tuple[str, Any]]] = []
    for n, s in todo:  # a #dup goes with its original
        if not chunks or (len(chunks[-1]) >= batch and not n.endswith("#dup")):
            chunks.append([])
        chunks[-1].append((n, s))
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    r = dt.renderer(max_size=size, timeout=900)
    for i, chunk in enumerate(chunks):
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dp-blending-") as td:
            res = r.render_batch([RenderJob(raw, s, Path(td) / f"{k}.tif") for k, (_, s) in enumerate(chunk)])
            for (n, _), got in zip(chunk, res, strict=True):
                if isinstance(got, RenderFailure):
                    failed[n] = got.message
                else:
                    np.save(paths[n], read_tiff(got))
        print(f"  darktable-cli process {i + 1}/{len(chunks)}: {len(chunk)} renders in "
              f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    out = {n: np.load(p) for n, p in paths.items() if n not in failed and p.is_file()}
    return out, failed, time.perf_counter() - t0, len(chunks)


# ----------------------------------------------------------------- the image's channels
def channel_spans(x: np.ndarray, y: np.ndarray) -> dict[int, tuple[float, float]]:
    """Each blend-if channel's 5-95 % quantiles on darktable's input ``x`` (channels 0-3, 8-10) and unblended
    output ``y`` (+4), in the channel's own units (luminance: the working profile's Y; Jz, Cz: JzCzhz of the
    profile's RGB in D65, as darktable's mask computes them; hz in [0, 1)). Only where breakpoints are drawn."""
    import torch

    from darkproxy.replica.mask import _profile
    from darkproxy.replica.science import mix3, safe_atan2, safe_hypot, xyz_d65_to_jzazbz

    m_in, m_out = _profile()
    spans: dict[int, tuple[float, float]] = {}
    for img, off in ((x, 0), (y, OUT)):
        t = torch.from_numpy(img.astype(np.float64))[None]
        r, g, b = t[:, 0:1], t[:, 1:2], t[:, 2:3]
        lum = float(m_in[1, 0]) * r + float(m_in[1, 1]) * g + float(m_in[1, 2]) * b
        jz, az, bz = xyz_d65_to_jzazbz(mix3(m_out, (r, g, b)))
        h = safe_atan2(bz, az) / (2.0 * np.pi)
        vals = {0: lum, 1: r, 2: g, 3: b, 8: jz, 9: safe_hypot(az, bz), 10: torch.where(h >= 0, h, 1.0 + h)}
        for ch, v in vals.items():
            lo, hi = np.percentile(v.numpy().ravel(), SPAN_Q)
            spans[ch + off] = (float(lo), float(hi))
    return spans


# ----------------------------------------------------------------- the run
def _with_blend(base: Any, module: str, bp: BlendParams) -> Any:
    h = base.copy()
    it = h.find(module)
    it.blendop_params, it.blendop_version, it.blendop_text = bp.encode(), BLEND_VERSION, None
    return h


def _template(base: Any, module: str) -> BlendParams:
    """The module's blend params in ``base`` (darktable's defaults when it has none), blending uniformly in
    mode normal in scene RGB with every mask field at its default."""
    it = base.find(module)
    bp = item_blend(it) if it is not None else None
    bp = bp if bp is not None else decode_blendop(bytes(SIZE), BLEND_VERSION)
    return dataclasses.replace(
        bp,
        mask_mode=MASK_ENABLED,
        blend_cst=CS_RGB_SCENE,
        blend_mode=BLEND_NORMAL,
        blend_parameter=0.0,
        mask_combine=0,
        mask_id=0,
        blendif=0,
        feathering_radius=0.0,
        blur_radius=0.0,
        contrast=0.0,
        brightness=0.0,
        details=0.0,
        blendif_parameters=DEFAULT_RANGES,
        blendif_boost_factors=DEFAULT_BOOST,
    )


def describe(bp: BlendParams) -> str:
    """One line: mode, opacity, fulcrum, mask channels and options."""
    s = f"{bp.mode_name} {bp.opacity:g} %"
    if bp.blend_parameter:
        s += f", fulcrum {bp.blend_parameter:g} EV"
    if bp.blend_cst != CS_RGB_SCENE:
        s += f", in {bp.colorspace_name}"
    if bp.masks and bp.masks != ["parametric mask"]:
        s += f", {', '.join(bp.masks)}"
    if "raster mask" in bp.masks:
        s += f" of {bp.raster_mask_source}" + (" inverted" if bp.raster_mask_invert else "")
    if bp.feathering_radius:
        s += f", feathering radius {bp.feathering_radius:.3g} guide {bp.feathering_guide}"
    s += f", blur radius {bp.blur_radius:.3g}" if bp.blur_radius else ""
    s += f", details {bp.details:.3g}" if bp.details else ""
    if bp.mask_mode & MASK_PARAMETRIC:
        from darkproxy.darktable.blendop import ParametricMask

        pm = ParametricMask(bp.blendif, bp.blendif_parameters, bp.blendif_boost_factors, colorspace=bp.blend_cst)
        parts = []
        for ch in range(16):
            if bp.blendif & (1 << ch):
                r = ",".join(f"{v:g}" for v in bp.blendif_parameters[4 * ch : 4 * ch + 4])
                b = bp.blendif_boost_factors[ch] - (DEFAULT_BOOST[ch] if bp.blend_cst == CS_RGB_SCENE else 0.0)
                parts.append(f"{ch}:[{r}]" + (f"+{b:.2f}EV" if abs(b) > 1e-6 else ""))
        s += f"; mask {pm.channels()} {' '.join(parts)}"
        if bp.mask_combine:
            s += f", combine {bp.mask_combine}"
        if bp.contrast or bp.brightness:
            s += f", contrast {bp.contrast:g} brightness {bp.brightness:g}"
    return s


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.blendop import uniform_blend
    from darkproxy.darktable.session import Darktable, file_digest
    from darkproxy.darktable.tapout import IDENTITY_SETTINGS, plan_tapout
    from darkproxy.machine import machine_info
    from darkproxy.raw.synth import SynthRawSpec, default_source_images, write_synthetic_dng
    from darkproxy.replica.blend_camera import camera_blend, stage_mask
    from darkproxy.replica.blend_display import display_mask
    from darkproxy.replica.blend_lab import lab_mask, rgb_to_lab
    from darkproxy.replica.chain import ReplicaChain
    from darkproxy.replica.drawn import drawn_mask
    from darkproxy.replica.mask import parametric_mask
    from darkproxy.replica.plan import ReplicaError, plan_replica

    t_start = time.perf_counter()
    meta = machine_info()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f"coffee-{args.size}.dng"
    if not raw.is_file():
        write_synthetic_dng(default_source_images(["coffee"])["coffee"], raw, SynthRawSpec(size=args.size))
    dt = Darktable()
    base = dt.edit(dt.default_history(raw), updates={"exposure": {"exposure": EXPOSURE}, MODULE: EDIT})
    salt = f"{file_digest(raw)}-{args.size}-{dt.version}"
    cache = work / "renders"
    all_kinds = [k for k in kinds() if not args.only or any(w in k.name for w in args.only.split(","))]
    # the modules measured (a kind expected refused that the replica runs on another module: not measured)
    modules = list(dict.fromkeys([MODULE] + [k.module for k in all_kinds if k.group != "expected refused"]))
    modules += [RASTER_SOURCE] if any(k.draw is _raster for k in all_kinds) and RASTER_SOURCE not in modules else []

    base_plan = plan_replica(dt, base, raw)  # the unblended history runs (else every setting is refused)
    # 1. every module's input and unblended output, color balance rgb's twice (darktable's noise)
    print(f"[1/3] inputs and unblended outputs of {', '.join(modules)}", flush=True)
    taps = {m: plan_tapout(dt, base, m, {}) for m in modules}
    jobs = [(f"in:{m}", taps[m].input_sidecar) for m in modules]
    jobs += [(f"plain:{m}", taps[m].output_sidecar) for m in modules] + [
        (f"plain:{MODULE}#dup", taps[MODULE].output_sidecar)
    ]
    if "exposure" in modules:  # its camera RGB input (colorin passing it through): colorin's matrix, measured
        jobs.append(("camera:exposure", dt.edit(taps["exposure"].input_sidecar, updates=dict(IDENTITY_SETTINGS))))
    imgs, failed, secs, procs = render_cached(dt, raw, args.size, jobs, cache, args.batch, salt, args.fresh)
    if failed:
        raise SystemExit(f"darktable could not render the module taps: {failed}")
    render_s, processes = secs, procs
    spans = channel_spans(imgs[f"in:{MODULE}"], imgs[f"plain:{MODULE}"])

    # 2. the settings: the replica's plan (or its refusal), darktable's tap-outs of those it runs
    t = time.perf_counter()
    settings: list[dict[str, Any]] = []
    for kind in all_kinds:
        if base.find(kind.module) is None:
            print(f"  {kind.name}: {kind.module} is not in the history, skipped", flush=True)
            continue
        rng = np.random.default_rng([args.seed, zlib.crc32(kind.name.encode())])
        tmpl = _template(base, kind.module)
        for i in range(args.settings):
            fields = kind.draw(rng, spans)
            source = fields.pop("source", None)  # a raster mask's source's own blend
            forms = fields.pop("forms", None) or (source.pop("forms", None) if source else None)  # a drawn mask's
            bp = dataclasses.replace(tmpl, **fields)
            h = _with_blend(base, kind.module, bp)
            if source:
                h = _with_blend(h, RASTER_SOURCE, dataclasses.replace(_template(base, RASTER_SOURCE), **source))
            if forms:
                write_forms(h.description, forms)
                states = [f"{p.state}@{p.opacity:g}" for p in forms[-1].points() if isinstance(p, GroupMember)]
                shapes = ", ".join(_shape_text(f.points()[0]) if not f.kind & PATH else f.type_name for f in forms[:-1])
                forms_note = f"; shapes {shapes}; group states {' '.join(states)}"
            else:
                forms_note = ""
            rec: dict[str, Any] = {"kind": kind.name, "i": i, "module": kind.module}
            rec["setting"] = describe(bp) + forms_note
            rec["summary"] = bp.summary()
            plan = None
            try:
                plan = plan_replica(dt, h, raw)
            except ReplicaError as e:
                rec["refused"] = str(e)
            if plan is not None and kind.module not in modules:
                rec["unmeasured"] = f"expected refused, but the replica runs it ({kind.module}: not measured here)"
            settings.append({"rec": rec, "history": h, "plan": plan})
    plan_s = time.perf_counter() - t
    runs = [s for s in settings if "refused" not in s["rec"] and "unmeasured" not in s["rec"]]
    noise_kinds = {"divide": 0, "several channels, exclusive": 0, "normal": 0}
    jobs = []
    for s in runs:  # the noise pairs first: each pair in one process
        key = f"out:{s['rec']['kind']}:{s['rec']['i']}"
        s["name"] = key
        s["side"] = plan_tapout(dt, s["history"], s["rec"]["module"], {}).output_sidecar
        if noise_kinds.get(s["rec"]["kind"]) == s["rec"]["i"]:
            jobs[:0] = [(key, s["side"]), (key + "#dup", s["side"])]
        else:
            jobs.append((key, s["side"]))
    print(f"[2/3] {len(settings)} settings of {len(all_kinds)} kinds ({plan_s:.1f} s to plan): "
          f"{len(settings) - len(runs)} refused by the replica, {len(runs)} to render", flush=True)  # fmt: skip
    outs, failed, secs, procs = render_cached(dt, raw, args.size, jobs, cache, args.batch, salt, args.fresh)
    render_s, processes = render_s + secs, processes + procs
    # the same sidecars once more, in a darktable-cli process of their own (darktable's noise across processes)
    again = [(n.replace("#dup", "#xproc"), side) for n, side in jobs if n.endswith("#dup")]
    again.append((f"plain:{MODULE}#xproc", taps[MODULE].output_sidecar))
    more, _, secs, procs = render_cached(dt, raw, args.size, again, cache, len(again), salt, args.fresh)
    outs |= more
    render_s, processes = render_s + secs, processes + procs

    # 3. the replica on darktable's input, against darktable's output
    print(f"[3/3] the replica on {len(runs)} settings", flush=True)
    t = time.perf_counter()
    xs = {m: torch.from_numpy(imgs[f"in:{m}"])[None] for m in modules}
    cam = None  # colorin's matrix, for a blend on camera RGB (before colorin: replica/blend_camera.py)
    if "camera:exposure" in imgs:
        from darkproxy.replica.references import fit_camera_matrix

        fit = fit_camera_matrix(imgs["in:exposure"], imgs["camera:exposure"])[0]
        cam = tuple(tuple(float(v) for v in row) for row in fit)
    plain: dict[str, dict[str, Any]] = {}
    base_chain = ReplicaChain(base_plan, {})
    for m in modules:
        with torch.no_grad():
            y = base_chain.stage_alone(m, xs[m])[0].numpy()
        plain[m] = {"y": y, "psnr": display_psnr(y, imgs[f"plain:{m}"])}
    first = imgs[f"plain:{MODULE}"]
    noise = [{"what": f"{MODULE} unblended", "psnr": display_psnr(imgs[f"plain:{MODULE}#dup"], first)}]
    if f"plain:{MODULE}#xproc" in outs:
        noise[0]["psnr_other_process"] = display_psnr(outs[f"plain:{MODULE}#xproc"], first)
    for s in runs:
        rec, m = s["rec"], s["rec"]["module"]
        if s["name"] in failed:
            rec["darktable_failed"] = failed[s["name"]]
            continue
        want = outs[s["name"]]
        if cam is not None:
            s["plan"].context = dataclasses.replace(s["plan"].context, camera_matrix=cam)
        with torch.no_grad():
            got = _replica(s["plan"], m, xs)[0].numpy()
        rec["psnr"] = display_psnr(got, want)
        rec["darktable_blend_vs_unblended"] = display_psnr(imgs[f"plain:{m}"], want)
        staged = [st.blend for st in s["plan"].stages if st.module == m and st.blend is not None]  # with its forms
        blend = staged[0] if staged else uniform_blend(s["history"].find(m))
        if blend is not None and blend.mask is not None and blend.opacity > 0:
            y = torch.from_numpy(plain[m]["y"])[None]
            hw = (int(xs[m].shape[-2]), int(xs[m].shape[-1]))
            dm = drawn_mask(blend.drawn, hw, 1.0, None, xs[m].dtype) if blend.drawn is not None else None  # scale 1
            if blend.colorspace == 2:  # Lab: the mask of the Lab images (replica/blend_lab.py)
                pm = lab_mask(rgb_to_lab(xs[m]), rgb_to_lab(y), blend.mask, blend.opacity)
            elif blend.colorspace == 3:
                pm = display_mask(xs[m], y, blend.mask, blend.opacity)
            elif camera_blend(blend, s["plan"].context.modules, m):  # before colorin: on camera RGB
                ctx1 = dataclasses.replace(s["plan"].context, scale=1.0, full_size=None)
                pm = stage_mask(xs[m], y, blend, blend.opacity, m, ctx1)
            else:
                pm = parametric_mask(xs[m], y, blend.mask, blend.opacity, drawn=dm)
            rec["mask_mean"] = float(pm.mean()) / blend.opacity
        if s["name"] + "#dup" in outs:
            d = display_psnr(outs[s["name"] + "#dup"], want)
            noise.append({"what": f"{rec['kind']} #{rec['i']}: {rec['setting']}", "psnr": d, "replica": rec["psnr"]})
            if s["name"] + "#xproc" in outs:
                noise[-1]["psnr_other_process"] = display_psnr(outs[s["name"] + "#xproc"], want)
    replica_s = time.perf_counter() - t

    summary = []
    for kind in all_kinds:
        recs = [s["rec"] for s in settings if s["rec"]["kind"] == kind.name]
        if not recs:
            continue
        ps = [r["psnr"] for r in recs if "psnr" in r]
        refused = [r for r in recs if "refused" in r]
        worst = min((r for r in recs if "psnr" in r), key=lambda r: r["psnr"], default=None)

        def med(k: str, recs: list[dict[str, Any]] = recs) -> float | None:
            v = [r[k] for r in recs if k in r]
            return statistics.median(v) if v else None

        summary.append({
            "kind": kind.name, "group": kind.group, "module": kind.module, "drawn": len(recs), "n": len(ps),
            "refused": len(refused), "refusal": refused[0]["refused"] if refused else None,
            "median": statistics.median(ps) if ps else None, "worst": min(ps) if ps else None,
            "worst_setting": worst["setting"] if worst else None,
            "unmeasured": sum("unmeasured" in r for r in recs),
            "met": bool(ps) and not refused and len(ps) == len(recs) and statistics.median(ps) >= GOAL,
            "darktable_blend_vs_unblended_median": med("darktable_blend_vs_unblended"),
            "mask_mean_range": [min(v), max(v)] if (v := [r["mask_mean"] for r in recs if "mask_mean" in r]) else None,
        })  # fmt: skip
        s0 = summary[-1]
        if ps:
            fig = f"median {s0['median']:.2f}, worst {s0['worst']:.2f} dB over {len(ps)}/{len(recs)}"
        else:
            fig = f"refused: {s0['refusal'][:140]}" if refused else "not measured"
        print(f"  {kind.name}: {fig} ({'met' if s0['met'] else 'NOT met'})", flush=True)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "meta": meta,
        "darktable": dt.version,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "raw": {"source": "coffee", "size": args.size, "edit": {MODULE: EDIT, "exposure": {"exposure": EXPOSURE}}},
        "render_shape": list(imgs[f"in:{MODULE}"].shape),
        "spans": {str(k): v for k, v in spans.items()},
        "unblended": {m: plain[m]["psnr"] for m in modules},
        "noise": noise,
        "kinds": summary,
        "settings": [s["rec"] for s in settings],
        "seconds": {
            "total": time.perf_counter() - t_start,
            "darktable": render_s,
            "plan": plan_s,
            "replica": replica_s,
            "darktable_processes": processes,
        },  # fmt: skip
    }


def _replica(plan: Any, module: str, xs: dict[str, Any]) -> Any:
    """The module's stage as the chain runs it on darktable's input to it (``xs``: by module); one blending
    through a raster mask: the chain from its source on, on the source's input (the source hands its mask on)."""
    from darkproxy.replica.chain import ReplicaChain

    keys = plan.keys
    st = plan.stages[keys.index(module)]
    if st.raster is None:
        return ReplicaChain(plan, {}).stage_alone(module, xs[module])
    cut = dataclasses.replace(plan, stages=plan.stages[keys.index(st.raster.key) : keys.index(module) + 1])
    chain = ReplicaChain(cut, {})
    return chain.run_stages(xs[st.raster.key], chain.history_u())[1][-1]


# ----------------------------------------------------------------- report
def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def markdown(res: dict[str, Any]) -> str:
    m, sec = res["meta"], res["seconds"]
    ks = res["kinds"]
    met = [k for k in ks if k["met"]]
    h, w = res["render_shape"][-2:]
    n_set = res["args"]["settings"]
    L = [
        "# Blending and masks: the replica against darktable's tap-outs (bench/bench_blending.py)",
        "",
        f"{m['date']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} ({m['torch_threads']} threads), load "
        f"{m['loadavg']} at the start, {m['loadavg_end']} at the end; darktable {res['darktable']}. "
        f"{sec['total']:.0f} s in all: darktable-cli {sec['darktable']:.0f} s in {sec['darktable_processes']} "
        f"processes, the replica's plans {sec['plan']:.0f} s, its stages {sec['replica']:.0f} s (renders reused "
        "from an earlier run are not re-timed).",
        "",
        f"Image: synthetic DNG of coffee, {res['raw']['size']} px, rendered {w}x{h} px (scale 1), darktable's "
        f"default history + exposure +{EXPOSURE:g} EV + color balance rgb {EDIT}. Each kind: {n_set} random "
        f"settings (seed {res['args']['seed']}, per kind). Figure: display PSNR of the replica's stage + blend on "
        "darktable's input to the module against darktable's tap-out of the blended module. Checks beside it: "
        "'dt blend effect': darktable's blended output against its own unblended output (high = the blend "
        "changed little; a replica ignoring the blend would score about that); 'mask share': the replica's "
        "mask mean over the opacity. The method: the docstring of bench/bench_blending.py.",
        "",
        f"**Issue 28's goal** (each blend mode and mask kind >= {GOAL:g} dB median, every setting run): met for "
        f"{len(met)} of {len(ks)} kinds; not met: "
        + (
            ", ".join(
                f"{k['kind']} ({'refused' if k['refused'] else _f(k['median']) + ' dB'})" for k in ks if not k["met"]
            )
            or "none"
        )  # fmt: skip
        + ".",
        "",
        "## darktable's noise and the stages unblended",
        "",
        "| what | PSNR (dB) | PSNR, another process (dB) |",
        "|---|---|---|",
    ]
    for mod, p in res["unblended"].items():
        L.append(f"| replica's {mod} stage unblended vs darktable's unblended tap-out | {p:.2f} | |")
    for n in res["noise"]:
        extra = f" (the replica on it: {n['replica']:.2f})" if "replica" in n else ""
        L.append(f"| darktable, the same sidecar twice in one process: {n['what'].replace('|', '/')}{extra} | "
                 f"{n['psnr']:.2f} | {_f(n.get('psnr_other_process'))} |")  # fmt: skip
    titles = {
        "mode": f"Blend modes ({MODULE}, uniformly, RGB (scene))",
        "mask": f"Parametric masks ({MODULE}, RGB (scene); mode normal unless the kind says)",
        "uniform": "Before colorin (exposure, RGB (scene) on camera RGB: replica/blend_camera.py)",
        "space": f"Blend colour spaces Lab and RGB (display) ({MODULE}; modes uniformly, reversed at random; masks "
        "in mode normal unless the kind says)",
        "drawn": f"Drawn masks ({MODULE}, RGB (scene), mode normal; random shapes in the sidecar's masks history)",
        "expected refused": "Expected refused, but the replica runs them",
    }
    for group, title in titles.items():
        rows = [k for k in ks if k["group"] == group and (group != "expected refused" or k["refused"] < k["drawn"])]
        if not rows:
            continue
        L += ["", f"## {title}", ""]
        L.append("| kind | n | median | worst | >= 45 dB median | dt blend effect (median) | mask share | "
                 "worst setting |")  # fmt: skip
        L.append("|---|---|---|---|---|---|---|---|")
        for k in rows:
            mm = k["mask_mean_range"]
            share = f"{mm[0]:.2f}-{mm[1]:.2f}" if mm else ""
            verdict = "met" if k["met"] else "**NOT met**" + (f" ({k['refused']} refused)" if k["refused"] else "")
            L.append(
                f"| {k['kind']} | {k['n']} | {_f(k['median'])} | {_f(k['worst'])} | {verdict} | "
                f"{_f(k['darktable_blend_vs_unblended_median'])} | {share} | "
                f"{(k['worst_setting'] or '').replace('|', '/')} |"
            )
    rows = [k for k in ks if k["refused"]]
    if rows:
        L += ["", "## Refused by the replica (not met)", ""]
        L += ["| kind | module | settings refused | the replica's refusal (first setting) |", "|---|---|---|---|"]
        for k in rows:
            L.append(f"| {k['kind']} | {k['module']} | {k['refused']}/{k['drawn']} | "
                     f"{(k['refusal'] or '').replace('|', '/')} |")  # fmt: skip
    ran = [k for k in ks if k["unmeasured"]]
    if ran:
        L += ["", "Run by the replica on a module not measured here (not met): " + ", ".join(k["kind"] for k in ran)]
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", type=int, default=8, help="random settings per kind (default 8)")
    ap.add_argument("--size", type=int, default=128, help="raw long side and render size in px (default 128)")
    ap.add_argument("--seed", type=int, default=28)
    ap.add_argument("--batch", type=int, default=150, help="renders per darktable-cli process (default 150)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/dp/blending"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--fresh", action="store_true", help="render again, ignoring renders kept in WORK/renders")
    ap.add_argument("--only", default="", help="comma-separated words: only the kinds whose name has one")
    args = ap.parse_args()
    os.environ.setdefault("DARKPROXY_HOME", str(args.work / "home"))
    from darkproxy.fsutil import write_json, write_text_atomic

    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "blending.json", res, indent=1)
    write_text_atomic(args.out / "blending.md", markdown(res))
    print(f"wrote {args.out / 'blending.md'} and blending.json ({res['seconds']['total']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
