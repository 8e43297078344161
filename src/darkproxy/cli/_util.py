"""Small helpers shared by the command modules (argument parsing only)."""

from __future__ import annotations

import argparse
import json
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


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, darktable_cli=args.darktable_cli, home=args.home)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict[str, str]:
    """Parse ``["a=1", "b.c=2"]`` into ``{"a": "1", "b.c": "2"}`` (values stay strings)."""
    out: dict[str, str] = {}
    for it in items or []:
        if "=" not in it:
            raise DarkproxyError(f"{what} {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out
