"""What runs on the cluster's nodes (as Ray tasks): the darktable check, a render batch, the
clean-up, a zoo module's stages."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from darkproxy.cluster.ray_support import ZOO_STAGES, ClusterError, import_ray
from darkproxy.darktable.render import Renderer, RenderFailure, RenderJob
from darkproxy.errors import DarkproxyError, DarktableRenderError
from darkproxy.fsutil import write_bytes_atomic

# one zoo module's generate, train and eval stages, run in a work folder:
# (darktable, module, plan, work, train raws, held-out raws, device, log) -> None. The zoo hands it in
# (darkproxy.zoo.training.run_module_stages), so the cluster needs nothing of the zoo.
ModuleStages = Callable[[Any, str, Any, Path, Path, Path, str, Callable[[str], None]], None]


def _node_dir(token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"darkproxy-ray-{token}"


def node_info(cli: str | None) -> dict[str, Any]:
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


def render_on_node(
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


def cleanup_node(token: str) -> None:
    """On a node: remove a finished run's folder (its raws)."""
    shutil.rmtree(_node_dir(token), ignore_errors=True)


def zoo_module_on_node(
    module: str,
    plan: Any,
    raws: Mapping[str, Mapping[str, bytes]],
    device: str,
    spec: Mapping[str, Any],
    run_stages: ModuleStages,
) -> dict[str, Any]:
    """On a node: one zoo module's generate, train and eval stages (``run_stages``, which the zoo
    hands in), in a temporary work folder; returns its files (the checkpoint left out) and stage
    records."""
    from darkproxy.config import load_config
    from darkproxy.darktable.session import Darktable

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
        run_stages(dt, module, plan, root, dirs["train"], dirs["heldout"], device, log)
        files: dict[str, bytes] = {}
        for kind in ("datasets", "runs", "eval"):
            base = root / kind / module
            for p in sorted(base.rglob("*")) if base.is_dir() else []:
                if p.is_file() and p.name != "checkpoint.pt":
                    files[str(p.relative_to(root))] = p.read_bytes()
        stages = {s: (root / "stages" / f"{s}-{module}.json").read_bytes() for s in ZOO_STAGES}
        ray = import_ray()
        return {"root": str(root), "files": files, "stages": stages, "node": ray.get_runtime_context().get_node_id()}
