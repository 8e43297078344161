"""The raw's demosaic chosen against the reference: part of a camera's look no slider of the chain moves.

A camera's JPEG (and another raw developer's export) is demosaiced and smoothed its own way: fine detail, colour
moiré and noise differ from darktable's default (RCD on Bayer sensors) at the pixel level, where no tone or colour
slider reaches. On the synthetic raws' camera-look previews LMMSE with its refinement is far closer than RCD; on
LibRaw's exports (AHD, crisp) AMaZE or RCD stay best (``bench/results/demosaic_choice.md``). So the method is
chosen per reference: darktable renders the matched history with each of the sensor's :data:`BAYER` (or
:data:`XTRANS`) settings in one process and the one whose render is closest to the reference (ΔE2000 mean over
the region it covers, the match's own figure, ranked on a fixed random quarter of its pixels) is kept. The replica
is not involved (it ports RCD only): the choice is darktable's own render, after the fit, whose tone and colour
sliders it leaves as they are (a demosaic keeps local means). A sensor of neither family (monochrome,
passthrough) keeps its method. The style leaves the demosaic out (it belongs to the sensor); ``result.xmp`` has
it. Many images matched as one (``--pairs``, ``--shared``) get one setting (:func:`shared_setting`): the lowest
mean over the fitted pairs' rankings (:func:`rank_demosaic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkproxy.match._common import Log

MODULE = "demosaic"
XTRANS_FLAG = 1024  # DT_DEMOSAIC_XTRANS: X-Trans methods carry it


@dataclass(frozen=True)
class Setting:
    """One demosaic setting: enum names of darktable's introspection (``demosaicing_method``, ``lmmse_refine``),
    resolved against the installed darktable's schema (a name it lacks drops the setting)."""

    method: str
    lmmse_refine: str | None = None


# AMaZE and PPG: crisp, near LibRaw's AHD; LMMSE with refine & medians: the smooth, low-moiré rendering of
# camera JPEGs. Not tried (each setting tried costs a render): VNG4, LMMSE with median only and RCD's colour
# smoothing, closest on none of the bench's references (bench/results/demosaic_choice.md).
BAYER = (
    Setting("DT_IOP_DEMOSAIC_AMAZE"),
    Setting("DT_IOP_DEMOSAIC_PPG"),
    Setting("DT_IOP_DEMOSAIC_LMMSE", "DT_LMMSE_REFINE_3"),
)
XTRANS = (
    Setting("DT_IOP_DEMOSAIC_MARKESTEIJN"),
    Setting("DT_IOP_DEMOSAIC_MARKESTEIJN_3"),
    Setting("DT_IOP_DEMOSAIC_FDC"),
)


def _label(schema: Any, values: dict[str, int]) -> str:
    fields = {f.name: f for f in schema.fields}

    def name(field: str) -> str:
        f = fields[field]
        key = next(k for k, v in f.values.items() if v == values[field])
        return str((f.value_descriptions or {}).get(key, key))

    m = name("demosaicing_method")
    return f"{m} ({name('lmmse_refine')})" if m == "LMMSE" else m


def candidates(dt: Any, history: Any) -> list[tuple[str, dict[str, int]]]:
    """``(label, demosaic params)`` to try on ``history``: its own setting first, then the other settings of its
    sensor's family; only its own for a history whose method is of neither family (or that has no demosaic)."""
    from darkproxy.darktable.params import decode_params

    if MODULE not in dt.schemas:
        return []
    schema = dt.schemas.get(MODULE)
    it = history.compressed().find(MODULE)
    if it is None or it.modversion != schema.version:
        return []  # an old params version is not edited here: the history's own demosaic stays
    fields = {f.name: f for f in schema.fields}
    if not {"demosaicing_method", "lmmse_refine"} <= set(fields):
        return []
    own_vals = decode_params(schema, it.params)
    methods, refines = fields["demosaicing_method"].values or {}, fields["lmmse_refine"].values or {}
    own = {"demosaicing_method": int(own_vals["demosaicing_method"]), "lmmse_refine": int(own_vals["lmmse_refine"])}
    out = [(_label(schema, own), own)]
    own_name = next((k for k, v in methods.items() if v == own["demosaicing_method"]), "")
    if "PASSTHR" in own_name:  # DT_IOP_DEMOSAIC_PASSTHROUGH_* and _PASSTHR_*X: no colour interpolation to choose
        return out
    family = XTRANS if own["demosaicing_method"] & XTRANS_FLAG else BAYER
    for s in family:
        if s.method not in methods or (s.lmmse_refine is not None and s.lmmse_refine not in refines):
            continue
        vals = {
            "demosaicing_method": methods[s.method],
            "lmmse_refine": refines[s.lmmse_refine] if s.lmmse_refine else own["lmmse_refine"],
        }
        if all(vals != v for _, v in out):
            out.append((_label(schema, vals), vals))
    return out


