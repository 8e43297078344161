"""``darkproxy match --chain auto``: the chain grown stage by stage while the reference's held-out pixels say
it helps.

Exposure always runs; then each of :data:`AUTO_STEPS` in turn is added (a step of alternatives: each tried, the
best one considered), its sliders (and the kept ones) fitted through the replica on one half of the region
the reference covers (split across its long side) and the ΔE2000 of the replica's output measured on the other
half. A stage is kept when it lowers that held-out ΔE2000 by at least :data:`MIN_GAIN` (relative) below the best
chain so far; the first figure to beat is darktable's defaults on the same half. The replica's stages here are
exact ports, so its held-out figure is darktable's up to the ports' error (tens of dB below the differences
measured); the match's final figures are darktable's own render of result.xmp, as always.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from darkproxy.match._common import Log
from darkproxy.match.fit import (
    TONE_MAPPER,
    Prepared,
    free_names,
    history_tone_mapper,
    match,
    match_config,
    prepare,
    resolve_chain,
)

BASE_CHAIN = ("exposure",)
# tone mapper, colour grading, white balance: the order photographers reach for them (white balance: it moves
# the match onto the raw's mosaic, the costliest replica); then color calibration's channel gains and
# colourfulness (pointwise, after white balance: what the camera's colour rendering adds to it); last a tone
# curve (rgb curve's nodes), what a camera's tone rendering adds beyond a tone mapper. Each step lists its
# alternatives, each the stages it adds, the best one considered: the tone mapper fitted (the history's: filmic
# rgb or sigmoid), or none and a tone curve (the tone mapper off: a display-referred rendering that clips at white,
# as LibRaw's and many camera JPEGs do; it needs the curve to follow their gamma, so the two come as one
# alternative). Stages already kept are not added twice.
AUTO_STEPS: tuple[tuple[tuple[str, ...], ...], ...] = (
    ((TONE_MAPPER,), (f"-{TONE_MAPPER}", "rgbcurve")),
    (("colorbalancergb",),),
    (("temperature",),),
    (("channelmixerrgb",),),
    (("rgbcurve",),),
)
MIN_GAIN = 0.03  # a stage must lower the held-out ΔE2000 by 3 % to be kept (below: noise of the split)


def halves(box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """``box`` (top, left, bottom, right) cut in two across its long side: (fit half, held-out half)."""
    t, left, b, r = box
    if r - left >= b - t:
        m = (left + r) // 2
        return (t, left, b, m), (t, m, b, r)
    m = (t + b) // 2
    return (t, left, m, r), (m, left, b, r)


def heldout_deltae(prep: Prepared, modules: Sequence[str], config: Any) -> float:
    """Fit the look sliders of ``modules`` on the first half of ``prep``'s region; the ΔE2000 mean of the
    replica's output on the other half against the reference."""
    from darkproxy.colour.metrics import display_image_deltae2000
    from darkproxy.engines.regress import regress

    fit_box, (t, left, b, r) = halves(prep.alignment.box)
    names = free_names(prep.chain, modules, None)
    cfg = match_config(config, names)
    model, inp, tgt = prep.fit_problem(fit_box)
    res = regress(model, inp, tgt, cfg)
    with torch.no_grad():
        out = prep.chain(torch.from_numpy(prep.chain_input)[None], torch.as_tensor(res.normalized)[None].float())
    ref = np.nan_to_num(prep.aligned)
    return display_image_deltae2000(out[0].numpy()[:, t:b, left:r], ref[:, t:b, left:r])[0]


