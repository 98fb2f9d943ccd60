"""One self-contained HTML page of jaxgreen's results: nothing is fetched to view it.

Everything is inline (CSS, a few lines of JavaScript, SVG), and the page's
Content-Security-Policy forbids every fetch, so it opens the same offline, from a CI
artifact or an e-mail. What it shows depends on what it is given (duck-typed, so this
module imports nothing of jaxgreen's result types):

* a ``Cost``: the exact totals, icicles of FPO by module (scope) and by the user's
  Python stack (a flame graph, widest at the top), the top source lines and primitives;
* a ``Reconciliation`` (or one target's report): the waterfall from the jaxpr's FPO to
  XLA's flops, one bar per named cause, per target;
* a ``Comparison`` or its ``modules()`` report: the per-module pod view per target;
* a ``PriceTag``: Equation 1 of Green AI (E · D · H) and its trials;
* rows of ``curves.budget_curve`` or ``curves.training_curves``: the curve as SVG;
* anything else with ``to_dict()``: its JSON, folded.

Numbers are written exactly (integers with thousands separators), with a human-sized
figure beside them where it helps.
"""

from __future__ import annotations

import html
import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from jaxgreen._src import _source
from jaxgreen._src.report import human

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:")
_W = 1000  # icicle width in SVG units
_ROW = 18  # icicle row height
_COLORS = ("#e8743b", "#f2a541", "#f6c85f", "#9fd356", "#6cc4a1", "#5aa9e6", "#7f7eff",
           "#c879ff", "#ff7eb6", "#b8b8b8")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1em}table{border-collapse:collapse;margin:.5em 0}
