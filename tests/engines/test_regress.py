"""Slider regression: the optimiser on analytic proxies (known maths), and the
whole loop on real darktable renders with proxies trained here on tiny data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from darkproxy.data.paramspace import ParamSpace, ParamSpec
from darkproxy.engines.regress import RegressConfig, RegressError, regress
from tests.conftest import RUN_SIZE, run_cli
from tests.darktable.render_noise import assert_same_render
from tests.tonemap import tone_mapper


# ------------------------------------------------------------ analytic proxies
class ExposureMath(torch.nn.Module):
    """darktable's exposure formula, out = max(0, (x - black) / (2^-ev - black)),
    as a proxy over normalised params (exposure in [-2, 4], black in [-0.02, 0.02])."""

    def __init__(self) -> None:
        super().__init__()
        self.module = "exposure"
        self.param_space = ParamSpace.of(
            "exposure", [ParamSpec("exposure", "float", -2.0, 4.0, 0.0), ParamSpec("black", "float", -0.02, 0.02, 0.0)]
        )
        self.one = torch.nn.Parameter(torch.ones(()))  # a weight, like a real proxy's (must stay frozen)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        ev = -2.0 + 6.0 * u[:, 0]
        b = -0.02 + 0.04 * u[:, 1]
        scale = 1.0 / (torch.exp2(-ev) - b)
        return ((x - b[:, None, None, None]) * scale[:, None, None, None] * self.one).clamp_min(0.0)


class ChannelBoost(torch.nn.Module):
    """An enum (which channel is boosted x1.5), a bool (invert) and a float gain;
    the enum is relaxed as a piecewise-linear blend of one-hot weights."""

    def __init__(self) -> None:
        super().__init__()
        self.module = "toy"
        self.param_space = ParamSpace.of(
            "toy",
            [
                ParamSpec("channel", "enum", 0, 2, 0, values=(0, 1, 2), names=("R", "G", "B")),
                ParamSpec("invert", "bool", 0, 1, 0),
                ParamSpec("gain", "float", 0.5, 2.0, 1.0),
            ],
        )

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        pos = u[:, 0] * 2.0
        w = torch.stack([(1 - (pos - c).abs()).clamp_min(0) for c in range(3)], 1)  # (B, 3)
        gain = 0.5 + 1.5 * u[:, 2]
        y = x * gain[:, None, None, None] * (1 + 0.5 * w[:, :, None, None])
        inv = u[:, 1][:, None, None, None]
        return inv * (1.0 - y) + (1 - inv) * y


def _image(seed: int = 0, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.4, (3, size, size)).astype(np.float32)


def _render(proxy: torch.nn.Module, x: np.ndarray, values: dict[str, Any]) -> np.ndarray:
    u = torch.as_tensor(proxy.param_space.normalize(values))[None]
    with torch.no_grad():
        return proxy(torch.as_tensor(x)[None], u)[0].numpy()


@pytest.mark.parametrize("loss", ["l1", "mse", "ssim"])
def test_recovers_exposure_formula_exactly(loss: str) -> None:
    p, x = ExposureMath(), _image()
    y = _render(p, x, {"exposure": 1.3, "black": 0.007})
    r = regress(p, x, y, RegressConfig(iters=250, loss=loss))
    assert r.params["exposure"] == pytest.approx(1.3, abs=0.002 * 6)
    assert r.params["black"] == pytest.approx(0.007, abs=0.002 * 0.04)
    assert r.proxy_psnr > 60
    assert len(r.loss_history) == 250 and r.loss_history[-1] < r.loss_history[0]
    assert r.trajectory.shape == (250, 2) and len(r.restart_losses) == 4
    assert p.one.requires_grad and float(p.one.detach()) == 1.0  # the proxy is not trained (and left as it was)


def test_params_stay_in_range_by_construction() -> None:
    """A target beyond the training range pulls the param to the bound, never past it."""
    p, x = ExposureMath(), _image(1)
    y = _render(ExposureMath(), x * 2.0**1.5, {"exposure": 4.0, "black": 0.0})  # = +5.5 EV
    r = regress(p, x, y, RegressConfig(iters=200, params=["exposure"]))
    assert 3.9 < r.params["exposure"] <= 4.0
    assert r.params["black"] == 0.0  # not free: stays at its default
    assert r.free == ["exposure"] and r.normalized.min() >= 0.0 and r.normalized.max() <= 1.0


def test_enum_and_bool_are_relaxed_then_snapped() -> None:
    p, x = ChannelBoost(), _image(2)
    y = _render(p, x, {"channel": 2, "invert": True, "gain": 1.25})
    r = regress(p, x, y, RegressConfig(iters=300, restarts=6, seed=3))
    assert r.params["channel"] == 2 and r.params["invert"] is True
    assert r.params["gain"] == pytest.approx(1.25, abs=0.01)
    assert r.normalized[0] == 1.0 and r.normalized[1] == 1.0  # snapped to the discrete points


def test_seeded_and_deterministic() -> None:
    p, x = ExposureMath(), _image(3)
    y = _render(p, x, {"exposure": -0.4, "black": -0.01})
    a = regress(p, x, y, RegressConfig(iters=60, seed=7))
    b = regress(p, x, y, RegressConfig(iters=60, seed=7))
    assert a.params == b.params and a.loss_history == b.loss_history


class _Spatial(torch.nn.Module):
    """``x`` through a 3 x 3 box blur (``"blur"``) or divided by its own mean (``"stats"``): not pointwise."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, 3, 1, 1) if self.how == "blur" else x / x.mean()
        return y * (1.0 + u.sum())


