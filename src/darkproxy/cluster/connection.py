"""A connection to a Ray cluster for one run (:class:`Cluster`): connect, check the nodes, run
render batches and zoo modules on the usable ones, close."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darkproxy.cluster.gather import gather_zoo_module
from darkproxy.cluster.node_tasks import ModuleStages, cleanup_node, node_info, render_on_node, zoo_module_on_node
from darkproxy.cluster.ray_support import (
    CHECK_TIMEOUT_S,
    LOCAL,
    LOCAL_OBJECT_STORE_BYTES,
    NODE_OWN_FIELDS,
    RENDER_ATTEMPTS,
    ZOO_TASK_CPUS,
    ClusterError,
    ClusterStats,
    NodeInfo,
    auto_address,
    host_port,
    import_ray,
    is_loopback,
    one_line,
    pin_loopback,
)
from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob
from darkproxy.errors import DarkproxyError, DarktableRenderError
from darkproxy.fsutil import write_bytes_atomic
from darkproxy.progress import say

if TYPE_CHECKING:
    from darkproxy.darktable.session import Darktable


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
            auto = auto_address(ray)
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
            raise ClusterError(f"cannot {what}: {one_line(e)}{hint}") from None

    def close(self) -> None:
        """Remove this run's files from the nodes, and disconnect (a local Ray stops)."""
        if not self.is_open:
            return
        self.is_open = False
        ray = self._ray
        with contextlib.suppress(Exception):
            fn = self._fn(cleanup_node)
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
        fn = self._fn(node_info)
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
                info.error = f"cannot run darkproxy there ({one_line(e)})"
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
            "renderer": {f.name: getattr(r, f.name) for f in fields(Renderer) if f.name not in NODE_OWN_FIELDS},
        }
        fn = self._fn(render_on_node)
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
                raise user_error(e) from None
            except ray.exceptions.RayError as e:  # the worker died past its retries, or the node is gone
                last = e
                self._drop_dead_nodes()
            finally:
                self._release(node)
        if got is None:
            raise DarktableRenderError(f"the Ray cluster could not run a render task: {one_line(last or Exception())}")
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
        plan: Any,
        work: Path,
        train_dir: Path,
        held_dir: Path,
        device: str,
        log: Callable[[str], None],
        run_stages: ModuleStages,
    ) -> dict[str, str]:
        """Each module's generate, train and eval stages (``run_stages``) as one task; every finished
        module's files gathered into ``work`` (see the package docstring) as soon as it is done.
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
        fn = self._fn(zoo_module_on_node)
        pending: dict[Any, tuple[str, NodeInfo]] = {}
        for m in modules:
            node = self._acquire(gpus)
            ref = fn.options(
                num_cpus=cpus,
                num_gpus=1 if gpus else 0,
                max_retries=1,
                scheduling_strategy=self._on(node.node_id),
            ).remote(m, plan, raws_ref, device, spec, run_stages)
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
                    failures[m] = one_line(e)
                    log(f"[zoo] {m}: failed on node {node.label}: {failures[m]}")
                    continue
                n = gather_zoo_module(res, work, m)
                log(f"[zoo] {m}: {n} files from node {node.label} gathered into {work}")
        return failures


def user_error(e: BaseException) -> DarkproxyError:
    """A task's error as the driver raises it: a darkproxy error keeps its type and message."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, DarkproxyError):
        try:
            return type(cause)(str(cause))
        except TypeError:  # pragma: no cover - an error type with another constructor
            return DarkproxyError(str(cause))
    return DarktableRenderError(f"a render task failed on the cluster: {one_line(e)}")
