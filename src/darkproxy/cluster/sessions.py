"""This process's cluster: one Ray connection, opened on first use, closed at exit or by a
:func:`session`; the renderer factory and zoo entry points that use it."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkproxy.cluster.connection import Cluster
from darkproxy.cluster.node_tasks import ModuleStages
from darkproxy.cluster.renderer import ray_renderer
from darkproxy.darktable.render import Renderer, RendererFactory
from darkproxy.progress import say

if TYPE_CHECKING:
    from darkproxy.darktable.session import Darktable

_ACTIVE: Cluster | None = None
_ACTIVE_LOCK = threading.Lock()
_ATEXIT = False


def get_cluster(
    address: str,
    darktable_version: str,
    workers: int | None = None,
    log: Callable[[str], None] = say,
    render_timeout: float = 300.0,
) -> Cluster:
    """This process's open :class:`Cluster` for ``address`` (opened on first use and closed at
    exit, unless a :func:`session` closes it first). One Ray connection per process: another
    address closes the previous one."""
    global _ACTIVE, _ATEXIT
    with _ACTIVE_LOCK:
        if _ACTIVE is not None and _ACTIVE.is_open and _ACTIVE.address == address:
            return _ACTIVE
        if _ACTIVE is not None:
            _ACTIVE.close()
        _ACTIVE = None
        c = Cluster(address, darktable_version, workers=workers, log=log, render_timeout=render_timeout).open()
        _ACTIVE = c
        if not _ATEXIT:
            atexit.register(_close_active)
            _ATEXIT = True
        return c


def _close_active() -> None:
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is not None:
            _ACTIVE.close()
        _ACTIVE = None


@contextlib.contextmanager
def session(
    address: str | None,
    darktable_version: str,
    workers: int | None = None,
    log: Callable[[str], None] = say,
    render_timeout: float = 300.0,
) -> Iterator[Cluster | None]:
    """``with session(address, dt.version):`` the run's cluster, connected (and its nodes
    checked) on entry and closed on exit; yields None when ``address`` is None (no cluster).
    Inside, :func:`get_cluster` and ``GenerateOptions(cluster=address)`` use this connection."""
    if not address:
        yield None
        return
    with _ACTIVE_LOCK:
        outer = _ACTIVE if (_ACTIVE is not None and _ACTIVE.is_open and _ACTIVE.address == address) else None
    if outer is not None:  # nested: the outer session closes it
        yield outer
        return
    c = get_cluster(address, darktable_version, workers=workers, log=log, render_timeout=render_timeout)
    try:
        yield c
    finally:
        _close_active()


def cluster_renderer(
    address: str, dt: Darktable, max_size: int | None, workers: int | None = None, log: Callable[[str], None] = say
) -> Renderer:
    """The renderer of ``darkproxy generate --cluster ADDRESS`` (see :class:`RayRenderer`)."""
    assert dt.install is not None
    c = get_cluster(address, dt.version, workers=workers, log=log, render_timeout=dt.config.render_timeout)
    return ray_renderer(c, dt.install, max_size=max_size)


def renderer_factory(
    address: str, dt: Darktable, workers: int | None = None, log: Callable[[str], None] = say
) -> RendererFactory:
    """``max_size -> renderer`` on the cluster at ``address`` (connected on the first call): what
    generation receives (``darkproxy generate --cluster``) instead of importing the cluster."""

    def make(max_size: int | None) -> Renderer:
        return cluster_renderer(address, dt, max_size, workers=workers, log=log)

    return make


def train_zoo_modules(
    address: str,
    dt: Darktable,
    modules: Sequence[str],
    plan: Any,
    work: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
    run_stages: ModuleStages,
) -> dict[str, str]:
    """``darkproxy zoo train --cluster``: see :meth:`Cluster.train_zoo_modules` (``run_stages``:
    one module's stages, handed in by the zoo)."""
    with session(address, dt.version, log=log, render_timeout=dt.config.render_timeout) as c:
        assert c is not None
        return c.train_zoo_modules(dt, modules, plan, work, train_dir, held_dir, device, log, run_stages)
