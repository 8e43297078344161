"""Can a proxy run a history item faithfully? The replica's checks before a proxy stage.

A proxy reproduces its module only where it was trained: at the params version of its
dataset, with each free slider inside its trained range (an enum at a trained value), every
other param at the value darktable's data had (the dataset renders the module on the raw's
default history with only the free sliders moved: a param the history changes that the proxy
never saw, lowpass's algorithm or bilat's mode, is outside what it learned), and only when the
proxy reproduces it: the zoo's worst render on held-out raws (or, for a run outside the zoo, its
validation, above passing the image through) at least :data:`MIN_PSNR`. Each check refuses in one line; none is a guess
(``bench/results/replica_coverage.md`` found presets run through proxies far outside their
ranges at 14-30 dB before these checks).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from darkproxy.darktable.params import param_value
from darkproxy.darktable.schema import element_path
from darkproxy.data.scale import RENDER, full_size_problem
from darkproxy.errors import DarkproxyError

# a proxy whose worst held-out render (the zoo's figure; else its validation) is below this does not reproduce
# its module: a run through it could end below 30 dB unrefused (issue 27: every run reaches 30 dB or is refused)
MIN_PSNR = 30.0


def _run_info(run: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(run.json, metrics)`` of ``run``: metrics.json with the zoo's held-out figures (zoo.json) when it has
    them (empty when absent); raises DarkproxyError/OSError/ValueError."""
    from darkproxy.proxy.locate import resolve_run

    root = resolve_run(run)
    info = json.loads((root / "run.json").read_text())
    metrics: dict[str, Any] = {}
    for name in ("metrics.json", "zoo.json"):
        if (root / name).is_file():
            metrics |= json.loads((root / name).read_text())
    return info, metrics


def proxy_pointwise(run: str) -> bool:
    """Whether the proxy ``run`` maps each pixel on its own (its run.json says so); ``False`` when unknown."""
    try:
        return bool(_run_info(run)[0].get("pointwise", False))
    except (DarkproxyError, OSError, ValueError):
        return False


def _weak(run: str, metrics: Mapping[str, Any]) -> str | None:
    """Why the proxy does not reproduce its module where it was trained (``None``: it does): the zoo's worst
    render on held-out raws, else its validation (and no better than passing the image through)."""
    worst, median = metrics.get("heldout_psnr_min"), metrics.get("heldout_psnr_median")
    if isinstance(worst, int | float):
        return (
            None
            if worst >= MIN_PSNR
            else f"the proxy {run}'s worst held-out render is {worst:.1f} dB (median {median:.1f})"
        )
    val, ident = metrics.get("best_val_psnr"), metrics.get("val_identity_psnr")
    if not isinstance(val, int | float):
        return f"the proxy {run} records no validation figure"
    if val < MIN_PSNR or (isinstance(ident, int | float) and val <= ident):
        base = f", passing the image through {ident:.1f} dB" if isinstance(ident, int | float) else ""
        return f"the proxy {run}'s validation is {val:.1f} dB{base}"
    return None


