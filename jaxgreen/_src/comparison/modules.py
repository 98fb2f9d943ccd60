"""A sharded program module by module: ``compare(..., by_module=True)``, then
:meth:`Comparison.modules <jaxgreen._src.comparison.Comparison.modules>`.

Each row is a module path, as the compiled HLO's ``op_name`` metadata names it
(:func:`jaxgreen._src.hlo.pricing.hlo_scope`, the same keys as the jaxpr count's
``Cost.by_scope``), with per target:

* the global FPO of the module (jaxpr) and its compiled FPO per device;
* its redundancy, compiled FPO per device x devices / global FPO (1: sharded, the
  number of devices: replicated);
* its collectives per kind (count and bytes sent per device) and HBM bytes per device;
* its part of the roofline step time: the step's ``max(compute, memory)`` time split by
  the module's share of the bounding resource (FPO or HBM bytes), plus the collective
  time split by its share of the bytes sent (:func:`jaxgreen.chips.roofline`), so the
  rows add up to the step time.

Work without a module path (outside every named module, or HLO without ``op_name``
metadata) is the row ``(unattributed)``. The ``total`` row is the target's totals of
:func:`jaxgreen.compare`, unchanged.

Example:
  >>> _depth("Transformer/block_0/up", 2), _depth("", 1), _depth("a/b", None)
  ('Transformer/block_0', '', 'a/b')
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from jaxgreen._src.comparison.render import json_default, quantity, seconds
from jaxgreen._src.hlo.ir import as_int
from jaxgreen._src.hlo.traffic import KINDS, CollectiveStats
from jaxgreen._src.pods import PodReport
from jaxgreen._src.report import WIDTH, markdown_table, number, table
from jaxgreen.chips import Roofline


class TargetResult(Protocol):
  """What the module report reads of one target's result (a
  :class:`~jaxgreen.TargetResult`)."""

  @property
  def target(self) -> str: ...

  @property
  def pod(self) -> PodReport: ...

  @property
  def roofline(self) -> Roofline | None: ...

UNATTRIBUTED = "(unattributed)"
TOTAL = "total"


@dataclasses.dataclass(frozen=True)
class ModuleRow:
  """One module path on one target (all figures per step).

  Attributes:
    module: the module path, :data:`UNATTRIBUTED` or :data:`TOTAL`.
    global_fpo: FPO of the module in the jaxpr (the whole program, all devices).
    per_device_fpo: compiled FPO of the module on one device.
    devices: devices of the program.
    collectives: kind -> :class:`~jaxgreen._src.hlo.traffic.CollectiveStats` per device.
    hbm_bytes: HBM bytes per device.
    time_s: the module's part of the roofline step time (an estimate); None without
      chip figures.
    step_s: the roofline step time of the whole program (an estimate).
  """

  module: str
  global_fpo: float
  per_device_fpo: float
  devices: int
  collectives: Mapping[str, CollectiveStats]
  hbm_bytes: float
  time_s: float | None = None
  step_s: float | None = None

  @property
  def redundancy(self) -> float | None:
    """``per_device_fpo x devices / global_fpo``; None where the jaxpr counts nothing."""
    if not self.global_fpo:
      return None
    return self.per_device_fpo * self.devices / self.global_fpo

  @property
  def sent_bytes(self) -> float:
    """Collective bytes each device sends for this module."""
    return sum(c.sent_bytes for c in self.collectives.values())

  @property
  def time_share(self) -> float | None:
    """``time_s / step_s``: the module's share of the estimated step time."""
    if self.time_s is None or not self.step_s:
      return None
    return self.time_s / self.step_s

  def to_dict(self) -> dict[str, Any]:
    return {"module": self.module, "global_fpo": as_int(self.global_fpo),
            "per_device_fpo": as_int(self.per_device_fpo),
            "compiled_global_fpo": as_int(self.per_device_fpo * self.devices),
            "redundancy": self.redundancy,
            "collectives": {k: v.to_dict() for k, v in self.collectives.items()},
            "collective_sent_bytes": as_int(self.sent_bytes), "hbm_bytes": self.hbm_bytes,
            "time_s": self.time_s, "time_share": self.time_share}


def _depth(path: str, max_depth: int | None) -> str:
  if max_depth is None or not path:
    return path
  return "/".join(path.split("/")[:max_depth])


def _label(path: str) -> str:
  return path or UNATTRIBUTED


class _Acc:
  __slots__ = ("coll", "fpo", "glob", "hbm")

  def __init__(self) -> None:
    self.glob: float = 0
    self.fpo: float = 0
    self.hbm: float = 0
    self.coll: dict[str, CollectiveStats] = {}


