"""Render raws through darktable-cli to float32 linear Rec2020.

Every call runs darktable-cli with an isolated temporary config dir,
``--library :memory:`` and ``--apply-custom-presets false`` (no user presets,
no data.db lock, so workers can run in parallel), exporting an uncompressed
32-bit float TIFF with ``--icc-type LIN_REC2020``: the pixels of darktable's
working space, unclipped.

Batch mode renders many (raw, sidecar) jobs in ONE darktable-cli process: each
job becomes a hard link (or copy) of its raw, with its own ``NAME.xmp`` sidecar, in
a temporary folder that darktable-cli imports as a whole. darktable's ~0.5-0.8 s
start-up is then paid once per batch instead of once per image.

Each process's config dir starts as a copy of one darktable initialised once per
install (:func:`config_template`: its ``data.db`` with the built-in presets and its
``darktablerc``), not empty: darktable then skips building its databases, about
0.25 s of its start-up (``bench/results/render_startup.md``); renders are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import tifffile

from darkproxy.darktable.locate import DarktableInstall, darktable_env, darktable_thread_args
from darkproxy.darktable.xmp import Sidecar
from darkproxy.errors import DarktableCrash, DarktableRenderError, RawError
from darkproxy.fsutil import atomic_path

_NOISE = ("WARNING: either your user id", "[rawspeed]", "[export_job] exported", "notice: output location")


@dataclass
class RenderJob:
    """One render: ``raw`` developed with ``sidecar`` (None: darktable's
    defaults with its auto-applied presets) into ``out`` (.tif)."""

    raw: Path
    sidecar: Sidecar | None
    out: Path


@dataclass
class RenderFailure:
    job: RenderJob
    message: str


@runtime_checkable
class BatchRenderer(Protocol):
    """What dataset generation asks of a renderer: :class:`Renderer` (darktable-cli on this
    machine) and :class:`darkproxy.cluster.RayRenderer` (batches as Ray tasks) both are one.
    ``renders`` / ``images`` count darktable-cli processes and images (for benchmarks)."""

    max_size: int | None
    renders: int
    images: int

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Path | RenderFailure]:
        """Per job, the output path or a :class:`RenderFailure` (see :meth:`Renderer.render_batch`)."""
        ...

    def render(self, raw: str | os.PathLike[str], sidecar: Sidecar | None, out: str | os.PathLike[str]) -> Path:
        """One image (see :meth:`Renderer.render`)."""
        ...


_TEMPLATE_LOCK = threading.Lock()


def config_template(install: DarktableInstall, root: Path | None = None) -> Path | None:
    """A darktable config dir initialised by ``install`` once (darktable-cli run on a tiny image with an
    empty config dir and no ``--conf``), kept under ``root`` (the temp dir) per install and version and
    shared by every later process as a copy; ``None`` when darktable could not make one (each process then
    starts from an empty dir, as darktable itself would: slower, the same renders)."""
    key = hashlib.sha256(f"{install.cli}|{install.version}|{os.getuid()}".encode()).hexdigest()[:16]
    where = Path(root or tempfile.gettempdir()) / f"darkproxy-dtconfig-{key}"
    if (where / "data.db").is_file():
        return where
    with _TEMPLATE_LOCK:
        if (where / "data.db").is_file():
            return where
        where.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix="darkproxy-dtconfig-build-", dir=where.parent))
        try:
            conf = build / "config"
            conf.mkdir()
            img = build / "seed.tif"
            tifffile.imwrite(str(img), np.full((16, 16, 3), 128, np.uint8))
            env = darktable_env()
            cmd = [str(install.cli), str(img), str(build / "out.tif"), "--core", "--library", ":memory:"]
            cmd += ["--configdir", str(conf), *darktable_thread_args(env)]
            subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, check=False, env=env)
            if not (conf / "data.db").is_file():
                return None
            with contextlib.suppress(OSError):  # another process may have made it meanwhile
                os.replace(conf, where)
        except (OSError, subprocess.SubprocessError):
            return None
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return where if (where / "data.db").is_file() else None


# ``max_size -> renderer``: how a caller hands generation the renderer to use (a cluster's, say),
# so that generation never imports what builds it
RendererFactory = Callable[[int | None], BatchRenderer]


@dataclass
class Renderer:
    """darktable-cli front-end. ``max_size`` caps width and height.

    ``high_quality`` is darktable-cli's ``--hq`` (its own default is on: the
    whole pipe runs at full resolution and the result is downscaled at the
    end). darkproxy passes ``--hq false`` unless asked: darktable then scales
    the image down early (at demosaic), so every module runs *at the output
    scale* and a tap-out is the module's exact input and output. With ``--hq``
    a tap-out would be downscaled *after* the module, which mixes pixels
    through the module's non-linearity (a sharpen tap-out then no longer
    matches the module's own maths; without it it does: tests/darktable/test_tapout.py)."""

    install: DarktableInstall
    max_size: int | None = None
    timeout: float = 300.0
    high_quality: bool = False
    extra_conf: dict[str, str] = field(default_factory=dict)
    tmp_root: Path | None = None
    # output profile and TIFF bits: the defaults give float linear Rec2020; ``icc_type="SRGB", bpp=8`` gives
    # darktable's own 8-bit sRGB export (what ``darktable-cli raw out.png`` writes), read back as 0..255 floats
    icc_type: str = "LIN_REC2020"
    bpp: int = 32
    # a darktable style file (.dtstyle) applied on top of each job's history (darktable imports it through
    # Lua in the same process: darkproxy.darktable.styles); ``style_overwrite``: it replaces the history
    style: Path | None = None
    style_overwrite: bool = False
    use_config_template: bool = True  # start each process from :func:`config_template` (False: an empty config dir)
    # darktable's OpenMP threads (None: its own choice, one per CPU; never more: locate.darktable_env). 1 makes
    # darktable 4.2.1 reproducible: color balance rgb builds its gamut LUT with a racy parallel max
    # (docs/darktable-notes.md), so with more threads saturated pixels move between renders
    threads: int | None = None
    renders: int = 0  # darktable-cli processes started (for benchmarks)
    images: int = 0  # images rendered

    # ---------------------------------------------------------------- commands
    def _command(self, inp: Path, xmp: Path | None, out: str, configdir: Path) -> list[str]:
        cmd = [str(self.install.cli), str(inp)]
        if xmp is not None:
            cmd.append(str(xmp))
        cmd += [out, "--icc-type", self.icc_type, "--apply-custom-presets", "false"]
        if self.max_size:
            cmd += ["--width", str(self.max_size), "--height", str(self.max_size)]
        cmd += ["--hq", "true" if self.high_quality else "false"]
        if self.style is not None:
            from darkproxy.darktable.styles import read_style, style_import_lua

            cmd += ["--style", read_style(self.style).name] + (["--style-overwrite"] if self.style_overwrite else [])
        cmd += [
            "--core",
            "--library",
            ":memory:",
            "--configdir",
            str(configdir),
            "--conf",
            f"plugins/imageio/format/tiff/bpp={self.bpp}",
            "--conf",
            "plugins/imageio/format/tiff/compress=0",
            "--conf",
            "write_sidecar_files=never",
        ]
        for k, v in self.extra_conf.items():
            cmd += ["--conf", f"{k}={v}"]
        cmd += darktable_thread_args(darktable_env(self.threads))  # the count _run gives OpenMP, at most the CPUs
        if self.style is not None:
            cmd += ["--luacmd", style_import_lua(self.style)]
        return cmd

    def _run(self, cmd: list[str], what: str) -> str:
        self.renders += 1
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                start_new_session=True,
                # -t (in cmd) is darktable's own count; the pipe's OpenMP threads take OMP_NUM_THREADS
                env=darktable_env(self.threads),
            )
        except OSError as e:
            raise DarktableRenderError(f"cannot start {self.install.cli}: {e.strerror}") from None
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise DarktableRenderError(f"darktable-cli timed out after {self.timeout:g} s rendering {what}") from None
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        if proc.returncode < 0:
            raise DarktableCrash(f"darktable-cli crashed (signal {-proc.returncode}) rendering {what}: {_tail(out)}")
        return out

    def _tmpdir(self) -> tempfile.TemporaryDirectory[str]:
        root = self.tmp_root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix="darkproxy-render-", dir=root)

    # ---------------------------------------------------------------- single
    def render(self, raw: str | os.PathLike[str], sidecar: Sidecar | None, out: str | os.PathLike[str]) -> Path:
        """Render one image to ``out`` (float32 linear Rec2020 TIFF). Raises
        :class:`RawError` for a missing raw, :class:`DarktableRenderError` when
        darktable fails (its message included)."""
        res = self.render_batch([RenderJob(Path(raw), sidecar, Path(out))])
        if isinstance(res[0], RenderFailure):
            raise DarktableRenderError(res[0].message)
        return res[0]

    def render_array(self, raw: str | os.PathLike[str], sidecar: Sidecar | None) -> np.ndarray:
        """Render and read back: float32 (3, H, W) linear Rec2020."""
        with self._tmpdir() as td:
            p = self.render(raw, sidecar, Path(td) / "out.tif")
            return read_tiff(p)

    # ---------------------------------------------------------------- batch
    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Path | RenderFailure]:
        """Render ``jobs`` in one darktable-cli process. Returns, per job, the
        output path or a :class:`RenderFailure` (darktable's message); raises
        only when darktable cannot run at all (crash, timeout)."""
        if not jobs:
            return []
        for j in jobs:
            if not Path(j.raw).is_file():
                raise RawError(f"raw file {j.raw} does not exist")
        with self._tmpdir() as td:
            tdp = Path(td)
            indir, outdir, conf = tdp / "in", tdp / "out", tdp / "config"
            indir.mkdir()
            outdir.mkdir()
            template = config_template(self.install, self.tmp_root) if self.use_config_template else None
            if template is not None:
                shutil.copytree(template, conf)
            else:
                conf.mkdir()
            names = []
            for i, j in enumerate(jobs):
                ext = Path(j.raw).suffix or ".raw"
                name = f"j{i:05d}"
                link = indir / f"{name}{ext}"
                _link_or_copy(Path(j.raw), link)
                if j.sidecar is not None:
                    j.sidecar.write(indir / f"{name}{ext}.xmp")
                names.append(name)
            what = str(jobs[0].raw) if len(jobs) == 1 else f"{len(jobs)} images ({jobs[0].raw}...)"
            if len(jobs) == 1:
                src = indir / f"{names[0]}{Path(jobs[0].raw).suffix or '.raw'}"
                xmp = src.with_name(src.name + ".xmp") if jobs[0].sidecar is not None else None
                log = self._run(self._command(src, xmp, str(outdir / f"{names[0]}.tif"), conf), what)
            else:
                log = self._run(self._command(indir, None, str(outdir / "$(FILE_NAME).tif"), conf), what)
            results: list[Path | RenderFailure] = []
            for name, j in zip(names, jobs, strict=True):
                produced = outdir / f"{name}.tif"
                if produced.is_file() and produced.stat().st_size > 0:
                    Path(j.out).parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(produced), str(j.out))
                    results.append(Path(j.out))
                    self.images += 1
                else:
                    results.append(RenderFailure(j, f"darktable-cli wrote no image for {j.raw}: {_tail(log, name)}"))
            return results


