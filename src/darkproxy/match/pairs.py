"""``darkproxy match --pairs``: one style fitted to many (raw, reference) pairs, each
pair's pixels through its own replica chain, pairs held out of the fit to measure how
the style carries."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkproxy.match._common import Log, MatchError
from darkproxy.match.fit import (
    DEFAULT_CHAIN,
    Prepared,
    free_names,
    make_style,
    match_config,
    on_mosaic,
    prepare,
    render_result,
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
    and its own history's settings for every other slider."""

    display_output = True
    full_image_only = True  # pairs' pixels end to end, not an image: the engine must not subsample them

    def __init__(self, chains: Sequence[Any], counts: Sequence[int], names: Sequence[str]) -> None:
        super().__init__()
        self.chains = torch.nn.ModuleList(chains)
        self.counts = [int(c) for c in counts]
        self.param_space = chains[0].param_space
        self.module = "replica pairs"
        sp0 = self.param_space
        self.maps: list[tuple[torch.Tensor, list[int], list[tuple[int, float, float]]]] = []
        for i, c in enumerate(chains):
            sp = c.param_space
            base = torch.as_tensor(sp.normalize(sp.defaults()), dtype=torch.float32)
            slots = []
            for n in names:
                if n not in sp.names:
                    raise MatchError(f"--pairs: pair {i + 1}'s chain has no slider {n}: the pairs' histories differ")
                s0, s = sp0.spec(n), sp.spec(n)
                if (s.kind != "float" and (s.kind, s.values) != (s0.kind, s0.values)) or s.hi == s.lo:
                    raise MatchError(f"--pairs: the slider {n} takes other values in pair {i + 1}'s chain")
                # value = lo0 + u0 (hi0 - lo0) -> this chain's u = (value - lo) / (hi - lo)
                slots.append((sp.names.index(n), (s0.hi - s0.lo) / (s.hi - s.lo), (s0.lo - s.lo) / (s.hi - s.lo)))
            self.maps.append((base, [sp0.names.index(n) for n in names], slots))

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        outs, start = [], 0
        for chain, n, (base, src, slots) in zip(self.chains, self.counts, self.maps, strict=True):
            ui = base.to(u.device, u.dtype).expand(u.shape[0], -1).clone()
            for j, (dst, a, b) in zip(src, slots, strict=True):
                ui[:, dst] = u[:, j] * a + b
            outs.append(chain(x[..., start : start + n], ui))
            start += n
        return torch.cat(outs, -1)


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
    log: Log | None = None,
) -> dict[str, Any]:
    """One style fitted to every pair of ``folder`` (:func:`find_pairs`) but the
    ``holdout`` last ones (default: a quarter, at least one when there are two
    pairs or more): ``pixels_per_pair`` pixels of each fitted pair (None: all) are
    pooled, each pair's through its own replica chain (:class:`PooledChains`; the
    chains must be pointwise: no sharpen), and the chain's sliders optimised once.
    Writes ``result.dtstyle``, ``pairs/STEM/`` (result.xmp and images per pair),
    ``summary.json`` (per pair ΔE2000 of darktable's render vs its reference and of
    its defaults, ``fit_deltae_mean``, ``heldout_deltae_mean``) and ``index.html``."""
    from darkproxy.engines.regress import regress
    from darkproxy.progress import progress_bar

    say = log or (lambda s: None)
    t0 = time.perf_counter()
    pairs = find_pairs(folder)
    n_hold = _holdout(len(pairs), holdout)
    if pixels_per_pair is not None and pixels_per_pair < 1:
        raise MatchError(f"pixels per pair must be >= 1 (or all), got {pixels_per_pair}")
    from darkproxy.replica.references import replica_history

    if list(chain) == ["auto"]:
        raise MatchError("--pairs does not take --chain auto: name the chain (e.g. exposure,colorbalancergb,filmicrgb)")
    mosaic = on_mosaic(dt, replica_history(dt, pairs[0][0], None, {m: {} for m in chain}), chain)
    if mosaic:  # pooled pixels need pointwise stages from darktable's demosaiced image
        raise MatchError(
            f"--pairs pools pixels of pointwise stages; {', '.join(mosaic)} runs on the raw's mosaic (per "
            "image): match each pair on its own (--batch), or leave it out of --chain"
        )
    preps = []
    bar = progress_bar(len(pairs), "darktable renders the pairs", unit="pair", disable=log is None)
    for raw, ref in pairs:
        preps.append(prepare(dt, raw, ref, chain, None, max_size, None))
        bar.update(1)
    bar.close()
    fit = preps[: len(preps) - n_hold]
    for p in fit:
        if p.chain.full_image_only:
            raise MatchError(
                f"--pairs pools pixels of every pair: {p.raw.name}'s chain is not pointwise (drop sharpen and other "
                "local modules)"
            )
    modules = [m for m in chain if m in fit[0].plan.modules]
    names = free_names(fit[0].chain, modules, free)
    x_pool, t_pool, counts = pool_pixels(fit, pixels_per_pair, seed)
    cfg = match_config(config, names)
    if cfg.loss == "ssim":
        raise MatchError("--pairs pools pixels, not images: use the l1 or mse loss (SSIM needs images)")
    say(f"fitting one style ({len(names)} sliders) to {len(fit)} pairs ({sum(counts)} pixels); {n_hold} held out")
    res = regress(PooledChains([p.chain for p in fit], counts, names), x_pool, t_pool, cfg)
    matched = {n: float(res.params[n]) for n in names}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, results = [], []
    bar = progress_bar(len(preps), "darktable renders the style", unit="pair", disable=log is None)
    for i, p in enumerate(preps):
        rec, res_hist = render_result(dt, p, matched, out / "pairs" / p.raw.stem)
        rec["held_out"] = i >= len(fit)
        records.append(rec)
        results.append(res_hist)
        bar.update(1)
    bar.close()
    name = style_name or f"darkproxy match {Path(folder).name}"
    # the style of the first fitted pair's matched history
    make_style(dt, results[0], name, f"darkproxy match of {len(fit)} pairs in {Path(folder).name}").write(
        out / "result.dtstyle"
    )
    return _pairs_summary(dt, folder, out, modules, matched, names, name, records, counts, res, t0)


def _pairs_summary(
    dt: Any,
    folder: str | os.PathLike[str],
    out: Path,
    modules: list[str],
    matched: dict[str, float],
    names: list[str],
    name: str,
    records: list[dict[str, Any]],
    counts: list[int],
    res: Any,
    t0: float,
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
    write_json(out / "summary.json", summary)
    write_pairs_report(out, summary)
    return summary
