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
import warnings
from collections.abc import Sequence
from pathlib import Path

from darkproxy import __version__
from darkproxy.errors import DarkproxyError
from darkproxy.progress import quiet

EPILOG = """\
examples:
  darkproxy doctor                       check darktable, the replica's ports there, torch, ffmpeg, workspace
  darkproxy samples raws/ --count 4      make synthetic Bayer DNGs
  darkproxy tapout raws/astronaut.dng exposure --set exposure=1 -o tap/
  darkproxy generate exposure -o ds/ --images raws/ -n 64
  darkproxy train ds/ -o run/
  darkproxy <command> --help             details and examples for one command

environment: DARKPROXY_DARKTABLE_CLI, DARKPROXY_HOME, DARKPROXY_CONFIG,
  DARKPROXY_PROGRESS_SECONDS (seconds between progress lines when stderr is not a terminal; default 5)
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def version_text() -> str:
    """``darkproxy X.Y.Z`` (the installed distribution's version) and, on a
    second line, the darktable that commands would use (``$DARKPROXY_DARKTABLE_CLI``,
    the config file, or PATH), or why none was found: never an error."""
    lines = [f"darkproxy {__version__}"]
    try:
        from darkproxy.config import load_config
        from darkproxy.darktable.locate import locate_darktable

        inst = locate_darktable(load_config().darktable_cli)
        lines.append(f"darktable {inst.version} ({inst.cli})")
    except DarkproxyError as e:
        lines.append(f"darktable: not found ({str(e).strip().splitlines()[0]})")
    return "\n".join(lines)


_PKG_DIR = Path(__file__).resolve().parents[1]
_default_formatwarning = warnings.formatwarning


def _formatwarning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """darkproxy's own warnings as one line (``darkproxy: warning: ...``), others as Python prints them."""
    if Path(filename).resolve().is_relative_to(_PKG_DIR):
        return f"darkproxy: warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


class _VersionAction(argparse.Action):
    """``--version``: :func:`version_text`, then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: object, values: object, option_string: str | None = None
    ) -> None:
        print(version_text())
        parser.exit()


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
    # output: every command honours both (the result through darkproxy.cli._util.emit, messages through
    # darkproxy.progress.say, progress through darkproxy.progress.progress_bar)
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no informational messages: only the result (stdout), warnings and errors (stderr)",
    )
    g.add_argument(
        "--json", action="store_true", help="print the command's result as one JSON value on stdout instead of text"
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
    parser.add_argument(
        "--version", action=_VersionAction, help="print darkproxy's version and the darktable it finds, and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for mod in _command_modules():
        mod.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:  # fast: no command module imported
        print(version_text())
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    saved_formatwarning = warnings.formatwarning
    warnings.formatwarning = _formatwarning  # darkproxy's warnings as one line while the command runs
    try:
        with quiet(getattr(args, "quiet", False)):
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
    finally:
        warnings.formatwarning = saved_formatwarning
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
