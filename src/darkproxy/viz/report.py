"""Self-contained HTML reports.

Build a page piece by piece with :class:`HtmlReport`, then :meth:`HtmlReport.write`
it. Images and videos are files in an ``img/`` folder next to the page, linked
by relative URLs (the folder can be moved or zipped as a whole), or, with
``embed=True``, base64 ``data:`` URIs inside the one HTML file. CSS is inline;
there is no script and no external asset (no CDN, no web font). The page
skeleton is the jinja2 template ``templates/report.html.j2`` (autoescape on)."""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import mimetypes
import os
import re
import shutil
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2  # the page skeleton (templates/report.html.j2)
import numpy as np

from darkproxy.fsutil import write_text_atomic

_TEMPLATE = "report.html.j2"  # in templates/ next to this module (package data)


class _Escaped(str):
    """Escaped text: autoescape leaves an object with ``__html__`` as it is."""

    def __html__(self) -> str:
        return str(self)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("darkproxy.viz", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        # values are escaped by html.escape (&quot;, &#x27;), as before jinja2, so pages stay byte-identical;
        # what is already HTML (|safe: add_html's raw HTML) passes as is
        finalize=lambda v: v if hasattr(v, "__html__") else _Escaped(html.escape(str(v))),
    )
    return env.get_template(_TEMPLATE)


class HtmlReport:
    """An HTML report assembled in order of the ``add_*`` calls.

    ``embed=False`` (default): :meth:`write` puts images/videos in ``img/`` next
    to the page with relative links. ``embed=True``: everything is inlined as
    base64 and no other file is written. A table of contents of the level-2
    headings is added when there are at least three of them."""

    def __init__(self, title: str, embed: bool = False) -> None:
        self.title = title
        self.embed = embed
        self._parts: list[tuple[str, Any]] = []

    # -- content ---------------------------------------------------------
    def add_heading(self, text: str, level: int = 2) -> None:
        """A heading ``<h{level}>`` (level 2..6; the title is the only h1)."""
        self._parts.append(("heading", (text, min(6, max(2, level)))))

    def add_text(self, text: str, cls: str = "") -> None:
        """A paragraph of plain text (HTML-escaped); ``cls="note"`` for small grey text."""
        self._parts.append(("text", {"text": text, "cls": cls}))

    def add_html(self, raw_html: str) -> None:
        """Raw HTML, inserted as is (the caller is responsible for escaping)."""
        self._parts.append(("html", raw_html))

    def add_table(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, caption: str = ""
    ) -> None:
        """A table, one row per dict; ``columns`` picks and orders the keys (default:
        the keys of all rows, in first-seen order). Floats are shown with 4
        significant digits, dicts/lists as compact JSON, missing values empty."""
        if not rows:
            return
        cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
        table = {"columns": cols, "rows": [[_fmt(r.get(c)) for c in cols] for r in rows], "caption": caption}
        self._parts.append(("table", table))

    def add_image(self, image: np.ndarray | str | os.PathLike[str], caption: str = "", name: str | None = None) -> None:
        """An image: a file (PNG/JPEG/..., copied into ``img/``) or an array, uint8
        ``(H, W, 3)`` ``srgb_display`` as is, or float ``(3, H, W)``/``(H, W, 3)``
        ``linear_rec2020`` (display-encoded with :func:`~darkproxy.viz.images.to_display`),
        written as PNG. ``name``: file name in ``img/`` (default: the source's name,
        or ``imageNNN.png``); clashing names get a ``-2``, ``-3``... suffix."""
        if isinstance(image, (str, os.PathLike)):
            if not Path(image).is_file():
                raise FileNotFoundError(f"report image {image} does not exist")
            self._parts.append(("image", (Path(image), caption, name)))
            return
        a = np.asarray(image)
        if a.dtype != np.uint8:
            from darkproxy.viz.images import to_display

            a = to_display(a)
        self._parts.append(("image", (a, caption, name)))

    def add_figure(self, fig: Any, caption: str = "", name: str | None = None, dpi: int = 110) -> None:
        """A matplotlib figure, rendered now to PNG (and closed if pyplot owns it)."""
        import imageio.v3 as iio

        from darkproxy.viz.plots import close_figure

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        close_figure(fig)
        self.add_image(iio.imread(buf.getvalue())[..., :3], caption, name)

    def add_video(self, path: str | os.PathLike[str], caption: str = "", name: str | None = None) -> None:
        """An mp4 video (copied into ``img/``, or embedded), shown with controls, looping."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"report video {path} does not exist")
        self._parts.append(("video", (Path(path), caption, name)))

    def add_json_block(self, obj: Any, title: str = "") -> None:
        """``obj`` pretty-printed as JSON in a ``<pre>`` block (non-JSON values via ``str``)."""
        self._parts.append(("json", {"title": title, "text": json.dumps(obj, indent=2, default=str)}))

    # -- output ----------------------------------------------------------
    def render(self, out_dir: str | os.PathLike[str]) -> str:
        """The page as a string; writes its asset files into ``out_dir/img`` (not when embedding)."""
        from darkproxy.viz.images import save_png

        out = Path(out_dir)
        used: set[str] = set()
        heads: list[tuple[str, int]] = [v for k, v in self._parts if k == "heading"]
        slugs: list[str] = []
        for t, _ in heads:
            slugs.append(_unique(re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-") or "section", used))
        toc = [{"text": t, "slug": s} for (t, lv), s in zip(heads, slugs, strict=True) if lv == 2]
        parts: list[dict[str, Any]] = []  # the template's parts: a "kind" and its fields
        files: set[str] = set()
        n_img = n_head = 0
        for kind, val in self._parts:
            if kind == "html":
                parts.append({"kind": kind, "html": val})
            elif kind in ("text", "table", "json"):
                parts.append({"kind": kind, **val})
            elif kind == "heading":
                text, level = val
                parts.append({"kind": kind, "text": text, "level": level, "slug": slugs[n_head]})
                n_head += 1
            elif kind in ("image", "video"):
                src, caption, name = val
                if kind == "image":
                    n_img += 1
                    default = src.name if isinstance(src, Path) else f"image{n_img:03d}.png"
                else:
                    default = src.name
                fname = _safe_name(name or default)
                is_array = not isinstance(src, Path)
                if is_array and not fname.lower().endswith(".png"):
                    fname += ".png"
                fname = _unique(fname, files)
                if self.embed:
                    raw = _png_bytes(src) if is_array else src.read_bytes()
                    mime = mimetypes.guess_type(fname)[0] or ("video/mp4" if kind == "video" else "image/png")
                    url = f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")
                else:
                    dest = out / "img" / fname
                    if is_array:
                        save_png(dest, src)
                    else:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        if src.resolve() != dest.resolve():
                            shutil.copyfile(src, dest)
                    url = "img/" + urllib.parse.quote(fname)
                parts.append({"kind": kind, "url": url, "alt": caption or fname, "caption": caption})
        return _template().render(title=self.title, toc=toc, parts=parts)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page at ``path`` (e.g. ``DIR/index.html``) atomically, after
        its assets in ``DIR/img/``; creates ``DIR``. Returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(p, self.render(p.parent), fsync=False)


def _png_bytes(img: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return bytes(iio.imwrite("<bytes>", img, extension=".png"))


def _safe_name(name: str) -> str:
    """A flat file name safe in a URL and on any file system (``/`` too becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "file"


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    out, k = name, 1
    while out.lower() in used:
        k += 1
        out = f"{stem}-{k}{dot}{ext}"
    used.add(out.lower())
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=_json_default, separators=(", ", ": "))
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