def render_jobs(
    r: BatchRenderer, jobs: Sequence[RenderJob], one_per_process: bool = False, log: Callable[[str], None] | None = None
) -> list[Path | RenderFailure]:
    """``jobs`` in one darktable-cli process (one each with ``one_per_process``). When that process crashes, each
    job again in its own (darktable 4.2.1 segfaults now and then, on inputs it renders the next time): a job
    whose own process crashes too is its :class:`RenderFailure`, not the batch's end."""

    def one(job: RenderJob) -> Path | RenderFailure:
        try:
            return r.render_batch([job])[0]
        except DarktableCrash as e:
            return RenderFailure(job, str(e).splitlines()[0])

    if one_per_process or len(jobs) == 1:
        return [one(j) for j in jobs]
    try:
        return r.render_batch(jobs)
    except DarktableCrash as e:
        if log is not None:
            log(f"warning: {str(e).splitlines()[0]}; rendering these {len(jobs)} one per process")
        return [one(j) for j in jobs]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src.resolve(), dst)  # hard links are distinct paths: darktable does not deduplicate them
    except OSError:
        shutil.copyfile(src, dst)


def _tail(log: str, name: str | None = None, n: int = 3) -> str:
    lines = [ln.strip() for ln in (log or "").splitlines() if ln.strip() and not ln.startswith(_NOISE)]
    if name:
        mine = [ln for ln in lines if name in ln]
        lines = mine or lines
    return " | ".join(lines[-n:]) or "no message"


def read_tiff(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a darktable float TIFF as float32 (3, H, W) (alpha dropped)."""
    a = tifffile.imread(str(path))
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = np.ascontiguousarray(np.moveaxis(a[..., :3], -1, 0)).astype(np.float32, copy=False)
    return a


def write_tiff(path: str | os.PathLike[str], img_chw: np.ndarray) -> Path:
    """Write float32 (3, H, W) as a float TIFF (atomically)."""
    path = Path(path)
    with atomic_path(path, suffix=".tif") as tmp:
        tifffile.imwrite(
            str(tmp), np.ascontiguousarray(np.moveaxis(np.asarray(img_chw, np.float32), 0, -1)), photometric="rgb"
        )
    return path
