"""The ports whose maths darktable 5 changed follow the running darktable's version (the plan's context).

atrous, bilat, channelmixerrgb, colorbalancergb and negadoctor compute as darktable 4.2 or 5 by
:attr:`StageContext.darktable_version`, which the plan takes from the installed darktable. Each port's tap-out test
checks its maths against the darktable that runs it (4.2.1 here; 5.0.1 and 5.4.1 in ``bench/darktable_chroot.sh``:
``bench/results/suite_darktable_*.md``). Here: the plan of a history runs them exact on 4.2.1 and, told the darktable
is 5.0.1 (only the version differs), exact too with that version in the context, and the version changes their
output where darktable 5 changed it.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

EDITS = {
    "bilat": {"detail": 0.8},
    "atrous": {f"y[0][{k}]": 0.7 for k in range(6)},
    "colorbalancergb": {"saturation_global": 0.3},
    "channelmixerrgb": {"adaptation": 2, "illuminant": 3},  # full Bradford: darktable 5 clips XYZ before mapping
}


def test_plan_hands_the_version_to_the_ports(dt, make_raw) -> None:
    from darkproxy.replica import EXACT
    from darkproxy.replica.plan import plan_replica

    raw: Path = make_raw(source="coffee", size=96)
    hist = dt.edit(dt.default_history(raw), updates=EDITS, enable=list(EDITS))
    five = copy.copy(dt)
    five.install = dataclasses.replace(dt.install, version="5.0.1")
    plans = {v: plan_replica(d, hist, raw) for v, d in (("here", dt), ("5.0.1", five))}
    assert plans["5.0.1"].context.darktable_version == (5, 0, 1)
    assert plans["here"].context.darktable_version == dt.install.version_tuple
    x = 0.02 + 0.6 * torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    x[:, 2, :8] = -0.01  # a few negative values: darktable 5 maps them otherwise (channelmixerrgb)
    outs = {}
    for v, plan in plans.items():
        stages = {s.module: s for s in plan.stages}
        assert {m: stages[m].kind for m in EDITS} == dict.fromkeys(EDITS, "exact"), v
        with torch.no_grad():
            outs[v] = {m: EXACT[m].fn(x, stages[m].values, plan.context) for m in EDITS}
    if dt.install.version_tuple[:2] < (5, 0):  # 4.2.1 here: the two maths differ for every one of them
        for m in EDITS:
            assert not torch.allclose(outs["here"][m], outs["5.0.1"][m], atol=1e-6, rtol=0), m
