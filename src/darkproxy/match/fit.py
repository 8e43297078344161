"""One (raw, reference) pair matched: darktable's renders, the aligned reference, the
chain's sliders fitted through the replica, result.xmp and result.dtstyle rendered by darktable."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from darkproxy.data.paramspace import split_module_params
from darkproxy.data.ranges import LOOK_FREE
from darkproxy.match._common import Log, MatchError
from darkproxy.match.align import Alignment, align_reference
from darkproxy.match.reference import read_reference
from darkproxy.match.report import write_report

if TYPE_CHECKING:
    from darkproxy.match.demosaic import Ranked

# darktable's scene-to-display tone mappers: a history runs one (filmic rgb, darktable's default up to 5.0; sigmoid
# from 5.2 on); in a chain, TONE_MAPPER stands for the history's own
TONE_MAPPERS = ("filmicrgb", "sigmoid")
TONE_MAPPER = "tonemapper"
DEFAULT_CHAIN = ("exposure", "colorbalancergb", TONE_MAPPER)
# --shared's default: one look pooled over a whole shoot holds color calibration's gains and an rgb curve too
# (bench/results/match_shared_cc_curve.md: held out 2.21 and 2.46 against the default chain's 3.48 and 3.21, in
# 103 and 119 s against 102 and 91); plain --pairs over-fits them (4.62 and 6.44 held out against 3.58 and 5.65)
SHARED_CHAIN = (*DEFAULT_CHAIN, "channelmixerrgb", "rgbcurve")


# ----------------------------------------------------------------- matching
def free_names(chain: Any, modules: Sequence[str], free: Sequence[str] | None) -> list[str]:
    from darkproxy.errors import UnknownParam

    names = chain.param_space.names
    if free:
        for n in free:
            if n not in names:
                raise UnknownParam(f"{n!r} is not a slider of this chain; it has: {', '.join(names) or 'none'}")
        return list(free)
    return [f"{m}.{p}" for m in modules for p in LOOK_FREE.get(m, ()) if f"{m}.{p}" in names]


def split_chain(chain: Sequence[str]) -> tuple[list[str], list[str]]:
    """``--chain``'s entries as (modules matched, modules turned off): ``-MODULE`` turns the history's module off
    (``-filmicrgb``: no tone mapper, a display-referred edit whose rgb curve clips at the display's white, as a
    LibRaw or camera rendering does)."""
    on = [m for m in chain if not m.startswith("-")]
    off = [m[1:] for m in chain if m.startswith("-")]
    both = sorted(set(on) & set(off))
    if both:
        raise MatchError(f"--chain: {', '.join(both)} is both matched and turned off (-{both[0]})")
    return on, off


def _enabled_tone_mappers(history: Any) -> list[str]:
    return [m for m in TONE_MAPPERS if (it := history.find(m)) is not None and it.enabled]


def history_tone_mapper(dt: Any, raw: str | os.PathLike[str], xmp: str | os.PathLike[str] | None) -> str:
    """The tone mapper the match starts from: the one ``xmp`` enables, else the one darktable's default history of
    ``raw`` enables (filmic rgb up to darktable 5.0, sigmoid from 5.2 on), else filmic rgb."""
    from darkproxy.darktable.xmp import read_xmp

    for hist in ((read_xmp(xmp).compressed(),) if xmp else ()) + (dt.default_history(Path(raw)),):
        if found := _enabled_tone_mappers(hist):
            return found[0]
    return TONE_MAPPERS[0]


def resolve_chain(
    dt: Any, raw: str | os.PathLike[str], xmp: str | os.PathLike[str] | None, chain: Sequence[str]
) -> list[str]:
    """``chain`` with ``tonemapper`` (and ``-tonemapper``) read as :func:`history_tone_mapper`; a chain that
    matches one tone mapper turns off the other one the history enables (darktable would apply both)."""
    from darkproxy.darktable.xmp import read_xmp

    out = list(chain)
    if any(m.lstrip("-") == TONE_MAPPER for m in out):
        tone = history_tone_mapper(dt, raw, xmp)
        out = [m.replace(TONE_MAPPER, tone) if m.lstrip("-") == TONE_MAPPER else m for m in out]
    on, off = split_chain(out)
    if any(m in TONE_MAPPERS for m in on):
        base = read_xmp(xmp).compressed() if xmp else dt.default_history(Path(raw))
        out += [f"-{m}" for m in _enabled_tone_mappers(base) if m not in on and m not in off]
    return out


def plan_history(dt: Any, raw: Path, chain: Sequence[str], xmp: str | os.PathLike[str] | None) -> tuple[Any, Any]:
    from darkproxy.replica.plan import plan_replica
    from darkproxy.replica.references import replica_history

    on, off = split_chain(resolve_chain(dt, raw, xmp, chain))
    if not on:
        raise MatchError("--chain is empty: name the modules to match, e.g. exposure,colorbalancergb,tonemapper")
    for m in on + off:
        if m not in dt.schemas:
            from darkproxy.errors import UnknownModule

            raise UnknownModule(f"--chain: {m!r} is not a darktable {dt.version} module")
    from darkproxy.darktable.xmp import read_xmp
    from darkproxy.data.ranges import NEUTRAL_START

    base = read_xmp(xmp).compressed() if xmp else dt.default_history(raw)
    # a module the history lacks starts neutral (NEUTRAL_START), one it has (even off) from its own values
    hist = replica_history(
        dt, raw, xmp, {m: {} if base.find(m) is not None else dict(NEUTRAL_START.get(m, {})) for m in on}, off
    )
    return hist, plan_replica(dt, hist, raw, from_mosaic=bool(on_mosaic(dt, hist, on)))


def on_mosaic(dt: Any, history: Any, modules: Sequence[str]) -> list[str]:
    """The matched ``modules`` (:func:`split_chain`'s first list) that run on the raw's mosaic (white balance:
    temperature): the match then starts from the raw's CFA (the replica's ``--from-mosaic``) instead of
    darktable's demosaiced image."""
    from darkproxy.darktable.tapout import runs_on_mosaic

    order = history.pipe_order(dt.schemas)
    return [m for m in modules if runs_on_mosaic(order, m)]