@dataclass
class Ranked:
    """darktable's renders of one history with each demosaic setting tried (:func:`rank_demosaic`)."""

    histories: list[Any]
    images: list[Any]  # float (3, H, W) in [0, 1], or the RenderFailure darktable gave
    records: list[dict[str, Any]]  # per setting: label, params, deltae_mean (None: not rendered), chosen

    def index(self, label: str) -> int | None:
        """The setting called ``label`` that darktable rendered, if one was tried."""
        return next(
            (i for i, r in enumerate(self.records) if r["label"] == label and r["deltae_mean"] is not None), None
        )

    def pick(self, i: int, log: Log | None = None) -> tuple[Any, np.ndarray, list[dict[str, Any]]]:
        """Setting ``i`` kept: its history, its render and the records (``chosen`` set)."""
        for k, rec in enumerate(self.records):
            rec["chosen"] = k == i
        if len(self.records) > 1 and log:
            tried = ", ".join(
                f"{rec['label']} {rec['deltae_mean']:.2f}" for rec in self.records if rec["deltae_mean"] is not None
            )
            log(f"demosaic: {self.records[i]['label']} kept (ΔE2000 of darktable's render: {tried})")
        return self.histories[i], self.images[i], self.records

    def best(self) -> int:
        """The rendered setting closest to the reference."""
        done = [i for i, rec in enumerate(self.records) if rec["deltae_mean"] is not None]
        return min(done, key=lambda i: self.records[i]["deltae_mean"])


def rank_demosaic(
    dt: Any,
    raw: Path,
    history: Any,
    reference: np.ndarray,
    box: tuple[int, int, int, int],
    size: int,
    log: Log | None = None,
) -> Ranked:
    """darktable's render (8-bit sRGB export at ``size`` px) of ``history`` with each demosaic setting of
    :func:`candidates` (in one process) and its ΔE2000 mean to ``reference`` (aligned sRGB display ``(3, H, W)``,
    NaN outside ``box``) over a fixed random quarter of ``box``'s pixels. A setting darktable cannot render is
    recorded with its error and left out; the history's own failing raises."""
    from darkproxy.colour.metrics import display_image_deltae2000
    from darkproxy.darktable.render import RenderFailure
    from darkproxy.errors import DarktableRenderError
    from darkproxy.replica.fit import render_exports

    say = log or (lambda s: None)
    cands = candidates(dt, history) or [("as is", {})]
    hists = [dt.edit(history, updates={MODULE: vals}) if vals else history for _, vals in cands]
    t, left, b, r = box
    # ranked on a fixed random quarter of the pixels: a quarter of ΔE2000's cost (1.2 s a render at 1 MP); not a
    # regular grid, whose pixels all sit on one phase of the colour filter (that biased the mean by up to 0.3)
    pick = np.random.default_rng(0).random((b - t, r - left)) < 0.25

    def sample(img: np.ndarray) -> np.ndarray:
        return img[:, t:b, left:r][:, pick][:, :, None]

    ref = sample(np.nan_to_num(reference))
    outs = render_exports(dt, raw, hists, size)
    if isinstance(outs[0], RenderFailure):  # the history's own setting: the match's result cannot be rendered
        raise DarktableRenderError(outs[0].message)
    records: list[dict[str, Any]] = []
    for (label, vals), o in zip(cands, outs, strict=True):
        rec: dict[str, Any] = {"label": label, "params": vals, "deltae_mean": None, "chosen": False}
        if isinstance(o, RenderFailure):  # one setting darktable could not render: the others still compete
            rec["error"] = o.message.splitlines()[0]
            say(f"warning: demosaic {label}: {rec['error']}")
        else:
            rec["deltae_mean"] = display_image_deltae2000(sample(o), ref)[0]
        records.append(rec)
    return Ranked(hists, outs, records)


def choose_demosaic(
    dt: Any,
    raw: Path,
    history: Any,
    reference: np.ndarray,
    box: tuple[int, int, int, int],
    size: int,
    log: Log | None = None,
) -> tuple[Any, np.ndarray, list[dict[str, Any]]]:
    """``history`` with the demosaic setting whose darktable render is closest to ``reference`` over ``box``
    (:func:`rank_demosaic`); returns that history, its render (float ``(3, H, W)`` in [0, 1]) and one record per
    setting tried (``label``, ``params``, ``deltae_mean``: over a fixed random quarter of ``box``'s pixels,
    ``chosen``). With one candidate (see :func:`candidates`) it is rendered alone."""
    ranked = rank_demosaic(dt, raw, history, reference, box, size, log)
    return ranked.pick(ranked.best(), log)


def shared_means(rankings: list[Ranked]) -> dict[str, float]:
    """Per setting darktable rendered for every one of ``rankings``, its mean ΔE2000 over them (in the first
    ranking's order; empty with no ranking or no setting in common, e.g. sensors of both families)."""
    means: dict[str, float] = {}
    for rec in rankings[0].records if rankings else []:
        vals = []
        for rk in rankings:
            i = rk.index(rec["label"])
            if i is None:
                break
            vals.append(rk.records[i]["deltae_mean"])
        else:
            means[rec["label"]] = float(np.mean(vals))
    return means


def shared_setting(means: dict[str, float]) -> str | None:
    """One setting for many images (``--pairs``, ``--shared``): the lowest of :func:`shared_means` (None: no
    setting in common)."""
    return min(means, key=lambda label: means[label]) if means else None
