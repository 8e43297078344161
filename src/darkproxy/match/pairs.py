"""``darkproxy match --pairs``: one style fitted to many (raw, reference) pairs, each
pair's pixels through its own replica chain, pairs held out of the fit to measure how
the style carries."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.match._common import Log, MatchError, first_line
from darkproxy.match.demosaic import Ranked, shared_setting
from darkproxy.match.fit import (
    DEFAULT_CHAIN,
    Prepared,
    free_names,
    make_style,
    match_config,
    on_mosaic,
    prepare,
    render_result,
    resolve_chain,
    split_chain,
)
from darkproxy.match.reference import folder_files
from darkproxy.match.report import write_pairs_report


def find_pairs(folder: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """(raw, reference) pairs of ``folder`` matched by file stem (``IMG_1.CR2`` with
    ``IMG_1.jpg``); one-line :class:`MatchError` when there are none."""
    from darkproxy.data.raws import RAW_EXTENSIONS

    files, refs = folder_files(folder, "--pairs")
    pairs = [(p, refs[p.stem]) for p in files if p.suffix.lower() in RAW_EXTENSIONS and p.stem in refs]
    if not pairs:
        raise MatchError(
            f"no (raw, reference) pairs in {folder}: put each raw beside its reference with the same name "
            "(IMG_1.dng + IMG_1.jpg)"
        )
    return pairs


class PooledChains(torch.nn.Module):
    """The fitted pairs as one model for the regression engine: ``x (B, 3, 1, N)`` holds
    every pair's pixels end to end (``counts`` of them per pair) and each pair's pixels
    run through that pair's own replica chain. ``u`` is normalised in the first chain's
    param space; each chain gets the free sliders' values (mapped into its own ranges)
    and its own history's settings for every other slider.

    ``per_image`` sliders (``--shared``: one look, each image its own exposure) are not shared: the model's
    param space is the first chain's followed by one copy of each per-image slider per pair, named
    ``SLIDER@K`` (pair K, from 1), in that pair's own range, starting at its own history's value."""

    display_output = True
    full_image_only = True  # pairs' pixels end to end, not an image: the engine must not subsample them

    def __init__(
        self, chains: Sequence[Any], counts: Sequence[int], names: Sequence[str], per_image: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.chains = torch.nn.ModuleList(chains)
        self.counts = [int(c) for c in counts]
        sp0 = chains[0].param_space
        self.per_image = list(per_image)
        shared = [n for n in names if n not in self.per_image]
        extra = []
        for i, c in enumerate(chains):
            for n in self.per_image:
                if n not in c.param_space.names:
                    raise MatchError(f"--per-image {n}: not a slider of pair {i + 1}'s chain")
                extra.append(replace(c.param_space.spec(n), name=per_image_name(n, i)))
        self.param_space = replace(sp0, module="replica pairs", specs=(*sp0.specs, *extra)) if extra else sp0
        self.module = "replica pairs"
        self.maps: list[tuple[torch.Tensor, list[int], list[tuple[int, float, float]]]] = []
        names_all = self.param_space.names
        for i, c in enumerate(chains):
            sp = c.param_space
            base = torch.as_tensor(sp.normalize(sp.defaults()), dtype=torch.float32)
            src, slots = [], []
            for n in shared:
                if n not in sp.names:
                    raise MatchError(f"--pairs: pair {i + 1}'s chain has no slider {n}: the pairs' histories differ")
                s0, s = sp0.spec(n), sp.spec(n)
                if (s.kind != "float" and (s.kind, s.values) != (s0.kind, s0.values)) or s.hi == s.lo:
                    raise MatchError(f"--pairs: the slider {n} takes other values in pair {i + 1}'s chain")
                # value = lo0 + u0 (hi0 - lo0) -> this chain's u = (value - lo) / (hi - lo)
                src.append(sp0.names.index(n))
                slots.append((sp.names.index(n), (s0.hi - s0.lo) / (s.hi - s.lo), (s0.lo - s.lo) / (s.hi - s.lo)))
            for n in self.per_image:  # its own copy, already in this chain's range
                src.append(names_all.index(per_image_name(n, i)))
                slots.append((sp.names.index(n), 1.0, 0.0))
            self.maps.append((base, src, slots))

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        outs, start = [], 0
        for chain, n, (base, src, slots) in zip(self.chains, self.counts, self.maps, strict=True):
            ui = base.to(u.device, u.dtype).expand(u.shape[0], -1).clone()
            for j, (dst, a, b) in zip(src, slots, strict=True):
                ui[:, dst] = u[:, j] * a + b
            outs.append(chain(x[..., start : start + n], ui))
            start += n
        return torch.cat(outs, -1)


def per_image_name(slider: str, pair: int) -> str:
    """The name of pair ``pair``'s (from 0) own copy of a per-image slider in :class:`PooledChains`."""
    return f"{slider}@{pair + 1}"