class RegionChain(torch.nn.Module):
    """A replica chain whose output is cut to ``box`` (top, left, bottom, right): from the mosaic the chain's
    input cannot be cropped as its output is (demosaic reads neighbours, flip turns it), so the whole image
    runs and the loss sees the region the reference covers."""

    def __init__(self, chain: Any, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.chain = chain
        self.box = box
        self.param_space = chain.param_space
        self.display_output = getattr(chain, "display_output", False)
        self.full_image_only = True

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        t, left, b, r = self.box
        return self.chain(x, u)[..., t:b, left:r]


# a whole-image stage the match adds at its identity (local contrast) joins the fit late: first the pointwise
# sliders with it passed over (the engine samples pixels: seconds, where the whole image through the local
# laplacian at every iteration had not finished one 0.25 MP image in 14 min), then every slider together on the
# whole region from there, for at most this many iterations and one restart, kept only when its loss is lower (on
# LibRaw's references, with no local contrast to find, it was not for two of four: match_libraw_bilat_612.md)
LATER_ITERS = 100


class SkippingChain(torch.nn.Module):
    """``chain`` (a :class:`~darkproxy.replica.ReplicaChain`) with the stages keyed in ``skip`` passed over:
    stages at their identity, so its output is the chain's; per-pixel (the engine samples pixels) when every
    other stage is."""

    def __init__(self, chain: Any, skip: Sequence[str]) -> None:
        super().__init__()
        self.chain = chain
        self.skip = frozenset(skip)
        self.param_space = chain.param_space
        self.display_output = getattr(chain, "display_output", False)
        self.full_image_only = not chain.pointwise(self.skip) or chain.plan.from_mosaic

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.chain.run_stages(x, u, skip=self.skip)[0]


def later_stages(prep: Prepared, modules: Sequence[str]) -> list[str]:
    """The keys of the chain's whole-image stages that start at their identity (:data:`NEUTRAL_START`, added by the
    match to a history without them), fitted after the others (:func:`fit_sliders`)."""
    from darkproxy.darktable.params import param_value
    from darkproxy.data.ranges import NEUTRAL_START

    if prep.plan.from_mosaic:
        return []
    out = []
    for st in prep.plan.stages:
        start = NEUTRAL_START.get(st.module)
        if st.module not in modules or st.kind != "exact" or start is None or prep.chain.stage_pointwise(st):
            continue
        try:
            neutral = all(abs(float(param_value(st.values, k)) - float(v)) < 1e-6 for k, v in start.items())
        except KeyError:
            neutral = False
        if neutral and st.opacity is None:
            out.append(st.key)
    return out


def fit_sliders(prep: Prepared, names: list[str], cfg: Any, later: Sequence[str], log: Log | None = None) -> Any:
    """The sliders ``names`` fitted through ``prep``'s chain (:func:`darkproxy.engines.regress.regress`). With
    ``later`` stage keys (:func:`later_stages`), in two steps: the other sliders with those stages passed over
    (``cfg`` as given), then every slider on the whole region starting from there (at most :data:`LATER_ITERS`
    iterations, one restart). Returns ``(params {name: value}, loss, seconds, steps)``."""
    import dataclasses

    from darkproxy.engines.regress import regress

    say = log or (lambda s: None)
    model, inp, tgt = prep.fit_problem()
    then = [n for n in names if n.split(".", 1)[0] in later]
    first = [n for n in names if n not in then]
    if not then or not first:
        res = regress(model, inp, tgt, cfg)
        return {n: float(res.params[n]) for n in names}, res.loss, res.seconds, None
    r1 = regress(SkippingChain(prep.chain, later), inp, tgt, dataclasses.replace(cfg, params=first))
    # the second regression's restart 0 starts at the values given: these, and the later stages' identity
    start = {n: float(r1.params[n]) for n in first}
    cfg2 = dataclasses.replace(cfg, params=list(names), iters=min(cfg.iters, LATER_ITERS), restarts=1)
    say(f"then every slider with {', '.join(later)} on the whole region from there ({cfg2.iters} iters)")
    r2 = regress(model, inp, tgt, cfg2, fixed=start)
    kept = r2.loss < r1.loss  # both on the whole region; the first with the later stages at their identity
    steps = [
        {"sliders": first, "seconds": r1.seconds, "loss": r1.loss},
        {"sliders": list(names), "seconds": r2.seconds, "loss": r2.loss, "kept": kept},
    ]
    if not kept:  # the whole-image stages did not help: they stay at their identity
        say(f"{', '.join(later)} did not lower the loss ({r2.loss:.5f} against {r1.loss:.5f}): left at identity")
        return {n: float(r1.params[n]) for n in names}, r1.loss, r1.seconds + r2.seconds, steps
    return {n: float(r2.params[n]) for n in names}, r2.loss, r1.seconds + r2.seconds, steps


# per-raw modules a style must not carry (the camera's black levels, white balance, matrix, orientation...)
RAW_SPECIFIC = ("flip", "lens", "crop", "ashift", "clipping")


def make_style(dt: Any, result: Any, name: str, description: str, off: Sequence[str] = ()) -> Any:
    """The style of a matched history: every enabled module after demosaic but the
    raw-specific ones and those darktable always runs (colorin, colorout...): the
    chain's modules and darktable's auto-applied presets (exposure, the tone mapper),
    and the modules ``off`` (``--chain``'s ``-MODULE``) as the history has them, off.
    Applied with ``--style-overwrite`` (darktable-cli) on darktable's defaults it
    gives the matched history back; darktable-cli's default, append, would add a
    second exposure and tone mapper instance."""
    from darkproxy.darktable.styles import style_from_items
    from darkproxy.darktable.tapout import PASS_THROUGH, runs_on_mosaic

    h = result.compressed()
    order = h.pipe_order(dt.schemas)
    items = [
        it
        for it in h.items
        if (it.enabled or it.operation in off)
        and it.operation in order
        and not runs_on_mosaic(order, it.operation)
        and it.operation not in PASS_THROUGH
        and it.operation not in RAW_SPECIFIC
    ]
    items.sort(key=lambda it: order.index(it.operation))
    return style_from_items(name, items, description)


def region_figures(img: np.ndarray, ref: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
    """ΔE2000 (mean, p95) and display PSNR of two sRGB display images ``(3, H, W)``
    over ``box`` (top, left, bottom, right)."""
    from darkproxy.colour.metrics import display_image_deltae2000, display_image_psnr

    t, left, b, r = box
    a, c = img[:, t:b, left:r], ref[:, t:b, left:r]
    de, de95 = display_image_deltae2000(a, c)
    return {"deltae_mean": de, "deltae_p95": de95, "psnr": display_image_psnr(a, c)}


@dataclass
class Prepared:
    """One (raw, reference) pair ready to match: the history (chain modules on) and
    its replica plan, darktable's renders at ``size`` (the replica's input; its
    sRGB export of the default history, ``default_img``), the reference aligned to
    them and the replica chain."""

    raw: Path
    reference: str | None
    profile: str
    history: Any
    plan: Any
    size: int
    input: np.ndarray
    chain_input: np.ndarray
    default_img: np.ndarray
    aligned: np.ndarray
    alignment: Alignment
    chain: Any

    def crop(self, img: np.ndarray) -> np.ndarray:
        t, left, b, r = self.alignment.box
        return img[:, t:b, left:r]

    def fit_problem(self, box: tuple[int, int, int, int] | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
        """The model, input and target the sliders are fitted on: the chain on ``box`` (default: the region
        the reference covers; from the mosaic: the whole image through the chain, its output cut to it)."""
        t, left, b, r = box or self.alignment.box
        tgt = self.aligned[:, t:b, left:r]
        if self.plan.from_mosaic:
            return RegionChain(self.chain, (t, left, b, r)), self.chain_input, tgt
        return self.chain, self.input[:, t:b, left:r], tgt


def prepare(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    chain: Sequence[str] = DEFAULT_CHAIN,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    log: Log | None = None,
) -> Prepared:
    """Read and align ``reference``, render ``raw`` with darktable and build the replica (see the module docstring)."""
    from darkproxy.engines.regress.engine import preload_optimizer
    from darkproxy.errors import RawError
    from darkproxy.replica.fit import render_export
    from darkproxy.replica.references import pick_size, render_references
    from darkproxy.replica.run import build_chain

    say = log or (lambda s: None)
    raw = Path(raw)
    if not raw.is_file():
        raise RawError(f"raw file {raw} does not exist")
    preload_optimizer()  # the fit's optimiser imports torch._dynamo (~1 s): while darktable renders
    if isinstance(reference, np.ndarray):
        if reference.ndim != 3 or reference.shape[0] != 3 or not np.isfinite(reference).all():
            raise MatchError(f"a reference array must be finite sRGB display values (3, H, W), got {reference.shape}")
        ref_img, profile, ref_name = reference.astype(np.float32), "array: sRGB", None
    else:
        (ref_img, profile), ref_name = read_reference(reference), str(reference)
    hist, plan = plan_history(dt, raw, chain, xmp)
    # from the mosaic, the replica's default size is the raw's (its mosaic stages' figures are at full size):
    # a match needs no more than 512 px, darktable's half-size demosaic and resampling below full size
    size = pick_size(raw, plan, max_size or (min(pick_size(raw, plan, None), 512) if plan.from_mosaic else None))
    say(f"rendering {raw.name} with darktable at {size} px (the replica's input and darktable's defaults)")
    renders = render_references(dt, raw, plan, size, export=False, taps=False)
    default_img = render_export(dt, raw, dt.default_history(raw) if xmp is None else hist, size)
    aligned, al = align_reference(ref_img, default_img)
    say(
        f"reference aligned: scale {al.scale[0]:.4f} x {al.scale[1]:.4f}, shift ({al.shift[0]:+.1f}, "
        f"{al.shift[1]:+.1f}) px, edge correlation {al.correlation:.2f}"
    )
    return Prepared(
        raw,
        ref_name,
        profile,
        hist,
        plan,
        size,
        renders.input,
        renders.chain_input,
        default_img,
        aligned,
        al,
        build_chain(plan, renders),
    )


def match_config(config: Any, names: list[str]) -> Any:
    from darkproxy.engines.regress import RegressConfig

    cfg = config or RegressConfig(iters=300, restarts=4, lr=0.1, polish=10)
    cfg.params = names
    cfg.record = False
    return cfg


def render_result(
    dt: Any,
    prep: Prepared,
    matched: Mapping[str, float],
    out: Path,
    demosaic: bool = False,
    log: Log | None = None,
    ranked: Ranked | None = None,
    setting: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """Write ``result.xmp`` (``prep``'s history with ``matched``; with ``demosaic``, the demosaic setting closest
    to the reference, :func:`darkproxy.match.demosaic.choose_demosaic`), render it with darktable, write the
    images; return the figures (result and defaults vs the reference; ``demosaic``: the settings tried) and the
    result history. ``ranked``: the renders of that history with each setting already made
    (:func:`~darkproxy.match.demosaic.rank_demosaic`), of which ``setting`` (a label; one chosen for many images)
    is kept, or the history's own where it was not rendered."""
    from darkproxy.colour.metrics import display_image_psnr
    from darkproxy.match.demosaic import choose_demosaic
    from darkproxy.replica.fit import render_export
    from darkproxy.viz.images import error_map_display, save_png, to_uint8

    out.mkdir(parents=True, exist_ok=True)
    result = dt.edit(prep.history, updates=split_module_params(matched))
    tried: list[dict[str, Any]] | None = None
    if ranked is not None:
        i = ranked.index(setting) if setting else None
        result, result_img, tried = ranked.pick(0 if i is None else i, log)
    elif demosaic:
        result, result_img, tried = choose_demosaic(
            dt, prep.raw, result, prep.aligned, prep.alignment.box, prep.size, log
        )
    else:
        result_img = render_export(dt, prep.raw, result, prep.size)
    result.write(out / "result.xmp")
    u = torch.as_tensor(prep.chain.param_space.normalize({**prep.chain.param_space.defaults(), **matched}))
    with torch.no_grad():
        rep_img = prep.chain(torch.from_numpy(prep.chain_input)[None], u[None].float())[0].numpy()
    ref_show = np.where(np.isfinite(prep.aligned), prep.aligned, 0.0)
    save_png(out / "reference.png", to_uint8(ref_show))
    save_png(out / "default.png", to_uint8(prep.default_img))
    save_png(out / "result.png", to_uint8(result_img))
    save_png(out / "replica.png", to_uint8(rep_img))
    save_png(out / "error_default.png", error_map_display(prep.default_img, ref_show))
    save_png(out / "error_result.png", error_map_display(result_img, ref_show))
    fig = region_figures(result_img, ref_show, prep.alignment.box)
    base = region_figures(prep.default_img, ref_show, prep.alignment.box)
    return {
        "raw": str(prep.raw),
        "reference": prep.reference,
        "reference_profile": prep.profile,
        "size": [int(prep.default_img.shape[2]), int(prep.default_img.shape[1])],
        "alignment": prep.alignment.to_json(),
        **fig,
        "default_deltae_mean": base["deltae_mean"],
        "default_deltae_p95": base["deltae_p95"],
        "default_psnr": base["psnr"],
        "replica_psnr": display_image_psnr(prep.crop(rep_img), prep.crop(ref_show)),
        "xmp": str(out / "result.xmp"),
        **({"demosaic": tried} if tried is not None else {}),
    }, result


def match(
    dt: Any,
    raw: str | os.PathLike[str],
    reference: str | os.PathLike[str] | np.ndarray,
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    xmp: str | os.PathLike[str] | None = None,
    max_size: int | None = None,
    config: Any = None,
    style_name: str | None = None,
    truth: Mapping[str, float] | None = None,
    log: Log | None = None,
    chain_auto: Sequence[Mapping[str, Any]] | None = None,
    demosaic: bool = True,
) -> dict[str, Any]:
    """Match ``raw``'s edit to ``reference`` (a path, or a float ``(3, H, W)`` sRGB
    display array in ``[0, 1]``). Writes into ``out_dir``: ``result.xmp``,
    ``result.dtstyle``, ``reference.png`` (aligned), ``default.png`` (darktable's
    defaults), ``result.png`` (darktable's render of result.xmp), ``replica.png``,
    ``error_default.png``, ``error_result.png``, ``summary.json``, ``index.html``;
    returns the summary (figures from darktable's render of result.xmp, over the
    region the reference covers). ``truth``: hidden slider values (``"module.param"``)
    of a darktable-made reference, to report slider errors. ``chain_auto``: the steps that chose ``chain``
    (:func:`darkproxy.match.auto.match_auto`), kept in the summary. ``demosaic``: choose the raw's demosaic
    setting against the reference after the fit (:mod:`darkproxy.match.demosaic`; off: the history's own)."""
    from darkproxy.fsutil import write_json

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    chain = resolve_chain(dt, raw, xmp, chain)
    prep = prepare(dt, raw, reference, chain, xmp, max_size, log)
    modules = [m for m in chain if m in [st.module for st in prep.plan.prefix + prep.plan.stages]]
    names = free_names(prep.chain, modules, free)
    if not names:
        raise MatchError(f"nothing to match: the chain {', '.join(chain)} has no free sliders (give --free)")
    cfg = match_config(config, names)
    later = later_stages(prep, modules)
    say(
        f"matching {len(names)} sliders through the replica ({cfg.restarts} restarts x {cfg.iters} iters"
        + (f"; {', '.join(later)} after the others" if later else "")
        + ")"
    )
    matched, loss, seconds, steps = fit_sliders(prep, names, cfg, later, say)
    out = Path(out_dir)
    say("rendering result.xmp with darktable")
    summary, result = render_result(dt, prep, matched, out, demosaic, say)
    name = style_name or f"darkproxy match {prep.raw.stem}"
    off = split_chain(chain)[1]
    description = f"darkproxy match of {prep.raw.name} to {prep.reference or 'a reference'}"
    make_style(dt, result, name, description, off).write(out / "result.dtstyle")
    summary.update(
        {
            "darktable_version": dt.version,
            "chain": modules,
            **({"off": off} if off else {}),
            "stages": [{"module": s.module, "kind": s.kind} for s in prep.plan.prefix + prep.plan.stages],
            "params": matched,
            "free": names,
            "loss": loss,
            "regress_seconds": seconds,
            **({"fit_steps": steps} if steps else {}),
            "style": str(out / "result.dtstyle"),
            "style_name": name,
        }
    )
    if chain_auto is not None:
        summary["chain_auto"] = list(chain_auto)
    if truth:
        sp = prep.chain.param_space
        summary["truth"] = dict(truth)
        summary["param_errors"] = {n: sp.spec(n).error(matched[n], truth[n])[1] for n in names if n in truth}
    summary["seconds"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    say(
        f"ΔE2000 {summary['deltae_mean']:.2f} (darktable's defaults {summary['default_deltae_mean']:.2f}), "
        f"{summary['seconds']:.0f} s"
    )
    return summary
