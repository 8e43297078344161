"""Check HTML reports the way people open them: in headless Chromium (Debian's
``chromium`` package; ``apt-get install chromium``), plus a static check of
the files a page references.

Chromium runs with a fresh temporary profile, no sandbox (root in containers),
no GPU and no background networking, so it needs nothing but the page."""

from __future__ import annotations

import html
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
    "--hide-scrollbars",
    "--mute-audio",
)
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``/usr/bin/chromium``,
    ``chromium-browser``, ``google-chrome`` on ``PATH``), or ``None``."""
    for name in _NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run Chromium with ``args`` in its own process group (so that a timeout
    also ends its helper processes) and a throw-away profile."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="darkproxy-chromium-") as prof:
        proc = subprocess.Popen(
            [exe, *_FLAGS, f"--user-data-dir={prof}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimeoutError(f"chromium did not finish within {timeout:g} s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def screenshot_html(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    width: int = 1280,
    height: int = 2000,
    timeout: float = 60,
) -> Path:
    """Render ``html_path`` in headless Chromium at a ``width`` x ``height``
    window and save a PNG screenshot of that viewport at ``png_path``. Returns
    the PNG path; raises ``RuntimeError`` if none was written."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    r = _run(
        [
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            Path(html_path).resolve().as_uri(),
        ],
        timeout,
    )
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {html_path}: {_last_line(r.stderr)}")
    return png


# Runs after `load` (all <img> loaded or failed), then gives <video> elements
# up to 3 s of (virtual) time to load metadata, and writes the result into
# the DOM, which --dump-dom prints.
_PROBE = """<script>
window.addEventListener('load', function () {
  function done() {
    var imgs = Array.prototype.slice.call(document.images);
    var vids = Array.prototype.slice.call(document.getElementsByTagName('video'));
    var src = function (e) { return (e.getAttribute('src') || e.currentSrc || '').slice(0, 120); };
    var res = {images: imgs.length,
               broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(src),
               videos: vids.length,
               broken_videos: vids.filter(function (v) { return !(v.readyState >= 1 && v.videoWidth > 0); }).map(src)};
    var el = document.createElement('pre');
    el.id = 'darkproxy-render-check';
    el.textContent = JSON.stringify(res);
    document.body.appendChild(el);
  }
  var vids = Array.prototype.slice.call(document.getElementsByTagName('video'));
  var pending = vids.filter(function (v) { return v.readyState < 1 && !v.error; }).length;
  if (!pending) { done(); return; }
  var finished = false;
  function one() { if (!finished && --pending <= 0) { finished = true; done(); } }
  vids.forEach(function (v) {
    if (v.readyState >= 1 || v.error) return;
    v.addEventListener('loadedmetadata', one);
    v.addEventListener('error', one);
    var s = v.querySelector('source'); if (s) s.addEventListener('error', one);
  });
  setTimeout(function () { if (!finished) { finished = true; done(); } }, 3000);
});
</script>"""


def check_images_render(html_path: str | os.PathLike[str], timeout: float = 60) -> dict[str, Any]:
    """Open the page in headless Chromium and check that every ``<img>`` loaded
    and decoded (``complete`` and ``naturalWidth > 0``) and every ``<video>``
    loaded its metadata (``videoWidth > 0``).

    Returns ``{"images": n, "broken": [src...], "videos": m, "broken_videos":
    [src...]}`` (srcs cut to 120 characters). The page itself is not modified:
    a copy with a small check script and a ``<base>`` pointing at the page's
    folder is opened from a temporary folder. Raises ``FileNotFoundError``
    without Chromium, ``RuntimeError`` if the check did not run."""
    page = Path(html_path).resolve()
    text = page.read_text(encoding="utf-8")
    base = f'<base href="{html.escape(page.parent.as_uri() + "/")}">'
    with tempfile.TemporaryDirectory(prefix="darkproxy-check-") as d:
        if re.search(r"<base\b", text, re.I):  # keep the page's own base: check a copy beside it
            probe = page.with_name(f".{page.stem}.{os.getpid()}.check.html")
            probe.write_text(_inject(text, "", _PROBE), encoding="utf-8")
        else:
            probe = Path(d) / "page.html"
            probe.write_text(_inject(text, base, _PROBE), encoding="utf-8")
        try:
            r = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
        finally:
            if probe.parent != Path(d):
                probe.unlink(missing_ok=True)
    m = re.search(r'<pre id="darkproxy-render-check">(.*?)</pre>', r.stdout, re.S)
    if not m:
        raise RuntimeError(
            f"chromium did not run the page check of {page} (exit {r.returncode}): {_last_line(r.stderr)}"
        )
    return json.loads(html.unescape(m.group(1)))


def _inject(text: str, head: str, body: str) -> str:
    if head:
        text, n = re.subn(r"(<head\b[^>]*>)", lambda mm: mm.group(1) + head, text, count=1, flags=re.I)
        if not n:
            text = head + text
    text, n = re.subn(r"(</body\s*>)", lambda mm: body + mm.group(1), text, count=1, flags=re.I)
    return text if n else text + body


def _last_line(s: str) -> str:
    lines = [ln for ln in s.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


class _Refs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href", "poster") and v and v.strip():
                self.refs.append(v.strip())


def validate_references(html_path: str | os.PathLike[str]) -> list[str]:
    """Static check: every ``src``/``href``/``poster`` of the page that names a
    local file (relative, absolute or ``file:`` URL; percent-escapes decoded,
    ``?query``/``#fragment`` ignored) and does not exist, as written in the page.
    Remote (``http(s):``), ``data:``, ``mailto:``, ``javascript:`` and
    in-page (``#...``) links are not checked. Empty list = all present."""
    page = Path(html_path)
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    missing = []
    for ref in parser.refs:
        u = urllib.parse.urlsplit(ref)
        if u.scheme and u.scheme != "file" and len(u.scheme) > 1:  # len 1: a Windows drive letter
            continue
        if not u.path:  # "#anchor" or "?query" only
            continue
        path = Path(urllib.parse.unquote(u.path))
        target = path if path.is_absolute() else page.parent / path
        if not target.exists():
            missing.append(ref)
    return missing
