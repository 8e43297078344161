"""The Levenberg-Marquardt polish after Adam (``engines/regress/polish.py``) on known maths: a narrow valley
where two sliders trade, which Adam leaves unfinished and the polish finishes; never a worse point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.engines.regress import RegressConfig, regress
from darkproxy.engines.regress.polish import lm_polish


class Valley(torch.nn.Module):
    """Two gains that trade: ``out = (a + b) x + 0.05 (a - b) x^2`` (a, b in [0, 2]): the sum is set by the
    image's mean level, the difference only by its slight curvature (a valley 20 times narrower one way)."""

    def __init__(self) -> None:
        super().__init__()
        self.module = "valley"
        self.param_space = ParamSpace.of(
            "valley", [ParamSpec("a", "float", 0.0, 2.0, 1.0), ParamSpec("b", "float", 0.0, 2.0, 1.0)]
        )

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        a, b = (2.0 * u[:, i, None, None, None] for i in (0, 1))
        return (a + b) * x + 0.05 * (a - b) * x * x


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.5, (3, 40, 40)).astype(np.float32)


def _target(model: torch.nn.Module, x: np.ndarray, a: float, b: float) -> np.ndarray:
    u = torch.tensor([[a / 2.0, b / 2.0]])
    with torch.no_grad():
        return model(torch.from_numpy(x)[None], u)[0].numpy()


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_polish_finishes_the_valley_adam_leaves(loss: str) -> None:
    m, x = Valley(), _x()
    y = _target(m, x, 1.4, 0.3)  # far along the valley from the defaults (1, 1): the sum 1.7 against 2
    cfg = RegressConfig(iters=40, restarts=1, loss=loss, polish=0)
    adam = regress(m, x, y, cfg)
    pol = regress(m, x, y, RegressConfig(iters=40, restarts=1, loss=loss, polish=10))
    err_adam = abs(adam.params["a"] - 1.4) + abs(adam.params["b"] - 0.3)
    err_pol = abs(pol.params["a"] - 1.4) + abs(pol.params["b"] - 0.3)
    print(f"\n{loss}: Adam alone |a - 1.4| + |b - 0.3| = {err_adam:.4f}, polished {err_pol:.2e}")
    assert err_adam > 0.05  # the valley's far end is not reached in 40 Adam steps
    assert err_pol < 1e-3 and pol.loss < adam.loss
    assert len(pol.loss_history) == 40  # the history stays Adam's


def test_polish_never_returns_a_worse_point() -> None:
    """A target the model cannot reach (noise added): the polish stops where no step lowers the loss."""
    m = Valley()
    x = torch.from_numpy(_x(1))[None]
    rng = np.random.default_rng(2)
    y = torch.from_numpy(_target(m, _x(1), 0.8, 1.1) + rng.normal(0, 0.05, (3, 40, 40)).astype(np.float32))[None]

    def model(z: torch.Tensor) -> torch.Tensor:
        return m(x.expand(z.shape[0], -1, -1, -1), torch.sigmoid(z))

    for z0 in ([0.3, -0.2], [2.0, 2.0], [-3.0, 1.0]):
        z, start, end = lm_polish(model, torch.tensor(z0), y, "l1", 10)
        with torch.no_grad():
            again = float((model(z[None]) - y).abs().mean())
        assert end <= start and again == pytest.approx(end, rel=1e-5)
