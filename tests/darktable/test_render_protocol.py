"""The renderer interface generation receives (darktable.render.BatchRenderer)."""

from __future__ import annotations

from darkproxy.darktable.render import BatchRenderer


def test_local_and_ray_renderers_are_batch_renderers(dt) -> None:
    """darktable-cli's renderer and the cluster's both carry what generation uses (the cluster's
    is built here without a connection: no Ray needed)."""
    from darkproxy.cluster import RayRenderer

    assert isinstance(dt.renderer(max_size=64), BatchRenderer)
    assert isinstance(RayRenderer(dt.install, max_size=64), BatchRenderer)
    assert not isinstance(object(), BatchRenderer)