def test_pointwise_models_fit_on_a_pixel_sample_others_on_the_whole_image() -> None:
    """A pointwise model is fitted on ``max_pixels`` of the image's pixels and its restarts ranked on an
    independent sample 64 times larger (or the whole image when that is smaller); a blur or an
    image-statistics model is caught by the check on a window and gets the whole image for both."""
    from darkproxy.engines.regress.engine import _work_pixels

    g = torch.Generator().manual_seed(0)
    u = torch.tensor([0.5, 0.5])
    for (H, W), ranked in (((200, 240), 128), ((100, 120), None)):
        x = torch.rand(1, 3, H, W, generator=g)
        t = 2.0 * x
        (xw, tw), (xr, tr) = _work_pixels(
            ExposureMath(), x, t, u, RegressConfig(max_pixels=256), np.random.default_rng(0)
        )
        assert xw.shape == (1, 3, 16, 16) and torch.equal(tw, 2.0 * xw)  # the target's same pixels
        pixels = {tuple(p) for p in x[0].flatten(1).T.tolist()}
        assert all(tuple(p) in pixels for p in xw[0].flatten(1).T.tolist())
        if ranked is None:  # 64 x 256 px is not less than the whole image: ranked on it
            assert xr is x and tr is t
        else:
            assert xr.shape == (1, 3, ranked, ranked) and torch.equal(tr, 2.0 * xr)
            assert not torch.equal(xr.flatten(2)[..., :256], xw.flatten(2))
    x = torch.rand(1, 3, 200, 240, generator=g)
    for how in ("blur", "stats"):
        (xw, _), (xr, _) = _work_pixels(_Spatial(how), x, x, u, RegressConfig(max_pixels=256), np.random.default_rng(0))
        assert xw is x and xr is x, how


def test_bad_config_and_unknown_param() -> None:
    from darkproxy.errors import UnknownParam

    p, x = ExposureMath(), _image()
    with pytest.raises(UnknownParam, match="nope"):
        regress(p, x, x, RegressConfig(params=["nope"]))
    with pytest.raises(RegressError, match="loss"):
        regress(p, x, x, RegressConfig(loss="l3"))


# ------------------------------------------------------ gradients of the objective
def _objective(
    proxy: torch.nn.Module, x: torch.Tensor, tenc: torch.Tensor, base: torch.Tensor, idx: list[int], kind: str
):
    """What the optimiser minimises (regress._adam): the loss per restart as a
    function of the logits ``z`` of the free params (the others stay at ``base``)."""
    from darkproxy.engines.regress.engine import loss_encode, per_item_loss

    def f(z: torch.Tensor) -> torch.Tensor:
        u = base.clone()
        u[:, idx] = torch.sigmoid(z)
        return per_item_loss(loss_encode(proxy(x, u)), tenc, kind)

    return f


