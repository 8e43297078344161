"""A proxy stage runs only where its proxy was trained and reproduces its module (replica/proxyfit.py): the
cases bench/results/replica_coverage.md found running silently wrong (14-30 dB) through the zoo's proxies."""

from __future__ import annotations

import pytest


def _plan(dt, raw, updates: dict, **kw):
    from darkproxy.replica import plan_replica

    return plan_replica(dt, dt.edit(dt.default_history(raw), updates=updates), raw, **kw)


def test_proxy_refused_outside_its_training(dt, tiny_raw) -> None:
    from darkproxy.proxy.locate import list_zoo, shipped_root
    from darkproxy.replica import ReplicaError

    worst = {r["module"]: r for r in list_zoo(shipped_root())}["censorize"]["heldout_psnr_min"]
    assert worst < 30  # what makes it a case: the replica takes a proxy unasked from 30 dB
    cases = [
        # censorize's pixelation, which its port refuses: the zoo's proxy has a worst held-out render (zoo.json)
        # under 30 dB: not taken unasked
        (
            {"censorize": {"pixelate": 4.0}},
            {},
            ["censorize", f"worst held-out render is {worst:.1f} dB", "--prefer-proxy"],
        ),
        # darktable's "local contrast mask" preset: radius 50, the proxy saw 0.5..20 (it gave 14.6 dB)
        ({"lowpass": {"radius": 50.0}}, {"prefer_proxy": ["lowpass"]}, ["radius = 50", "trained range 0.5..20"]),
        # a param that is not one of the proxy's sliders, moved from what its data had
        ({"lowpass": {"lowpass_algo": 1}}, {"prefer_proxy": ["lowpass"]}, ["lowpass_algo = 1", "differs from the 0"]),
        # colorin's proxy learned camera RGB -> Rec2020; the chain hands it Rec2020 (it gave 25-31 dB there)
        ({}, {"prefer_proxy": ["colorin"]}, ["colorin", "maps camera RGB", "exact stage reproduces it"]),
    ]
    for updates, kw, words in cases:
        with pytest.raises(ReplicaError) as e:
            _plan(dt, tiny_raw, updates, **kw)
        msg = str(e.value)
        assert "\n" not in msg and all(w in msg for w in words), msg
    # asked for by name, in its trained range, the other params as its data had them: it runs (its fidelity
    # is in the summary); a module with an exact stage runs it unless its proxy is asked for (vignette, whose
    # proxy's held-out worst case is 44.9 dB)
    asked = _plan(dt, tiny_raw, {"lowpass": {"radius": 12.0, "contrast": 0.5}}, prefer_proxy=["lowpass"])
    assert {s.module: s.kind for s in asked.stages}["lowpass"] == "proxy"
    ok = _plan(dt, tiny_raw, {"vignette": {"brightness": -0.3}})
    assert {s.module: s.kind for s in ok.stages}["vignette"] == "exact"
    ok = _plan(dt, tiny_raw, {"vignette": {"brightness": -0.3}}, prefer_proxy=["vignette"])
    assert {s.module: s.kind for s in ok.stages}["vignette"] == "proxy"


def test_proxy_of_array_sliders(dt, tiny_raw) -> None:
    """channelmixerrgb's proxy has elements of arrays for sliders (``red[0]``): they are read from the
    history, the arrays' other elements must be as its data had them."""
    from darkproxy.replica import ReplicaError

    plan = _plan(
        dt, tiny_raw, {"channelmixerrgb": {"red[0]": 1.2, "saturation[1]": -0.4}}, prefer_proxy=["channelmixerrgb"]
    )
    st = {s.module: s for s in plan.stages}["channelmixerrgb"]
    assert st.kind == "proxy"
    with pytest.raises(ReplicaError) as e:  # red[3] is not one of its sliders
        _plan(dt, tiny_raw, {"channelmixerrgb": {"red[0]": 1.2, "red[3]": 0.5}}, prefer_proxy=["channelmixerrgb"])
    msg = str(e.value)
    assert "\n" not in msg and "channelmixerrgb red = [1.2" in msg and "not its sliders" in msg, msg


def test_soften_proxy_refused_on_another_image_size(dt, tiny_raw) -> None:
    """soften's radius is 1 % of the whole image's diagonal: its proxy, trained on regions of 1024 px raws, gave
    25.5 dB on whole 256 px raws where it gives 36.9 on its own (soften_geometry_*_16_draws.md). The replica
    and the proxy itself refuse it on another size, name the reason, and take it on raws of its size."""
    from darkproxy.errors import DarkproxyError
    from darkproxy.proxy import Proxy
    from darkproxy.replica import ReplicaError

    with pytest.raises(ReplicaError) as e:
        _plan(dt, tiny_raw, {"soften": {"size": 40.0}}, prefer_proxy=["soften"])
    msg = str(e.value)
    words = ["soften's radius is 1 % of the full-resolution diagonal", "learnt it on 1024 px raws", "exact stage"]
    assert "\n" not in msg and all(w in msg for w in words), msg
    proxy = Proxy.load("zoo:soften")
    proxy.check_full_size((1024.0, 683.0))  # 1024 px on its long side
    proxy.check_full_size((1010.0, 673.0))  # within rawprepare's crop
    for size, words in [((256.0, 170.0), "256 x 170 px"), ((6000.0, 4000.0), "6000 x 4000"), (None, "not known")]:
        with pytest.raises(DarkproxyError, match=words):
            proxy.check_full_size(size)
    del proxy.run_info["raw_size"]  # a run that does not record its raws' size
    with pytest.raises(DarkproxyError, match="does not record"):
        proxy.check_full_size((1024.0, 683.0))
    Proxy.load("zoo:lowpass").check_full_size(None)  # a radius in px times the scale: any size
    # the size apply and regress check: the raw's (rawpy), else the input as the whole image at its scale
    from darkproxy.darktable.tapout import full_size, raw_size

    assert full_size((), None, tiny_raw) == tuple(float(v) for v in raw_size(tiny_raw) or ())
    assert full_size((3, 10, 20), 0.5, None) == (40.0, 20.0) and full_size((3, 10, 20), None, None) is None
