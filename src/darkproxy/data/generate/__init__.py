"""The dataset generation engine behind ``darkproxy generate``.

For each *render pair* ``j`` (``0 <= j < ceil(n / crops)``) the engine taps
``module`` out of raw ``raws[j % R]`` with params ``space.denormalize(U[j])``
(``U`` = the sampler's design, a deterministic function of ``(seed, j)`` for
sobol/uniform), and stores ``crops`` samples with ids ``j * crops + k``:

* ``crops == 1``: the full image, rendered with ``max_size = size``;
* ``crops == K > 1``: rendered with ``max_size = 2 * size``, then ``K`` random
  ``size`` x ``size`` crops (positions drawn from ``(seed, j)``; pre-demosaic
  inputs are cropped at the matching half-resolution position);
* ``scales`` given (``--scales LO:HI`` or a list): each pair is a *region* of
  the raw rendered at a render scale drawn from ``(seed, j)`` (log-uniform in
  ``LO:HI``, or the list in turn): ``size / s`` raw px cut by darktable's crop
  module and rendered at ``size`` px (:func:`~darkproxy.darktable.tapout.region_for_scale`;
  ``s = 1`` is a full-resolution crop). Local modules then see every scale
  they will be applied at; the measured scale is each sample's ``render_scale``.

Speed: the module *input* does not depend on the target's params, so it is
rendered once per raw (cached in ``DATASET/cache/``) unless an upstream module
is varied (parameter-less targets); outputs are rendered in batches of
``batch`` jobs per darktable-cli process, ``workers`` batches at a time
(threads driving darktable-cli subprocesses). A job darktable fails on is
retried once in its own process, then recorded in ``failed.jsonl``.

Resume: sample ids already in the manifest are skipped, a partial last
manifest line is truncated, orphan files are overwritten; the identity of the
run (module, params, ranges, sampler, seed, size, crops, raws...) is stored in
``dataset.json["settings"]`` and a different command is refused.

Files: :mod:`.options` (:class:`GenerateOptions`, :class:`GenerateResult`, record checks),
:mod:`.engine` (:class:`Generator`); finding raws and splits: :mod:`darkproxy.data.raws`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from darkproxy.darktable.session import Darktable
from darkproxy.data.generate.engine import Generator
from darkproxy.data.generate.options import (
    IDENTITY_KEYS,
    GenerateFailed,
    GenerateOptions,
    GenerateResult,
    degenerate_output,
    json_norm,
    scales_json,
    storable,
)

__all__ = [
    "IDENTITY_KEYS",
    "GenerateFailed",
    "GenerateOptions",
    "GenerateResult",
    "Generator",
    "degenerate_output",
    "generate",
    "json_norm",
    "scales_json",
    "storable",
]


def generate(
    dt: Darktable,
    images: str | Path,
    out: str | Path,
    opts: GenerateOptions,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Generate (or resume) dataset ``out`` from the raws in ``images``. See the module docstring."""
    return Generator(dt, images, out, opts, progress=progress, log=log).run()
