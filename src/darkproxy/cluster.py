"""Dataset generation and zoo training on a Ray cluster (the ``[cluster]`` extra: ``pip install 'darkproxy[cluster]'``).

``--cluster ADDRESS`` on ``darkproxy generate`` and ``darkproxy zoo train`` takes:

* ``ray``: a local Ray started for the run on 127.0.0.1 (``--workers`` CPUs for generate, every CPU for the zoo),
  shut down at the end: the engine without a cluster, to try it or to compare;
* ``auto``: the cluster this machine is a node of (``ray start`` ran here);
* ``ray://HOST:PORT``: a cluster through Ray Client (the head's port 10001 by default), from any machine;
* ``HOST:PORT``: a cluster's GCS address (what ``ray start --head`` prints), from one of its nodes.

**Nodes.** At start a tiny task runs on every alive node and reports its ``darktable-cli --version``
(``$DARKPROXY_DARKTABLE_CLI`` or ``PATH`` there). A node without darktable, with another darktable
version than this machine's, without darkproxy, or without CPUs is reported in one line and not used:
every task is pinned to a usable node (node affinity), the least busy one.

**Generation.** The driver (this process) plans the run exactly as without a cluster: darktable's
default histories, the pointwise probe and pre-demosaic inputs stay here, so the driver needs the
same darktable. Renders go through :class:`RayRenderer`, the :class:`~darkproxy.darktable.render.Renderer`
of a cluster: each batch of render jobs becomes one Ray task, which gets the raws' bytes (one
``ray.put`` per raw and run, kept on each node's disk by content, so no shared filesystem is needed)
and the XMP sidecars' text, runs darktable-cli on its node and returns the TIFF bytes; the driver
writes them where the job asked. The generator's thread pool keeps ``--workers`` tasks in flight.
The driver alone writes samples and the manifest, so ids, params, splits and resume are those of a
local run with the same seed, and a SIGKILL of the driver resumes as usual; a killed worker's task
is retried by Ray, a lost node's on another node.

**Zoo.** ``darkproxy zoo train --cluster`` runs each unfinished module's generate, train and eval
stages as one Ray task (``num_gpus=1`` when a usable node has a GPU) in a temporary folder on its
node; the task returns the module's files (dataset, run without its checkpoint, eval report, stage
records), which the driver writes into the work folder (the node's paths replaced by the work
folder's in text files) before publishing into the zoo folder as a local run does.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob
from darkproxy.errors import DarkproxyError, DarktableRenderError, RawError
from darkproxy.fsutil import write_bytes_atomic
from darkproxy.progress import say

if TYPE_CHECKING:
    from darkproxy.darktable.session import Darktable
    from darkproxy.zoo import ZooPlan

INSTALL_HINT = "pip install 'darkproxy[cluster]'"
LOCAL = "ray"
CHECK_TIMEOUT_S = 120.0  # for every node to answer the darktable check (a fresh node starts its Python workers)
# a zoo module's task: darktable-cli renders (2 at a time, a short part), then training with the plan's torch threads
# (one in the shipped plan)
ZOO_TASK_CPUS = 1
RENDER_ATTEMPTS = 3  # a batch whose node was lost is sent to another node, at most this often
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".html", ".txt", ".md", ".toml", ".xmp")
ZOO_STAGES = ("generate", "train", "eval")


# Renderer fields a node sets itself (its darktable, its folders, its counters); the others travel with each batch
_NODE_OWN = frozenset({"install", "tmp_root", "renders", "images"})


class ClusterError(DarkproxyError):
    """The cluster cannot be used: ray is not installed, the address cannot be reached, no node has darktable."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ClusterError` saying how to install it."""
    try:
        import ray
        import ray.util.scheduling_strategies  # noqa: F401 - NodeAffinitySchedulingStrategy, used as ray.util...
    except ImportError:
        raise ClusterError(f"--cluster needs ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# ------------------------------------------------------------------------------ addresses


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``ray://HOST:PORT`` or ``HOST:PORT``; None for ``ray`` and ``auto``."""
    rest = address[len("ray://") :] if address.startswith("ray://") else address
    if address in (LOCAL, "auto") or ":" not in rest:
        return None
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    try:
        return host, int(port)
    except ValueError:
        raise ClusterError(f"--cluster {address}: expected ray, auto, ray://HOST:PORT or HOST:PORT") from None


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def pin_loopback() -> None:
    """Make Ray use 127.0.0.1 as this machine's node address. On Linux Ray replaces a loopback
    address by the machine's outward one unless its ``ENABLE_RAY_CLUSTER`` switch is off
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray is imported): set the variable for
    the processes Ray starts, and the constant for this one. A local run then stays on loopback."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray._private.ray_constants as ray_constants
    except ImportError:  # pragma: no cover - another Ray layout: it keeps its own choice
        return
    ray_constants.ENABLE_RAY_CLUSTER = False


def _auto_address(ray: Any) -> str | None:
    """The GCS address ``auto`` means ($RAY_ADDRESS, else the one ``ray start`` recorded), if known."""
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    try:
        from ray._private.utils import read_ray_address
    except ImportError:  # pragma: no cover - another Ray layout
        return None
    try:
        found = read_ray_address()
    except Exception:  # noqa: BLE001 - only a hint for choosing the node address
        return None
    return str(found) if found else None


def _one_line(e: BaseException) -> str:
    """An exception as one line: a Ray task error's cause, else the last non-empty line of its message."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        text = " ".join(str(cause).split())
        return text if isinstance(cause, DarkproxyError) else f"{type(cause).__name__}: {text}"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


# ------------------------------------------------------------------------------ the cluster


@dataclass
class NodeInfo:
    """One node of the cluster and what the darktable check found there (``error`` None: usable)."""

    node_id: str
    address: str
    cpus: float
    gpus: float
    darktable: str | None = None
    darkproxy: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.address} ({self.node_id[:8]})"


