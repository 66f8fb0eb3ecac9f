"""One self-contained HTML page of a run: the claims table first, then each target's tables
(from their Markdown, caption included) and figures (PNG, embedded), readable offline."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Mapping, Sequence

from mdmlib.core.io import atomic_write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.holds { background: #e3f6e3; } td.fails { background: #fbe3e3; } td.undecided { background: #fdf6dc; }
td.not-run { color: #888; }
p.caption { font-size: 0.9em; max-width: 1100px; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""

# Marks the page once every image has decoded: data-figures / data-figures-loaded on <body>,
# and a visible line, so a reader (or a headless browser) sees a figure that failed to load.
LOADED_CHECK = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figures = images.length;
  document.body.dataset.figuresLoaded = loaded;
  document.getElementById("figure-status").textContent = `${loaded} of ${images.length} figures loaded`;
});
"""

VERDICT_CLASSES = {"holds": "holds", "does not hold": "fails", "undecided": "undecided", "not run": "not-run"}


def inline(text: str) -> str:
    """Escaped text with Markdown's **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def markdown_table_html(markdown: str, table_id: str = "") -> str:
    """A table file as ``mdmlib.report.tables.markdown_table`` writes it ('**caption**', a blank
    line, a pipe table) as a caption paragraph and an HTML table; verdict cells are coloured."""
    lines = [line for line in markdown.splitlines() if line.strip()]
    caption = lines[0].strip().removeprefix("**").removesuffix("**") if lines and not lines[0].startswith("|") else ""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    if len(rows) < 2:
        raise ValueError(f"table {table_id or '?'}: no Markdown table in it")
    head, body = rows[0], rows[2:]
    attr = f' id="{html.escape(table_id)}"' if table_id else ""
    out = [f'<p class="caption">{inline(caption)}</p>' if caption else "", f"<table{attr}>",
           "<tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"]
    for row in body:
        cells = []
        for name, cell in zip(head, row):
            css = VERDICT_CLASSES.get(cell) if name == "verdict" else None
            cells.append(f'<td class="{css}">{inline(cell)}</td>' if css else f"<td>{inline(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def figure_html(png: str | Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    name = Path(png).stem.replace("_", " ")
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)} (PDF beside the PNG: {html.escape(Path(png).with_suffix('.pdf').name)})"
            f"</figcaption></figure>")


def report_page(title: str, claims_md: str | Path, sections: Mapping[str, Sequence[str | Path]],
                out_path: str | Path, note: str = "") -> None:
    """``sections``: heading -> table (.md) and figure (.png) files, in order; a folder stands
    for the figures in it."""
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{inline(note)}</p>" if note else "",
             '<p id="figure-status">figures not yet loaded</p>',
             '<h2 id="claims">The papers\' claims against this run</h2>',
             markdown_table_html(Path(claims_md).read_text(), "claims-table")]
    for heading, files in sections.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for f in (p for f in map(Path, files) for p in (sorted(f.glob("*.png")) if f.is_dir() else [f])):
            if f.suffix == ".md":
                parts.append(f"<h3>{html.escape(f.stem.replace('_', ' '))}</h3>")
                parts.append(markdown_table_html(f.read_text(), f.stem))
            elif f.suffix == ".png":
                parts.append(figure_html(f))
            else:
                raise ValueError(f"report section {heading!r}: {f} is neither a table (.md) nor a figure (.png)")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(p for p in parts if p)
            + f"\n<script>{LOADED_CHECK}</script>\n</body></html>\n")
    atomic_write_text(out_path, page)
