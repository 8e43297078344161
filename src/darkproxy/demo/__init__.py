"""``darkproxy demo``: everything darkproxy does, on its own synthetic raws.

Stages (each recorded in ``OUT/stages/<name>.json`` when done, so a re-run
reuses finished stages; generation and training resume on their own):

1. ``samples``   synthetic Bayer DNGs from scikit-image's photos; the last two
                 are held out (never seen in training).
2. ``generate-M`` darktable tap-out datasets for exposure, colorbalancergb (and
                 sharpen unless quick).
3. ``train-M``   one proxy per module.
4. ``eval-M``    each proxy against fresh darktable renders of held-out raws,
                 next to the identity baseline.
5. ``regress``   slider regression: a held-out raw rendered by darktable with
                 hidden colorbalancergb params; recovered through the proxy,
                 verified by darktable's render of ``result.xmp``.
6. ``pipeline``  exposure -> colorbalancergb (-> sharpen unless quick) chained;
                 joint regression of every module's hidden params, verified by
                 darktable.
7. ``sweep``     exposure swept across its range: frames and an mp4.
8. ``replica``   the whole history, raw to display, through the differentiable
                 replica (an edit over exposure, colorbalancergb, filmicrgb and
                 sharpen) beside darktable's own sRGB export.
9. ``match``     ``darkproxy match``: the edit that reproduces a reference made by
                 darktable with hidden sliders (a few px off, another size) and
                 one made by another renderer (LibRaw through rawpy).
10. ``report``   ``report.html`` with every image, plot and number, and
                 ``summary.json`` with every figure it shows.

Files: :mod:`.plan` (sizes, hidden settings), :mod:`.steps` (one function per
stage), :mod:`.run` (:func:`run_demo`), :mod:`.report` (report.html).
"""

from darkproxy.demo.plan import REPLICA_EDIT, TRUE_MATCH, TRUE_PIPELINE, TRUE_REGRESS, DemoPlan
from darkproxy.demo.report import write_demo_report
from darkproxy.demo.run import run_demo

__all__ = [
    "REPLICA_EDIT",
    "TRUE_MATCH",
    "TRUE_PIPELINE",
    "TRUE_REGRESS",
    "DemoPlan",
    "run_demo",
    "write_demo_report",
]
