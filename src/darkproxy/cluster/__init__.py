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

Files: :mod:`.ray_support` (the import, addresses, nodes), :mod:`.connection`
(:class:`Cluster`), :mod:`.renderer` (:class:`RayRenderer`), :mod:`.sessions` (this
process's connection, the renderer factory, the zoo entry point), :mod:`.node_tasks`
(what runs on the nodes), :mod:`.gather` (a zoo module's files back on the driver).
The cluster imports nothing of the zoo or of generation: generation receives a renderer
factory (:func:`renderer_factory`), the zoo hands in the function that runs a module's
stages.
"""

from darkproxy.cluster.connection import Cluster
from darkproxy.cluster.gather import gather_zoo_module
from darkproxy.cluster.node_tasks import ModuleStages
from darkproxy.cluster.ray_support import (
    INSTALL_HINT,
    LOCAL,
    ClusterError,
    ClusterStats,
    NodeInfo,
    host_port,
    import_ray,
    is_loopback,
    pin_loopback,
)
from darkproxy.cluster.renderer import RayRenderer, ray_renderer
from darkproxy.cluster.sessions import cluster_renderer, get_cluster, renderer_factory, session, train_zoo_modules

__all__ = [
    "INSTALL_HINT",
    "LOCAL",
    "Cluster",
    "ClusterError",
    "ClusterStats",
    "ModuleStages",
    "NodeInfo",
    "RayRenderer",
    "cluster_renderer",
    "gather_zoo_module",
    "get_cluster",
    "host_port",
    "import_ray",
    "is_loopback",
    "pin_loopback",
    "ray_renderer",
    "renderer_factory",
    "session",
    "train_zoo_modules",
]