def trained_values(dt: Any, module: str, raw: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The module's params as a dataset of ``module`` renders them before its free sliders are set: the item of
    darktable's default history for ``raw``, or darktable's defaults (``default_blob``) where that history lacks the
    module (what ``dt.edit`` adds); flattened names. ``None`` when they cannot be decoded."""
    from darkproxy.darktable.params import decode_params, default_blob, flatten

    sch = dt.schemas.modules.get(module)
    if sch is None:
        return None
    it = dt.default_history(raw).find(module) if raw is not None else None
    try:
        if it is not None and it.modversion == sch.version:
            return flatten(decode_params(sch, it.params))
        return flatten(decode_params(sch, default_blob(sch)))
    except DarkproxyError:
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool | int | float) and isinstance(b, bool | int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-7)
    return bool(a == b)


def _without(value: Any, elements: list[tuple[list[int], list[str]]]) -> Any:
    """A copy of the array ``value`` with ``elements`` (:func:`element_path`'s indices and members) set to
    ``None``: the comparison of an array whose listed elements are sliders."""
    out = copy.deepcopy(value)
    for idx, members in elements:
        steps: list[Any] = [*idx, *members]
        cur = out
        try:
            for i in steps[:-1]:
                cur = cur[i]
            cur[steps[-1]] = None
        except (IndexError, KeyError, TypeError):
            pass  # no such element: the arrays differ anyway
    return out


def proxy_problem(
    module: str,
    run: str,
    values: Mapping[str, Any],
    version: int | None,
    trained: Mapping[str, Any] | None,
    bias: float | None = None,
    asked: bool = False,
    full_size: tuple[float, float] | None = None,
    darktable_version: str | None = None,
) -> str | None:
    """Why the proxy ``run`` cannot run ``module`` at the history's ``values`` (decoded at ``version``,
    flattened), ``trained``: :func:`trained_values` (``None``: unknown, refused); ``None`` when it can.
    ``asked``: the user named this proxy (``--prefer-proxy``, a run given for the module): its validation
    figure is theirs to judge (the summary reports the stage's fidelity), the other checks still hold.
    ``full_size``: the raw's ``(width, height)`` in px (rawpy), which a module of
    :data:`~darkproxy.data.scale.FULL_SIZE_RADIUS` needs (a proxy conditioned on the render scale, trained before
    2026-12-06: to match the raws it was trained on; the range of diagonals is checked at the render's size).
    ``darktable_version``: the darktable running the history; a proxy trained on another one is refused, as
    ``trained`` (this darktable's defaults) is not what its data held (darktable 5.0's filmic rgb defaults to
    a colour science 4.2.1's has not: docs/darktable-notes.md)."""
    try:
        info, metrics = _run_info(run)
    except (DarkproxyError, OSError, ValueError) as e:
        return f"{module}: cannot read the proxy {run}'s run.json ({str(e).splitlines()[0] if str(e) else e!r})"
    pv = info.get("module_version")
    if not isinstance(pv, int):
        return f"{module}: the proxy {run} does not record the params version it was trained on"
    if pv != version:
        return f"{module} params version {version} (history), the proxy {run} was trained on version {pv}"
    dv = info.get("darktable_version")
    if darktable_version is not None and dv != darktable_version:
        return (
            f"{module}: the proxy {run} was trained on darktable {dv}'s renders and defaults (this is darktable "
            f"{darktable_version}): retrain it here (darkproxy zoo train {module})"
        )
    if module == "colorin":  # its data's input is camera RGB (tapout.IDENTITY_SETTINGS); the chain's is not
        return (
            f"colorin: the proxy {run} maps camera RGB to linear Rec2020, the replica's chain is in linear "
            "Rec2020 from its start (colorin's matrix measured from darktable): the exact stage reproduces it "
            "(no --prefer-proxy)"
        )
    if module == "exposure" and bias:
        return (
            f"exposure: the proxy {run} does not apply the raw's exposure bias ({bias:+g} EV, "
            "compensate_exposure_bias is on); the exact stage does"
        )
    basis = (info.get("scale_range") or {}).get("basis", RENDER)  # soften's diagonal basis runs at any size
    if (why := full_size_problem(module, metrics.get("raw_size"), full_size, run, basis)) is not None:
        return f"{why}: the exact stage reproduces it (no --prefer-proxy)"
    why = _weak(run, metrics)
    if why is not None and not asked:
        return f"{module}: {why}: below {MIN_PSNR:g} dB (--prefer-proxy to run it anyway)"
    space = info.get("param_space") or {}
    specs = {s["name"]: s for s in space.get("specs", [])}
    fixed = space.get("fixed") or {}
    for name, s in specs.items():
        try:  # a scalar, or an element of an array param (channelmixerrgb's ``red[0]``)
            v = param_value(values, name)
        except KeyError:
            v = None
        if v is None:
            return f"{module}: the history has no value for the proxy {run}'s slider {name}"
        if s.get("kind") == "float" and not (float(s["lo"]) - 1e-6 <= float(v) <= float(s["hi"]) + 1e-6):
            return f"{module} {name} = {float(v):g} is outside the proxy {run}'s trained range {s['lo']:g}..{s['hi']:g}"
        if s.get("kind") != "float" and s.get("values") and int(v) not in [int(x) for x in s["values"]]:
            return f"{module} {name} = {v} is not among the proxy {run}'s trained values {s['values']}"
    if trained is None:
        return f"{module}: the values the proxy {run} was trained at cannot be decoded"
    sliders: dict[str, list[tuple[list[int], list[str]]]] = {}  # an array's elements that are sliders
    for name in specs:
        path = element_path(name)
        if path is not None:
            sliders.setdefault(path[0], []).append((path[1], path[2]))
    for name, v in values.items():
        if name in specs:
            continue
        want = fixed.get(name, trained.get(name))
        if name in sliders and want is not None:  # the array's other elements must be the trained ones
            if not _same(_without(v, sliders[name]), _without(want, sliders[name])):
                return (
                    f"{module} {name} = {v} differs from the {want} the proxy {run} was trained at in elements "
                    "that are not its sliders"
                )
            continue
        if want is not None and not _same(v, want):
            return (
                f"{module} {name} = {v} differs from the {want} the proxy {run} was trained at (not one of its sliders)"
            )
    return None