def _accumulate(r: TargetResult, max_depth: int | None) -> dict[str, _Acc]:
  pod = r.pod
  if pod.by_scope is None:
    raise ValueError(f"target {r.target!r} was compared without module figures; pass "
                     f"by_module=True to jaxgreen.compare")
  out: dict[str, _Acc] = {}

  def at(scope: str) -> _Acc:
    key = _label(_depth(scope, max_depth))
    a = out.get(key)
    if a is None:
      a = out[key] = _Acc()
    return a

  for scope, c in pod.logical.by_scope.items():
    at(scope).glob += c.fpo
  for scope, c in pod.per_device.by_scope.items():
    at(scope).fpo += c.fpo
  for scope, t in pod.by_scope.items():
    a = at(scope)
    a.hbm += t.hbm_bytes
    for kind, st in t.collectives.items():
      a.coll[kind] = a.coll.get(kind, CollectiveStats(kind)) + st
  return out


def _time(r: TargetResult, a: _Acc) -> float | None:
  """The module's part of the step time: see the module docstring."""
  roof, pod = r.roofline, r.pod
  if roof is None or roof.step_s is None:
    return None
  compute, memory, coll = roof.compute_s or 0.0, roof.memory_s or 0.0, roof.collective_s or 0.0
  if compute >= memory:
    roofs = compute * (a.fpo / pod.per_device.fpo if pod.per_device.fpo else 0.0)
  else:
    roofs = memory * (a.hbm / pod.hbm_bytes if pod.hbm_bytes else 0.0)
  sent = sum(c.sent_bytes for c in a.coll.values())
  return roofs + coll * (sent / pod.sent_bytes if pod.sent_bytes else 0.0)


def target_rows(r: TargetResult, max_depth: int | None = None,
                modules: Sequence[str] | None = None) -> list[ModuleRow]:
  """The module rows of one target, then its ``total`` row (the target's totals).

  Args:
    r: a result of ``compare(..., by_module=True)``.
    max_depth: aggregate module paths deeper than this many segments into their parent.
    modules: the rows to give, in order (a module absent on this target is a row of
      zeros); default: this target's modules.
  """
  acc = _accumulate(r, max_depth)
  names = list(modules) if modules is not None else order(acc)
  step = r.roofline.step_s if r.roofline else None
  n = r.pod.devices
  rows = []
  for m in names:
    a = acc.get(m) or _Acc()
    coll = {k: a.coll[k] for k in KINDS if k in a.coll}
    rows.append(ModuleRow(m, a.glob, a.fpo, n, coll, a.hbm, _time(r, a), step))
  pod = r.pod
  rows.append(ModuleRow(TOTAL, pod.logical.fpo, pod.per_device.fpo, n, dict(pod.collectives),
                        pod.hbm_bytes, step, step))
  return rows


def order(names: Iterable[str]) -> list[str]:
  """Module paths in tree order (a parent before its children), unattributed last."""
  return sorted(set(names), key=lambda m: (m == UNATTRIBUTED, m.split("/")))


