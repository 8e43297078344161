"""White balance regressed through the replica from the raw's CFA (``replica regress --from-mosaic --free
temperature.red,temperature.blue``) on a darktable-rendered target.

The target: darktable's 8-bit sRGB export of the default history with the temperature coefficients moved
(red +15 %, blue -10 %) on a synthetic raw (coffee, 128x86); 100 Adam iterations, one restart. Over 3
fresh runs of this file: relative errors red 0.064-0.064 %, blue 0.025-0.025 %; darktable's render of
the recovered history against the target 64.19-64.19 dB, ΔE2000 mean 0.02 (the starting history:
30.07 dB); the replica's display against the target 58.91 dB (the target's 8-bit quantisation). The
regression is deterministic (seeded, on darktable's deterministic renders): bounds 1 % (the task's
acceptance: 2 %) and 55 dB, stated margins under the worst run.
"""

from __future__ import annotations


def test_white_balance_recovered_from_darktable_target(dt, make_raw, expect, tmp_path) -> None:
    from darkproxy.engines.regress import RegressConfig
    from darkproxy.replica.fit import render_export, replica_regress
    from darkproxy.replica.plan import _decode

    raw = make_raw(source="coffee", size=128)
    base = dt.default_history(raw)
    t = _decode(dt, "temperature", base.find("temperature")).values
    truth = {"temperature.red": t["red"] * 1.15, "temperature.blue": t["blue"] * 0.9}
    target = render_export(
        dt,
        raw,
        dt.edit(base, updates={"temperature": {"red": truth["temperature.red"], "blue": truth["temperature.blue"]}}),
        128,
    )
    r = replica_regress(
        dt,
        raw,
        target,
        tmp_path / "fit",
        free=list(truth),
        from_mosaic=True,
        truth=truth,
        config=RegressConfig(iters=100, restarts=1),
    )
    rel = {k: abs(r["params"][k] - v) / v for k, v in truth.items()}
    print(
        f"\nrecovered {r['params']} (truth {truth}): relative errors {rel}; darktable {r['darktable_psnr']:.2f} dB "
        f"(start {r['start_psnr']:.2f}), replica {r['replica_psnr']:.2f} dB"
    )
    for k, e in rel.items():
        expect(f"{k}: relative error", e, "<", 0.01)
    expect("darktable's render of the result vs the target", r["darktable_psnr"], ">", 55)
