"""The ``darkproxy`` command line: thin argparse front-end over the library.

Each command lives in its own ``cmd_<name>.py`` module exposing
``register(subparsers, common)``; commands are discovered automatically, so
adding one is adding one file. Modules set ``ORDER`` (int) to place themselves
in ``darkproxy --help``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from darkproxy import __version__
from darkproxy.errors import DarkproxyError

EPILOG = """\
examples:
  darkproxy doctor                       check darktable, torch, ffmpeg, workspace
  darkproxy samples raws/ --count 4      make synthetic Bayer DNGs
  darkproxy tapout raws/astronaut.dng exposure --set exposure=1 -o tap/
  darkproxy generate exposure -o ds/ --images raws/ -n 64
  darkproxy train ds/ -o run/
  darkproxy <command> --help             details and examples for one command

environment: DARKPROXY_DARKTABLE_CLI, DARKPROXY_HOME, DARKPROXY_CONFIG
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument(
        "--config", metavar="TOML", help="config file (default: $DARKPROXY_CONFIG or ~/.config/darkproxy/config.toml)"
    )
    g.add_argument(
        "--darktable-cli",
        metavar="PATH",
        help="darktable-cli to use (default: $DARKPROXY_DARKTABLE_CLI, config, or PATH)",
    )
    g.add_argument(
        "--home",
        metavar="DIR",
        help="workspace for caches and default outputs (default: $DARKPROXY_HOME or ~/darkproxy)",
    )
    return common


def _command_modules() -> list:
    import darkproxy.cli as pkg

    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"darkproxy.cli.{info.name}"))
    mods.sort(key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
    return mods


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    parser = argparse.ArgumentParser(
        prog="darkproxy",
        description="Neural proxies for darktable: generate module data with darktable-cli, "
        "train differentiable proxies, chain them, and regress slider values back into XMP sidecars.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"darkproxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for mod in _command_modules():
        mod.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except DarkproxyError as e:
        msg = str(e).strip().replace("\n", " | ")
        print(f"darkproxy {args.command}: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            f"darkproxy {args.command}: interrupted; finished work is kept, re-run the same command to resume",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