td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:10px;background:#5aa9e6;vertical-align:middle}
.note{color:#666;font-size:.9em}svg text{font-size:11px;pointer-events:none}
svg rect:hover{stroke:#000;stroke-width:.5}
.wf{position:relative;height:16px;background:#fafafa;width:520px}
.wf span{position:absolute;top:2px;height:12px}.up{background:#e8743b}.down{background:#5aa9e6}
.end{background:#888}details pre{white-space:pre-wrap;font-size:12px}
"""

# Records script errors and blocked fetches in the page itself (``data-errors``), so a
# headless browser's DOM tells whether the page ran cleanly; sorts tables on a click.
_JS = """
(function(){
var errs=[];function note(m){errs.push(String(m));
document.documentElement.setAttribute('data-errors',errs.join(' | '));}
window.addEventListener('error',function(e){note(e.message);});
document.addEventListener('securitypolicyviolation',function(e){
note('blocked '+e.blockedURI);});
function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent:+v;}
document.addEventListener('click',function(e){var th=e.target.closest('th');if(!th)return;
var tb=th.closest('table').tBodies[0],i=th.cellIndex,rows=[].slice.call(tb.rows);
var dir=th.getAttribute('data-dir')==='d'?1:-1;th.setAttribute('data-dir',dir<0?'d':'a');
rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
return (x<y?-1:x>y?1:0)*dir;});rows.forEach(function(r){tb.appendChild(r);});});
window.addEventListener('load',function(){
document.documentElement.setAttribute('data-rendered',
String(document.querySelectorAll('section').length));});
})();
"""


def _e(x: Any) -> str:
  return html.escape(str(x), quote=True)


def num(v: Any) -> str:
  """A count written exactly: ``1,234,567``; a fraction with three decimals."""
  if v is None:
    return "-"
  if isinstance(v, float) and not v.is_integer():
    return f"{v:,.3f}" if math.isfinite(v) else str(v)
  return f"{int(v):,}"


def _td(v: Any, attr: str = "") -> str:
  if v is None:
    return f"<td{attr}>-</td>"
  if isinstance(v, int | float) and not isinstance(v, bool):
    return f'<td class="n" data-v="{v}"{attr}>{num(v)}</td>'
  return f"<td{attr}>{_e(v)}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
  head = "".join(f"<th>{_e(h)}</th>" for h in headers)
  body = "".join("<tr>" + "".join(c if isinstance(c, _Raw) else _td(c) for c in r) + "</tr>"
                 for r in rows)
  return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
  """A cell already rendered as HTML."""


def _share(v: float, total: float) -> _Raw:
  pct = 100 * v / total if total else 0.0
  return _Raw(f'<td data-v="{pct}"><span class="bar" style="width:{min(pct, 100) * 1.5:.1f}px">'
              f"</span> {pct:.1f}%</td>")


# -- icicles -------------------------------------------------------------------------

class _Node:
  __slots__ = ("children", "name", "value")

  def __init__(self, name: str):
    self.name, self.value = name, 0.0
    self.children: dict[str, _Node] = {}

  def add(self, path: tuple[str, ...], v: float) -> None:
    self.value += v
    node = self
    for p in path:
      node = node.children.setdefault(p, _Node(p))
      node.value += v


def icicle(rows: Mapping[tuple[str, ...], float], label: str, caption: str) -> str:
  """An SVG icicle (a flame graph, root on top) of paths -> values; hover for figures."""
  root = _Node(label)
  for path, v in rows.items():
    if v > 0:
      root.add(path, v)
  if not root.value:
    return f'<p class="note">{_e(caption)}: no FPO.</p>'
  rects: list[str] = []
  depth = _draw(root, 0.0, 0, root.value, rects)
  h = (depth + 1) * _ROW
  return (f'<figure><svg viewBox="0 0 {_W} {h}" width="100%" role="img" '
          f'aria-label="{_e(caption)}">{"".join(rects)}</svg>'
          f'<figcaption class="note">{_e(caption)}</figcaption></figure>')


def _draw(node: _Node, x: float, d: int, total: float, out: list[str]) -> int:
  w = node.value / total * _W
  if w < 0.5:  # too narrow to see; its FPO stays in its parent's width
    return d - 1
  color = _COLORS[zlib.crc32(node.name.encode()) % len(_COLORS)] if d else "#ccc"
  tip = f"{node.name}\nFPO {num(node.value)} ({100 * node.value / total:.2f}%)"
  out.append(f'<g><title>{_e(tip)}</title><rect x="{x:.2f}" y="{d * _ROW}" width="{w:.2f}" '
             f'height="{_ROW - 1}" fill="{color}"/>')
  chars = int(w / 6.5)
  if chars >= 3:
    text = node.name if len(node.name) <= chars else node.name[:chars - 1] + "…"
    out.append(f'<text x="{x + 3:.2f}" y="{d * _ROW + 13}">{_e(text)}</text>')
  out.append("</g>")
  deepest = d
  for child in sorted(node.children.values(), key=lambda c: -c.value):
    deepest = max(deepest, _draw(child, x, d + 1, total, out))
    x += child.value / total * _W
  return deepest


# -- sections ------------------------------------------------------------------------

def _frame_label(frame: str) -> str:
  if not frame:
    return _source.UNATTRIBUTED
  file, line, fn = _source.split_frame(frame)
  return f"{fn} ({os.path.basename(file)}:{line})"


def cost_section(cost: Any, name: str = "Cost") -> str:
  """Totals, icicles by module and by source stack, top lines and primitives."""
  totals = [("FPO (ADD + MUL)", "fpo", cost.fpo), ("ADD", "adds", cost.adds),
            ("MUL", "muls", cost.muls), ("transcendentals (also in FPO)", "transcendentals",
                                         cost.transcendentals),
            ("integer ops (not FPO)", "int_ops", cost.int_ops),
            ("bytes (unfused)", "bytes", cost.bytes)]
  rows = "".join(f'<tr><td>{_e(label)}</td><td class="n" id="total-{key}" data-v="{v}">'
                 f"{num(v)}</td><td class=\"n\">{_e(human(v, 'B' if key == 'bytes' else ''))}"
                 f"</td></tr>" for label, key, v in totals)
  exact = "exact" if cost.exact else "NOT exact: " + "; ".join(
      [*(f"uncounted {k} x {n}" for k, n in cost.uncounted.items()), *cost.inexact])
  out = [f"<section><h2>{_e(name)}</h2><table><thead><tr><th>total</th><th>count</th>"
         f"<th>approx.</th></tr></thead><tbody>{rows}</tbody></table>"
         f'<p class="note" id="exact">{_e(exact)}</p>']
  scopes = {tuple(k.split("/")) if k else ("<top level>",): c.fpo
            for k, c in cost.by_scope.items()}
  out.append("<h3>FPO by module</h3>"
             + icicle(scopes, "all", "FPO by scope (Flax module path / named scope)"))
  stacks = {tuple(_frame_label(f) for f in _source.frames(k)) or (_source.UNATTRIBUTED,):
            c.fpo for k, c in cost.by_stack.items()}
  out.append("<h3>FPO by source</h3>"
             + icicle(stacks, "all", "FPO by the user's Python stack (callers on top)"))
  total = cost.fpo
  lines = [(_source.short(k), c.fpo, c.adds, c.muls, _share(c.fpo, total))
           for k, c in list(cost.by_source.items())[:25] if c.fpo]
  if lines:
    out.append("<h3>Top source lines</h3>"
               + _table(("line", "FPO", "ADD", "MUL", "share"), lines, "lines"))
  prims = sorted(cost.by_primitive.items(), key=lambda kv: -kv[1].fpo)
  prow = [(k, c.fpo, c.adds, c.muls, c.transcendentals, _share(c.fpo, total))
          for k, c in prims if c.fpo]
  if prow:
    out.append("<h3>By primitive</h3>" + _table(
        ("primitive", "FPO", "ADD", "MUL", "transcendentals", "share"), prow))
  return "".join(out) + "</section>"


def _waterfall(r: Mapping[str, Any]) -> str:
  devices = r.get("devices") or 1
  start = r["jaxpr"]["fpo"]
  xla = (r.get("xla_per_device") or {}).get("flops")
  steps = [(cause, -v) for cause, v in (r.get("causes") or {}).items() if v]
  vals = [start]
  for _, d in steps:
    vals.append(vals[-1] + d)
  top = max([*vals, abs(start), 1])
  rows = [("jaxpr FPO (global)", 0, start, "end", start)]
  running = start
  for cause, d in steps:
    rows.append((cause, running, running + d, "up" if d > 0 else "down", d))
    running += d
  if xla is not None:
    rows.append(("XLA flops (global)", 0, xla * devices, "end", xla * devices))
  out = []
  for label, a, b, cls, shown in rows:
    lo, hi = sorted((max(a, 0), max(b, 0)))
    left, width = 100 * lo / top, max(100 * (hi - lo) / top, 0.2)
    out.append(f"<tr><td>{_e(label)}</td>{_td(shown)}<td><div class=\"wf\"><span class=\"{cls}\" "
               f'style="left:{left:.3f}%;width:{width:.3f}%"></span></div></td></tr>')
  return ('<table class="waterfall"><thead><tr><th>stage / step by cause</th><th>FPO</th>'
          f"<th></th></tr></thead><tbody>{''.join(out)}</tbody></table>")


def _stages(d: Mapping[str, Any]) -> str:
  """The four counts of one target: jaxpr, lowered, compiled and XLA's."""
  n = d.get("devices") or 1
  low = (d.get("lowered") or {}).get("fpo")
  comp = (d.get("compiled_per_device") or {}).get("fpo")
  xla = (d.get("xla_per_device") or {}).get("flops")
  rows = [("jaxpr (what the user wrote)", d["jaxpr"]["fpo"], None),
          ("lowered (what jax gave XLA)", low, None),
          ("compiled HLO (what XLA kept)", comp * n if comp is not None else None, comp),
          ("XLA cost_analysis flops", xla * n if xla is not None else None, xla)]
  return _table(("stage", "FPO (global)", "per device"), rows, "stages")


def reconcile_section(rec: Any) -> str:
  """One waterfall per target: jaxpr FPO, minus each named cause, gives XLA's flops."""
  reports = list(getattr(rec, "reports", [rec]))
  out = ["<section><h2>Reconciliation with XLA</h2><p class=\"note\">jaxpr FPO - XLA flops "
         "x devices = the sum of the named causes; each bar steps by one cause.</p>"]
  for r in reports:
    d = r.to_dict()
    n = d.get("devices", 1)
    out.append(f"<h3>{_e(d['target'])} ({n} device{'s' if n != 1 else ''})</h3>"
               + _stages(d) + _waterfall(d))
  for spec, why in (getattr(rec, "unavailable", None) or {}).items():
    out.append(f'<p class="note">{_e(spec)}: unavailable: {_e(why)}</p>')
  return "".join(out) + "</section>"


_MODULE_COLS = (("global FPO", "global_fpo"), ("compiled FPO (global)", "compiled_global_fpo"),
                ("redundancy", "redundancy"), ("collective bytes sent / device",
                                               "collective_sent_bytes"),
                ("HBM bytes / device", "hbm_bytes"), ("time share", "time_share"))


def modules_section(report: Any) -> str:
  """The per-module pod view: FPO, redundancy, collectives and HBM per module, per target."""
  d = report.to_dict()
  out = [f"<section><h2>Modules on the pod{(': ' + _e(d['name'])) if d.get('name') else ''}"
         "</h2>"]
  for target, rows in d.get("targets", {}).items():
    total = sum(r.get("global_fpo") or 0 for r in rows if r["module"] != "total")
    body = [(r["module"], *(r.get(k) for _, k in _MODULE_COLS),
             _share(r.get("global_fpo") or 0, total)) for r in rows]
    out.append(f"<h3>{_e(target)}</h3>"
               + _table(("module", *(h for h, _ in _MODULE_COLS), "share"), body))
  out += [f'<p class="note">{_e(n)}</p>' for n in d.get("notes", [])]
  return "".join(out) + "</section>"


def _scalars(d: Mapping[str, Any]) -> list[tuple[str, Any]]:
  return [(k, v) for k, v in d.items() if isinstance(v, int | float | str | bool) or v is None]


def comparison_section(cmp: Any) -> str:
  d = cmp.to_dict()
  targets = d.get("targets", [])
  keys = list(dict.fromkeys(k for t in targets for k, _ in _scalars(t)))
  out = ["<section><h2>Comparison of targets</h2>",
         _table(keys, [[t.get(k) for k in keys] for t in targets]), "</section>"]
  try:
    out.append(modules_section(cmp.modules()))
  except Exception as e:  # noqa: BLE001 - the pod view is optional; say why it is missing
    out.append(f'<p class="note">no per-module view: {_e(e)}</p>')
  return "".join(out)


def price_tag_section(tag: Any) -> str:
  d = tag.to_dict()
  eq = [("E: train FPO per example", d.get("E_train_fpo_per_example")),
        ("D: examples per trial", d.get("D_examples_per_trial")),
        ("H: trials", d.get("H_trials")), ("train FPO (E · D · H)", d.get("train_fpo")),
        ("eval FPO", d.get("eval_fpo")), ("total FPO", d.get("fpo"))]
  out = [f"<section><h2>Price tag: {_e(d.get('experiment') or '')}</h2>",
         _table(("Equation 1: Cost(R) ∝ E · D · H", "value"), eq, "pricetag")]
  trials = d.get("trials") or []
  if trials:
    keys = list(dict.fromkeys(k for t in trials for k, _ in _scalars(t)))
    out.append("<h3>Trials</h3>" + _table(keys, [[t.get(k) for k in keys] for t in trials]))
  out += [f'<p class="note">{_e(w)}</p>' for w in d.get("warnings") or []]
  return "".join(out) + "</section>"


def _chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], xlabel: str,
           ylabel: str, band: Sequence[tuple[float, float, float]] = ()) -> str:
  pts = [p for _, s in series for p in s] + [(x, y) for x, lo, hi in band for y in (lo, hi)]
  pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
  if not pts:
    return '<p class="note">no points to plot.</p>'
  x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
  y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
  sx = 560 / ((x1 - x0) or 1)
  sy = 240 / ((y1 - y0) or 1)

  def xy(x: float, y: float) -> str:
    return f"{60 + (x - x0) * sx:.1f},{270 - (y - y0) * sy:.1f}"

  out = ['<svg viewBox="0 0 640 300" width="640" role="img">',
         '<path d="M60 30V270H620" fill="none" stroke="#888"/>',
         f'<text x="60" y="290">{_e(num(x0))}</text>',
         f'<text x="620" y="290" text-anchor="end">{_e(num(x1))} {_e(xlabel)}</text>',
         f'<text x="4" y="270">{y0:.4g}</text><text x="4" y="30">{y1:.4g}</text>',
         f'<text x="64" y="20">{_e(ylabel)}</text>']
  if band:
    ring = [xy(x, hi) for x, _, hi in band] + [xy(x, lo) for x, lo, _ in reversed(band)]
    out.append(f'<polygon points="{" ".join(ring)}" fill="#5aa9e6" opacity=".25"/>')
  for i, (name, s) in enumerate(series):
    good = [(x, y) for x, y in s if math.isfinite(y)]
    color = _COLORS[i % len(_COLORS)]
    out.append(f'<polyline points="{" ".join(xy(x, y) for x, y in good)}" fill="none" '
               f'stroke="{color}" stroke-width="1.5"><title>{_e(name)}</title></polyline>')
  return "".join(out) + "</svg>"