@dataclass
class ClusterStats:
    """What went through the cluster (for benchmarks and tests)."""

    tasks: int = 0
    tasks_per_node: dict[str, int] = field(default_factory=dict)
    task_seconds: float = 0.0  # inside the render tasks, summed
    driver_seconds: float = 0.0  # the driver's wall time from sending a batch to having written its images, summed
    raw_bytes_sent: int = 0


class Cluster:
    """A connection to a Ray cluster for one run: connect (or start a local Ray), check the
    nodes, run tasks on the usable ones, close. Use :func:`session` or :func:`get_cluster`.

    ``darktable_version``: the version every usable node must have (the driver's).
    ``workers``: CPUs of a local Ray (``--cluster ray``; default every CPU). ``node_cli``: the
    darktable-cli to run on the nodes (default: each node's ``$DARKPROXY_DARKTABLE_CLI`` or PATH)."""

    def __init__(
        self,
        address: str,
        darktable_version: str,
        workers: int | None = None,
        node_cli: str | None = None,
        log: Callable[[str], None] = say,
        render_timeout: float = 300.0,
    ) -> None:
        self.address = address
        self.darktable_version = darktable_version
        self.workers = workers
        self.node_cli = node_cli
        self.log = log
        self.render_timeout = render_timeout
        self.nodes: list[NodeInfo] = []  # usable
        self.excluded: list[NodeInfo] = []
        self.stats = ClusterStats()
        self.token = uuid.uuid4().hex[:12]  # this run's folder on each node
        self.is_open = False
        self._ray: Any = None
        self._owns_connection = False
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._raws: dict[Path, tuple[str, Any]] = {}
        self._remote: dict[str, Any] = {}

    # -------------------------------------------------------------- connect / close
    def __enter__(self) -> Cluster:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Cluster:
        """Connect (or start the local Ray) and check the nodes. Raises :class:`ClusterError`."""
        if self.is_open:
            return self
        ray = import_ray()
        self._ray = ray
        if ray.is_initialized():
            self.log(f"cluster: using this process's Ray connection for --cluster {self.address}")
        else:
            self._connect(ray)
            self._owns_connection = True
        self.is_open = True
        try:
            self._check_nodes()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self, ray: Any) -> None:
        a = self.address
        hp = host_port(a)
        if a == LOCAL or (hp is not None and is_loopback(hp[0])):
            pin_loopback()
        elif a == "auto":
            auto = _auto_address(ray)
            if auto and (ahp := host_port(auto)) is not None and is_loopback(ahp[0]):
                pin_loopback()
        if hp is not None:  # fail fast, in one line, on an address nothing listens at
            try:
                socket.create_connection(hp, timeout=5).close()
            except OSError as e:
                raise ClusterError(f"cannot reach the Ray cluster at {a}: {e.strerror or e}") from None
        try:
            if a == LOCAL:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private run reports to nobody
                ray.init(
                    address="local",
                    num_cpus=self.workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    logging_level=logging.ERROR,
                )
            else:
                ray.init(address=a, logging_level=logging.WARNING)
        except Exception as e:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError...
            with contextlib.suppress(Exception):
                ray.shutdown()
            what = "start a local Ray" if a == LOCAL else f"connect to the Ray cluster at {a}"
            hint = (
                ""
                if a == LOCAL or os.environ.get("RAY_AUTH_MODE")
                else " (a cluster with token authentication, Ray's default, wants RAY_AUTH_MODE=token here and "
                "the head's token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
            )
            raise ClusterError(f"cannot {what}: {_one_line(e)}{hint}") from None

    def close(self) -> None:
        """Remove this run's files from the nodes, and disconnect (a local Ray stops)."""
        if not self.is_open:
            return
        self.is_open = False
        ray = self._ray
        with contextlib.suppress(Exception):
            fn = self._fn(_cleanup_node)
            refs = [
                fn.options(num_cpus=0, scheduling_strategy=self._on(n.node_id)).remote(self.token) for n in self.nodes
            ]
            ray.wait(refs, num_returns=len(refs), timeout=10)
        self._raws.clear()
        if self._owns_connection:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self._owns_connection = False

    # -------------------------------------------------------------- nodes
    def _fn(self, f: Callable[..., Any]) -> Any:
        """``ray.remote(f)``, made once."""
        with self._lock:
            if f.__name__ not in self._remote:
                self._remote[f.__name__] = self._ray.remote(f)
            return self._remote[f.__name__]

    def _on(self, node_id: str) -> Any:
        return self._ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)

    def _check_nodes(self) -> None:
        ray = self._ray
        alive = [n for n in ray.nodes() if n.get("Alive")]
        fn = self._fn(_node_info)
        refs: dict[Any, NodeInfo] = {}
        for n in alive:
            res = n.get("Resources", {})
            info = NodeInfo(
                str(n["NodeID"]),
                str(n.get("NodeManagerAddress", "?")),
                float(res.get("CPU", 0)),
                float(res.get("GPU", 0)),
            )
            refs[fn.options(num_cpus=0, scheduling_strategy=self._on(info.node_id)).remote(self.node_cli)] = info
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT_S) if refs else ([], [])
        for ref in late:
            refs[ref].error = f"no answer within {CHECK_TIMEOUT_S:g} s"
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        for ref in ready:
            info = refs[ref]
            try:
                got = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the node cannot run darkproxy's code
                info.error = f"cannot run darkproxy there ({_one_line(e)})"
                continue
            info.darktable, info.darkproxy, info.error = got.get("darktable"), got.get("darkproxy"), got.get("error")
            if info.error is None and info.darktable != self.darktable_version:
                info.error = f"darktable {info.darktable} there, {self.darktable_version} here"
            if info.error is None and info.cpus <= 0:
                info.error = "no CPUs for tasks"
        infos = list(refs.values())
        self.nodes = [i for i in infos if i.error is None]
        self.excluded = [i for i in infos if i.error is not None]
        for i in self.excluded:
            self.log(f"warning: cluster: not using node {i.label}: {i.error}")
        if not self.nodes:
            raise ClusterError(
                f"no node of the Ray cluster at {self.address} can render with darktable {self.darktable_version} "
                f"({len(infos)} node(s) checked"
                + "".join(f"; {i.label}: {i.error}" for i in self.excluded[:3])
                + ("; ..." if len(self.excluded) > 3 else "")
                + ")"
            )
        cpus = sum(n.cpus for n in self.nodes)
        gpus = sum(n.gpus for n in self.nodes)
        self.log(
            f"cluster {self.address}: {len(self.nodes)} of {len(infos)} node(s) used, {cpus:g} CPUs"
            + (f", {gpus:g} GPUs" if gpus else "")
            + f", darktable {self.darktable_version}"
        )

    def _drop_dead_nodes(self) -> None:
        alive = {str(n["NodeID"]) for n in self._ray.nodes() if n.get("Alive")}
        with self._lock:
            for n in [n for n in self.nodes if n.node_id not in alive]:
                self.log(f"warning: cluster: node {n.label} is gone; its work goes to the others")
                self.nodes.remove(n)
        if not self.nodes:
            raise ClusterError(f"the Ray cluster at {self.address} has no usable node left")

    def _acquire(self, gpus: bool = False) -> NodeInfo:
        """The least busy usable node (by tasks in flight per CPU), counted busier by one."""
        with self._lock:
            cands = [n for n in self.nodes if n.gpus >= 1] if gpus else list(self.nodes)
            if not cands:
                raise ClusterError(
                    f"the Ray cluster at {self.address} has no usable node" + (" with a GPU" if gpus else "")
                )
            node = min(cands, key=lambda n: (self._inflight.get(n.node_id, 0) / max(n.cpus, 1.0), -n.cpus))
            self._inflight[node.node_id] = self._inflight.get(node.node_id, 0) + 1
            return node

    def _release(self, node: NodeInfo) -> None:
        with self._lock:
            self._inflight[node.node_id] = max(0, self._inflight.get(node.node_id, 0) - 1)

    # -------------------------------------------------------------- rendering
    def renderer(self, install: Any, max_size: int | None = None, **kw: Any) -> RayRenderer:
        """A :class:`RayRenderer` on this cluster (``install``: the driver's darktable, for messages)."""
        kw.setdefault("timeout", self.render_timeout)
        return RayRenderer(install, max_size=max_size, cluster=self, **kw)

    def _raw(self, path: Path) -> tuple[str, Any]:
        """``(key, object ref)`` of a raw's bytes in the object store, put once per run."""
        with self._lock:
            hit = self._raws.get(path)
        if hit is not None:
            return hit
        data = path.read_bytes()
        key = f"{hashlib.sha256(data).hexdigest()[:16]}/{path.name}"
        ref = self._ray.put(data)
        with self._lock:
            if path not in self._raws:
                self._raws[path] = (key, ref)
                self.stats.raw_bytes_sent += len(data)
            return self._raws[path]

    def render(self, jobs: Sequence[RenderJob], r: Renderer) -> list[Path | RenderFailure]:
        """Render ``jobs`` in one task on a usable node (one darktable-cli process there); write
        the images to the jobs' ``out`` paths here. What :meth:`Renderer.render_batch` returns."""
        ray = self._ray
        t0 = time.monotonic()
        raws: dict[str, Any] = {}
        where: dict[str, Path] = {}
        payload: list[tuple[str, str | None]] = []
        for j in jobs:
            key, ref = self._raw(Path(j.raw))
            raws[key], where[key] = ref, Path(j.raw)
            payload.append((key, None if j.sidecar is None else j.sidecar.to_string()))
        spec = {
            "cli": self.node_cli,
            "version": self.darktable_version,
            "run": self.token,
            # the renderer's settings (size, timeout, --hq, output profile...), for the node's Renderer
            "renderer": {f.name: getattr(r, f.name) for f in fields(Renderer) if f.name not in _NODE_OWN},
        }
        fn = self._fn(_render_on_node)
        last: BaseException | None = None
        got: dict[str, Any] | None = None
        for _ in range(RENDER_ATTEMPTS):
            node = self._acquire()
            try:
                ref = fn.options(num_cpus=1, max_retries=3, scheduling_strategy=self._on(node.node_id)).remote(
                    spec, raws, payload
                )
                got = ray.get(ref)
                break
            except ray.exceptions.RayTaskError as e:  # darktable could not run there: not retried
                raise _user_error(e) from None
            except ray.exceptions.RayError as e:  # the worker died past its retries, or the node is gone
                last = e
                self._drop_dead_nodes()
            finally:
                self._release(node)
        if got is None:
            raise DarktableRenderError(f"the Ray cluster could not run a render task: {_one_line(last or Exception())}")
        out: list[Path | RenderFailure] = []
        for (key, _), j, x in zip(payload, jobs, got["outputs"], strict=True):
            if isinstance(x, bytes):
                write_bytes_atomic(j.out, x, fsync=False)
                out.append(Path(j.out))
            else:
                out.append(RenderFailure(j, str(x).replace(got["raw_paths"].get(key, "\0"), str(where[key]))))
        r.renders += int(got["renders"])
        r.images += int(got["images"])
        with self._lock:
            self.stats.tasks += 1
            self.stats.tasks_per_node[got["node"]] = self.stats.tasks_per_node.get(got["node"], 0) + 1
            self.stats.task_seconds += float(got["seconds"])
            self.stats.driver_seconds += time.monotonic() - t0
        return out

    # -------------------------------------------------------------- zoo
    def train_zoo_modules(
        self,
        dt: Darktable,
        modules: Sequence[str],
        plan: ZooPlan,
        work: Path,
        train_dir: Path,
        held_dir: Path,
        device: str,
        log: Callable[[str], None],
    ) -> dict[str, str]:
        """Each module's generate, train and eval stages as one task; every finished module's
        files gathered into ``work`` (see the module docstring) as soon as it is done.
        Returns ``{module: one-line error}`` for the modules that failed."""
        ray = self._ray
        raws = {
            part: {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}
            for part, d in (("train", train_dir), ("heldout", held_dir))
        }
        raws_ref = ray.put(raws)
        gpus = device in ("auto", "cuda") and any(n.gpus >= 1 for n in self.nodes)
        if device == "cuda" and not gpus:
            raise ClusterError(f"--device cuda: no usable node of the Ray cluster at {self.address} has a GPU")
        cpus = min(float(ZOO_TASK_CPUS), max(n.cpus for n in self.nodes))
        spec = {"cli": self.node_cli, "version": self.darktable_version, "timeout": dt.config.render_timeout}
        fn = self._fn(_zoo_module_on_node)
        pending: dict[Any, tuple[str, NodeInfo]] = {}
        for m in modules:
            node = self._acquire(gpus)
            ref = fn.options(
                num_cpus=cpus,
                num_gpus=1 if gpus else 0,
                max_retries=1,
                scheduling_strategy=self._on(node.node_id),
            ).remote(m, plan, raws_ref, device, spec)
            pending[ref] = (m, node)
            log(f"[zoo] {m}: generate, train and eval on node {node.label}" + (" (1 GPU)" if gpus else ""))
        failures: dict[str, str] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                m, node = pending.pop(ref)
                self._release(node)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as e:
                    failures[m] = _one_line(e)
                    log(f"[zoo] {m}: failed on node {node.label}: {failures[m]}")
                    continue
                n = gather_zoo_module(res, work, m)
                log(f"[zoo] {m}: {n} files from node {node.label} gathered into {work}")
        return failures


