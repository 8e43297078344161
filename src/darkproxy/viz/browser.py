"""Check reports the way people open them: headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="darkproxy-chromium-") as prof:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={prof}", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def screenshot_html(html_path: str | os.PathLike[str], png_path: str | os.PathLike[str], width: int = 1280,
                    height: int = 2000, timeout: float = 90) -> Path:
    """Render the page headless and save a PNG screenshot."""
    png = Path(png_path).resolve()
    _run([f"--screenshot={png}", f"--window-size={width},{height}", "--virtual-time-budget=5000",
          Path(html_path).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {html_path}")
    return png


_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.getAttribute('src').slice(0, 80); });
  var el = document.createElement('div'); el.id = 'darkproxy-img-check';
  el.textContent = 'IMAGES ' + imgs.length + ' BROKEN ' + bad.length + ' ' + JSON.stringify(bad);
  document.body.appendChild(el);
});
</script>"""


def check_images_render(html_path: str | os.PathLike[str], timeout: float = 90) -> dict:
    """Open the page in Chromium and report how many <img> loaded
    (``naturalWidth > 0``): ``{"images": n, "broken": [src...]}``."""
    page = Path(html_path).resolve()
    probe = page.with_name(f".{page.stem}.check.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        r = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    finally:
        probe.unlink(missing_ok=True)
    m = re.search(r"IMAGES (\d+) BROKEN (\d+) (\[.*?\])", r.stdout)
    if not m:
        raise RuntimeError(f"chromium did not run the page check: {r.stderr.strip().splitlines()[-1:]}")
    import json

    return {"images": int(m.group(1)), "broken": json.loads(m.group(3).replace("&quot;", '"'))}


class _Refs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v and not re.match(r"^(data:|https?:|#|mailto:)", v):
                self.refs.append(v)


def validate_references(html_path: str | os.PathLike[str]) -> list[str]:
    """Every relative src/href of the page that does not exist (empty = all good)."""
    page = Path(html_path)
    p = _Refs()
    p.feed(page.read_text(encoding="utf-8"))
    return [r for r in p.refs if not (page.parent / r).exists()]
