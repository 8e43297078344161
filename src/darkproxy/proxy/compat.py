"""Is a zoo proxy valid for this darktable? (its module's params against the installed schema)"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from darkproxy.errors import DarkproxyError


def schema_status(record: Mapping[str, Any], dt: Any) -> str:
    """``same``, ``same-struct`` (another darktable version, same module
    version and params size: usable, with a warning) or ``changed`` (retrain
    with ``darkproxy zoo train``) for a zoo record against darktable ``dt``."""
    if dt.version == record.get("darktable_version"):
        return "same"
    sch = dt.schemas.get(record["module"])
    same = sch.version == record.get("module_version") and sch.size == record.get("params_size")
    return "same-struct" if same else "changed"


def check_zoo_proxy(proxy: Any, dt: Any, warn: Callable[[str], None]) -> None:
    """Before a zoo proxy is compared with or applied to this darktable: same
    version: nothing; another version with the same module struct: one-line
    warning; a changed struct: :class:`DarkproxyError` (retrain). Other runs:
    nothing."""
    info = getattr(proxy, "run_info", {}) or {}
    run = getattr(proxy, "run_dir", None)
    if not info.get("zoo") or run is None or not (Path(run) / "zoo.json").is_file():
        return
    rec = json.loads((Path(run) / "zoo.json").read_text())
    status = schema_status(rec, dt)
    if status == "changed":
        raise DarkproxyError(
            f"zoo:{rec['module']} was trained on darktable {rec['darktable_version']}, whose {rec['module']} "
            f"params differ from darktable {dt.version}'s: retrain it (darkproxy zoo train {rec['module']})"
        )
    if status == "same-struct":
        warn(
            f"warning: zoo:{rec['module']} was trained on darktable {rec['darktable_version']} (this is "
            f"{dt.version}); the module's params are unchanged, its maths may not be"
        )