def _user_error(e: BaseException) -> DarkproxyError:
    """A task's error as the driver raises it: a darkproxy error keeps its type and message."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, DarkproxyError):
        try:
            return type(cause)(str(cause))
        except TypeError:  # pragma: no cover - an error type with another constructor
            return DarkproxyError(str(cause))
    return DarktableRenderError(f"a render task failed on the cluster: {_one_line(e)}")


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


# ------------------------------------------------------------------------------ sessions

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
    return c.renderer(dt.install, max_size=max_size)


def train_zoo_modules(
    address: str,
    dt: Darktable,
    modules: Sequence[str],
    plan: ZooPlan,
    work: Path,
    train_dir: Path,
    held_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> dict[str, str]:
    """``darkproxy zoo train --cluster``: see :meth:`Cluster.train_zoo_modules`."""
    with session(address, dt.version, log=log, render_timeout=dt.config.render_timeout) as c:
        assert c is not None
        return c.train_zoo_modules(dt, modules, plan, work, train_dir, held_dir, device, log)


def gather_zoo_module(res: Mapping[str, Any], work: Path, module: str) -> int:
    """Write a zoo task's files into ``work``: the module's earlier stage records and folders
    go first, the stage records come last (a driver killed half-way redoes the module). Text
    files get the work folder's path where they had the node's. Returns the number of files."""
    work = work.resolve()
    for s in ZOO_STAGES:
        (work / "stages" / f"{s}-{module}.json").unlink(missing_ok=True)
    for d in ("datasets", "runs", "eval"):
        shutil.rmtree(work / d / module, ignore_errors=True)
    src = str(res["root"])
    files: Mapping[str, bytes] = res["files"]
    for rel, data in files.items():
        write_bytes_atomic(work / rel, _rebase(rel, data, src, str(work)), fsync=False)
    for s in ZOO_STAGES:
        write_bytes_atomic(work / "stages" / f"{s}-{module}.json", res["stages"][s])
    return len(files) + len(ZOO_STAGES)


def _rebase(rel: str, data: bytes, src: str, dst: str) -> bytes:
    if Path(rel).suffix not in TEXT_SUFFIXES:
        return data
    try:
        return data.decode("utf-8").replace(src, dst).encode("utf-8")
    except UnicodeDecodeError:
        return data


# ------------------------------------------------------------------------------ what runs on the nodes


def _node_dir(token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"darkproxy-ray-{token}"


def _node_info(cli: str | None) -> dict[str, Any]:
    """On a node: its darktable-cli version (or why there is none) and darkproxy version."""
    import darkproxy
    from darkproxy.darktable.locate import locate_darktable

    info: dict[str, Any] = {"darkproxy": darkproxy.__version__, "host": socket.gethostname(), "error": None}
    try:
        inst = locate_darktable(cli)
        info["darktable"], info["cli"] = inst.version, str(inst.cli)
    except DarkproxyError as e:
        info["darktable"], info["error"] = None, " ".join(str(e).split())
    return info


def _render_on_node(
    spec: Mapping[str, Any], raws: Mapping[str, Any], jobs: Sequence[tuple[str, str | None]]
) -> dict[str, Any]:
    """On a node: render ``jobs`` ``(raw key, sidecar text)`` in one darktable-cli process;
    the raws come from the object store once per run and node (kept in the run's folder)."""
    ray = import_ray()
    from darkproxy.darktable.locate import locate_darktable
    from darkproxy.darktable.xmp import Sidecar

    t0 = time.monotonic()
    install = locate_darktable(spec["cli"])
    if install.version != spec["version"]:
        raise DarktableRenderError(f"darktable {install.version} on this node, {spec['version']} on the driver")
    root = _node_dir(str(spec["run"]))
    paths: dict[str, Path] = {}
    for key in {k for k, _ in jobs}:
        p = root / "raws" / key
        if not p.is_file():
            write_bytes_atomic(p, ray.get(raws[key]), fsync=False)
        paths[key] = p
    r = Renderer(install, tmp_root=root / "tmp", **spec["renderer"])
    outputs: list[bytes | str] = []
    with tempfile.TemporaryDirectory(prefix="out-", dir=root) as td:
        rjobs = [
            RenderJob(paths[k], None if x is None else Sidecar.parse(x), Path(td) / f"o{i}.tif")
            for i, (k, x) in enumerate(jobs)
        ]
        for x in r.render_batch(rjobs):
            outputs.append(x.message if isinstance(x, RenderFailure) else x.read_bytes())
    return {
        "node": ray.get_runtime_context().get_node_id(),
        "outputs": outputs,
        "raw_paths": {k: str(p) for k, p in paths.items()},
        "renders": r.renders,
        "images": r.images,
        "seconds": time.monotonic() - t0,
    }


def _cleanup_node(token: str) -> None:
    """On a node: remove a finished run's folder (its raws)."""
    shutil.rmtree(_node_dir(token), ignore_errors=True)


def _zoo_module_on_node(
    module: str, plan: ZooPlan, raws: Mapping[str, Mapping[str, bytes]], device: str, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """On a node: one zoo module's generate, train and eval stages, in a temporary work folder;
    returns its files (the checkpoint left out) and stage records."""
    from darkproxy.config import load_config
    from darkproxy.darktable.session import Darktable
    from darkproxy.stages import Stages
    from darkproxy.zoo import _train_module

    def log(msg: str) -> None:
        print(msg if msg.startswith("[") else f"[zoo] {module}: {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="darkproxy-zoo-") as td:
        root = Path(td).resolve()
        dirs = {part: root / "raws" / part for part in ("train", "heldout")}
        for part, d in dirs.items():
            d.mkdir(parents=True)
            for name, data in raws[part].items():
                (d / name).write_bytes(data)
        dt = Darktable(load_config(darktable_cli=spec["cli"], render_timeout=spec["timeout"]))
        if dt.version != spec["version"]:
            raise ClusterError(f"darktable {dt.version} on this node, {spec['version']} on the driver")
        st = Stages(root, log)
        _train_module(dt, module, plan, st, root, root / "zoo", dirs["train"], dirs["heldout"], device, log, False)
        files: dict[str, bytes] = {}
        for kind in ("datasets", "runs", "eval"):
            base = root / kind / module
            for p in sorted(base.rglob("*")) if base.is_dir() else []:
                if p.is_file() and p.name != "checkpoint.pt":
                    files[str(p.relative_to(root))] = p.read_bytes()
        stages = {s: (root / "stages" / f"{s}-{module}.json").read_bytes() for s in ZOO_STAGES}
        ray = import_ray()
        return {"root": str(root), "files": files, "stages": stages, "node": ray.get_runtime_context().get_node_id()}
