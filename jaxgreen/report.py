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

from collections.abc import Sequence

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


def table(headers: Sequence[str], rows: Sequence[Row], align: str | None = None) -> str:
  """A fixed-width text table; ``align`` is one char per column, 'l' or 'r'."""
  cells = [[str(c) for c in r] for r in rows]
  widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
  align = align or "l" + "r" * (len(headers) - 1)

  def fmt(r):
    return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                     for c, w, a in zip(r, widths, align, strict=True)).rstrip()

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([fmt(headers), rule] + [fmt(r) for r in cells])


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
                [[label, f"{v:,}", human(v, unit)] for label, v, unit in totals], "lrr")]
  total = totals[0][1] if totals else 0
  for title, blank, items in breakdowns:
    rows = [[name or blank, f"{fpo:,}", f"{adds:,}", f"{muls:,}",
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
