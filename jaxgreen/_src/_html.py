"""HTML fragments for notebooks (``_repr_html_``) and reports, from plain data.

Every function returns a self-contained fragment: inline styles only (one scoped
``<style>`` for a tree's disclosure marks, which degrades to the browser's own marks
where a viewer strips it), no script, nothing fetched over the network. Like
:mod:`jaxgreen._src.report`, this module renders strings and numbers only; the types that
own the data build the rows, so a report file can embed the same fragments.

Module trees fold with ``<details>`` elements (no script), and shares are drawn as bars
in plain ``<div>``s.

>>> print(table(["name", "FPO"], [["exp", "1,024"]]))  # doctest: +ELLIPSIS
<table style="...">...<th style="...">name</th>...<td style="...">1,024</td>...</table>
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

FONT = ("font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif;"
        "font-size:13px;line-height:1.35;color:#1f2328")
_TH = ("padding:3px 10px;border-bottom:1px solid #8c959f;font-weight:600;"
       "white-space:nowrap;vertical-align:bottom")
_TD = "padding:2px 10px;white-space:nowrap;vertical-align:top"
_NUMERIC = "font-variant-numeric:tabular-nums"
BAR = "#4c956c"
NEGATIVE = "#c1121f"
_ids = itertools.count()


class Html(str):
  """Markup that is inserted as it is (everything else is escaped)."""

  __slots__ = ()


def esc(x: object) -> str:
  """``x`` as text, escaped; an :class:`Html` value unchanged."""
  return x if isinstance(x, Html) else html.escape(str(x))


def fragment(*parts: str, title: str | None = None) -> Html:
  """One result's view: an optional title above the parts, in the package's font."""
  head = f'<div style="font-weight:600;font-size:14px;margin:2px 0 6px">{esc(title)}</div>' \
      if title else ""
  return Html(f'<div style="{FONT}">{head}{"".join(parts)}</div>')


def section(title: str, body: str, open: bool = True) -> Html:
  """A foldable part of a view."""
  return Html(f'<details{" open" if open else ""} style="margin:8px 0">'
              f'<summary style="cursor:pointer;font-weight:600">{esc(title)}</summary>'
              f'<div style="margin-top:4px">{body}</div></details>')


def notes(lines: Sequence[str]) -> Html:
  """Free-form notes under a table, one line each."""
  if not lines:
    return Html("")
  items = "".join(f"<li>{esc(n)}</li>" for n in lines)
  return Html(f'<ul style="margin:6px 0;padding-left:18px;color:#57606a">{items}</ul>')


def badge(text: str, ok: bool) -> Html:
  """A small coloured label: green when ``ok``, red otherwise."""
  color = "#1a7f37" if ok else NEGATIVE
  return Html(f'<span style="display:inline-block;padding:0 6px;border-radius:8px;'
              f'border:1px solid {color};color:{color};font-size:11px">{esc(text)}</span>')


def bar(share: float | None, *, color: str = BAR, width_px: int = 120) -> Html:
  """A horizontal bar of ``share`` (0..1; a negative share is drawn in red) and its
  percentage; empty for None."""
  if share is None:
    return Html("")
  color = NEGATIVE if share < 0 else color
  frac = min(abs(share), 1.0)
  return Html(f'<span style="display:inline-flex;align-items:center;gap:6px">'
              f'<span style="display:inline-block;width:{width_px}px;height:9px;'
              f'background:#eaeef2;border-radius:2px">'
              f'<span style="display:block;width:{100 * frac:.2f}%;height:100%;'
              f'background:{color};border-radius:2px"></span></span>'
              f'<span style="{_NUMERIC};color:#57606a;font-size:11px">'
              f'{100 * share:.1f}%</span></span>')


def table(headers: Sequence[str], rows: Sequence[Sequence[object]],
          align: str | None = None, caption: str | None = None) -> Html:
  """An HTML table; ``align`` is one char per column, 'l' or 'r' (as in
  :func:`jaxgreen._src.report.table`). Cells are escaped unless they are :class:`Html`; a
  newline in a cell is a line break."""
  align = align or "l" + "r" * (len(headers) - 1)

  def cell(tag: str, c: object, a: str, style: str) -> str:
    side = "left" if a == "l" else "right"
    extra = f";{_NUMERIC}" if a == "r" else ""
    text = esc(c).replace("\n", "<br>")
    return f'<{tag} style="{style};text-align:{side}{extra}">{text}</{tag}>'

  head = "".join(cell("th", h, a, _TH) for h, a in zip(headers, align, strict=True))
  body = "".join(
      f'<tr style="background:{"#f6f8fa" if i % 2 else "transparent"}">'
      + "".join(cell("td", c, a, _TD) for c, a in zip(r, align, strict=True)) + "</tr>"
      for i, r in enumerate(rows))
  cap = (f'<caption style="caption-side:top;text-align:left;font-weight:600;'
         f'padding:2px 0">{esc(caption)}</caption>') if caption else ""
  return Html(f'<table style="border-collapse:collapse;margin:4px 0;{FONT}">{cap}'
              f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


# One row of a tree: (path segments, cells after the name column, share of the bar).
TreeRow = tuple[Sequence[str], Sequence[object], float | None]


def tree(headers: Sequence[str], rows: Sequence[TreeRow], *, open_depth: int = 2,
         bar_header: str = "share", align: str | None = None) -> Html:
  """A foldable tree of rows, one per path, with a share bar per row.

  ``rows`` come parents first (tree order); an ancestor without a row of its own is
  shown with empty cells. Nodes shallower than ``open_depth`` start unfolded.
  ``headers`` names the name column and then the cells; the bar column comes last.
  ``align`` has one char per cell column, 'l' or 'r' (default: all right).
  """
  rows = _with_ancestors(rows)
  ncols = len(headers) - 1
  aligns = align or "r" * ncols
  widths = [max([len(str(headers[i + 1]))] + [len(str(r[1][i])) for r in rows if
                                               i < len(r[1])]) + 2 for i in range(ncols)]
  name_w = max([len(str(headers[0]))] + [len(p[-1]) for p, _, _ in rows if p]) + 2
  indent = 1.3 * max([len(p) - 1 for p, _, _ in rows if p] or [0])
  cls = f"jg{next(_ids)}"
  template = (f"calc({name_w}ch + {indent:.1f}em) " + " ".join(f"{w}ch" for w in widths)
              + " 190px")

  def line(depth: int, name: object, cells: Sequence[object], share: float | None,
           head: bool = False) -> str:
    pad = f"padding-left:{1.3 * depth:.1f}em"
    cell_style = f"{_NUMERIC};padding:1px 8px;white-space:nowrap;text-align:"
    weight = "font-weight:600;" if head else ""
    items = [f'<span style="{pad};white-space:nowrap">'
             f'<span class="{cls}m"></span>{esc(name)}</span>']
    items += [f'<span style="{cell_style}{"left" if a == "l" else "right"}">'
              f'{esc(c).replace(chr(10), "<br>")}</span>'
              for c, a in zip(cells, aligns, strict=False)]
    items += ["" if head else f"<span>{bar(share)}</span>"]
    if head:
      items[-1] = f'<span style="padding-left:8px">{esc(bar_header)}</span>'
    return (f'<div style="display:inline-grid;grid-template-columns:{template};'
            f'{weight}align-items:center">{"".join(items)}</div>')

  out: list[str] = []

  def walk(i: int) -> int:
    path, cells, share = rows[i]
    depth = len(path) - 1
    has_children = i + 1 < len(rows) and _is_child(rows[i + 1][0], path)
    body = line(depth, path[-1] if path else "", cells, share)
    if not has_children:
      out.append(f'<div style="padding-left:1.1em">{body}</div>')
      return i + 1
    out.append(f'<details{" open" if depth < open_depth else ""}>'
               f'<summary style="cursor:pointer;padding-left:1.1em">{body}</summary>')
    j = i + 1
    while j < len(rows) and _is_child(rows[j][0], path):
      j = walk(j)
    out.append("</details>")
    return j

  i = 0
  while i < len(rows):
    i = walk(i)
  style = (f"<style>.{cls} summary{{list-style:none}}"
           f".{cls} summary::-webkit-details-marker{{display:none}}"
           f".{cls} summary .{cls}m::before{{content:'\\25B8';display:inline-block;"
           f"width:1.1em;margin-left:-1.1em;color:#57606a}}"
           f".{cls} details[open]>summary .{cls}m::before{{content:'\\25BE'}}</style>")
  head = line(0, headers[0], headers[1:], None, head=True)
  return Html(f'<div class="{cls}" style="{FONT};margin:4px 0">{style}'
              f'<div style="padding-left:1.1em;border-bottom:1px solid #8c959f">{head}</div>'
              f'{"".join(out)}</div>')


def _is_child(path: Sequence[str], parent: Sequence[str]) -> bool:
  return len(path) > len(parent) and tuple(path[:len(parent)]) == tuple(parent)


def _with_ancestors(rows: Sequence[TreeRow]) -> list[TreeRow]:
  """``rows`` with a blank row for each ancestor that has none, just before its first
  descendant."""
  seen = {tuple(p) for p, _, _ in rows}
  out: list[TreeRow] = []
  for path, cells, share in rows:
    for k in range(1, len(path)):
      if tuple(path[:k]) not in seen:
        seen.add(tuple(path[:k]))
        out.append((tuple(path[:k]), [""] * len(cells), None))
    out.append((tuple(path), list(cells), share))
  return out


def image(png: bytes, alt: str = "figure") -> Html:
  """A PNG embedded as a data URI (nothing fetched)."""
  import base64

  data = base64.b64encode(png).decode("ascii")
  return Html(f'<img alt="{esc(alt)}" style="max-width:100%" '
              f'src="data:image/png;base64,{data}">')
