"""A proxy stage runs only where its proxy was trained and reproduces its module (replica/proxyfit.py): the
cases bench/results/replica_coverage.md found running silently wrong (14-30 dB) through the zoo's proxies."""

from __future__ import annotations

import pytest

from tests.conftest import skip_unless_zoo_darktable, zoo_darktable


def _plan(dt, raw, updates: dict, **kw):
    from darkproxy.replica import plan_replica

    return plan_replica(dt, dt.edit(dt.default_history(raw), updates=updates), raw, **kw)


def test_proxy_refused_outside_its_training(dt, tiny_raw) -> None:
    skip_unless_zoo_darktable(dt)
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
    skip_unless_zoo_darktable(dt)
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


def test_soften_proxy_follows_the_image_size(dt, tiny_raw) -> None:
    """soften's radius is 1 % of the whole image's diagonal, times the render scale: its proxy is conditioned on
    that diagonal in output px (conditioned on the render scale alone it gave 25.5 dB on whole 256 px raws where it
    gave 36.9 on regions of its 1024 px ones: soften_geometry_*_16_draws.md). The replica takes it on a 128 px
    raw rendered whole, and refuses in one line a render whose diagonal it never learnt."""
    skip_unless_zoo_darktable(dt)
    from darkproxy.darktable.tapout import raw_size
    from darkproxy.data.scale import ScaleRange
    from darkproxy.errors import DarkproxyError, ScaleError
    from darkproxy.proxy import Proxy
    from darkproxy.replica.references import load_proxies

    plan = _plan(dt, tiny_raw, {"soften": {"size": 40.0}}, prefer_proxy=["soften"])
    assert {s.module: s for s in plan.stages}["soften"].kind == "proxy"
    wh = raw_size(tiny_raw)
    assert wh == (128, 128)
    load_proxies(plan, 1.0, full_size=wh)  # 181 px of diagonal: within what it learnt (114-1448)
    with pytest.raises(ScaleError) as e:
        load_proxies(plan, 0.25, full_size=wh)
    msg = str(e.value)
    assert "\n" not in msg and "soften" in msg and "diagonal is 45 output px, outside" in msg, msg
    proxy = Proxy.load("zoo:soften")
    assert proxy.scale_for(0.5, (300.0, 400.0)) == pytest.approx(250.0)
    with pytest.raises(ScaleError, match="diagonal is 7211 output px"):  # a 24 MP raw at full size
        proxy.scale_for(1.0, (6000.0, 4000.0))
    with pytest.raises(DarkproxyError, match="not known"):
        proxy.scale_for(0.5, None)
    # a soften proxy conditioned on the render scale (trained before 2026-12-06) runs at its raws' size only
    proxy.scale_range = ScaleRange(0.1, 1.0, True, True)
    assert proxy.scale_for(0.5, (1010.0, 673.0)) == 0.5  # 1024 px within rawprepare's crop
    for size, words in [((256.0, 170.0), "learnt it on 1024 px raws, this one is 256 x 170 px"), (None, "not known")]:
        with pytest.raises(DarkproxyError, match=words):
            proxy.scale_for(0.5, size)
    del proxy.run_info["raw_size"]  # a run that does not record its raws' size
    with pytest.raises(DarkproxyError, match="does not record"):
        proxy.scale_for(0.5, (1024.0, 683.0))
    assert Proxy.load("zoo:lowpass").scale_for(0.5, None) == 0.5  # a radius in px times the scale: any size
    # the size apply and regress check: the raw's (rawpy), else the input as the whole image at its scale
    from darkproxy.darktable.tapout import full_size

    assert full_size((), None, tiny_raw) == tuple(float(v) for v in raw_size(tiny_raw) or ())
    assert full_size((3, 10, 20), 0.5, None) == (40.0, 20.0) and full_size((3, 10, 20), None, None) is None


def test_proxy_of_another_darktable_is_refused(dt, tiny_raw) -> None:
    """A proxy runs only on the darktable whose renders and defaults it was trained on: the values it was
    trained at are read from this darktable's defaults (darktable 5.0.1 defaults filmic rgb to a colour science
    4.2.1 has not; the shipped filmic proxy was taken for it there: docs/darktable-notes.md)."""
    from darkproxy.darktable.params import decode_params, flatten
    from darkproxy.replica.proxyfit import proxy_problem, trained_values

    hist = dt.edit(dt.default_history(tiny_raw), updates={"lowpass": {"radius": 12.0, "contrast": 0.5}})
    it = hist.find("lowpass")
    values = flatten(decode_params(dt.schemas.get("lowpass"), it.params))
    trained = trained_values(dt, "lowpass", tiny_raw)
    args = ("lowpass", "zoo:lowpass", values, it.modversion, trained)
    zoo = zoo_darktable()
    if dt.version == zoo:  # the zoo's darktable: it runs; another is told apart by its version alone
        assert proxy_problem(*args, asked=True, darktable_version=dt.version) is None
        other = "5.0.1"
    else:  # this darktable is another one (bench/darktable_chroot.sh): the refusal is the real one
        other = dt.version
    why = proxy_problem(*args, asked=True, darktable_version=other)
    assert why is not None and "\n" not in why, why
    assert f"trained on darktable {zoo}'s renders" in why and f"this is darktable {other}" in why, why
