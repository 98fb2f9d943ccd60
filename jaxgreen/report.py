"""Plain-text and Markdown tables for a :class:`~jaxgreen.Cost`.

Tables are plain text so they read the same in a terminal, a log file and CI output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jaxgreen.cost import Cost, Counts, by_fpo

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def human(x: float, unit: str = "") -> str:
  """12_345_678 -> '12.35 M'. Exact values are printed elsewhere; this is for reading."""
  for scale, p in _PREFIXES:
    if abs(x) >= scale:
      return f"{x / scale:.2f} {p}{unit}"
  return f"{x:g} {unit}".rstrip() if isinstance(x, float) else f"{x} {unit}".rstrip()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]],
          align: str | None = None) -> str:
  """A fixed-width text table; ``align`` is one char per column, 'l' or 'r'."""
  cells = [[str(c) for c in r] for r in rows]
  widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
  align = align or "l" + "r" * (len(headers) - 1)

  def fmt(r):
    return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                     for c, w, a in zip(r, widths, align, strict=True)).rstrip()

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([fmt(headers), rule] + [fmt(r) for r in cells])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                   align: str | None = None) -> str:
  align = align or "l" + "r" * (len(headers) - 1)
  sep = ["---:" if a == "r" else ":---" for a in align]
  lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(lines)


def _rows(m: Mapping[str, Counts], total: float, top: int, blank: str):
  items = [(k, c) for k, c in by_fpo(m) if c.fpo or c.int_ops]
  rows = []
  for name, c in items[:top]:
    share = f"{100 * c.fpo / total:.1f}%" if total else "-"
    rows.append([name or blank, f"{c.fpo:,}", f"{c.adds:,}", f"{c.muls:,}", share])
  return rows, len(items) - len(rows)


def cost_table(cost: Cost, top: int = 12, markdown: bool = False) -> str:
  """Totals, then the ``top`` primitives and scopes by FPO, then what was not counted."""
  render = markdown_table if markdown else table
  out = []
  totals = [
      ["FPO (ADD + MUL)", f"{cost.fpo:,}", human(cost.fpo)],
      ["  ADD", f"{cost.adds:,}", human(cost.adds)],
      ["  MUL", f"{cost.muls:,}", human(cost.muls)],
      ["transcendentals (also in FPO)", f"{cost.transcendentals:,}", human(cost.transcendentals)],
      ["integer ops (not FPO)", f"{cost.int_ops:,}", human(cost.int_ops)],
      ["bytes (unfused)", f"{cost.bytes:,}", human(cost.bytes, "B")],
  ]
  out.append(render(["total", "count", "approx."], totals, "lrr"))
  for title, m, blank in (("primitive", cost.by_primitive, "?"),
                          ("scope", cost.by_scope, "<top level>")):
    rows, rest = _rows(m, cost.fpo, top, blank)
    if rows:
      out.append("")
      out.append(render([title, "FPO", "ADD", "MUL", "share"], rows))
      if rest > 0:
        out.append(f"... and {rest} more")
  out.append("")
  if cost.exact:
    out.append("exact: yes (every primitive counted, every loop trip count known)")
  else:
    out.append("exact: NO")
    for name, n in sorted(cost.uncounted.items()):
      out.append(f"  uncounted primitive {name!r} x {n} (no rule; register one with "
                 f"jaxgreen.register_rule)")
    for why in cost.inexact:
      out.append(f"  {why}")
  for why in cost.assumed:
    out.append(f"rests on a given figure: {why}")
  if cost.cond != "max":
    out.append(f"cond/switch branches counted by policy {cost.cond!r}")
  return "\n".join(out)
