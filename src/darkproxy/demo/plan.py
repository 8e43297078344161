"""The demo's sizes (:class:`DemoPlan`) and the hidden settings its regressions recover."""

from __future__ import annotations

from dataclasses import dataclass, field

TRUE_REGRESS = {"saturation_global": 0.25, "vibrance": -0.2, "contrast": 0.15}
TRUE_PIPELINE = {
    "exposure": {"exposure": 1.1, "black": 0.01},
    "colorbalancergb": {"saturation_global": -0.2, "vibrance": 0.25, "contrast": 0.1},
    "sharpen": {"radius": 3.0, "amount": 1.2, "threshold": 0.4},
}
REPLICA_EDIT = {
    "exposure": {"exposure": 1.2},
    "colorbalancergb": {"saturation_global": 0.25, "contrast": 0.15, "vibrance": 0.2},
    "filmicrgb": {"contrast": 1.4, "white_point_source": 5.0},
    "sharpen": {"amount": 1.0},
}
TRUE_MATCH = {
    "exposure": {"exposure": 1.4},
    "colorbalancergb": {"saturation_global": -0.2, "contrast": 0.2, "chroma_global": 0.15},
    "filmicrgb": {"contrast": 1.5},
}


@dataclass
class DemoPlan:
    """Sizes of the demo (``quick``: about 3 min on 2 CPU cores, measured)."""

    quick: bool = True
    n_raws: int = 6
    raw_size: int = 384
    size: int = 128
    samples: int = 64
    train_steps: dict[str, int] = field(default_factory=dict)
    eval_n: int = 4
    regress_iters: int = 200
    sweep_steps: int = 24
    modules: tuple[str, ...] = ("exposure", "colorbalancergb")

    @classmethod
    def make(cls, quick: bool) -> DemoPlan:
        if quick:
            return cls(True, 6, 384, 128, 96, {"exposure": 4000, "colorbalancergb": 8000}, 4, 200, 24)
        return cls(
            False,
            8,
            512,
            192,
            192,
            {"exposure": 8000, "colorbalancergb": 16000, "sharpen": 8000},
            8,
            300,
            50,
            ("exposure", "colorbalancergb", "sharpen"),
        )
