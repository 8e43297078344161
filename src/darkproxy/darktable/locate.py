"""Find darktable-cli, its version and its library/plugin directories."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from darkproxy.errors import DarktableNotFound

INSTALL_HINT = "install it with `sudo apt-get install darktable` or point DARKPROXY_DARKTABLE_CLI at a darktable-cli"
MIN_VERSION = (4, 2)


def version_tuple(version: str) -> tuple[int, ...]:
    """A darktable version string (``"5.4.1"``, ``"darktable 4.2.1+dfsg"``) as ``(major, minor, patch)``; ``()``
    where it holds no number."""
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class DarktableInstall:
    """A located darktable: the CLI, its version and where its libraries live."""

    cli: Path
    version: str
    libdir: Path | None  # folder holding libdarktable.so
    plugindir: Path | None  # folder holding lib<module>.so for every iop

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @property
    def has_dump_pipe(self) -> bool:
        return self.version_tuple >= (4, 4)

    @property
    def datadir(self) -> Path | None:
        """darktable's data folder (``PREFIX/share/darktable``: noiseprofiles.json, ...), ``None`` if absent."""
        d = self.cli.resolve().parent.parent / "share" / "darktable"
        return d if d.is_dir() else None


def darktable_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a darktable-cli process: this one's, with OpenMP's thread count ``threads`` (``None``:
    as set, or darktable's own choice, one per CPU), never more than the CPUs this process may use. darktable
    sizes its per-thread buffers by those CPUs but runs its pipe with ``OMP_NUM_THREADS`` threads: more threads
    overflow the buffers and darktable-cli 4.2.1 aborts ("corrupted size vs. prev_size", docs/darktable-notes.md).
    The thread count changes no pixel beyond darktable's own run-to-run noise."""
    env = dict(os.environ)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    want = threads
    if want is None:
        first = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        want = int(first) if first.isdigit() else None
    if want is not None:
        env["OMP_NUM_THREADS"] = str(max(1, min(want, cpus)))
    return env


def darktable_thread_args(env: dict[str, str]) -> list[str]:
    """darktable's own thread count (``-t``, a core option: after ``--core``) for a process run with ``env``
    (:func:`darktable_env`): its ``OMP_NUM_THREADS`` when set, else nothing (darktable's choice, one per CPU).
    The two must agree: darktable 5.0.1 splits some loops by its own count, so with ``OMP_NUM_THREADS=1`` and no
    ``-t`` on 2 CPUs only the first half of the rows is computed and the rest of the export is whatever memory held
    (garbage, inf, in 7 of 8 renders of a tap-out here; none with ``-t 1``: docs/darktable-notes.md)."""
    n = env.get("OMP_NUM_THREADS")
    return ["-t", n] if n and n.isdigit() else []


def _resolve_cli(cli: str | os.PathLike[str] | None) -> Path:
    if cli:
        p = Path(cli).expanduser()
        if not p.exists():
            found = shutil.which(str(cli))
            if not found:
                raise DarktableNotFound(f"darktable-cli {cli} does not exist; {INSTALL_HINT}")
            p = Path(found)
    else:
        found = shutil.which("darktable-cli")
        if not found:
            raise DarktableNotFound(f"darktable-cli not found on PATH; {INSTALL_HINT}")
        p = Path(found)
    if p.is_dir() or not os.access(p, os.X_OK):
        raise DarktableNotFound(f"darktable-cli {p} is not an executable file; {INSTALL_HINT}")
    return p


def _find_libdir(cli: Path) -> Path | None:
    # ldd names the libdarktable.so the binary really loads
    try:
        out = subprocess.run(["ldd", str(cli)], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"libdarktable\.so\s*=>\s*(\S+)", out)
        if m and Path(m.group(1)).exists():
            return Path(m.group(1)).resolve().parent
    except (OSError, subprocess.TimeoutExpired):
        pass
    prefix = cli.resolve().parent.parent
    for cand in [*prefix.glob("lib*/*/darktable"), *prefix.glob("lib*/darktable")]:
        if (cand / "libdarktable.so").exists():
            return cand
    return None


@lru_cache(maxsize=8)
def _locate_cached(cli: Path) -> DarktableInstall:
    try:
        proc = subprocess.run(
            [str(cli), "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DarktableNotFound(f"cannot run {cli} --version: {e}; {INSTALL_HINT}") from None
    m = re.search(r"darktable(?:-cli)?\s+(\d+\.\d+(?:\.\d+)?\S*)", proc.stdout + proc.stderr)
    if not m:
        first = (proc.stdout + proc.stderr).strip().splitlines()[:1]
        raise DarktableNotFound(f"{cli} does not look like darktable-cli (--version printed {first!r}); {INSTALL_HINT}")
    version = m.group(1)
    libdir = _find_libdir(cli)
    plugindir = libdir / "plugins" if libdir and (libdir / "plugins").is_dir() else None
    inst = DarktableInstall(cli=cli, version=version, libdir=libdir, plugindir=plugindir)
    if inst.version_tuple[:2] < MIN_VERSION:
        raise DarktableNotFound(f"darktable {version} at {cli} is too old: darkproxy needs >= 4.2")
    return inst


def locate_darktable(cli: str | os.PathLike[str] | None = None) -> DarktableInstall:
    """Locate darktable-cli (``cli`` if given, else ``$DARKPROXY_DARKTABLE_CLI``,
    else PATH) and describe the installation. Raises :class:`DarktableNotFound`."""
    if cli is None:
        cli = os.environ.get("DARKPROXY_DARKTABLE_CLI") or None
    return _locate_cached(_resolve_cli(cli))