@dataclasses.dataclass(frozen=True)
class ModuleReport:
  """Per-module figures of one program on several targets, the same rows for each.

  Attributes:
    targets: the target strings, in the comparison's order.
    rows: target string -> its :class:`ModuleRow` list (modules, then ``total``).
    max_depth: the depth module paths were aggregated to (None: full paths).
    name: the report's title.
  """

  targets: tuple[str, ...]
  rows: Mapping[str, Sequence[ModuleRow]]
  max_depth: int | None = None
  name: str = ""

  @property
  def modules(self) -> list[str]:
    """The module rows' names (without ``total``)."""
    first = self.rows[self.targets[0]] if self.targets else []
    return [r.module for r in first if r.module != TOTAL]

  def row(self, target: str, module: str) -> ModuleRow:
    """The row of ``module`` (a path, :data:`UNATTRIBUTED` or ``"total"``) on ``target``."""
    from jaxgreen.targets import get_target

    spec = get_target(target).spec
    if spec not in self.rows:
      raise KeyError(f"no module rows for target {target!r}; have {', '.join(self.targets)}")
    for r in self.rows[spec]:
      if r.module == module:
        return r
    raise KeyError(f"no row {module!r} on {spec}; modules: {', '.join(self.modules)}")

  def _summary(self) -> tuple[list[str], list[list[str]]]:
    heads = ["module", "global FPO"]
    for t in self.targets:
      heads += [f"{t}\nredundancy", f"{t}\ncoll. sent/dev", f"{t}\ntime (est.)"]
    body = []
    for i, m in enumerate([*self.modules, TOTAL]):
      rs = [self.rows[t][i] for t in self.targets]
      line = [m, number(rs[0].global_fpo) if rs else ""]
      for r in rs:
        line += [_red(r), _bytes(r.sent_bytes), seconds(r.time_s) + _pct(r.time_share)]
      body.append(line)
    return heads, body

  def _detail(self, target: str) -> tuple[list[str], list[list[str]]]:
    heads = ["module", "global FPO", "compiled FPO/dev", "redundancy", "collectives/dev",
             "HBM/dev", "time (est.)"]
    body = [[r.module, number(r.global_fpo), number(r.per_device_fpo), _red(r), _coll(r),
             _bytes(r.hbm_bytes), seconds(r.time_s) + _pct(r.time_share)]
            for r in self.rows[target]]
    return heads, body

  def table(self, width: int | None = WIDTH) -> str:
    """Side by side (redundancy, bytes sent, time per target), then one detailed table
    per target with the same rows; tables wider than ``width`` columns are cut into
    blocks that fit (None: never cut)."""
    parts = [table(*self._summary(), width=width, groups=(1, *[3] * len(self.targets)))]
    for t in self.targets:
      heads, body = self._detail(t)
      body = [[*r[:4], r[4].replace("; ", "\n"), *r[5:]] for r in body]  # a kind a line
      parts += ["", f"{t} ({self.rows[t][-1].devices} devices)",
                table(heads, body, "lrrrlrr", width=width)]
    notes = [textwrap.fill(n, width, subsequent_indent="  ") if width else n
             for n in self.notes()]
    return "\n".join([*parts, "", *notes])

  def markdown(self) -> str:
    parts = [markdown_table(*self._summary())]
    for t in self.targets:
      parts += ["", f"**{t}** ({self.rows[t][-1].devices} devices)", "",
                markdown_table(*self._detail(t))]
    return "\n".join([*parts, "", *(f"- {n}" for n in self.notes())])

  def __repr__(self) -> str:
    return (f"ModuleReport(name={self.name!r}, targets={list(self.targets)}, "
            f"modules={len(self.modules)}, max_depth={self.max_depth})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else self.table())

  def _repr_html_(self) -> str:
    """The notebook view: the side-by-side table, then each target's module tree with
    each module's share of the estimated step time."""
    from jaxgreen._src import _html

    heads, body = self._summary()
    parts = [_html.table(heads, body)]
    for t in self.targets:
      dheads, dbody = self._detail(t)
      rows = [(_path(r.module), cells[1:], r.time_share)
              for r, cells in zip(self.rows[t], dbody, strict=True) if r.module != TOTAL]
      total = [cells for r, cells in zip(self.rows[t], dbody, strict=True) if r.module == TOTAL]
      tree = _html.tree(dheads, rows, bar_header="share of the step time (est.)",
                        align="rrrlrr")
      parts.append(_html.section(
          f"{t} ({self.rows[t][-1].devices} devices)",
          tree + _html.table(dheads, total, "lrrrlrr")))
    title = f"{self.name}: by module" if self.name else "By module"
    return _html.fragment(*parts, _html.notes(self.notes()), title=title)

  def to_pandas(self) -> Any:
    """One row per target and module (``total`` included): the figures of
    :class:`ModuleRow` (needs pandas: ``pip install 'jaxgreen[pandas]'``)."""
    from jaxgreen._src.report import data_frame

    rows = []
    for t in self.targets:
      for r in self.rows[t]:
        d = r.to_dict()
        d.pop("collectives")
        rows.append({"target": t, **d})
    return data_frame(rows, "ModuleReport.to_pandas")

  def notes(self) -> list[str]:
    frac = any(isinstance(r.per_device_fpo, float) and not r.per_device_fpo.is_integer()
               for rows in self.rows.values() for r in rows)
    mean = ["~: a per-device mean, rounded (an all-reduce's n-1 ADDs per element are "
            "shared by its n devices)."] if frac else []
    return [f"{UNATTRIBUTED}: work outside every named module or without op_name "
            f"metadata in the compiled HLO.", *mean,
            "redundancy = compiled FPO per device x devices / global FPO (1: sharded, the "
            "device count: replicated); '-' where the jaxpr counts no FPO for the module.",
            "Times are the module's part of the roofline step time (jaxgreen.chips), "
            "estimates, not measurements."]

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "max_depth": self.max_depth, "modules": self.modules,
            "targets": {t: [r.to_dict() for r in self.rows[t]] for t in self.targets},
            "notes": self.notes()}

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), default=json_default, **kw)

  def plot(self, path: str | None = None, metric: str = "redundancy"):
    """Horizontal bars per module, one bar per target (needs the ``[plot]`` extra).

    Args:
      path: where to save the figure (PNG, SVG, PDF by extension); None: only return it.
      metric: ``"redundancy"``, ``"time_s"``, ``"time_share"``, ``"sent_bytes"`` or
        ``"hbm_bytes"``.

    Returns:
      A ``matplotlib.figure.Figure`` (pyplot and the user's backend are left alone).
    """
    return plot_modules(self, path, metric)