def curve_section(rows: Sequence[Mapping[str, Any]]) -> str:
  """A budget curve (expected best score vs FPO) or training curves (score vs FPO)."""
  if "budget_fpo" in rows[0]:
    metric = rows[0].get("metric", "score")
    pts = [(r["budget_fpo"], r["expected"]) for r in rows]
    band = [(r["budget_fpo"], r["lower"], r["upper"]) for r in rows]
    table = _table(("trials", "budget FPO", f"expected best {metric}"),
                   [(r["n_trials"], r["budget_fpo"], r["expected"]) for r in rows])
    return ("<section><h2>Budget curve</h2>" + _chart([("expected", pts)], "FPO", metric, band)
            + table + "</section>")
  metric = rows[0].get("metric", "value")
  trials: dict[str, list[tuple[float, float]]] = {}
  for r in rows:
    trials.setdefault(str(r.get("trial_name") or r.get("trial_id") or r.get("trial")),
                      []).append((r["train_fpo"], r["value"]))
  return ("<section><h2>Training curves</h2>"
          + _chart(list(trials.items()), "train FPO", metric) + "</section>")


def _json_section(item: Any) -> str:
  d = item.to_dict()
  text = json.dumps(d, indent=2, default=str)
  return (f"<section><h2>{_e(type(item).__name__)}</h2><details><summary>data</summary>"
          f"<pre>{_e(text)}</pre></details></section>")


