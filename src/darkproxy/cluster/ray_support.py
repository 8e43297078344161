"""Ray for the cluster: the import, addresses, one-line errors, what a node is."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from darkproxy.errors import DarkproxyError

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
NODE_OWN_FIELDS = frozenset({"install", "tmp_root", "renders", "images"})


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


def auto_address(ray: Any) -> str | None:
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


def one_line(e: BaseException) -> str:
    """An exception as one line: a Ray task error's cause, else the last non-empty line of its message."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        text = " ".join(str(cause).split())
        return text if isinstance(cause, DarkproxyError) else f"{type(cause).__name__}: {text}"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


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
