"""Proxy.load round trip, named params, normalisation and gradients."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from darkproxy.colour.metrics import display_psnr_batch
from darkproxy.data.dataset import ModuleDataset, write_sample_arrays
from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.engines.train import TrainConfig, train, validate
from darkproxy.errors import DarkproxyError, UnknownParam
from darkproxy.models import build_model
from darkproxy.proxy import Proxy

SPACE = ParamSpace.of(
    "exposure",
    [
        ParamSpec("exposure", "float", -2.0, 4.0, 0.0),
        ParamSpec("mode", "enum", 0, 2, 0, values=(0, 1, 2), names=("a", "b", "c")),
    ],
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("proxy")
    rng = np.random.default_rng(0)
    samples, splits = [], []
    for i in range(20):
        x = np.stack([gaussian_filter(c, 4) for c in rng.normal(size=(3, 32, 32))])
        x = (2 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)
        ev = float(rng.uniform(-2, 4))
        samples.append((x, x * 2.0**ev, {"exposure": ev, "mode": int(i % 3)}))
        splits.append("val" if i % 5 == 0 else "train")
    ds = write_sample_arrays(root / "ds", SPACE, samples, splits=splits, pointwise=True)
    # one validation, at the last step: the best weights are the final ones
    train(ds, root / "run", TrainConfig(steps=300, val_every=300, device="cpu"), progress=False)
    return ds, root / "run"


def test_load_round_trip(trained: tuple[Path, Path]) -> None:
    ds, run = trained
    proxy = Proxy.load(run)
    assert proxy.module == "exposure" and proxy.param_space == SPACE and proxy.arch == "pointwise"
    assert proxy.pointwise and not proxy.pre_demosaic and proxy.run_info["data_space"] == "linear_rec2020"
    assert not any(p.requires_grad for p in proxy.parameters()) and not proxy.training
    # the loaded proxy scores exactly the recorded best validation PSNR
    metrics = json.loads((run / "metrics.json").read_text())
    val = ModuleDataset(ds, "val", crop=256, flips=False, center_crop=True)
    assert validate(proxy, val, torch.device("cpu"))[0] == pytest.approx(metrics["best_val_psnr"], abs=1e-3)
    # and the same outputs as the trained model (final checkpoint == best here)
    assert metrics["best_step"] == metrics["steps"] == 300
    info = proxy.run_info
    model = build_model(info["arch"], len(SPACE), **info["hparams"])
    model.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=False)["model"])
    model.eval()
    x, p = torch.rand(2, 3, 8, 8) * 2, torch.rand(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(proxy(x, p), model(x, p), rtol=0, atol=0)


def test_named_params_and_gradients(trained: tuple[Path, Path]) -> None:
    _, run = trained
    proxy = Proxy.load(run)
    x = torch.rand(3, 3, 8, 8) * 0.4
    y = proxy(x, {"exposure": 1.0})  # missing "mode" takes its default
    torch.testing.assert_close(y, proxy(x, proxy.normalize({"exposure": 1.0, "mode": 0}).expand(3, -1)))
    assert float(display_psnr_batch(y, x * 2.0).min()) > 30.0  # it learned the gain
    u = proxy.normalize({"exposure": torch.tensor([-2.0, 1.0, 4.0]), "mode": 2})
    torch.testing.assert_close(u, torch.tensor([[0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]))
    assert proxy.denormalize(u[1]) == {"exposure": 1.0, "mode": 2}
    assert proxy.denormalize(u)[2]["exposure"] == 4.0
    with pytest.raises(UnknownParam):
        proxy.normalize({"exposre": 1.0})
    # gradients reach the image and a named tensor value
    ev = torch.tensor(0.5, requires_grad=True)
    xi = x.clone().requires_grad_(True)
    out = proxy(xi, {"exposure": ev})
    gx, gev = torch.autograd.grad(out.mean(), (xi, ev))
    assert float(gx.abs().sum()) > 0
    assert float(gev) == pytest.approx(float(out.detach().mean()) * math.log(2), rel=0.1)  # d/dev x 2^ev = ln2 * y
    # a single unbatched image
    assert proxy(x[0], {"exposure": 0.0}).shape == (3, 8, 8)
    with pytest.raises(DarkproxyError):
        proxy(x, torch.rand(3, 5))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DarkproxyError, match="no run.json"):
        Proxy.load(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(DarkproxyError, match="model.safetensors"):
        Proxy.load(tmp_path)


def test_weights_of_another_architecture_or_corrupt(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    _, run = trained
    other = tmp_path / "other"
    shutil.copytree(run, other)
    info = json.loads((other / "run.json").read_text())
    info["hparams"]["width"] = 8  # weights trained at another width
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(DarkproxyError, match="does not fit architecture 'pointwise'"):
        Proxy.load(other)
    shutil.copy(run / "run.json", other / "run.json")
    (other / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(DarkproxyError, match="does not fit"):
        Proxy.load(other)


def test_a_scale_dependent_proxy_refuses_an_unknown_scale() -> None:
    """A bilat proxy trained at render scale 0.5 only (``ONE_SCALE_RUN``; one scale: not
    conditioned): its output depends on the scale, so ``scale=None`` is refused in one line
    wherever it is called, and the scale it was trained at is accepted; the pointwise
    exposure proxy does not depend on it."""
    from darkproxy.errors import ScaleError
    from tests.conftest import ONE_SCALE_RUN

    bilat, expo = Proxy.load(ONE_SCALE_RUN), Proxy.load("zoo:exposure")
    assert bilat.scale_range is not None and bilat.scale_range.dependent and not bilat.scale_conditioned
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    for call in (
        lambda: bilat(x, {}),
        lambda: bilat.at_scale(None),
        lambda: bilat.check_scale(None),
        lambda: bilat.apply_image(x[0].numpy(), {}),
    ):
        with pytest.raises(ScaleError, match="depends on the render scale \\(trained at 0.5\\)") as e:
            call()
        assert "\n" not in str(e.value)
    with torch.no_grad():
        a, b = bilat(x, {}, scale=0.5), bilat.at_scale(0.5)(x, {})
    assert torch.equal(a, b) and torch.isfinite(a).all()
    expo.check_scale(None)
    assert torch.isfinite(expo(x, {"exposure": 1.0})).all()


def test_a_loaded_proxys_hues_are_whole_turns() -> None:
    """The zoo's colorbalancergb run.json holds no period: the loader gives each hue its turn (so a regression
    wraps it) and leaves the other sliders bounded."""
    sp = Proxy.load("zoo:colorbalancergb").param_space
    turns = {s.name for s in sp.specs if s.full_turn}
    assert turns == {f"{r}_H" for r in ("shadows", "midtones", "highlights", "global")}
    assert sp.spec("hue_angle").period == 360.0 and sp.spec("contrast").period == 0.0
