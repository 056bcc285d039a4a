"""The HTML page: one self-contained file (CSS inline, figures as base64 PNG), and small builders for it.

Every section module returns a :class:`Section`; :func:`render_page` puts them under a header with the run
name, a recipe summary and headline metric cards, with a table of contents.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered straight to PNG bytes
import matplotlib.pyplot as plt  # noqa: E402

# Colours of the page and its plots (a colour-blind-safe palette: Okabe & Ito 2008).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
ACCENT = "#0072B2"

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#ffffff; --accent:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:linear-gradient(135deg,#0b3d63,#0072B2); color:#fff; padding:28px 40px 24px; }
header h1 { margin:0 0 4px; font-size:28px; font-weight:650; letter-spacing:-0.01em; }
header .sub { opacity:.9; font-size:14px; }
header .pipeline { margin-top:10px; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:13.5px;
                   background:rgba(255,255,255,.12); display:inline-block; padding:6px 10px; border-radius:6px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:18px; }
.card { background:rgba(255,255,255,.14); border-radius:10px; padding:10px 16px; min-width:120px; }
.card .v { font-size:24px; font-weight:650; }
.card .k { font-size:12px; text-transform:uppercase; letter-spacing:.06em; opacity:.85; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; }
nav a { color:var(--accent); text-decoration:none; margin-right:18px; font-size:14px; white-space:nowrap; }
main { max-width:1180px; margin:0 auto; padding:18px 28px 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:18px 24px;
          margin:18px 0; box-shadow:0 1px 2px rgba(0,0,0,.03); }
section h2 { margin:0 0 6px; font-size:20px; }
section h3 { margin:18px 0 6px; font-size:16px; }
p.note { color:var(--muted); margin:4px 0 10px; font-size:14px; }
.grid { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
figure { margin:0; }
figure img { max-width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:13px; margin-top:2px; }
table { border-collapse:collapse; font-size:13.5px; margin:6px 0 4px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; }
th { background:#f0f4f8; font-weight:600; }
th:first-child, td:first-child { text-align:left; }
td.text, th.text { text-align:left; font-family:ui-monospace, Menlo, Consolas, monospace; white-space:pre-wrap; }
.tokens span { display:inline-block; padding:1px 2px; margin:1px; border-radius:3px;
               font-family:ui-monospace, Menlo, Consolas, monospace; font-size:13px; }
.sample { font-family:ui-monospace, Menlo, Consolas, monospace; white-space:pre-wrap; background:#f8fafc;
          border:1px solid var(--line); border-radius:8px; padding:10px 12px; font-size:13px; margin:6px 0; }
.sample b { color:var(--accent); }
.ok { color:#00875a; } .bad { color:#c0392b; }
footer { color:var(--muted); font-size:12.5px; text-align:center; padding:10px 0 30px; }
"""


@dataclass
class Section:
    """One report section: anchor id, title and its HTML body."""

    id: str
    title: str
    body: str


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers to fixed digits (NaN as –), anything else as escaped text."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}"
    return esc(value)


def png(fig: Any, alt: str, caption: str = "", width: int | None = None) -> str:
    """A matplotlib figure as an embedded PNG ``<figure>`` (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    style = f' style="width:{width}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}"{style} src="data:image/png;base64,{data}">{cap}</figure>'


def table(header: list[str], rows: list[list[Any]], text_columns: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are formatted with :func:`fmt` unless already HTML (``Markup``)."""

    def cell(i: int, v: Any, tag: str) -> str:
        cls = ' class="text"' if i in text_columns else ""
        return f"<{tag}{cls}>{v if isinstance(v, Markup) else fmt(v)}</{tag}>"

    head = "".join(cell(i, h, "th") for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(i, v, "td") for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup(str):
    """A string that is already HTML (not escaped again by :func:`table`)."""


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def card(label: str, value: Any) -> str:
    return f'<div class="card"><div class="v">{fmt(value)}</div><div class="k">{esc(label)}</div></div>'


def render_page(
    title: str, subtitle: str, pipeline: str, cards: list[str], sections: list[Section], footer: str
) -> str:
    nav = "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} — polymodal report</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f'<header><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div>'
        f'<div class="pipeline">{esc(pipeline)}</div><div class="cards">{"".join(cards)}</div></header>'
        f"<nav>{nav}</nav><main>{body}</main><footer>{esc(footer)}</footer></body></html>\n"
    )


def figure(width: float, height: float) -> tuple[Any, Any]:
    """A clean figure: no top/right spines, light grid."""
    fig, ax = plt.subplots(figsize=(width, height))
    style(ax)
    return fig, ax


def style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
