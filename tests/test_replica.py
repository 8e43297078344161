"""The replica of darktable (raw to display) against darktable's own export, with the real darktable-cli.

A 256 px synthetic raw rendered at 128 px: render scale 0.5, the scale of the zoo's local proxies.
Floors are measured values minus a margin (coffee, the edit below, every stage exact: 60.0 dB end to
end, ΔE2000 0.13, limited by darktable's 8-bit export; each stage alone > 90 dB).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli

EDIT = {
    "exposure": {"exposure": 1.0},
    "colorbalancergb": {"saturation_global": 0.2, "contrast": 0.1},
    "filmicrgb": {"contrast": 1.3},
    "sharpen": {"amount": 1.0, "radius": 2.0},
}


@pytest.fixture(scope="module")
def raw256(make_raw) -> Path:
    return make_raw(source="coffee", size=256)


def test_replica_cli_four_modules(raw256: Path, tmp_path: Path) -> None:
    """The acceptance run: --set over exposure, colorbalancergb, filmicrgb and sharpen;
    every file, the summary's fields and stage kinds, and the report's images."""
    out = tmp_path / "rep"
    sets = [f"{m}.{p}={v}" for m, d in EDIT.items() for p, v in d.items()]
    args = ["replica", str(raw256), "--max-size", "128", "-o", str(out), "--json"]
    for s in sets:
        args += ["--set", s]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    for f in ("replica.png", "darktable.png", "error.png", "summary.json", "index.html", "history.xmp"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert set(s) >= {"psnr", "deltae_mean", "deltae_p95", "seconds", "stages"}
    kinds = {st["module"]: st["kind"] for st in s["stages"]}
    assert kinds["demosaic"] == kinds["temperature"] == "passthrough"
    assert kinds["exposure"] == kinds["sharpen"] == kinds["colorin"] == kinds["colorout"] == "exact"
    assert kinds["colorbalancergb"] == kinds["filmicrgb"] == "exact"
    assert all(st["kind"] in ("exact", "proxy", "passthrough") and "psnr_vs_tapout" in st for st in s["stages"])
    alone = {st["module"]: st.get("psnr_alone") for st in s["stages"]}
    for m in ("exposure", "sharpen", "colorbalancergb", "filmicrgb"):
        assert alone[m] > 70, alone
    assert alone["colorout"] > 50, alone  # the display stage on darktable's filmic output vs its sRGB export
    assert s["psnr"] > 50 and s["deltae_mean"] < 0.5, (s["psnr"], s["deltae_mean"])
    assert s["render_scale"] == pytest.approx(0.5, abs=0.01)
    page = (out / "index.html").read_text()
    assert 'src="replica.png"' in page and 'src="darktable.png"' in page and "Per-stage attribution" in page


def test_replica_is_differentiable_and_refuses_missing(dt, raw256: Path) -> None:
    """Gradients reach the image and a slider of every edited module; a module with
    neither an exact stage nor a proxy is refused in one line, or passed through."""
    from darkproxy.replica.chain import ReplicaError, plan_replica
    from darkproxy.replica.run import build_chain, render_references, replica_history

    hist = replica_history(dt, raw256, None, EDIT)
    plan = plan_replica(dt, hist, raw256)
    renders = render_references(dt, raw256, plan, 128, export=False)
    chain = build_chain(plan, renders)
    x = torch.from_numpy(renders.input)[None].requires_grad_(True)
    u = chain.history_u().requires_grad_(True)
    y = chain(x, u)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    y.mean().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    names = chain.param_space.names
    for p in ("exposure.exposure", "colorbalancergb.saturation_global", "filmicrgb.contrast", "sharpen.amount"):
        assert u.grad is not None and float(u.grad[0, names.index(p)].abs()) > 0, p
    # gradients stay bounded away from the history too (filmic rgb's white clipping once gave 1e24 for one
    # pixel near display white, which froze Adam): every slider at random settings, float32 as the engine runs
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        ur = (0.1 + 0.8 * torch.rand(1, len(names), generator=g)).requires_grad_(True)
        chain(torch.from_numpy(renders.input)[None], ur).abs().mean().backward()
        assert ur.grad is not None and torch.isfinite(ur.grad).all() and float(ur.grad.abs().max()) < 1e3, ur.grad

    bad = dt.edit(hist, enable=["monochrome"])
    with pytest.raises(ReplicaError, match="monochrome") as e:
        plan_replica(dt, bad, raw256)
    assert "\n" not in str(e.value) and "--allow-missing" in str(e.value)
    ok = plan_replica(dt, bad, raw256, allow_missing=True)
    assert {s.module: s.kind for s in ok.stages}["monochrome"] == "passthrough"


def test_replica_regress_recovers_exposure(dt, raw256: Path, tmp_path: Path) -> None:
    """Full-chain regression from a display target: a hidden exposure is recovered
    and darktable's render of result.xmp matches the target."""
    from darkproxy.regress import RegressConfig
    from darkproxy.replica.fit import render_export, replica_regress
    from darkproxy.replica.run import replica_history

    hidden = {"exposure": {"exposure": 1.4}, "colorbalancergb": {"saturation_global": 0.2}}
    target = render_export(dt, raw256, replica_history(dt, raw256, None, hidden), 128)
    r = replica_regress(
        dt,
        raw256,
        target,
        tmp_path / "fit",
        free=["exposure.exposure"],
        sets={"colorbalancergb": {"saturation_global": 0.2}},
        truth={"exposure.exposure": 1.4},
        config=RegressConfig(iters=60, restarts=1),
    )
    assert abs(r["params"]["exposure.exposure"] - 1.4) < 0.15, r["params"]
    assert r["darktable_psnr"] > 35 and r["darktable_psnr"] > r["start_psnr"] + 5, r
    assert (tmp_path / "fit" / "result.xmp").is_file() and (tmp_path / "fit" / "darktable.png").is_file()
    assert np.isfinite(r["darktable_deltae_mean"])