def module_report(results: Sequence[TargetResult], max_depth: int | None = None,
                  name: str = "") -> ModuleReport:
  """The :class:`ModuleReport` of compared targets: the union of their modules as rows."""
  if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                                or max_depth < 1):
    raise ValueError(f"max_depth={max_depth!r}: give None (full module paths) or an int "
                     f">= 1 (1: one row per top-level module)")
  names: set[str] = set()
  for r in results:
    # A path with no FPO, HBM traffic or collective on any target is left out.
    names |= {k for k, a in _accumulate(r, max_depth).items()
              if a.glob or a.fpo or a.hbm or a.coll}
  mods = order(names)
  rows = {r.target: target_rows(r, max_depth, mods) for r in results}
  return ModuleReport(tuple(r.target for r in results), rows, max_depth, name)


def _path(module: str) -> tuple[str, ...]:
  """A module path as tree segments; the unattributed row is one segment."""
  return (module,) if module == UNATTRIBUTED else tuple(module.split("/"))


def _red(r: ModuleRow) -> str:
  red = r.redundancy
  return "-" if red is None else f"{red:.3f}"


def _bytes(v: float) -> str:
  return "-" if not v else quantity(v, "B")


def _pct(share: float | None) -> str:
  return "" if share is None else f" ({100 * share:.1f}%)"


def _coll(r: ModuleRow) -> str:
  if not r.collectives:
    return "-"
  return "; ".join(f"{k} {c.count:g}x {_bytes(c.sent_bytes)}" for k, c in r.collectives.items())


# Metric -> (axis label, getter of a ModuleRow).
MODULE_METRICS: dict[str, tuple[str, Callable[[ModuleRow], float | None]]] = {
    "redundancy": ("redundancy (compiled FPO x devices / global FPO)", lambda r: r.redundancy),
    "time_s": ("estimated time per step (s)", lambda r: r.time_s),
    "time_share": ("share of the estimated step time", lambda r: r.time_share),
    "sent_bytes": ("collective bytes sent per device", lambda r: r.sent_bytes),
    "hbm_bytes": ("HBM bytes per device", lambda r: r.hbm_bytes),
}

_COLORS = ("#4c956c", "#2c6e91", "#d68c45", "#9d4edd", "#c1121f", "#6c757d")


def plot_modules(report: ModuleReport, path: str | None = None,
                 metric: str = "redundancy") -> Any:
  """Horizontal bars, one group per module, one bar per target; returns the Figure."""
  if metric not in MODULE_METRICS:
    raise ValueError(f"plot(metric={metric!r}): use one of {', '.join(MODULE_METRICS)}")
  try:
    import matplotlib  # noqa: F401 - fails first where matplotlib is missing

    from jaxgreen._src._figure import Figure  # shows inline in a notebook, without pyplot
  except ImportError:
    raise ImportError("ModuleReport.plot needs matplotlib: pip install 'jaxgreen[plot]'"
                      ) from None
  label, get = MODULE_METRICS[metric]
  mods = report.modules
  n_t = max(len(report.targets), 1)
  fig = Figure(figsize=(7, 1.2 + 0.3 * len(mods) * max(1, n_t // 2 + 1)))
  ax = fig.add_subplot(1, 1, 1)
  height = 0.8 / n_t
  for j, t in enumerate(report.targets):
    rows = report.rows[t][:len(mods)]
    vals = [get(r) for r in rows]
    ys = [i + j * height for i in range(len(mods))]
    ax.barh(ys, [v or 0 for v in vals], height=height, label=t,
            color=_COLORS[j % len(_COLORS)])
  ax.set_yticks([i + 0.4 - height / 2 for i in range(len(mods))], labels=mods, fontsize=7)
  ax.invert_yaxis()
  if metric == "redundancy":
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle=":")
  ax.set_xlabel(label, fontsize=8)
  ax.legend(fontsize=7)
  title = f"{report.name}: " if report.name else ""
  ax.set_title(f"{title}per module (estimates)", fontsize=9)
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
  return fig
