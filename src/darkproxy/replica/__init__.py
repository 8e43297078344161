"""A replica of darktable, raw to display, every stage differentiable (``darkproxy replica``).

* :mod:`darkproxy.replica.stages`: the stage registry (exact torch implementations of
  darktable's closed-form modules: exposure, colorin, sharpen, colorout...);
* :mod:`darkproxy.replica.chain`: a history -> stage kinds (:func:`plan_replica`) and the
  differentiable chain (:class:`ReplicaChain`);
* :mod:`darkproxy.replica.run`: darktable's references (input, tap-outs, sRGB export),
  the figures, ``summary.json`` and ``index.html`` (:func:`run_replica`);
* :mod:`darkproxy.replica.fit`: slider recovery through the whole chain from a display
  target (``darkproxy replica regress``).
"""

from __future__ import annotations

from darkproxy.replica import colorbalancergb as _colorbalancergb  # noqa: F401  registers its exact stage
from darkproxy.replica import filmicrgb as _filmicrgb  # noqa: F401  registers its exact stage
from darkproxy.replica import sigmoid as _sigmoid  # noqa: F401  registers its exact stage
from darkproxy.replica.chain import ReplicaChain, ReplicaError, ReplicaPlan, plan_replica
from darkproxy.replica.stages import EXACT, ExactOp, StageContext, register_exact

__all__ = [
    "EXACT",
    "ExactOp",
    "ReplicaChain",
    "ReplicaError",
    "ReplicaPlan",
    "StageContext",
    "plan_replica",
    "register_exact",
]
