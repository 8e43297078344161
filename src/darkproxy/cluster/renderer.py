"""The renderer of a cluster (:class:`RayRenderer`): render batches as Ray tasks, images written here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkproxy.cluster.connection import Cluster
from darkproxy.cluster.ray_support import ClusterError
from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob
from darkproxy.errors import RawError


@dataclass
class RayRenderer(Renderer):
    """A :class:`~darkproxy.darktable.render.Renderer` whose batches run as Ray tasks on a
    :class:`Cluster` (one darktable-cli process per batch, on a usable node); the images are
    written here. ``install`` is the driver's darktable (the nodes use their own, same version)."""

    cluster: Cluster | None = None

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Path | RenderFailure]:
        if not jobs:
            return []
        for j in jobs:
            if not Path(j.raw).is_file():
                raise RawError(f"raw file {j.raw} does not exist")
        if self.cluster is None or not self.cluster.is_open:
            raise ClusterError("the Ray cluster of this renderer is closed")
        return self.cluster.render(jobs, self)


def ray_renderer(cluster: Cluster, install: Any, max_size: int | None = None, **kw: Any) -> RayRenderer:
    """A :class:`RayRenderer` on ``cluster`` (``install``: the driver's darktable, for messages)."""
    kw.setdefault("timeout", cluster.render_timeout)
    return RayRenderer(install, max_size=max_size, cluster=cluster, **kw)