def pool_pixels(
    preps: Sequence[Prepared], pixels_per_pair: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Each pair's pixels (its aligned region; ``pixels_per_pair`` of them drawn at random,
    all when None or when it has fewer) as ``(3, 1, N)`` input and target, and the count
    per pair: every pair weighs the same and none is cut short."""
    rng = np.random.default_rng(seed)
    xs, ts, counts = [], [], []
    for p in preps:
        x, t = p.crop(p.input).reshape(3, -1), p.crop(p.aligned).reshape(3, -1)
        n = x.shape[1] if pixels_per_pair is None else min(int(pixels_per_pair), x.shape[1])
        idx = np.sort(rng.choice(x.shape[1], size=n, replace=False))
        xs.append(x[:, idx])
        ts.append(t[:, idx])
        counts.append(n)
    return np.concatenate(xs, 1)[:, None], np.concatenate(ts, 1)[:, None], counts


def _holdout(n_pairs: int, holdout: int | None) -> int:
    n_hold = (n_pairs // 4 or (1 if n_pairs >= 2 else 0)) if holdout is None else int(holdout)
    if not 0 <= n_hold < n_pairs:
        raise MatchError(f"--holdout {n_hold}: there are {n_pairs} pairs, at least one must be fitted")
    return n_hold


def match_pairs(
    dt: Any,
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chain: Sequence[str] = DEFAULT_CHAIN,
    free: Sequence[str] | None = None,
    holdout: int | None = None,
    max_size: int | None = None,
    pixels_per_pair: int | None = 4096,
    config: Any = None,
    style_name: str | None = None,
    seed: int = 0,
    per_image: Sequence[str] = (),
    log: Log | None = None,
    demosaic: bool = True,
) -> dict[str, Any]:
    """One style fitted to every pair of ``folder`` (:func:`find_pairs`) but the
    ``holdout`` last ones (default: a quarter, at least one when there are two
    pairs or more): ``pixels_per_pair`` pixels of each fitted pair (None: all) are
    pooled, each pair's through its own replica chain (:class:`PooledChains`; the
    chains must be pointwise: no sharpen), and the chain's sliders optimised once.
    ``per_image`` sliders (``--shared``, e.g. ``exposure.exposure``) are fitted per pair beside the shared look;
    a held-out pair gets the look as fitted and only its own per-image sliders fitted on it.
    ``demosaic``: darktable renders every pair's result with each demosaic setting of its sensor's family and
    the one with the lowest mean ΔE2000 over the fitted pairs goes into every pair's result.xmp (the style
    leaves demosaic out; the summary's ``demosaic`` names it). Writes ``result.dtstyle``, ``pairs/STEM/``
    (result.xmp and images per pair), ``summary.json`` (per pair ΔE2000 of darktable's render vs its reference and of
    its defaults, ``fit_deltae_mean``, ``heldout_deltae_mean``) and ``index.html``."""
    pairs = find_pairs(folder)
    n_hold = _holdout(len(pairs), holdout)
    return match_pooled(
        dt, [(raw, ref, None) for raw, ref in pairs], out_dir, n_hold, chain, free, max_size, pixels_per_pair,
        config, style_name or f"darkproxy match {Path(folder).name}", seed, per_image, str(folder), log,
        demosaic=demosaic,
    )  # fmt: skip


def match_pooled(
    dt: Any,
    items: Sequence[tuple[Path, Any, Path | None]],
    out_dir: str | os.PathLike[str],
    n_hold: int,
    chain: Sequence[str],
    free: Sequence[str] | None,
    max_size: int | None,
    pixels_per_pair: int | None,
    config: Any,
    style_name: str,
    seed: int,
    per_image: Sequence[str],
    label: str,
    log: Log | None,
    skip_failed: bool = False,
    demosaic: bool = True,
) -> dict[str, Any]:
    """:func:`match_pairs` on ``items`` ``(raw, reference, xmp to start from or None)``, the last ``n_hold``
    held out (``--pairs``, and ``--batch --shared`` with none held out). ``skip_failed``: a pair that cannot be
    prepared (another scene, darktable's error) is left out and listed in the summary's ``skipped``."""
    from darkproxy.engines.regress import regress
    from darkproxy.progress import progress_bar

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    if pixels_per_pair is not None and pixels_per_pair < 1:
        raise MatchError(f"pixels per pair must be >= 1 (or all), got {pixels_per_pair}")
    chain = resolve_chain(dt, items[0][0], items[0][2], chain)  # one chain for every pair: the first's tone mapper
    preps, skipped = _prepare_pooled(dt, items, chain, max_size, log, skip_failed)
    if len(preps) <= n_hold:
        raise MatchError(f"no pair left to fit: {len(skipped)} of {len(items)} could not be prepared")
    fit = preps[: len(preps) - n_hold]
    for p in fit if not per_image else preps:  # a held-out pair's own sliders are fitted on its pixels too
        if p.chain.full_image_only:
            raise MatchError(
                f"--pairs pools pixels of every pair: {p.raw.name}'s chain is not pointwise (drop sharpen and other "
                "local modules)"
            )
    modules = [m for m in chain if m in fit[0].plan.modules]
    names = free_names(fit[0].chain, modules, free)
    for n in per_image:
        if n not in fit[0].chain.param_space.names:
            raise MatchError(f"--per-image {n}: not a slider of this chain ({', '.join(modules)})")
    names += [n for n in per_image if n not in names]
    shared = [n for n in names if n not in per_image]
    x_pool, t_pool, counts = pool_pixels(fit, pixels_per_pair, seed)
    cfg = match_config(config, shared + [per_image_name(n, i) for i in range(len(fit)) for n in per_image])
    if cfg.loss == "ssim":
        raise MatchError("--pairs pools pixels, not images: use the l1 or mse loss (SSIM needs images)")
    model = PooledChains([p.chain for p in fit], counts, names, per_image)
    say(
        f"fitting one style ({len(shared)} sliders{f', {len(per_image)} per image' if per_image else ''}) to "
        f"{len(fit)} pairs ({sum(counts)} pixels); {n_hold} held out"
    )
    res = regress(model, x_pool, t_pool, cfg)
    matched = {n: float(res.params[n]) for n in shared}
    own = [{n: float(res.params[per_image_name(n, i)]) for n in per_image} for i in range(len(fit))]
    for p in preps[len(fit) :]:  # the look as fitted; only the held-out pair's own sliders fitted on it
        own.append(_fit_own(p, matched, list(per_image), pixels_per_pair, config, seed) if per_image else {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rankings, means = _rank_demosaic(dt, preps, len(fit), matched, own, log) if demosaic else ([], {})
    setting = shared_setting(means)
    records, results = [], []
    bar = progress_bar(len(preps), "darktable renders the style", unit="pair", disable=log is None)
    for i, p in enumerate(preps):
        rec, res_hist = render_result(
            dt, p, {**matched, **own[i]}, out / "pairs" / p.raw.stem,
            ranked=rankings[i] if rankings else None, setting=setting,
        )  # fmt: skip
        rec["held_out"] = i >= len(fit)
        if per_image:
            rec["per_image"] = own[i]
        records.append(rec)
        results.append(res_hist)
        bar.update(1)
    bar.close()
    # the style of the first fitted pair's matched history
    description = f"darkproxy match of {len(fit)} pairs in {Path(label).name}"
    make_style(dt, results[0], style_name, description, split_chain(chain)[1]).write(out / "result.dtstyle")
    shoot = {"chosen": setting, "fit_deltae_means": means} if demosaic else None
    s = _pairs_summary(dt, label, out, modules, matched, names, per_image, style_name, records, counts, res, t0, shoot)
    return {**s, "skipped": skipped}


def _rank_demosaic(
    dt: Any,
    preps: Sequence[Prepared],
    n_fit: int,
    matched: dict[str, float],
    own: list[dict[str, float]],
    log: Log | None,
) -> tuple[list[Ranked], dict[str, float]]:
    """darktable's renders of every pair's result with each demosaic setting (:func:`rank_demosaic`) and each
    setting's mean ΔE2000 over the fitted pairs (:func:`shared_means`; the held-out ones get the lowest unseen)."""
    from darkproxy.data.paramspace import split_module_params
    from darkproxy.match.demosaic import rank_demosaic, shared_means
    from darkproxy.progress import progress_bar

    say = log or (lambda s: None)
    rankings: list[Ranked] = []
    bar = progress_bar(len(preps), "darktable renders each demosaic", unit="pair", disable=log is None)
    for i, p in enumerate(preps):
        hist = dt.edit(p.history, updates=split_module_params({**matched, **own[i]}))
        rankings.append(rank_demosaic(dt, p.raw, hist, p.aligned, p.alignment.box, p.size, log))
        bar.update(1)
    bar.close()
    means = shared_means(rankings[:n_fit])
    if not means:
        say("demosaic: no setting rendered for every fitted pair (sensors of both families?): each keeps its own")
    elif len(means) > 1:
        tried = ", ".join(f"{k} {m:.2f}" for k, m in means.items())
        say(f"demosaic: {shared_setting(means)} for every pair (mean ΔE2000 over the fitted pairs: {tried})")
    return rankings, means


def _prepare_pooled(
    dt: Any,
    items: Sequence[tuple[Path, Any, Path | None]],
    chain: Sequence[str],
    max_size: int | None,
    log: Log | None,
    skip_failed: bool,
) -> tuple[list[Prepared], list[dict[str, str]]]:
    """Every pair prepared (darktable's renders, the aligned reference, the chain) and those that could not be
    (``skip_failed``; else the first error is raised); one-line refusals for what pooled pixels cannot fit
    (``--chain auto``, a stage on the mosaic)."""
    from darkproxy.errors import DarkproxyError
    from darkproxy.progress import progress_bar
    from darkproxy.replica.references import replica_history

    if list(chain) == ["auto"]:
        raise MatchError(
            "--pairs does not take --chain auto: name the chain (e.g. exposure,colorbalancergb,tonemapper)"
        )
    raw0, _, xmp0 = items[0]
    on, off = split_chain(chain)
    mosaic = on_mosaic(dt, replica_history(dt, raw0, xmp0, {m: {} for m in on}, off), on)
    if mosaic:  # pooled pixels need pointwise stages from darktable's demosaiced image
        raise MatchError(
            f"--pairs pools pixels of pointwise stages; {', '.join(mosaic)} runs on the raw's mosaic (per "
            "image): match each pair on its own (--batch), or leave it out of --chain"
        )
    preps, skipped = [], []
    bar = progress_bar(len(items), "darktable renders the pairs", unit="pair", disable=log is None)
    for raw, ref, xmp in items:
        try:
            preps.append(prepare(dt, raw, ref, chain, xmp, max_size, None))
        except DarkproxyError as e:
            if not skip_failed:
                raise
            skipped.append({"raw": str(raw), "error": first_line(e)})
        bar.update(1)
    bar.close()
    return preps, skipped


def _fit_own(
    p: Prepared, look: dict[str, float], per_image: list[str], pixels: int | None, config: Any, seed: int
) -> dict[str, float]:
    """A held-out pair's per-image sliders fitted on it with the look fixed as fitted on the others."""
    from darkproxy.engines.regress import regress

    x, t, counts = pool_pixels([p], pixels, seed)
    cfg = match_config(config, [per_image_name(n, 0) for n in per_image])
    res = regress(PooledChains([p.chain], counts, [*look, *per_image], per_image), x, t, cfg, fixed=look)
    return {n: float(res.params[per_image_name(n, 0)]) for n in per_image}


def _pairs_summary(
    dt: Any,
    folder: str | os.PathLike[str],
    out: Path,
    modules: list[str],
    matched: dict[str, float],
    names: list[str],
    per_image: Sequence[str],
    name: str,
    records: list[dict[str, Any]],
    counts: list[int],
    res: Any,
    t0: float,
    demosaic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from darkproxy.fsutil import write_json

    def mean(rs: list[dict[str, Any]], k: str) -> float | None:
        return float(np.mean([r[k] for r in rs])) if rs else None

    fit_r, held_r = [r for r in records if not r["held_out"]], [r for r in records if r["held_out"]]
    for r, n in zip(fit_r, counts, strict=True):
        r["fit_pixels"] = n
    summary = {
        "folder": str(folder),
        "darktable_version": dt.version,
        "chain": modules,
        "params": matched,
        "free": names,
        "per_image_sliders": list(per_image),  # --shared: fitted per pair (each pair's "per_image"), not in "params"
        "style": str(out / "result.dtstyle"),
        "style_name": name,
        "pairs": records,
        "fit_deltae_mean": mean(fit_r, "deltae_mean"),
        "fit_default_deltae_mean": mean(fit_r, "default_deltae_mean"),
        "heldout_deltae_mean": mean(held_r, "deltae_mean"),
        "heldout_default_deltae_mean": mean(held_r, "default_deltae_mean"),
        "regress_seconds": res.seconds,
        "seconds": time.perf_counter() - t0,
    }
    if demosaic is not None:  # one setting for every pair: chosen on the fitted pairs (each pair's "demosaic")
        summary["demosaic"] = demosaic
    write_json(out / "summary.json", summary)
    write_pairs_report(out, summary)
    return summary
