"""Self-contained HTML reports: images are PNGs in ``img/`` next to ``index.html``
(relative links), or embedded as base64; inline CSS, no external assets."""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.5rem;vertical-align:top}figure img,figure video{max-width:100%;border:1px solid #ccc}
figcaption{font-size:.85rem;color:#555;max-width:1100px}pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.8rem}
.note{color:#555;font-size:.9rem}
"""


class HtmlReport:
    """Build a report piece by piece, then :meth:`write` it to ``DIR/index.html``
    (or any name). Images given as arrays are written as PNG next to it."""

    def __init__(self, title: str, embed: bool = False) -> None:
        self.title = title
        self.embed = embed
        self._parts: list[tuple[str, Any]] = []

    def add_heading(self, text: str, level: int = 2) -> None:
        self._parts.append(("html", f"<h{level}>{html.escape(text)}</h{level}>"))

    def add_text(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self._parts.append(("html", f"<p{c}>{html.escape(text)}</p>"))

    def add_html(self, raw_html: str) -> None:
        self._parts.append(("html", raw_html))

    def add_table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
        if not rows:
            return
        cols = list(columns or rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
        self._parts.append(("html", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))

    def add_image(self, image: np.ndarray | str | os.PathLike[str], caption: str = "", name: str | None = None) -> None:
        self._parts.append(("image", (image, caption, name)))

    def add_figure(self, fig: Any, caption: str = "", name: str | None = None) -> None:
        """A matplotlib figure (saved as PNG)."""
        import io

        import imageio.v3 as iio

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.add_image(iio.imread(buf.getvalue()), caption, name)

    def add_video(self, path: str | os.PathLike[str], caption: str = "") -> None:
        self._parts.append(("video", (Path(path), caption)))

    def add_json_block(self, obj: Any) -> None:
        self._parts.append(("html", f"<pre>{html.escape(json.dumps(obj, indent=2, default=str))}</pre>"))

    def render(self, out_dir: Path) -> str:
        from darkproxy.viz.images import save_png

        body = [f"<h1>{html.escape(self.title)}</h1>"]
        n = 0
        for kind, val in self._parts:
            if kind == "html":
                body.append(val)
            elif kind == "image":
                image, caption, name = val
                n += 1
                if isinstance(image, (str, os.PathLike)):
                    src_path = Path(image)
                    rel = f"img/{name or src_path.name}"
                    (out_dir / "img").mkdir(parents=True, exist_ok=True)
                    if src_path.resolve() != (out_dir / rel).resolve():
                        shutil.copyfile(src_path, out_dir / rel)
                else:
                    rel = f"img/{name or f'image{n:03d}.png'}"
                    save_png(out_dir / rel, image)
                src = rel
                if self.embed:
                    src = "data:image/png;base64," + base64.b64encode((out_dir / rel).read_bytes()).decode()
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                body.append(f'<figure><img src="{src}" alt="{html.escape(caption or rel)}">{cap}</figure>')
            elif kind == "video":
                path, caption = val
                rel = f"img/{path.name}"
                (out_dir / "img").mkdir(parents=True, exist_ok=True)
                if path.resolve() != (out_dir / rel).resolve():
                    shutil.copyfile(path, out_dir / rel)
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                body.append(f'<figure><video src="{rel}" controls loop muted width="640"></video>{cap}</figure>')
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page (atomically) and its images next to it."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        text = self.render(p.parent)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
        return p


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)
