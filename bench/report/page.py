"""The HTML shell of every page bench writes (report.html, the history page): head and CSS, error box, figures."""

from __future__ import annotations

import base64
import html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1250px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td{white-space:nowrap} td.wrap{white-space:normal;max-width:40em}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
.err{background:#fff3f3;border-left:4px solid #d33;padding:.5em 1em;white-space:pre-wrap;font-size:13px}
.note{background:#fffbe6;border-left:4px solid #e0a800;padding:.5em 1em;margin:.5em 0;font-size:14px}
details{margin:0 0 1.5em} .scroll{overflow-x:auto} summary{cursor:pointer;color:#555}
code{font-size:12px;word-break:break-all}
"""


def page(title: str, body: list[str]) -> str:
    """A self-contained page: styles inline and pictures as data: URLs, so it opens from disk, offline."""
    head = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>"])


def error_box(text: str) -> str:
    return "<div class='err'>" + html.escape(text) + "</div>"


def note_box(text: str) -> str:
    return "<div class='note'>" + html.escape(text) + "</div>"


def figure(png: bytes, alt: str, caption: str | None = None) -> str:
    """A PNG inline, so the page needs no file beside it."""
    data = base64.b64encode(png).decode("ascii")
    tail = f"<figcaption>{html.escape(caption)}</figcaption>" if caption is not None else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">{tail}</figure>'
