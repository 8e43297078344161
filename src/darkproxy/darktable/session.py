"""A :class:`Darktable` session: the located install, its schemas, renderers
and default histories, configured once (CLI flags / env / config file)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkproxy.config import Config, load_config
from darkproxy.darktable.locate import DarktableInstall, darktable_env, darktable_thread_args, locate_darktable
from darkproxy.darktable.params import set_params
from darkproxy.darktable.render import Renderer, _link_or_copy, _tail
from darkproxy.darktable.schema import SchemaSet, load_schemas
from darkproxy.darktable.xmp import Sidecar, read_xmp
from darkproxy.errors import DarktableRenderError, RawError, XmpError


def file_digest(path: str | os.PathLike[str], n: int = 16) -> str:
    """sha256 of a file's content (hex, first ``n`` chars)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def _mark_upgrades(up: Sidecar, written: Sidecar) -> Sidecar:
    """``up`` with each item's ``upgraded_from`` set where its version differs from ``written``'s (the same
    items) and its ``enabled`` flag as written."""
    for new, old in zip(up.items, written.items, strict=True):
        if new is not old:
            new.upgraded_from = old.modversion if old.modversion != new.modversion else None
            new.enabled = old.enabled  # darktable ran them disabled
    return up


def _embedded_history(data: bytes, what: str, proc: subprocess.CompletedProcess[str]) -> Sidecar:
    """The history darktable-cli embeds in an export's XMP packet (``data``: the exported file's bytes),
    every item at its module's current version. Raises :class:`DarktableRenderError` naming ``what`` when
    there is none."""
    start, end = data.find(b"<x:xmpmeta"), data.find(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        why = "wrote no image" if not data else "embedded no history in its export"
        raise DarktableRenderError(f"darktable-cli {why} {what}: {_tail(proc.stdout + proc.stderr)}")
    return Sidecar.parse(data[start : end + len(b"</x:xmpmeta>")])


@dataclass
class Darktable:
    """Everything darkproxy needs from one darktable installation."""

    config: Config = field(default_factory=load_config)
    install: DarktableInstall | None = None
    _schemas: SchemaSet | None = None

    def __post_init__(self) -> None:
        if self.install is None:
            self.install = locate_darktable(self.config.darktable_cli)

    @property
    def version(self) -> str:
        assert self.install is not None
        return self.install.version

    @property
    def schemas(self) -> SchemaSet:
        if self._schemas is None:
            self._schemas = load_schemas(self.install, self.config.schema_cache_dir)
        return self._schemas

    def renderer(self, max_size: int | None = None, **kw: Any) -> Renderer:
        assert self.install is not None
        kw.setdefault("timeout", self.config.render_timeout)
        return Renderer(self.install, max_size=max_size, **kw)

    # ------------------------------------------------------------ histories
    def default_history(self, raw: str | os.PathLike[str], refresh: bool = False) -> Sidecar:
        """The history darktable itself creates for ``raw`` on import (its
        workflow defaults and auto-applied presets), read from the history darktable-cli embeds in a
        32 px export (in 4.2.1 the same items as the sidecar it writes with ``write_sidecar_files=on
        import``; darktable-cli 5.x writes no sidecar); cached per raw content and darktable version.
        Returned compressed (one item per module)."""
        raw = Path(raw)
        if not raw.is_file():
            raise RawError(f"raw file {raw} does not exist")
        cache = self.config.home / "cache" / "histories" / f"{raw.stem}-{file_digest(raw)}-dt{self.version}.xmp"
        if cache.is_file() and not refresh:
            try:
                return read_xmp(cache).compressed()
            except XmpError:
                pass
        with tempfile.TemporaryDirectory(prefix="darkproxy-defaults-") as td:
            tdp = Path(td)
            link = tdp / f"image{raw.suffix}"
            _link_or_copy(raw, link)
            (tdp / "config").mkdir()
            cmd = self._tiny_export(link, None, tdp / "out.tif", tdp / "config")
            proc = self._run_cli(cmd, f"reading {raw}", [tdp / "out.tif"])
            data = (tdp / "out.tif").read_bytes() if (tdp / "out.tif").is_file() else b""
        if not data:
            raise RawError(f"darktable cannot open {raw}: {_tail(proc.stdout + proc.stderr)}")
        side = _embedded_history(data, f"reading {raw}", proc)
        with contextlib.suppress(OSError):  # unwritable workspace: works, just uncached
            cache.parent.mkdir(parents=True, exist_ok=True)
            side.write(cache)
        return side.compressed()

    def _tiny_export(self, image: Path, xmp: Path | None, out: Path, config: Path) -> list[str]:
        """darktable-cli exporting ``image`` (with the history ``xmp``, else darktable's own) to a 32 px ``out``
        in a fresh ``config`` folder and an in-memory library, no user presets."""
        assert self.install is not None
        cmd = [str(self.install.cli), str(image), *([str(xmp)] if xmp else []), str(out), "--width", "32"]
        cmd += ["--height", "32", "--apply-custom-presets", "false", "--core", "--library", ":memory:"]
        return cmd + ["--configdir", str(config), *darktable_thread_args(darktable_env())]

    def _run_cli(self, cmd: list[str], what: str, outputs: list[Path]) -> subprocess.CompletedProcess[str]:
        """darktable-cli ``cmd`` (its config folder: ``--configdir``'s argument), once more after a crash
        (darktable 4.2.1 now and then segfaults on import: 2 in ~30 here), ``outputs`` removed in between;
        a second crash or a timeout raises :class:`DarktableRenderError` naming ``what``."""
        config = Path(cmd[cmd.index("--configdir") + 1])
        for attempt in (1, 2):
            try:
                proc = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=self.config.render_timeout,
                    stdin=subprocess.DEVNULL,
                    env=darktable_env(),
                )
            except subprocess.TimeoutExpired:
                raise DarktableRenderError(f"darktable-cli timed out {what}") from None
            if proc.returncode >= 0 and "backtrace written to" not in proc.stdout + proc.stderr:
                return proc
            if attempt == 2:
                raise DarktableRenderError(
                    f"darktable-cli crashed twice {what} (exit {proc.returncode}): {_tail(proc.stdout + proc.stderr)}"
                )
            shutil.rmtree(config, ignore_errors=True)  # a clean start: nothing the crash left
            config.mkdir()
            for left in outputs:
                left.unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def upgraded(self, raw: str | os.PathLike[str], sidecar: Sidecar) -> Sidecar:
        """``sidecar`` as darktable upgrades it when it loads it for ``raw``: every history item written by
        an older params version of its module (and its blend params) through darktable's own
        ``legacy_params``, read back from the history darktable embeds in an export of it (a 32 px TIFF, every
        item disabled: the upgrade does not depend on it, and no module runs).
        The exact upgrade for every module and version this darktable reads, with no old struct
        written by hand (:mod:`darkproxy.darktable.legacy` ports a few, without darktable). ``sidecar``
        itself when no item is older; cached per raw, history and darktable version. An item darktable
        drops (a version it cannot upgrade) is kept as written, one it adds is left out. Raises
        :class:`DarktableRenderError` when darktable fails or writes no history."""
        mods = self.schemas.modules
        if not any(it.operation in mods and it.modversion < mods[it.operation].version for it in sidecar.items):
            return sidecar
        raw = Path(raw)
        if not raw.is_file():
            raise RawError(f"raw file {raw} does not exist")
        probe = sidecar.copy()
        for it in probe.items:  # the upgrade needs no pixels: nothing to run (some modules crash tiny renders)
            it.enabled = False
        text = probe.to_string()
        key = hashlib.sha256(sidecar.to_string().encode()).hexdigest()[:16]
        cache = self.config.home / "cache" / "upgraded" / f"{raw.stem}-{file_digest(raw)}-{key}-dt{self.version}.xmp"
        if cache.is_file():
            with contextlib.suppress(XmpError):
                return _mark_upgrades(read_xmp(cache), sidecar)
        with tempfile.TemporaryDirectory(prefix="darkproxy-upgrade-") as td:
            tdp = Path(td)
            link, xmp, out = tdp / f"image{raw.suffix}", tdp / "history.xmp", tdp / "out.tif"
            _link_or_copy(raw, link)
            xmp.write_text(text)
            (tdp / "config").mkdir()
            cmd = self._tiny_export(link, xmp, out, tdp / "config")
            proc = self._run_cli(cmd, f"upgrading the history of {raw}", [out])
            data = out.read_bytes() if out.is_file() else b""
        up = _embedded_history(data, f"upgrading the history of {raw}", proc)
        # sidecar's items, each as darktable upgraded it. One it cannot upgrade (a newer version, one its
        # legacy_params does not know) it drops: kept as written, for the replica to refuse in one line. The
        # items darktable adds to an old history (the modules it always runs, at their defaults) are left
        # out, as the replica reads a history without them.
        theirs = {it.key: it for it in up.items}
        up.items = [theirs.get(it.key, it) for it in sidecar.items]
        up.history_end = sidecar.history_end
        with contextlib.suppress(OSError):  # unwritable workspace: works, just uncached
            cache.parent.mkdir(parents=True, exist_ok=True)
            up.write(cache)
        return _mark_upgrades(up, sidecar)

    def edit(
        self,
        sidecar: Sidecar,
        updates: Mapping[str, Mapping[str, Any]] | None = None,
        enable: list[str] | None = None,
        disable: list[str] | None = None,
        clamp: bool = False,
    ) -> Sidecar:
        """A copy of ``sidecar`` (compressed) with ``updates`` ({module: {param: value}})
        applied (modules missing from the history are added from darktable's defaults,
        :func:`~darkproxy.darktable.params.default_blob`, and enabled), ``enable``/``disable`` applied.
        Validates names, types and ranges against the schemas. A module named
        ``MODULE#N`` is its instance of multi_priority N (:func:`~darkproxy.darktable.xmp.instance_key`),
        which must be in the history (a new instance is not added)."""
        from darkproxy.darktable.params import default_blob
        from darkproxy.darktable.xmp import parse_instance_key

        out = sidecar.compressed()

        def located(key: str) -> tuple[str, int, Any]:
            module, inst = parse_instance_key(key)
            it = out.find(module, inst)
            if inst and it is None:
                raise XmpError(f"{key}: the history has no instance {inst} of {module} (darkproxy adds no instance)")
            return module, inst, it

        for key, vals in (updates or {}).items():
            module, inst, it = located(key)
            sch = self.schemas.get(module)
            if it is not None and it.modversion != sch.version:
                raise XmpError(
                    f"{key} in the XMP has modversion {it.modversion}, darktable {self.version} "
                    f"has {sch.version}: cannot edit its params"
                )
            base = it.params if it is not None else default_blob(sch)
            blob = set_params(sch, base, vals, clamp=clamp)
            out.set_item(module, params=blob, modversion=sch.version, enabled=True, multi_priority=inst)
        for key in enable or []:
            module, inst, it = located(key)
            sch = self.schemas.get(module)
            if it is None:
                out.set_item(module, params=default_blob(sch), modversion=sch.version, enabled=True)
            else:
                out.set_item(module, enabled=True, multi_priority=inst)
        for key in disable or []:
            module, inst, it = located(key)
            if module not in self.schemas and module not in self.schemas.without_introspection:
                self.schemas.get(module)  # raises UnknownModule with a hint
            if it is not None:
                out.set_item(module, enabled=False, multi_priority=inst)
        return out