@pytest.fixture
def one_thread():
    """Hundreds of tiny forwards: on a busy 2-core machine the default threads made the SSIM
    checks take 3.5 s, one thread 0.1 s (measured)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("kind", ["l1", "mse", "ssim"])
@pytest.mark.parametrize("proxy_kind", ["exposure_math", "pointwise"])
def test_objective_gradcheck(kind: str, proxy_kind: str, one_thread) -> None:
    """``torch.autograd.gradcheck`` (float64) of the regression objective w.r.t.
    the logits, for every loss, through darktable's exposure formula and
    through a (random, float64) pointwise proxy. The target differs from the
    prediction at every pixel by far more than gradcheck's step, so L1 is
    checked away from its kink at pred == target."""
    from darkproxy.engines.regress import loss_encode
    from darkproxy.models import build_model

    g = torch.Generator().manual_seed(0)
    x = 0.05 + 0.5 * torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)  # 2 restarts, off the sRGB kink
    if proxy_kind == "exposure_math":  # target: darktable's exposure at +2.5 EV, black 0.008
        proxy: torch.nn.Module = ExposureMath().double()
        target = proxy(x[:1], torch.tensor([[0.75, 0.7]], dtype=torch.float64)).detach()
    else:  # a proxy near the identity and a target 3x brighter than the input
        # (weights 0.02 off their init: output / input in [0.004, 1.8] over 40 seeds, measured;
        # at 0.1 it reached 5.2, and a 3x target came within 1e-5 of a prediction)
        torch.manual_seed(0)  # the init must not depend on which tests ran before
        proxy = build_model("pointwise", 2, width=8, depth=2, param_hidden=8).double()
        with torch.no_grad():
            for w in proxy.parameters():
                w.add_(0.02 * torch.randn(w.shape, generator=g, dtype=w.dtype))
        target = 3.0 * x[:1]
    z = torch.tensor([[-1.0, 0.5], [0.8, -0.3]], dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        tenc = loss_encode(target)
        gap = (loss_encode(proxy(x, torch.sigmoid(z))) - tenc).abs().min()
    assert float(gap) > 1e-4, gap  # no pixel near L1's kink
    f = _objective(proxy, x, tenc, torch.full((2, 2), 0.5, dtype=torch.float64), [0, 1], kind)
    assert f(z).shape == (2,)
    gz = torch.autograd.grad(f(z).sum(), z)[0]
    assert float(gz.abs().min()) > 1e-6, gz  # every logit moves the loss: the check is not vacuous
    assert torch.autograd.gradcheck(f, (z,), eps=1e-6, atol=1e-6, rtol=1e-4)
    # one free param: the other stays at its base value and gets no gradient
    f1 = _objective(proxy, x, tenc, torch.full((2, 2), 0.5, dtype=torch.float64), [1], kind)
    assert torch.autograd.gradcheck(f1, (z[:, 1:].detach().requires_grad_(True),), eps=1e-6, atol=1e-6, rtol=1e-4)


# ------------------------------------------------- real darktable, trained proxies
# The proxies come from tests/conftest.py (``exposure_run``, ``colorbalance_run``):
# pointwise runs trained on real ``darkproxy generate`` datasets of five tiny raws.
SIZE = RUN_SIZE


def hidden_targets(
    dt: Any, raw: Path, space: ParamSpace, n: int, seed: int, size: int = SIZE
) -> tuple[np.ndarray, list[dict[str, Any]], list[np.ndarray]]:
    """The module input and ``n`` darktable targets of ``raw`` at hidden params
    drawn uniformly in the training ranges (one darktable-cli process)."""
    import tempfile

    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import plan_tapout

    rng = np.random.default_rng(seed)
    base = dt.default_history(raw)
    truths = [space.denormalize(rng.uniform(0, 1, len(space))) for _ in range(n)]
    with tempfile.TemporaryDirectory() as td:
        jobs = [RenderJob(raw, plan_tapout(dt, base, space.module, {}).input_sidecar, Path(td) / "in.tif")]
        jobs += [
            RenderJob(
                raw, plan_tapout(dt, base, space.module, space.for_darktable(t)).output_sidecar, Path(td) / f"t{i}.tif"
            )
            for i, t in enumerate(truths)
        ]
        res = dt.renderer(max_size=size).render_batch(jobs)
        imgs = [read_tiff(p) for p in res]
    return imgs[0], truths, imgs[1:]


def verify_batch(
    dt: Any, raw: Path, space: ParamSpace, params: list[dict[str, Any]], size: int = SIZE
) -> list[np.ndarray]:
    """darktable tap-out outputs of ``params`` (one darktable-cli process)."""
    import tempfile

    from darkproxy.darktable.render import RenderJob, read_tiff
    from darkproxy.darktable.tapout import plan_tapout

    base = dt.default_history(raw)
    with tempfile.TemporaryDirectory() as td:
        jobs = [
            RenderJob(
                raw, plan_tapout(dt, base, space.module, space.for_darktable(p)).output_sidecar, Path(td) / f"v{i}.tif"
            )
            for i, p in enumerate(params)
        ]
        return [read_tiff(p) for p in dt.renderer(max_size=size).render_batch(jobs)]


@pytest.mark.slow
@pytest.mark.parametrize("module, run_fixture", [("exposure", "exposure_run"), ("colorbalancergb", "colorbalance_run")])
def test_hidden_params_recovered_and_darktable_agrees(
    dt, make_raw, request, expect, module: str, run_fixture: str
) -> None:
    """Targets darktable rendered with hidden params (uniform in the training ranges), on a raw the
    proxy never saw, are recovered close to the truth (median over targets and params, in units of the
    training range), and darktable's render of the recovered params is close to the target."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.proxy import load_proxy

    run = request.getfixturevalue(run_fixture)
    proxy = load_proxy(run)
    space = proxy.param_space
    raw = make_raw(source="chelsea", size=SIZE)  # not a training source
    inp, truths, targets = hidden_targets(dt, raw, space, n=4, seed=11)
    t0 = time.perf_counter()
    results = [regress(proxy, inp, tgt, RegressConfig(iters=200, record=False)) for tgt in targets]
    secs = (time.perf_counter() - t0) / len(targets)
    renders = verify_batch(dt, raw, space, [r.params for r in results])
    errs = np.array([np.abs(r.normalized - space.normalize(t)) for r, t in zip(results, truths, strict=True)])
    psnrs = [display_psnr(out, tgt) for out, tgt in zip(renders, targets, strict=True)]
    print(
        f"\n{module}: param errors {np.round(errs, 4).tolist()}, darktable PSNR {np.round(psnrs, 1).tolist()} dB, "
        f"proxy PSNR {[round(r.proxy_psnr, 1) for r in results]} dB, {secs:.2f} s per regression"
    )
    # bench/results/test_noise.md ("regress", 11 fresh runs) and CI: exposure 70.0-79.6 dB, error 0.04-0.24 %;
    # colorbalancergb 43.0-49.9 dB (std 2.1; CI 44.1), error 0.66-1.87 % (std 0.35 %) and CI 2.26 %: this
    # 2000-step proxy does not hold the "within 2 %" of the acceptance everywhere (vibrance trades with
    # saturation on this raw). Bounds 3 std beyond the worst run, CI's included: 36 dB, 3.5 %.
    psnr_bound, error_bound = (40.0, 0.02) if module == "exposure" else (36.0, 0.035)
    expect(f"{module}: darktable psnr median", float(np.median(psnrs)), ">=", psnr_bound)
    expect(f"{module}: param error median", float(np.median(errs)), "<=", error_bound)


