"""Where a proxy's files are: a run folder, or ``zoo:MODULE`` in the zoo folder.

The proxy layer reads the shipped weights (``darkproxy/zoo/weights``, trained for
darktable 4.2.1) or the folder ``$DARKPROXY_ZOO`` names, without importing the
zoo application that trains them (:mod:`darkproxy.zoo`). A zoo folder holds
``MODULE/run.json``, ``MODULE/model.safetensors`` and ``MODULE/zoo.json``.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from darkproxy.errors import DarkproxyError

PREFIX = "zoo:"


def shipped_root() -> Path:
    """The zoo shipped with the package (trained for darktable 4.2.1)."""
    # a path below the root package: naming "darkproxy.zoo" here would import the zoo application
    return Path(str(files("darkproxy") / "zoo" / "weights"))


def zoo_root() -> Path:
    """``$DARKPROXY_ZOO`` if set, else the shipped zoo."""
    env = os.environ.get("DARKPROXY_ZOO")
    return Path(env) if env else shipped_root()


def list_zoo(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The zoo's ``zoo.json`` records (sorted by module), each with ``module``,
    ``arch``, ``params``, ``darktable_version``, ``heldout_psnr`` and the rest
    of what :func:`darkproxy.zoo.publish` wrote."""
    r = Path(root) if root is not None else zoo_root()
    out = []
    if r.is_dir():
        for d in sorted(r.iterdir()):
            z = d / "zoo.json"
            if z.is_file() and (d / "run.json").is_file():
                out.append(json.loads(z.read_text()))
    return out


def resolve_run(run: str | os.PathLike[str]) -> Path:
    """A run folder, or ``zoo:MODULE`` -> that module's folder in :func:`zoo_root`.
    Raises :class:`DarkproxyError` naming the modules the zoo has."""
    s = os.fspath(run)
    if not s.startswith(PREFIX):
        return Path(s)
    module = s[len(PREFIX) :]
    root = zoo_root()
    d = root / module
    if not (d / "run.json").is_file():
        have = ", ".join(r["module"] for r in list_zoo(root)) or "none"
        raise DarkproxyError(
            f"the zoo ({root}) has no proxy of {module!r} (it has: {have}); train one: darkproxy zoo train {module}"
        )
    return d
