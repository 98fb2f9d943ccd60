"""Plain-text and Markdown tables and human-readable numbers, from plain data.

Tables are plain text so they read the same in a terminal, a log file and CI output.
This module renders rows of strings and numbers only; the types that own the data
(:class:`~jaxgreen.Cost`, price tags, comparisons) build the rows.

>>> print(table(["name", "FPO"], [["exp", "1,024"], ["dot_general", "65,536"]]))
name         FPO
-----------  ------
exp           1,024
dot_general  65,536
>>> human(12_345_678)
'12.35 M'
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

Row = Sequence[object]


def human(x: float, unit: str = "") -> str:
  """12_345_678 -> '12.35 M'. Exact values are printed elsewhere; this is for reading.

  >>> human(2048, "B"), human(999), human(0.5)
  ('2.05 kB', '999', '0.5')
  """
  for scale, p in _PREFIXES:
    if abs(x) >= scale:
      return f"{x / scale:.2f} {p}{unit}"
  return f"{x:g} {unit}".rstrip() if isinstance(x, float) else f"{x} {unit}".rstrip()


WIDTH = 120  # columns a plain-text table fits by default (a terminal, a CI log)


def number(x: float) -> str:
  """A count with thousands separators: an integer as an integer, a fraction (a mean,
  e.g. over devices or ``cond`` branches) rounded to one and marked ``~``.

  >>> number(3_295_673_806.0), number(205_979_612.875), number(7), number(0.25)
  ('3,295,673,806', '~205,979,613', '7', '~0')
  """
  if isinstance(x, float) and not x.is_integer():
    return f"~{math.floor(x + 0.5):,}"  # half up, as a reader rounds
  return f"{int(x):,}"


def table(headers: Sequence[str], rows: Sequence[Row], align: str | None = None,
          width: int | None = WIDTH, groups: Sequence[int] = ()) -> str:
  """A fixed-width text table; ``align`` is one char per column, 'l' or 'r'.

  A header or cell holding newlines spans several lines. A table wider than ``width``
  is cut into blocks of columns that fit, each repeating the first column (None: never
  cut); a first column too wide alone has its longest cells shortened in the middle.
  ``groups`` gives the sizes of runs of columns after the first that stay in one block
  (e.g. ``(1, 3, 3)``: one column, then two runs of three); the other columns go alone.

  >>> print(table(["name", "a\\nlong header"], [["x", "1\\n2"]]))
        a
  name  long header
  ----  -----------
  x               1
                  2
  """
  cells = [[str(c) for c in r] for r in rows]
  heads = [str(h) for h in headers]
  align = align or "l" + "r" * (len(heads) - 1)
  widths = [max(_width(c) for c in [h, *(r[i] for r in cells)]) for i, h in enumerate(heads)]
  if width is None or sum(widths) + 2 * (len(widths) - 1) <= width or len(heads) < 2:
    return _block(heads, cells, align, widths)
  if align[-1] == "l" and _wrap_last(heads, cells, widths, width):
    return _block(heads, cells, align, widths)
  # A long label column (scope paths) is shortened first, down to 40 characters, so the
  # table fits whole; only then is it cut into blocks (each with room for the label).
  rest = sum(widths[1:]) + 2 * (len(widths) - 1)
  first = min(widths[0], max(width - rest, 40), max(width - 2 - max(widths[1:]), 12))
  if first < widths[0]:  # shorten the label column's longest cells
    heads[0] = _shorten(heads[0], first)
    cells = [[_shorten(r[0], first), *r[1:]] for r in cells]
    widths[0] = first
    if first + rest <= width:
      return _block(heads, cells, align, widths)
  units, i = [], 1
  for size in [*groups, *([1] * len(heads))]:
    if i >= len(heads):
      break
    units.append(list(range(i, min(i + size, len(heads)))))
    i += size
  blocks, cur = [], [0]
  for unit in units:
    if len(cur) > 1 and sum(widths[j] + 2 for j in cur + unit) - 2 > width:
      blocks.append(cur)
      cur = [0]
    cur += unit
  blocks.append(cur)
  return "\n\n".join(
      _block([heads[j] for j in b], [[r[j] for j in b] for r in cells],
             "".join(align[j] for j in b), [widths[j] for j in b]) for b in blocks)


def _wrap_last(heads: list[str], cells: list[list[str]], widths: list[int],
               width: int) -> bool:
  """Wraps a last column of prose (notes, reasons) in place, labels kept whole; whether
  the table then fits ``width``."""
  room = max(width - sum(widths[:-1]) - 2 * (len(widths) - 1), 30)
  for r in cells:
    r[-1] = "\n".join(textwrap.fill(line, room, break_on_hyphens=False) or line
                      for line in r[-1].split("\n"))
  widths[-1] = max(_width(c) for c in [heads[-1], *(r[-1] for r in cells)])
  return sum(widths) + 2 * (len(widths) - 1) <= width


def _width(cell: str) -> int:
  return max(len(line) for line in cell.split("\n"))


def _shorten(cell: str, n: int) -> str:
  """``cell`` in at most ``n`` characters per line: its middle replaced by '...'."""
  lines = cell.split("\n")
  keep = max(n - 3, 2)
  return "\n".join(s if len(s) <= n else s[:keep // 3] + "..." + s[len(s) - (keep - keep // 3):]
                   for s in lines)


def _block(heads: list[str], cells: list[list[str]], align: str, widths: list[int]) -> str:
  def fmt(r: list[str], head: bool = False) -> list[str]:
    parts = [c.split("\n") for c in r]
    height = max(len(p) for p in parts)
    if head:  # a short header sits on the rule; a short cell at the top
      parts = [[""] * (height - len(p)) + p for p in parts]
    out = []
    for k in range(height):
      out.append("  ".join((p[k] if k < len(p) else "").ljust(w) if a == "l"
                           else (p[k] if k < len(p) else "").rjust(w)
                           for p, w, a in zip(parts, widths, align, strict=True)).rstrip())
    return out

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([*fmt(heads, head=True), rule, *(line for r in cells for line in fmt(r))])


def markdown_table(headers: Sequence[str], rows: Sequence[Row],
                   align: str | None = None) -> str:
  """A GitHub Markdown table; ``align`` as for :func:`table`.

  >>> print(markdown_table(["name", "FPO"], [["exp", 7]]))
  | name | FPO |
  | :--- | ---: |
  | exp | 7 |
  """
  align = align or "l" + "r" * (len(headers) - 1)
  sep = ["---:" if a == "r" else ":---" for a in align]
  lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(lines)


# One breakdown of a count report: (title, label of the "" row, rows of
# (name, fpo, adds, muls)), rows already sorted and filtered by the caller.
Breakdown = tuple[str, str, Sequence[tuple[str, int | float, int | float, int | float]]]


def count_report(totals: Sequence[tuple[str, int | float, str]],
                 breakdowns: Sequence[Breakdown], notes: Sequence[str],
                 top: int = 12, markdown: bool = False) -> str:
  """Totals, then the ``top`` rows of each breakdown with their share of the first
  total, then free-form notes (one line each).

  ``totals`` holds ``(label, value, unit)``; the first total is the one shares are
  taken of.

  >>> print(count_report([("FPO", 30, ""), ("bytes", 4096, "B")],
  ...                    [("primitive", "?", [("mul", 20, 0, 20), ("add", 10, 10, 0)])],
  ...                    ["exact: yes"], top=1))
  total  count  approx.
  -----  -----  -------
  FPO       30       30
  bytes  4,096  4.10 kB
  <BLANKLINE>
  primitive  FPO  ADD  MUL  share
  ---------  ---  ---  ---  -----
  mul         20    0   20  66.7%
  ... and 1 more
  <BLANKLINE>
  exact: yes
  """
  render = markdown_table if markdown else table
  out = [render(["total", "count", "approx."],
                [[label, number(v), human(v, unit)] for label, v, unit in totals], "lrr")]
  total = totals[0][1] if totals else 0
  for title, blank, items in breakdowns:
    rows = [[name or blank, number(fpo), number(adds), number(muls),
             f"{100 * fpo / total:.1f}%" if total else "-"]
            for name, fpo, adds, muls in items[:top]]
    if rows:
      out.append("")
      out.append(render([title, "FPO", "ADD", "MUL", "share"], rows))
      if len(items) > len(rows):
        out.append(f"... and {len(items) - len(rows)} more")
  out.append("")
  out.extend(notes)
  return "\n".join(out)


def data_frame(rows: Sequence[Mapping[str, Any]], what: str) -> Any:
  """``pandas.DataFrame(rows)``; pandas is the optional ``[pandas]`` extra, and ``what``
  (e.g. ``"Cost.to_pandas"``) is named when it is missing."""
  try:
    import pandas as pd
  except ImportError:
    raise ImportError(f"{what}() needs pandas: pip install 'jaxgreen[pandas]'") from None
  return pd.DataFrame([dict(r) for r in rows])