def section(item: Any) -> str:
  """The HTML of one result (see the module docs for what is recognised)."""
  if hasattr(item, "by_site") and hasattr(item, "by_scope"):
    return cost_section(item)
  if hasattr(item, "reports") or hasattr(item, "causes"):
    return reconcile_section(item)
  if hasattr(item, "results") and hasattr(item, "modules"):
    return comparison_section(item)
  if hasattr(item, "rows") and hasattr(item, "targets") and hasattr(item, "to_dict"):
    return modules_section(item)
  if hasattr(item, "trials") and hasattr(item, "to_dict") and hasattr(item, "h"):
    return price_tag_section(item)
  if (isinstance(item, list | tuple) and item and isinstance(item[0], Mapping)
      and ("budget_fpo" in item[0] or ("train_fpo" in item[0] and "value" in item[0]))):
    return curve_section(item)
  if hasattr(item, "to_dict"):
    return _json_section(item)
  raise TypeError(f"report_html: cannot show a {type(item).__name__}; pass a Cost, a "
                  f"Reconciliation, a Comparison or its modules(), a PriceTag, the rows of "
                  f"jaxgreen.curves.budget_curve/training_curves, or an object with to_dict()")


def report_html(*items: Any, path: str | os.PathLike | None = None,
                title: str = "jaxgreen report") -> str:
  """One self-contained HTML page showing ``items`` (see the module docs).

  Args:
    items: the results to show, in order.
    path: where to write the page (also returned).
    title: the page's title and heading.

  Returns:
    The page.
  """
  if not items:
    raise ValueError("report_html needs at least one result to show, e.g. "
                     "report_html(cost, reconciliation, price_tag)")
  body = "".join(section(item) for item in items)
  page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
          f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_JS}</script></head>"
          f'<body><h1>{_e(title)}</h1>{body}<p class="note">Written by jaxgreen. FPO = ADD + '
          f"MUL (Schwartz et al., Green AI, 2020).</p></body></html>")
  if path is not None:
    with open(path, "w", encoding="utf-8") as f:
      f.write(page)
  return page
