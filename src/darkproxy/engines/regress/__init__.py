"""Slider regression: :mod:`.engine` (tensors only: sliders, pipelines, the replica),
:mod:`.recover` (``darkproxy regress``: files in, darktable's proof out),
:mod:`.optimisation_video` (frames, video and plot of an optimisation), :mod:`.benchmark`
(``darkproxy regress-eval``: the proxy against black-box search on darktable)."""

from darkproxy.engines.regress.engine import (
    RegressConfig,
    RegressError,
    RegressResult,
    encoder_for,
    loss_encode,
    regress,
    resolve_free,
)

__all__ = ["RegressConfig", "RegressError", "RegressResult", "encoder_for", "loss_encode", "regress", "resolve_free"]
