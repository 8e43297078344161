"""Self-contained HTML reports.

Build a page piece by piece with :class:`HtmlReport`, then :meth:`HtmlReport.write`
it. Images and videos are files in an ``img/`` folder next to the page, linked
by relative URLs (the folder can be moved or zipped as a whole), or, with
``embed=True``, base64 ``data:`` URIs inside the one HTML file. CSS is inline;
there is no script and no external asset (no CDN, no web font)."""

from __future__ import annotations

import base64
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

import numpy as np

from darkproxy.fsutil import write_text_atomic

_CSS = """
:root{--fg:#1d1f21;--muted:#5c6166;--line:#d8dadc;--bg-alt:#f4f5f6;--accent:#2b6cb0}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
 margin:0 auto;max-width:1280px;padding:1.5rem 1.5rem 4rem}
h1{font-size:1.65rem;margin:.2rem 0 1rem}
h2{font-size:1.25rem;margin:2.2rem 0 .6rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p{margin:.4rem 0 .8rem;max-width:75ch}
.note{color:var(--muted);font-size:.92rem}
nav{background:var(--bg-alt);padding:.5rem 1rem;border-radius:6px;font-size:.9rem}
nav a{color:var(--accent);text-decoration:none;margin-right:1.1rem;white-space:nowrap}
.table-wrap{overflow-x:auto;margin:.6rem 0 1rem}
table{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:.28rem .65rem;text-align:right;vertical-align:top}
th{background:var(--bg-alt);font-weight:600}
td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafbfb}
figure{display:inline-block;margin:.5rem 1rem .8rem 0;vertical-align:top;max-width:100%}
figure img,figure video{display:block;max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{font-size:.85rem;color:var(--muted);margin-top:.25rem;max-width:100ch}
pre{background:var(--bg-alt);padding:.7rem;border-radius:6px;overflow:auto;font-size:.8rem;max-height:32rem}
"""


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
        c = f' class="{html.escape(cls)}"' if cls else ""
        self._parts.append(("html", f"<p{c}>{html.escape(text)}</p>"))

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
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>\n" for r in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(
            (
                "html",
                f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>\n{body}</tbody></table></div>",
            )
        )

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
        t = f"<h3>{html.escape(title)}</h3>" if title else ""
        self._parts.append(("html", f"{t}<pre>{html.escape(json.dumps(obj, indent=2, default=str))}</pre>"))

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
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        toc = [(t, s) for (t, lv), s in zip(heads, slugs) if lv == 2]
        if len(toc) >= 3:
            body.append("<nav>" + "".join(f'<a href="#{s}">{html.escape(t)}</a>' for t, s in toc) + "</nav>")
        files: set[str] = set()
        n_img = n_head = 0
        for kind, val in self._parts:
            if kind == "html":
                body.append(val)
            elif kind == "heading":
                text, level = val
                body.append(f'<h{level} id="{slugs[n_head]}">{html.escape(text)}</h{level}>')
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
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                alt = html.escape(caption or fname)
                if kind == "image":
                    body.append(f'<figure><img src="{url}" alt="{alt}" loading="eager">{cap}</figure>')
                else:
                    body.append(
                        f'<figure><video src="{url}" controls loop muted playsinline preload="metadata" '
                        f'width="640" title="{alt}"></video>{cap}</figure>'
                    )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )

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
