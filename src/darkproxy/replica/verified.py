"""Exact ports that darktable releases newer than the one they were written against render differently.

Every port was written against darktable 4.2.1 and checked against its tap-outs (``tests/replica``). The same
tests on darktable 5.0.1 (``bench/bench_suite_darktable.py`` in ``bench/darktable_chroot.sh``:
``bench/results/suite_darktable_5.0.1_2workers.md``) show which of them 5.0 computes differently at the same params
version: those are refused there (one line, the figure), never run and labelled exact. The others passed under the
bounds set on 4.2.1. A port whose params version moved is refused by its version already (``versions=`` in
``register_exact``). The changes happened somewhere between 4.2 and 5.0; only those two were measured, so the
table applies from 5.0 on.
"""

from __future__ import annotations

from collections.abc import Sequence

# module -> what darktable 5.0.1's tap-outs gave (the worst setting of the port's test; > 60 dB on 4.2.1)
DIFFERS_FROM_50: dict[str, str] = {
    "colorbalancergb": "40.6 dB against darktable 5.0.1's tap-out (> 85 on 4.2.1)",
    "channelmixerrgb": "32.3 dB against darktable 5.0.1's tap-outs (> 60 on 4.2.1)",
    "atrous": "32.7-39.0 dB against darktable 5.0.1's tap-outs (> 60 on 4.2.1)",
    "bilat": "46.7-47.8 dB against darktable 5.0.1's tap-outs (> 60 on 4.2.1)",
    "negadoctor": "40.5 dB against darktable 5.0.1's tap-outs (> 60 on 4.2.1)",
}


def port_differs(module: str, version: Sequence[int] | None) -> str | None:
    """Why ``module``'s exact port does not reproduce darktable ``version`` (``None``: 4.2's, the ports' own),
    ``None`` when nothing measured says so."""
    if version is None or tuple(version[:2]) < (5, 0) or module not in DIFFERS_FROM_50:
        return None
    shown = ".".join(str(v) for v in version)
    return f"{module}'s exact port follows darktable 4.2's maths, which 5.0 changed: {DIFFERS_FROM_50[module]}; " + (
        f"this is darktable {shown}"
    )
