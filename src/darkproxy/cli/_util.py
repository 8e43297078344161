"""Small helpers shared by the command modules (argument parsing, printing the result)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from darkproxy.config import Config, load_config
from darkproxy.errors import DarkproxyError


def add_command(
    sub: Any, common: argparse.ArgumentParser, name: str, help: str, description: str, examples: str = ""
) -> argparse.ArgumentParser:
    """Add a sub-command with a one-line ``help`` (shown in ``darkproxy --help``)
    and a longer ``description`` plus ``examples`` (shown in ``darkproxy NAME --help``)."""
    epilog = ("examples:\n" + examples) if examples else None
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_polish(group: Any, default: int) -> None:
    """``--polish N`` on a parser or argument group of a command that regresses sliders
    (:attr:`darkproxy.engines.regress.RegressConfig.polish`)."""
    group.add_argument(
        "--polish",
        type=int,
        default=default,
        metavar="N",
        help="Levenberg-Marquardt steps on the best restart after Adam: the end of the valleys where sliders "
        f"trade, for exact ports (through a proxy it fits the proxy's error) (default {default}; 0: Adam alone)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, darktable_cli=args.darktable_cli, home=args.home)


def print_json(obj: Any) -> None:
    """``obj`` as strict JSON on stdout: NaN and infinities become ``null``, numpy
    scalars numbers, other non-JSON values (paths...) strings."""
    json.dump(_plain(obj), sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "dtype") and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit(args: argparse.Namespace, record: Any, text: str) -> None:
    """A command's result on stdout: ``record`` as JSON under ``--json`` (non-JSON
    values such as paths via ``str``), else ``text``."""
    if getattr(args, "json", False):
        print_json(record)
    else:
        print(text)


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict[str, str]:
    """Parse ``["a=1", "b.c=2"]`` into ``{"a": "1", "b.c": "2"}`` (values stay strings)."""
    out: dict[str, str] = {}
    for it in items or []:
        if "=" not in it:
            raise DarkproxyError(f"{what} {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out
