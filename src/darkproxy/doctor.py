"""``darkproxy doctor``: check what darkproxy needs, with a fix for each problem."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from darkproxy.config import Config
from darkproxy.errors import DarkproxyError


@dataclass
class Check:
    name: str
    ok: bool
    value: str
    essential: bool = True
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.essential)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], **self.info}


def run_doctor(config: Config) -> DoctorReport:
    """Check darktable (path, version, plugin dir, schemas), torch and its
    device, ffmpeg (imageio-ffmpeg), and a writable workspace."""
    rep = DoctorReport()
    for check in (_check_darktable, _check_torch, _check_ffmpeg, _check_workspace, _check_chromium):
        check(config, rep)
    return rep


def _check_darktable(config: Config, rep: DoctorReport) -> None:
    from darkproxy.darktable.session import Darktable

    try:
        dt = Darktable(config)
        inst = dt.install
        assert inst is not None
        rep.checks.append(Check("darktable-cli", True, f"{inst.cli} (darktable {inst.version})"))
        rep.info["darktable"] = {
            "cli": str(inst.cli),
            "version": inst.version,
            "libdir": str(inst.libdir) if inst.libdir else None,
            "plugindir": str(inst.plugindir) if inst.plugindir else None,
            "dump_pipe": inst.has_dump_pipe,
        }
        rep.checks.append(
            Check(
                "darktable plugins",
                inst.plugindir is not None,
                str(inst.plugindir),
                fix="install darktable's full package (libdarktable.so and plugins/)",
            )
        )
        _check_schemas(dt, rep)
        _check_ports(dt, rep)
    except DarkproxyError as e:
        rep.checks.append(
            Check(
                "darktable-cli",
                False,
                str(e),
                fix="sudo apt-get install darktable, or set DARKPROXY_DARKTABLE_CLI=/path/to/darktable-cli",
            )
        )


def _check_ports(dt: Any, rep: DoctorReport) -> None:
    """The replica's exact ports against this darktable: the params versions they read (another is refused in the
    replica, so a warning, not an error)."""
    from darkproxy.replica.registry import EXACT

    by_version = []
    for m, op in sorted(EXACT.items()):
        installed = dt.schemas.get(m).version if m in dt.schemas.modules else None
        if op.reads_params and installed is not None and installed not in op.versions:
            by_version.append(f"{m} v{installed} (ported: v{', '.join(map(str, op.versions))})")
    parts = [f"{len(EXACT)} exact ports"]
    parts += [f"refused for their params version: {', '.join(by_version)}"] if by_version else []
    rep.checks.append(Check("replica ports", not by_version, "; ".join(parts), essential=False))
    rep.info["ports"] = {"exact": len(EXACT), "refused_by_version": by_version}


def _check_schemas(dt: Any, rep: DoctorReport) -> None:
    try:
        s = dt.schemas
        rep.checks.append(
            Check(
                "module schemas",
                len(s.modules) > 0,
                f"{len(s.modules)} modules with parameter schemas "
                f"({len(s.without_introspection)} without: {', '.join(sorted(s.without_introspection))}); "
                f"source {s.source}",
            )
        )
        rep.info["schemas"] = {
            "modules": len(s.modules),
            "without_introspection": sorted(s.without_introspection),
            "source": s.source,
        }
    except DarkproxyError as e:
        rep.checks.append(
            Check("module schemas", False, str(e), fix="reinstall darktable (apt-get install --reinstall darktable)")
        )


def _check_torch(config: Config, rep: DoctorReport) -> None:
    try:
        import torch

        dev = (
            "cuda"
            if torch.cuda.is_available()
            else ("mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
        )
        name = torch.cuda.get_device_name(0) if dev == "cuda" else dev
        rep.checks.append(Check("torch", True, f"{torch.__version__}, device {dev} ({name})"))
        rep.info["torch"] = {"version": torch.__version__, "device": dev, "device_name": name}
    except ImportError as e:
        rep.checks.append(Check("torch", False, str(e), fix="pip install torch (see README: setup)"))


def _check_ffmpeg(config: Config, rep: DoctorReport) -> None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        rep.checks.append(
            Check("ffmpeg", True, f"{exe} (imageio-ffmpeg {imageio_ffmpeg.__version__})", essential=False)
        )
        rep.info["ffmpeg"] = exe
    except Exception as e:  # imageio-ffmpeg raises RuntimeError when no binary is found
        rep.checks.append(
            Check("ffmpeg", False, str(e), essential=False, fix="pip install imageio-ffmpeg (videos only)")
        )


def _check_workspace(config: Config, rep: DoctorReport) -> None:
    home = config.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
        free = shutil.disk_usage(home).free / 2**30
        rep.checks.append(Check("workspace", True, f"{home} (writable, {free:.1f} GiB free)"))
    except OSError as e:
        rep.checks.append(
            Check(
                "workspace", False, f"{home}: {e.strerror}", fix=f"set DARKPROXY_HOME to a writable folder (now {home})"
            )
        )
    rep.info["workspace"] = str(home)


def _check_chromium(config: Config, rep: DoctorReport) -> None:
    # the path of the first one found
    chrome = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    rep.checks.append(
        Check(
            "chromium (report checks)",
            chrome is not None,
            chrome or "not found",
            essential=False,
            fix="sudo apt-get install chromium (only for report tests)",
        )
    )
