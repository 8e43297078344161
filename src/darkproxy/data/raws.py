"""Finding the raw files of a folder, checking darktable opens them, and splitting them into
train / val / test by source raw (generation, evaluation, regress-eval, pipelines, match)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from darkproxy.darktable.session import Darktable
from darkproxy.errors import DarktableRenderError, DatasetError, RawError

RAW_EXTENSIONS = (
    ".dng",
    ".cr2",
    ".cr3",
    ".nef",
    ".nrw",
    ".arw",
    ".srf",
    ".sr2",
    ".raf",
    ".orf",
    ".rw2",
    ".pef",
    ".srw",
    ".3fr",
    ".iiq",
    ".x3f",
    ".erf",
    ".mef",
    ".mos",
    ".mrw",
    ".kdc",
    ".dcr",
    ".rwl",
)


def find_raws(images: str | os.PathLike[str]) -> list[Path]:
    """Raw files directly in ``images`` (sorted by name). Raises
    :class:`DatasetError` when there are none."""
    d = Path(images)
    if not d.is_dir():
        raise DatasetError(f"--images {d}: not a folder")
    raws = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in RAW_EXTENSIONS)
    if not raws:
        raise DatasetError(f"no raw files in {d} (looked for {', '.join(RAW_EXTENSIONS[:8])}, ...)")
    return raws


def readable_raws(
    dt: Darktable, raws: Sequence[Path], warn: Callable[[str], None] | None = None
) -> tuple[list[Path], list[dict[str, str]]]:
    """Split ``raws`` into those darktable opens (its default history, cached
    per raw) and the others, ``[{"raw": name, "error": one line}]``, warning
    once per skipped raw. Raises :class:`DatasetError` when none is readable."""
    ok: list[Path] = []
    bad: list[dict[str, str]] = []
    for r in raws:
        try:
            dt.default_history(r)
            ok.append(Path(r))
        except (RawError, DarktableRenderError) as e:
            msg = " ".join(str(e).split())
            bad.append({"raw": Path(r).name, "error": msg if len(msg) <= 240 else msg[:237] + "..."})
            if warn:
                warn(f"warning: skipping {Path(r).name}: {bad[-1]['error']}")
    if not ok:
        raise DatasetError(
            f"none of the {len(raws)} raw file(s) could be read by darktable" + (f": {bad[0]['error']}" if bad else "")
        )
    return ok, bad


def assign_splits(raw_names: Sequence[str], seed: int = 0, val: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Split by source raw: raws are ordered by ``sha256(f"{seed}:{name}")``;
    the first ``max(1, round(val * R))`` go to ``val`` (when R >= 2), the next
    ``round(test * R)`` to ``test`` (when R >= 3 and at least one raw is left
    for train), the rest to ``train``. Deterministic; 2 raws -> one train, one val."""
    names = sorted(set(raw_names), key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    r = len(names)
    n_val = max(1, round(val * r)) if r >= 2 else 0
    n_test = round(test * r) if r >= 3 else 0
    n_test = min(n_test, max(r - n_val - 1, 0))
    out = {}
    for i, name in enumerate(names):
        out[name] = "val" if i < n_val else ("test" if i < n_val + n_test else "train")
    return out
