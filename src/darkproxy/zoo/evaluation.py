"""Evaluating the zoo: ``darkproxy eval zoo:MODULE`` for each module."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from darkproxy.engines.evaluate import evaluate_proxy
from darkproxy.proxy.locate import PREFIX, list_zoo


def eval_zoo(
    dt: Any,
    modules: Sequence[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n: int = 4,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """``darkproxy eval zoo:MODULE`` for each module (all of the zoo's when
    empty) on ``images``, reports under ``out/MODULE``. Returns
    ``[{module, proxy, identity}]``."""
    from darkproxy.proxy import Proxy

    mods = list(modules) or [r["module"] for r in list_zoo()]
    rows = []
    for m in mods:
        res = evaluate_proxy(dt, Proxy.load(PREFIX + m), images, Path(out) / m, n=n, progress=log)
        rows.append({"module": m, "proxy": res.metrics["proxy"], "identity": res.metrics["identity"]})
        log(f"[zoo eval] {m}: {res.metrics['proxy']['psnr']:.1f} dB")
    return rows
