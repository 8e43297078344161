"""Exact ports that darktable releases newer than the one they were written against render differently.

Every port was written against darktable 4.2.1 and checked against its tap-outs (``tests/replica``). The same
tests on darktable 5.0.1 (``bench/bench_suite_darktable.py`` in ``bench/darktable_chroot.sh``:
``bench/results/suite_darktable_5.0.1_2workers.md``, per setting in ``docs/darktable-notes.md``) show which of them
5.0 computes differently at the same params version: those (or those settings) are refused there in one line with
the figure, never run and labelled exact. The others passed under the bounds set on 4.2.1. A port whose params
version moved is refused by its version already (``versions=`` in ``register_exact``). The changes happened
somewhere between 4.2 and 5.0; only those two were measured, so the table applies from 5.0 on (5.4.1 since: the
same). color balance rgb, refused here until its darktable 5 maths was ported from 5.4.1's source (the port
follows :attr:`StageContext.darktable_version`; ``bench/results/colorbalancergb_darktable_*.md``), is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

_FULL_BRADFORD = 2  # channelmixerrgb's adaptation
_BLACKBODY, _DETECT_SURFACES, _DETECT_EDGES = 6, 8, 9  # its illuminants


def _channelmixerrgb(v: Mapping[str, Any]) -> str | None:
    """color calibration on 5.0.1, per setting of its port's test (the worst of 4.2.1's > 60 dB): CAT16 with
    daylight or LED 86-100 dB, XYZ with F 100, RGB 79.8, linear Bradford with A 92.5, 5.0's default (CAT16 as shot
    in camera) 58.95 end to end (``replica_darktable_5.0.1.md``); full Bradford 32.3 and 64.0, linear Bradford with
    a black body 53.9, detected illuminants 57.6 (edges) and 63.8 (surfaces)."""
    if int(v.get("adaptation", 1)) == _FULL_BRADFORD:
        return "its full Bradford adaptation gave 32.3-64.0 dB against darktable 5.0.1's tap-outs"
    ill = int(v.get("illuminant", 2))
    if ill in (_BLACKBODY, _DETECT_SURFACES, _DETECT_EDGES):
        what = {_BLACKBODY: "black body", _DETECT_SURFACES: "detected surfaces", _DETECT_EDGES: "detected edges"}
        return f"its {what[ill]} illuminant gave 53.9-63.8 dB against darktable 5.0.1's tap-outs"
    return None


def _whole(figure: str) -> Callable[[Mapping[str, Any]], str | None]:
    return lambda v: figure


# module -> why a setting of its port does not reproduce darktable 5.0 (the worst setting of the port's test on
# 5.0.1; each > 60 dB on 4.2.1)
DIFFERS_FROM_50: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "channelmixerrgb": _channelmixerrgb,
    "atrous": _whole("32.7-39.0 dB against darktable 5.0.1's tap-outs"),
    "bilat": _whole("46.7-47.8 dB against darktable 5.0.1's tap-outs"),
    "negadoctor": _whole("40.5 dB against darktable 5.0.1's tap-outs"),
}


def port_differs(module: str, values: Mapping[str, Any], version: Sequence[int] | None) -> str | None:
    """Why ``module``'s exact port at ``values`` does not reproduce darktable ``version`` (``None``: 4.2's, the
    ports' own), ``None`` when nothing measured says so."""
    if module not in differing_ports(version):
        return None
    assert version is not None  # differing_ports is empty without one
    why = DIFFERS_FROM_50[module](values)
    if why is None:
        return None
    shown = ".".join(str(v) for v in version)
    return f"{module}'s exact port follows darktable 4.2's maths, which 5.0 changed: {why}; this is darktable {shown}"


def differing_ports(version: Sequence[int] | None) -> list[str]:
    """The modules of :data:`DIFFERS_FROM_50` that darktable ``version`` refuses (all or some settings)."""
    return [] if version is None or tuple(version[:2]) < (5, 0) else sorted(DIFFERS_FROM_50)
