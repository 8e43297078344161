"""The exact color balance rgb stage against the real darktable-cli, and its gradients.

One tap-out pair (coffee, 256 px raw rendered at 128 px) with the hue wheels, chroma,
vibrance, saturation, brilliance and contrast moved: measured 98.1 dB display PSNR (motorcycle: 95.2 dB)
(random edits over every slider, both saturation formulas, 4 raws: 83-100 dB). On darktable 5.0.1 and 5.4.1
(the port's darktable 5 maths, the context's version) 92.2 dB, per slider 89-100
(``bench/results/colorbalancergb_darktable_*.md``): the same floor.
"""

from __future__ import annotations

import pytest
import torch

from darkproxy.replica.registry import EXACT, StageContext

EDIT = {
    "saturation_global": 0.3,
    "contrast": 0.2,
    "vibrance": 0.2,
    "chroma_global": 0.1,
    "hue_angle": 10.0,
    "global_C": 0.05,
    "global_H": 200.0,
    "midtones_C": 0.1,
    "midtones_H": 45.0,
    "brilliance_shadows": 0.2,
}


def test_colorbalancergb_matches_darktable(dt, make_raw) -> None:
    """The stage alone on darktable's input to the module reproduces its tap-out."""
    from darkproxy.colour.metrics import display_psnr
    from darkproxy.darktable.tapout import tapout

    op = EXACT["colorbalancergb"]
    assert op.versions == (5,) and set(EDIT) - {"brilliance_shadows"} <= set(op.params)
    tp = tapout(dt, make_raw(source="coffee", size=256), "colorbalancergb", EDIT, max_size=128)
    values = tp.meta["params"]
    ctx = StageContext(darktable_version=dt.install.version_tuple)
    assert op.supports(values, ctx) is None
    with torch.no_grad():
        y = op.fn(torch.from_numpy(tp.input)[None], values, ctx)[0].numpy()
    assert display_psnr(y, tp.output) > 85.0  # measured 98.1 dB (4.2.1), 92.2 (5.0.1, 5.4.1)
    assert op.supports({**values, "saturation_formula": 2}, StageContext()) is not None


@pytest.mark.parametrize(("formula", "version"), [(0, None), (1, None), (0, (5, 4, 1)), (1, (5, 4, 1))])
def test_colorbalancergb_gradcheck(formula: int, version: tuple[int, ...] | None) -> None:
    """Analytic gradients in the image and three sliders match finite differences (float64), with darktable
    4.2's maths and 5's (its polynomial power for the midtones, its 512-entry LUTs)."""
    fn = EXACT["colorbalancergb"].fn
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, 2, 2, generator=g, dtype=torch.float64) * 0.8 + 0.02).requires_grad_(True)
    names = ("saturation_global", "contrast", "global_H")
    p0 = (0.3, 0.2, 60.0)
    params = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in p0]
    base = {"saturation_formula": formula, "global_C": 0.05, "midtones_C": 0.05, "midtones_H": 200.0, "vibrance": 0.2}

    def f(x: torch.Tensor, *p: torch.Tensor) -> torch.Tensor:
        return fn(x, {**base, **dict(zip(names, p, strict=True))}, StageContext(darktable_version=version))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)
