"""darkproxy doctor."""

from __future__ import annotations

import argparse

from darkproxy.cli._util import add_command, config_from_args, emit

ORDER = 1


def register(sub, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "doctor",
        "check darktable, torch, ffmpeg and the workspace",
        "Check everything darkproxy needs: darktable-cli (path, version, plugin directory, "
        "how many modules have parameter schemas), torch and its device (cpu/cuda/mps), "
        "ffmpeg for videos, and a writable workspace. Exits non-zero with a one-line fix "
        "when something essential is missing.",
        "  darkproxy doctor\n  darkproxy doctor --json\n"
        "  DARKPROXY_DARKTABLE_CLI=/opt/darktable/bin/darktable-cli darkproxy doctor\n",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from darkproxy.doctor import run_doctor

    rep = run_doctor(config_from_args(args))
    lines = []
    for c in rep.checks:
        mark = "ok  " if c.ok else ("FAIL" if c.essential else "warn")
        lines.append(f"[{mark}] {c.name:26s} {c.value}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    emit(args, rep.to_json(), "\n".join(lines))
    if not rep.ok:
        bad = next(c for c in rep.checks if c.essential and not c.ok)
        import sys

        print(f"darkproxy doctor: error: {bad.name}: {bad.fix}", file=sys.stderr)
        return 1
    return 0
