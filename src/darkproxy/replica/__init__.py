"""A replica of darktable, raw to display, every stage differentiable (``darkproxy replica``).

* :mod:`darkproxy.replica.registry`: the stage registry; :mod:`darkproxy.replica.ports`:
  the exact torch implementations of darktable's closed-form modules, one file each
  (exposure, colorin, sharpen, colorout, colorbalancergb, filmicrgb, sigmoid...);
  :mod:`darkproxy.replica.science`: the colour science and safe maths they share;
* :mod:`darkproxy.replica.plan`: a history -> stage kinds per module instance
  (:func:`plan_replica`; every item with what would run it: :func:`replica_coverage`);
  :mod:`darkproxy.replica.chain`: the differentiable chain (:class:`ReplicaChain`);
  :mod:`darkproxy.replica.mosaicplan`: ``--from-mosaic`` (the mosaic stages as exact
  ports from the raw's CFA);
* :mod:`darkproxy.replica.references`: darktable's references (input, tap-outs, sRGB
  export); :mod:`darkproxy.replica.run`: the figures (:func:`score_replica`) and the
  command (:func:`run_replica`: ``summary.json``, and ``index.html`` by
  :mod:`darkproxy.replica.report`);
* :mod:`darkproxy.replica.fit`: slider recovery through the whole chain from a display
  target (``darkproxy replica regress``).
"""

from __future__ import annotations

from darkproxy.replica import ports as _ports  # noqa: F401  the ports register their exact stages
from darkproxy.replica.chain import ReplicaChain
from darkproxy.replica.plan import ItemCoverage, ReplicaError, ReplicaPlan, plan_replica, replica_coverage
from darkproxy.replica.registry import EXACT, ExactOp, StageContext, register_exact

__all__ = [
    "EXACT",
    "ExactOp",
    "ItemCoverage",
    "ReplicaChain",
    "ReplicaError",
    "ReplicaPlan",
    "StageContext",
    "plan_replica",
    "register_exact",
    "replica_coverage",
]