@pytest.fixture(scope="module")
def exposure_tap(dt, make_raw, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tap-out (input.tif, output.tif, meta.json) at hidden exposure params."""
    from darkproxy.darktable.tapout import tapout

    raw = make_raw(source="chelsea", size=SIZE)
    d = tmp_path_factory.mktemp("tap-exposure")
    tapout(dt, raw, "exposure", {"exposure": 1.37, "black": -0.004, "mode": 0}, max_size=SIZE).save(d)
    return d


def _ok(r: Any) -> None:
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_cli_regress_from_raw_writes_xmp_darktable_renders(
    dt, exposure_run: Path, exposure_tap: Path, tmp_path: Path
) -> None:
    """``regress --raw``: the input is rendered at the target's size; result.xmp
    (full history, nothing disabled) renders in darktable-cli like the true
    params do; result_tapout.xmp reproduces darktable_output.tif; --video."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.render import read_tiff
    from darkproxy.darktable.xmp import read_xmp

    meta = json.loads((exposure_tap / "meta.json").read_text())
    raw = Path(meta["raw"])
    out = tmp_path / "rec"
    t0 = time.perf_counter()
    r = run_cli(
        "regress",
        str(exposure_run),
        "--raw",
        str(raw),
        "--target",
        str(exposure_tap / "output.tif"),
        "--iters",
        "150",
        "--video",
        "-o",
        str(out),
    )
    wall = time.perf_counter() - t0
    _ok(r)
    rec = json.loads((out / "params.json").read_text())
    assert rec["params"]["exposure"] == pytest.approx(1.37, abs=0.02 * 5)
    assert rec["darktable_psnr"] >= 40 and rec["proxy_psnr"] > 25
    assert rec["iters"] == 150 and rec["restarts"] == 4 and len(rec["loss_history"]) == 150
    assert len(rec["normalized"]) == 2
    # the reported times add up: the optimisation and darktable's check are parts of the total,
    # which is part of the command's wall time (measured: 61 s in total on a loaded 2-core CPU, with the video)
    assert 0 < rec["regress_seconds"] + rec["verify_seconds"] <= rec["seconds"] <= wall, (rec, wall)
    for f in (
        "result.xmp",
        "result_tapout.xmp",
        "darktable_output.tif",
        "proxy_output.tif",
        "optimisation.mp4",
        "optimisation.png",
    ):
        assert (out / f).stat().st_size > 0, f
    assert len(list((out / "frames").glob("*.png"))) > 10
    # result.xmp: the default history, exposure set, nothing disabled (the tone mapper on: filmic rgb, 5.4's sigmoid)
    full = read_xmp(out / "result.xmp")
    tone = tone_mapper(dt.default_history(raw))
    assert full.find(tone).enabled and full.find("exposure").enabled
    tap = read_xmp(out / "result_tapout.xmp")
    assert not tap.find(tone).enabled
    r_full = dt.renderer(max_size=SIZE)
    true_full = r_full.render_array(
        raw, dt.edit(dt.default_history(raw), updates={"exposure": {"exposure": 1.37, "black": -0.004, "mode": 0}})
    )
    assert display_psnr(r_full.render_array(raw, full), true_full) >= 40
    # the tap-out sidecar renders darktable_output.tif again (up to darktable's run-to-run noise)
    assert_same_render(r_full.render_array(raw, tap), read_tiff(out / "darktable_output.tif"), "result_tapout.xmp")


@pytest.mark.slow
def test_cli_regress_input_with_meta_is_verified(exposure_run: Path, exposure_tap: Path, tmp_path: Path) -> None:
    """``--input`` of a tap-out: its meta.json names the raw, so darktable checks the params."""
    out = tmp_path / "rec"
    r = run_cli(
        "regress",
        str(exposure_run),
        "--input",
        str(exposure_tap / "input.tif"),
        "--target",
        str(exposure_tap / "output.tif"),
        "--params",
        "exposure",
        "--iters",
        "120",
        "--loss",
        "mse",
        "-o",
        str(out),
    )
    _ok(r)
    rec = json.loads((out / "params.json").read_text())
    from darkproxy.proxy import Proxy

    black_default = Proxy.load(exposure_run).param_space.spec("black").default
    assert rec["free"] == ["exposure"] and rec["params"]["black"] == pytest.approx(black_default, abs=1e-6)
    assert rec["raw"] and rec["darktable_psnr"] is not None and (out / "result.xmp").is_file()
    assert "darktable" in r.stdout


def test_cli_missing_and_corrupt_run(tmp_path: Path) -> None:
    img = tmp_path / "t.tif"
    from darkproxy.darktable.render import write_tiff

    write_tiff(img, np.zeros((3, 8, 8), np.float32))
    r = run_cli("regress", str(tmp_path / "nope"), "--input", str(img), "--target", str(img), "-o", str(tmp_path / "o"))
    assert r.returncode != 0 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad-run"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    r = run_cli("regress", str(bad), "--input", str(img), "--target", str(img), "-o", str(tmp_path / "o"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_regress_refuses_soften_at_a_diagonal_it_never_learnt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """soften's zoo proxy is conditioned on the whole image's diagonal in output px (its radius is 1 % of it):
    regression through it from a 64 x 48 px input at scale 0.5 (a 128 x 96 px image: 80 px of diagonal, it
    learnt 114-1448) is refused in one line, nothing written."""
    from darkproxy.cli import main
    from darkproxy.darktable.render import write_tiff

    img = write_tiff(tmp_path / "in.tif", np.full((3, 48, 64), 0.2, np.float32))
    out = tmp_path / "o"
    rc = main(["regress", "zoo:soften", "--input", str(img), "--target", str(img), "--scale", "0.5", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "diagonal is 80 output px, outside" in err[-1], err
    assert not out.exists()


@pytest.mark.slow
def test_cli_bad_inputs_one_line_errors(
    exposure_run: Path, exposure_tap: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from darkproxy.cli import main
    from darkproxy.darktable.render import write_tiff

    small = write_tiff(tmp_path / "small.tif", np.zeros((3, 32, 48), np.float32))
    square = write_tiff(tmp_path / "square.tif", np.zeros((3, 40, 40), np.float32))
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00 this is not a tiff")
    tgt = str(exposure_tap / "output.tif")
    cases = [
        (["--input", str(small), "--target", tgt], "do not match"),
        (
            ["--raw", json.loads((exposure_tap / "meta.json").read_text())["raw"], "--target", str(square)],
            "do not match",
        ),  # the 3:2 raw renders 40x27 at the target's max size, the target is 40x40
        (["--input", str(exposure_tap / "input.tif"), "--target", tgt, "--params", "exposure,nope"], "nope"),
        (["--input", str(junk), "--target", tgt], "cannot read input"),
        (["--input", str(exposure_tap / "input.tif"), "--target", str(tmp_path / "missing.tif")], "does not exist"),
    ]
    for i, (extra, msg) in enumerate(cases):
        args = ["regress", str(exposure_run), *extra, "-o", str(tmp_path / "o")]
        if i == 0:  # the real entry point once; the others in process (a subprocess each cost ~3 s of suite time)
            r = run_cli(*args)
            rc, err = r.returncode, r.stderr
        else:
            capsys.readouterr()
            rc, err = main(args), capsys.readouterr().err
        assert rc != 0, extra
        assert msg in err and "Traceback" not in err, (extra, err)
        lines = err.strip().splitlines()  # progress lines, then ONE error line
        assert lines[-1].startswith("darkproxy regress: error:") and sum("error" in ln for ln in lines) == 1, err


class SingularExposure(ExposureMath):
    """ExposureMath with one singular pixel: NaN (value and gradient) for exposures over 2 EV,
    as a ported module can be at a degenerate colour."""

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = super().forward(x, u)
        ev = -2.0 + 6.0 * u[:, 0]
        pixel = torch.zeros_like(y[:1])
        pixel[:, 0, 0, 0] = 1.0
        return y + pixel * 0.0 * torch.log(2.0 - ev)[:, None, None, None]  # NaN only where ev > 2


class AlwaysNaN(ExposureMath):
    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return super().forward(x, u) * float("nan")


def test_regress_survives_nan_steps_and_restarts() -> None:
    """A restart that ends non-finite is never the answer (seed 3: two of the four random
    starts are over 2 EV); every restart non-finite is a one-line RegressError."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 16, 16, generator=g) * 0.5
    model = SingularExposure()
    target = ExposureMath()(x[None], torch.tensor([[0.5, 0.5]]))[0].detach()  # 1 EV
    cfg = RegressConfig(iters=150, restarts=4, params=["exposure"], max_pixels=None, record=False, seed=3)
    res = regress(model, x, target, cfg)
    assert not all(np.isfinite(res.restart_losses)), res.restart_losses  # the case under test happened
    assert np.isfinite(res.loss) and abs(res.params["exposure"] - 1.0) < 0.05, res.params
    with pytest.raises(RegressError, match="not finite") as e:
        regress(AlwaysNaN(), x, target, RegressConfig(iters=5, restarts=2, params=["exposure"], record=False))
    assert "\n" not in str(e.value)


class NaNAtMode(torch.nn.Module):
    """An enum ``mode`` (gain 1, 1.5, 2: linear in the relaxed value) whose output is NaN
    exactly at the discrete values in ``nan_at``: what snapping tries, never the relaxed optimum."""

    def __init__(self, nan_at: tuple[int, ...]) -> None:
        super().__init__()
        self.module = "toy"
        self.nan_at = nan_at
        self.param_space = ParamSpace.of("toy", [ParamSpec("mode", "enum", 0, 2, 0, values=(0, 1, 2))])

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        pos = u[:, 0] * 2.0
        y = x * (1.0 + 0.5 * pos)[:, None, None, None]
        bad = torch.zeros_like(pos, dtype=torch.bool)
        for k in self.nan_at:
            bad |= pos == float(k)
        return torch.where(bad[:, None, None, None], torch.full_like(y, float("nan")), y)


def test_snapping_never_picks_a_nan_value() -> None:
    """mode 0 renders NaN: argmin over the candidates' losses would pick it (torch's argmin
    returns a NaN's index); the finite best, mode 1, must win. NaN at every value: one line."""
    x = _image(4, 24)
    y = x * 1.5  # mode 1
    cfg = RegressConfig(iters=60, restarts=2, max_pixels=None, record=False)
    assert int(torch.argmin(torch.tensor([float("nan"), 1.0, 0.0]))) == 0  # what the engine must not trust
    r = regress(NaNAtMode((0,)), x, y, cfg)
    assert r.params["mode"] == 1 and np.isfinite(r.loss) and r.proxy_psnr > 60
    with pytest.raises(RegressError, match="snapping 'mode'.*not finite.*3 values") as e:
        regress(NaNAtMode((0, 1, 2)), x, y, cfg)
    assert "\n" not in str(e.value)


class GainOffset(torch.nn.Module):
    """out = gain x + offset (gain in [0.5, 2], offset in [0, 0.1]); keeps every params
    batch it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.module = "toy"
        self.param_space = ParamSpace.of(
            "toy", [ParamSpec("gain", "float", 0.5, 2.0, 1.0), ParamSpec("offset", "float", 0.0, 0.1, 0.0)]
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self.seen.append(u.detach().clone())
        gain = 0.5 + 1.5 * u[:, 0]
        off = 0.1 * u[:, 1]
        return x * gain[:, None, None, None] + off[:, None, None, None]


def test_a_fixed_param_outside_the_training_range_reaches_the_model_unclipped() -> None:
    """offset 0.3 is 3x its training range's top: the forward passes, the final output and
    the result keep 0.3 (a clipped 0.1 would put every pixel 0.2 off: ~14 dB)."""
    x = _image(5, 24)
    y = x * 1.2 + 0.3
    model = GainOffset()
    r = regress(model, x, y, RegressConfig(iters=200, params=["gain"]), fixed={"offset": 0.3})
    assert r.params["offset"] == 0.3 and r.free == ["gain"]
    assert r.params["gain"] == pytest.approx(1.2, abs=0.01)
    assert r.normalized[1] == pytest.approx(3.0, rel=1e-6) and 0.0 <= r.normalized[0] <= 1.0
    seen = torch.cat(model.seen)
    assert torch.allclose(seen[:, 1], torch.tensor(3.0), rtol=1e-6), seen[:, 1].unique()  # every forward pass
    assert r.proxy_psnr > 60 and float(np.abs(r.proxy_output - y).max()) < 0.01


class HueTint(torch.nn.Module):
    """A colorize-like tint: out = x + amount (cos h, sin h, -cos h) with the hue h an angle (0..360 degrees,
    one whole turn when ``period`` is 360) and amount in [0, 0.1]."""

    def __init__(self, period: float = 360.0) -> None:
        super().__init__()
        self.module = "toy"
        self.param_space = ParamSpace.of(
            "toy",
            [ParamSpec("hue", "float", 0.0, 360.0, 10.0, period=period), ParamSpec("amount", "float", 0.0, 0.1, 0.05)],
        )

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = 2 * torch.pi * u[:, 0]
        a = 0.1 * u[:, 1]
        tint = torch.stack([torch.cos(h), torch.sin(h), -torch.cos(h)], 1) * a[:, None]
        return x + tint[:, :, None, None]


@pytest.mark.parametrize("polish", [0, 8])
def test_a_hue_wraps_across_zero(polish: int) -> None:
    """From 10 degrees to a target at 350: a whole-turn angle is wrapped, so the fit goes the short way across 0
    (a bounded one is held at the sigmoid's wall near 0: 10 degrees off). Polish (on the same variables) too."""
    x = _image(6, 24)
    y = _render(HueTint(), x, {"hue": 350.0, "amount": 0.08})
    cfg = RegressConfig(iters=200, restarts=1, polish=polish)
    r = regress(HueTint(), x, y, cfg)
    assert r.params["hue"] == pytest.approx(350.0, abs=0.2) and r.params["amount"] == pytest.approx(0.08, abs=1e-3)
    assert r.proxy_psnr > 60
    bounded = regress(HueTint(period=0.0), x, y, cfg)
    assert bounded.params["hue"] < 5.0  # the reason for the wrap: stuck at the wall, the long way round uphill
