"""darktable's own upgrade of old history items (``Darktable.upgraded``: its ``legacy_params``, read back
from the history it embeds in an export) against darkproxy's ported upgrades, and on real old sidecars."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from darkproxy.darktable.legacy import LEGACY, upgrade_params
from darkproxy.darktable.params import decode_params, flatten
from darkproxy.darktable.xmp import read_xmp
from tests.darktable.test_legacy import CBRGB, EXPOSURE, LOWPASS, MOSAIC_CASES, old_blob, with_item

# darktable's benchmark sidecar of darktable 3.4 (src/tests/benchmark/darktable-bench-3.4.xmp), as written
BENCH_34 = Path(__file__).parents[1] / "fixtures" / "darktable-bench-3.4.xmp"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _rounds(cases: list[tuple[str, int, dict[str, Any]]]) -> list[list[tuple[str, int, dict[str, Any]]]]:
    """The cases in rounds that hold each module once (one history per round)."""
    by: dict[str, list[tuple[str, int, dict[str, Any]]]] = defaultdict(list)
    for c in cases:
        by[c[0]].append(c)
    return [[v[k] for v in by.values() if k < len(v)] for k in range(max(len(v) for v in by.values()))]


def test_darktable_upgrades_old_items_as_the_ports_do(dt, make_raw) -> None:
    """Every ported upgrade (exposure v2-v5, color balance rgb v1-v4, lowpass v1-v3, diffuse v1, atrous v1; the
    mosaic stages' on an over-exposed raw) gives the values darktable's own upgrade gives, member for member."""
    _skip_unless_darktable_42(dt)
    atrous_x = [k / 5.0 for _ in range(5) for k in range(6)]
    atrous_y = [0.5 + 0.25 * k / 6.0 for k in range(6)] + [0.5] * 12 + [0.0] * 12
    cases = [("diffuse", 1, {"iterations": 2, "radius": 8, "first": 0.5, "second": 0.3, "sharpness": 0.2})]
    cases.append(("atrous", 1, {"octaves": 7, "x": atrous_x, "y": atrous_y}))
    cases += [("lowpass", v, vals) for v, vals in ((1, LOWPASS), (2, {**LOWPASS, "radius": -6.0}), (3, LOWPASS))]
    cases += [("exposure", v, {**EXPOSURE, "gain": 1.0}) for v in (2, 3, 4, 5)]
    cases += [("colorbalancergb", v, {**CBRGB, "saturation_global": 3.0} if v == 1 else CBRGB) for v in (1, 2, 3, 4)]
    mosaic = [(m, v, vals) for (m, v), vals in MOSAIC_CASES.items()]
    compared = 0
    for raw, group in ((make_raw(source="coffee", size=128), cases), (make_raw(size=128, headroom=2.0), mosaic)):
        base = dt.edit(dt.default_history(raw), enable=["diffuse", "atrous", "lowpass", "colorbalancergb"])
        for rnd in _rounds(group):
            old = base
            for m, v, vals in rnd:
                old = with_item(old, m, v, old_blob(LEGACY[(m, v)], vals))
            up = dt.upgraded(raw, old)
            for m, v, _ in rnd:
                sch = dt.schemas.get(m)
                it = up.find(m)
                assert (it.modversion, it.upgraded_from, len(it.params)) == (sch.version, v, sch.size), m
                theirs = flatten(decode_params(sch, it.params))
                ours = flatten(decode_params(sch, upgrade_params(sch, v, old.find(m).params)))
                differ = {k: (ours[k], theirs[k]) for k in ours if not _same(ours[k], theirs[k])}
                assert not differ, f"{m} v{v}: ported upgrade vs darktable's: {differ}"
                compared += 1
    assert compared == len(cases) + len(mosaic)


def test_darktable_upgrades_a_darktable_34_sidecar(dt, make_raw) -> None:
    """The history of a sidecar darktable 3.4 wrote: every item of an older version (channel mixer rgb v2,
    filmic rgb v4, profiled denoise v10, lens v5, retouch v1...: none ported by hand) comes back at darktable's
    version, its params the size darktable's introspection gives, and the rest as written (darktable crashes
    rendering this history from a 128 px raw: the upgrade runs no module)."""
    raw: Path = make_raw(source="coffee", size=128)
    old = read_xmp(BENCH_34).compressed()
    current = dt.default_history(raw)
    assert dt.upgraded(raw, current) is current  # nothing older: as is, darktable not run
    up = dt.upgraded(raw, old)
    mods = dt.schemas.modules
    older = [it for it in old.items if it.operation in mods and it.modversion < mods[it.operation].version]
    assert {"channelmixerrgb", "filmicrgb", "denoiseprofile", "lens", "retouch"} <= {it.operation for it in older}
    for a, b in zip(old.items, up.items, strict=True):
        assert a.key == b.key
        if a.operation not in mods:
            continue
        if a.modversion < mods[a.operation].version:
            sch = mods[a.operation]
            assert (b.modversion, b.upgraded_from, len(b.params)) == (sch.version, a.modversion, sch.size)
        else:
            assert (b.modversion, b.params, b.upgraded_from) == (a.modversion, a.params, None)
    cm = decode_params(mods["channelmixerrgb"], up.find("channelmixerrgb").params)  # v2 -> v3: the rows kept
    assert cm["red"][0] == 1.0 and abs(cm["red"][1] - 0.011) < 1e-6 and abs(cm["red"][2] + 0.012) < 1e-6


def test_cli_xmp_show_decodes_old_items_as_darktable_upgrades_them(
    dt, make_raw, capsys: pytest.CaptureFixture[str]
) -> None:
    """`darkproxy xmp show OLD.xmp` leaves a darktable 3.4 item opaque; with `--raw RAW` darktable upgrades it
    first: shown v2->v3 with its values (text and JSON); a missing raw is one line and exit 2."""
    from darkproxy.cli import main

    raw: Path = make_raw(source="coffee", size=128)
    assert main(["xmp", "show", str(BENCH_34), "--json"]) == 0
    plain = {(d["operation"], d["multi_priority"]): d for d in json.loads(capsys.readouterr().out)}
    assert plain[("channelmixerrgb", 0)]["params"] is None and "modversion 2" in plain[("channelmixerrgb", 0)]["reason"]
    assert main(["xmp", "show", str(BENCH_34), "--raw", str(raw), "--json"]) == 0
    up = {(d["operation"], d["multi_priority"]): d for d in json.loads(capsys.readouterr().out)}
    cm = up[("channelmixerrgb", 0)]
    assert (cm["modversion"], cm["upgraded_from"]) == (3, 2) and abs(cm["params"]["red"][1] - 0.011) < 1e-6
    assert main(["xmp", "show", str(BENCH_34), "--raw", str(raw)]) == 0
    assert " channelmixerrgb v2->v3 " in capsys.readouterr().out
    assert main(["xmp", "show", str(BENCH_34), "--raw", str(raw.with_name("missing.dng"))]) != 0
    err = capsys.readouterr().err.strip()
    assert "missing.dng" in err and "\n" not in err


def _skip_unless_darktable_42(dt) -> None:
    if dt.install.version_tuple[:2] != (4, 2):  # 5.0 renamed rawprepare's crop, moved temperature to v4...
        pytest.skip(f"legacy.py's hand ports write darktable 4.2's structs (darktable {dt.version} upgrades itself)")
