"""Pipeline configs: parsing and the order / data-space checks (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkproxy.pipeline import PipelineConfig, PipelineError, check_pipeline


def _cfg(tmp_path: Path, body: str) -> PipelineConfig:
    p = tmp_path / "pipe.toml"
    p.write_text(body)
    return PipelineConfig.load(p)


def test_parse_and_relative_runs(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        'name = "x"\n[[stage]]\nmodule = "exposure"\nrun = "runs/exp"\nfree = ["exposure"]\n'
        'fixed = { black = 0.0 }\n[[stage]]\nmodule = "colorbalancergb"\nrun = "/abs/cb"\n',
    )
    assert [s.module for s in cfg.stages] == ["exposure", "colorbalancergb"]
    assert cfg.stages[0].run == (tmp_path / "runs" / "exp").resolve() and cfg.stages[1].run == Path("/abs/cb")
    assert cfg.stages[0].free == ["exposure"] and cfg.stages[0].fixed == {"black": 0.0}
    again = _cfg(tmp_path, cfg.dump())
    assert [(s.module, s.run, s.free, s.fixed) for s in again.stages] == [
        (s.module, s.run, s.free, s.fixed) for s in cfg.stages
    ]
    # dotted param names (nested struct fields) survive the round trip as flat keys
    cfg.stages[1].fixed = {"grey_fulcrum.value": 0.1845, "mode": "auto"}
    assert _cfg(tmp_path, cfg.dump()).stages[1].fixed == {"grey_fulcrum.value": 0.1845, "mode": "auto"}


@pytest.mark.parametrize(
    "body, msg",
    [
        ("[[stage]]\nmodule = 'exposure'\n", "needs `module` and `run`"),
        ("name = 'x'\n", "no \\[\\[stage\\]\\] entries"),
        ("[[stage]\n", "not valid TOML"),
    ],
)
def test_malformed(tmp_path: Path, body: str, msg: str) -> None:
    with pytest.raises(PipelineError, match=msg):
        _cfg(tmp_path, body)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        PipelineConfig.load(tmp_path / "none.toml")


def _info(module: str, pre: bool = False) -> dict:
    return {"module": module, "data_space": "linear_rec2020", "pre_demosaic": pre}


def test_order_from_darktable(dt, tmp_path: Path) -> None:
    order = dt.schemas.pipe_order(2)
    good = _cfg(
        tmp_path,
        "[[stage]]\nmodule='exposure'\nrun='a'\n[[stage]]\nmodule='sharpen'\nrun='b'\n"
        "[[stage]]\nmodule='colorbalancergb'\nrun='c'\n",
    )
    res = check_pipeline(good, order, [_info(s.module) for s in good.stages])
    assert res.ok, res.problems
    bad = _cfg(tmp_path, "[[stage]]\nmodule='colorbalancergb'\nrun='a'\n[[stage]]\nmodule='exposure'\nrun='b'\n")
    res = check_pipeline(bad, order, [_info(s.module) for s in bad.stages])
    assert not res.ok and "expected exposure -> colorbalancergb" in res.problems[0]


def test_data_spaces_must_chain(dt, tmp_path: Path) -> None:
    order = dt.schemas.pipe_order(2)
    cfg = _cfg(tmp_path, "[[stage]]\nmodule='exposure'\nrun='a'\n[[stage]]\nmodule='demosaic'\nrun='b'\n")
    res = check_pipeline(cfg, order, [_info("exposure"), _info("demosaic", pre=True)])
    assert not res.ok
    assert any("expects packed_mosaic" in p for p in res.problems)
    assert any("pipe order" in p for p in res.problems)
    wrong = check_pipeline(cfg, order, [_info("sharpen"), _info("demosaic", pre=True)])
    assert any("is a proxy of sharpen, not exposure" in p for p in wrong.problems)


def test_chained_proxies_need_the_scale_of_a_scale_dependent_stage() -> None:
    """A chain with a bilat proxy trained at render scale 0.5 only (``ONE_SCALE_RUN``) runs only once it
    is given the images' scale: without one it refuses, as the proxy alone does."""
    import torch

    from darkproxy.errors import ScaleError
    from darkproxy.pipeline import FlatPipelineProxy, ProxyPipeline
    from darkproxy.proxy import Proxy
    from tests.conftest import ONE_SCALE_RUN

    pipe = ProxyPipeline([Proxy.load("zoo:exposure"), Proxy.load(ONE_SCALE_RUN)])
    flat = FlatPipelineProxy(pipe)
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    u = torch.as_tensor(flat.param_space.normalize({}))[None]
    with pytest.raises(ScaleError, match="bilat proxy depends on the render scale"):
        flat(x, u)
    with pytest.raises(ScaleError, match="outside"):
        pipe.set_scale(1.0)
    pipe.set_scale(0.5)
    with torch.no_grad():
        got = flat(x, u)
        alone = pipe.proxies[1](pipe.proxies[0](x, flat.split(u)[0]), flat.split(u)[1], scale=0.5)
    assert torch.equal(got, alone)
