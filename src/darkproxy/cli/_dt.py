"""Shared CLI glue for commands that talk to darktable."""

from __future__ import annotations

import argparse
from typing import Any

from darkproxy.cli._util import config_from_args, parse_assignments
from darkproxy.errors import DarkproxyError


def darktable_from_args(args: argparse.Namespace):
    from darkproxy.darktable.session import Darktable

    return Darktable(config_from_args(args))


def parse_module_sets(items: list[str] | None, default_module: str | None = None) -> dict[str, dict[str, Any]]:
    """``--set module.param=value`` (or ``param=value`` with a default module)
    -> ``{module: {param: "value"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in parse_assignments(items).items():
        if default_module is not None:
            mod, name = (
                (default_module, k[len(default_module) + 1 :])
                if k.startswith(default_module + ".")
                else (default_module, k)
            )
        else:
            if "." not in k:
                raise DarkproxyError(f"--set {k}={v}: expected MODULE.PARAM=VALUE (e.g. exposure.exposure=1)")
            mod, name = k.split(".", 1)
        out.setdefault(mod, {})[name] = v
    return out
