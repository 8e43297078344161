"""``darkproxy match``: the darktable edit that reproduces a reference look.

A reference is a display-referred image (JPEG, PNG, TIFF; 8 or 16 bit; sRGB, or tagged
with an ICC profile, converted by its content) of the raw's scene: the camera's JPEG,
another editor's export, an older edit. Matching:

1. the reference is read upright (EXIF orientation) in sRGB (:mod:`.reference`, :mod:`.icc`);
2. darktable renders the raw (the replica's input, linear Rec2020, and its own sRGB
   export of the default history) at the working size;
3. the reference is aligned to darktable's render (:mod:`.align`: its size, a small zoom
   per axis and a translation found by phase correlation of edge maps; a reference
   whose final alignment does not show the same scene is refused) and both are cropped
   to the region the reference covers;
4. the sliders of the chain's modules are optimised through the replica
   (:class:`darkproxy.replica.ReplicaChain`, display output) by the one regression
   engine (:func:`darkproxy.engines.regress.regress`) (:mod:`.fit`);
5. the matched sliders go into the raw's history (``result.xmp``) and into a darktable
   style of the chain's modules (``result.dtstyle``); darktable renders ``result.xmp``
   with each demosaic setting of the sensor's family and keeps the closest (:mod:`.demosaic`),
   and every figure (ΔE2000, PSNR) is measured on darktable's own render against the
   reference, beside darktable's defaults (:mod:`.report`).

:func:`match_pairs` (:mod:`.pairs`) fits one style to many (raw, reference) pairs ("make
darktable look like my camera"): the chain's stages are pointwise, so pixels of every
pair are pooled into one optimisation, each pair's through its own chain; pairs held
out of the fit measure how it transfers. :func:`match_batch` (:mod:`.batch`) matches a whole
shoot image by image, writing each raw's sidecar as darktable names it.
"""

from darkproxy.match._common import Log, MatchError
from darkproxy.match.align import MIN_CORRELATION, Alignment, align_reference
from darkproxy.match.batch import ShootImage, find_shoot, match_batch
from darkproxy.match.fit import (
    DEFAULT_CHAIN,
    RAW_SPECIFIC,
    SHARED_CHAIN,
    Prepared,
    match,
    prepare,
    region_figures,
)
from darkproxy.match.pairs import PooledChains, find_pairs, match_pairs
from darkproxy.match.reference import IMAGE_SUFFIXES, read_reference
from darkproxy.match.report import write_pairs_report, write_report

__all__ = [
    "DEFAULT_CHAIN",
    "IMAGE_SUFFIXES",
    "MIN_CORRELATION",
    "RAW_SPECIFIC",
    "SHARED_CHAIN",
    "Alignment",
    "Log",
    "MatchError",
    "PooledChains",
    "Prepared",
    "ShootImage",
    "align_reference",
    "find_pairs",
    "find_shoot",
    "match",
    "match_batch",
    "match_pairs",
    "prepare",
    "read_reference",
    "region_figures",
    "write_pairs_report",
    "write_report",
]