def choose_chain(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    config: Any = None,
    log: Log | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The chain ``--chain auto`` keeps (see the module docstring) and one record per step: ``chain`` tried,
    ``heldout_deltae``, ``kept``."""
    from darkproxy.colour.metrics import display_image_deltae2000

    say = log or (lambda s: None)
    tone = history_tone_mapper(dt, raw, xmp)
    auto_steps = [[[m.replace(TONE_MAPPER, tone) for m in alt] for alt in alts] for alts in AUTO_STEPS]
    kept = list(BASE_CHAIN)
    prep = prepare(dt, raw, reference, kept, xmp, max_size)

    def prep_for(chain: Sequence[str]) -> Prepared:
        return prepare(dt, raw, reference, resolve_chain(dt, raw, xmp, list(chain)), xmp, max_size)

    _, (t, left, b, r) = halves(prep.alignment.box)
    ref = np.nan_to_num(prep.aligned)
    best = display_image_deltae2000(prep.default_img[:, t:b, left:r], ref[:, t:b, left:r])[0]
    steps: list[dict[str, Any]] = [{"chain": [], "heldout_deltae": best, "kept": True, "note": "darktable's defaults"}]
    say(f"--chain auto: darktable's defaults give ΔE2000 {best:.2f} on the held-out half")
    for i, alts in enumerate([[]] + auto_steps):  # step 0: the base chain alone
        tried = []  # (held-out ΔE2000, chain, its step) per alternative of this step
        for alt in alts or ((),):
            new = [m for m in alt if m not in kept]
            if i and not new:
                continue  # an earlier step kept it
            chain = [*kept, *new]
            if i:
                prep = prep_for(chain)
            e = heldout_deltae(prep, [m for m in chain if m in _planned(prep)], config)
            steps.append({"chain": list(chain), "heldout_deltae": e, "kept": False})
            tried.append((e, chain, steps[-1]))
        if not tried:
            continue
        e, chain, step = min(tried, key=lambda t: t[0])
        keep = not i or e < best * (1 - MIN_GAIN)
        step["kept"] = bool(keep)
        for e_alt, c_alt, st in tried:
            verdict = "kept" if st["kept"] else "left out"
            say(f"--chain auto: {' + '.join(c_alt)}: ΔE2000 {e_alt:.2f} held out ({verdict})")
        if keep:
            kept, best = list(chain), min(best, e)
    if f"-{tone}" in kept:
        kept = _tone_mapper_again(prep_for, kept, best, tone, config, steps, say)
    return kept, steps


def _tone_mapper_again(
    prep_for: Any, kept: list[str], best: float, tone: str, config: Any, steps: list[dict[str, Any]], say: Log
) -> list[str]:
    """The backward look: the tone step's alternatives compared again with every later stage kept. That step
    judged the tone mapper under what later steps remove (a colour cast that white balance takes away, which an
    rgb curve's channels had half taken): where "no tone mapper and an rgb curve" won, the history's tone
    mapper in its place (the lower held-out ΔE2000 wins, as within a step), then the rgb curve step it skipped.
    ``prep_for(chain)``: the prepared match of a chain. Returns the chain kept; the tries join ``steps``."""
    base = [m for m in kept if m not in (f"-{tone}", "rgbcurve")]
    with_tone = [*base[:1], tone, *base[1:]]
    # (chain, the share of the best so far it must beat): the alternative as within a step, the curve as a step
    for chain, factor in ((with_tone, 1.0), ([*with_tone, "rgbcurve"], 1.0 - MIN_GAIN)):
        prep = prep_for(chain)
        e = heldout_deltae(prep, [m for m in chain if m in _planned(prep)], config)
        keep = e < best * factor
        steps.append({"chain": list(chain), "heldout_deltae": e, "kept": bool(keep), "note": "backward look"})
        say(
            f"--chain auto: {' + '.join(chain)} (again, later stages kept): ΔE2000 {e:.2f} held out "
            f"({'kept' if keep else 'left out'})"
        )
        if not keep:
            break
        kept, best = list(chain), e
    return kept


def _planned(prep: Prepared) -> list[str]:
    return [st.module for st in prep.plan.prefix + prep.plan.stages]


def match_auto(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    out_dir: str | os.PathLike[str],
    free: Sequence[str] | None = None,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    config: Any = None,
    style_name: str | None = None,
    truth: Mapping[str, float] | None = None,
    log: Log | None = None,
    demosaic: bool = True,
) -> dict[str, Any]:
    """``darkproxy match --chain auto``: :func:`choose_chain`, then :func:`darkproxy.match.match` with the kept
    chain (its summary's ``chain_auto``: every step)."""
    chain, steps = choose_chain(dt, raw, reference, xmp, max_size, config, log)
    return match(
        dt, raw, reference, out_dir, chain, free, xmp, max_size, config, style_name, truth, log, steps, demosaic
    )


def match_any(dt: Any, raw: Any, reference: Any, out_dir: Any, chain: Sequence[str], **kw: Any) -> dict[str, Any]:
    """:func:`match_auto` for ``chain == ["auto"]``, else :func:`darkproxy.match.match`."""
    if list(chain) == ["auto"]:
        return match_auto(dt, raw, reference, out_dir, **kw)
    return match(dt, raw, reference, out_dir, chain, **kw)
