"""The results of one program compiled for several targets: :class:`Comparison`.

Example:
  >>> Comparison(()).same_global_fpo  # no results: nothing disagrees
  True
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from jaxgreen._src.comparison.modules import ModuleReport, module_report
from jaxgreen._src.comparison.render import PLOT_METRICS, json_default, quantity, seconds
from jaxgreen._src.pods import KINDS, PodReport
from jaxgreen._src.report import markdown_table, number, table
from jaxgreen.chips import Roofline, mfu
from jaxgreen.targets import get_target

_INSTANCE = re.compile(r" \(instruction [^)]*\)| \([a-z][\w\-]*(?:\.\d+)*\)")


@dataclasses.dataclass(frozen=True)
class TargetResult:
  """One target of a comparison.

  Attributes:
    target: the target string.
    mesh_shape: axis name -> size of the mesh the inputs were sharded over.
    pod: the :class:`jaxgreen._src.pods.PodReport` (counts, collectives, memory).
    roofline: the per-device estimate (None for targets without chip figures, e.g. cpu).
    measured_step_s: a measured step time, if one was given (for MFU).
  """

  target: str
  mesh_shape: Mapping[str, int]
  pod: PodReport
  roofline: Roofline | None
  measured_step_s: float | None = None

  @property
  def global_fpo(self):
    return self.pod.logical.fpo

  @property
  def energy_j(self) -> float | None:
    """Estimated energy of one step on all devices: TDP x step time x devices."""
    if self.roofline is None or self.roofline.energy_j is None:
      return None
    return self.roofline.energy_j * self.pod.devices

  @property
  def fpo_per_joule(self) -> float | None:
    """Global FPO / estimated step energy (an estimate)."""
    e = self.energy_j
    return self.global_fpo / e if e else None

  @property
  def mfu(self) -> float | None:
    """Global FPO / (devices x peak x measured step time); None without a measurement."""
    if self.measured_step_s is None or self.roofline is None:
      return None
    return mfu(self.global_fpo / self.pod.devices, self.measured_step_s, self.roofline.chip,
               self.roofline.dtype)

  def __repr__(self) -> str:
    step = self.roofline.step_s if self.roofline else None
    return (f"TargetResult(target={self.target!r}, devices={self.pod.devices}, "
            f"global_fpo={number(self.global_fpo)}, "
            f"per_device_fpo={number(self.pod.per_device.fpo)}, step_s={step!r})")

  def _repr_html_(self) -> str:
    return Comparison((self,))._repr_html_()

  def _record(self) -> dict[str, Any]:
    """One flat row of numbers (a DataFrame's row)."""
    roof, pod = self.roofline, self.pod
    return {"target": self.target, "chip": roof.chip if roof else None,
            "devices": pod.devices, "global_fpo": self.global_fpo,
            "per_device_fpo": pod.per_device.fpo,
            "compiled_global_fpo": pod.compiled_global_fpo, "redundancy": pod.redundancy,
            "hbm_bytes": pod.hbm_bytes, "peak_bytes": pod.memory.peak_bytes,
            "collective_sent_bytes": pod.sent_bytes,
            "compute_s": roof.compute_s if roof else None,
            "memory_s": roof.memory_s if roof else None,
            "collective_s": roof.collective_s if roof else None,
            "step_s": roof.step_s if roof else None, "energy_j": self.energy_j,
            "fpo_per_joule": self.fpo_per_joule, "measured_step_s": self.measured_step_s,
            "mfu": self.mfu}

  def to_dict(self) -> dict[str, Any]:
    return {
        "target": self.target, "mesh": dict(self.mesh_shape), **self.pod.to_dict(),
        "roofline": self.roofline.to_dict() if self.roofline else None,
        "energy_j": self.energy_j, "energy_label": "estimate (TDP x estimated time)",
        "fpo_per_joule": self.fpo_per_joule, "measured_step_s": self.measured_step_s,
        "mfu": self.mfu,
    }


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Results of one program on several targets; index by target string.

  Attributes:
    results: one result per target that could be compiled.
    name: the report's title.
    unavailable: target string -> why it could not be compiled (and the fix).
    max_depth: the default depth of :meth:`modules`.
    by_module: whether module figures were collected (``compare(..., by_module=True)``);
      the reports then add the per-module table.
  """

  results: tuple[TargetResult, ...]
  name: str = ""
  unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
  max_depth: int | None = None
  by_module: bool = False

  def modules(self, max_depth: int | None | str = "default") -> ModuleReport:
    """The per-module report: the same module rows for every target.

    Args:
      max_depth: aggregate module paths to this many segments; None: full paths;
        default: the ``max_depth`` given to :func:`jaxgreen.compare`.

    Raises:
      ValueError: if the comparison was made without ``by_module=True``.
    """
    if not self.by_module:
      raise ValueError("Comparison.modules(): compare without module figures; pass "
                       "by_module=True to jaxgreen.compare")
    depth = self.max_depth if max_depth == "default" else max_depth
    return module_report(self.results, depth if not isinstance(depth, str) else None,
                         self.name)

  def __getitem__(self, target: str) -> TargetResult:
    spec = get_target(target).spec
    for r in self.results:
      if r.target == spec:
        return r
    if spec in self.unavailable:
      raise KeyError(f"target {spec!r} is unavailable: {self.unavailable[spec]}")
    raise KeyError(f"no result for target {target!r}; have "
                   f"{', '.join(r.target for r in self.results)}")

  def __iter__(self):
    return iter(self.results)

  def __len__(self) -> int:
    return len(self.results)

  @property
  def same_global_fpo(self) -> bool:
    """True when every target counted the same global FPO (as it should)."""
    return len({r.global_fpo for r in self.results}) <= 1

  def rows(self) -> list[tuple[str, list[str]]]:
    """(label, one cell per target) for the tables; "unavailable" for targets that
    could not be compiled (their reasons are in :meth:`notes`)."""
    gone = ["unavailable"] * len(self.unavailable)
    return [(label, [*cells, *gone]) for label, cells in rows(self.results)]

  def _heads(self) -> list[str]:
    return ["", *(r.target for r in self.results), *self.unavailable]

  def table(self) -> str:
    """The side-by-side plain-text report: one column per target."""
    heads = self._heads()
    body = [[label, *cells] for label, cells in self.rows()]
    return "\n".join([table(heads, body), *self.notes()])

  def markdown(self) -> str:
    heads = self._heads()
    body = [[label.strip() or " ", *cells] for label, cells in self.rows()]
    notes = [f"- {n}" for n in self.notes()]
    return "\n".join([markdown_table(heads, body), "", *notes]).rstrip()

  def __repr__(self) -> str:
    fpo = number(self.results[0].global_fpo) if self.results else "-"
    return (f"Comparison(name={self.name!r}, targets={[r.target for r in self.results]}, "
            f"global_fpo={fpo}, unavailable={list(self.unavailable)}, "
            f"by_module={self.by_module})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else "\n\n".join(([self.name] if self.name else [])
                                                 + [self.table()]))

  def _repr_html_(self) -> str:
    """The notebook view: the side-by-side table, notes, and the module tree (folded)
    when module figures were collected."""
    from jaxgreen._src import _html

    heads = self._heads()
    body = [[label, *cells] for label, cells in self.rows()]
    parts = [_html.table(heads, body), _html.notes(self.notes())]
    if self.by_module and self.results:
      parts.append(_html.section("by module", self.modules()._repr_html_(), open=False))
    return _html.fragment(*parts, title=self.name or "Comparison of targets")

  def to_pandas(self) -> Any:
    """One row per target: chip, devices, FPO (global, per device), redundancy, bytes,
    the roofline times, energy and MFU (needs pandas: ``pip install 'jaxgreen[pandas]'``).
    Per-module figures: ``modules().to_pandas()``."""
    from jaxgreen._src.report import data_frame

    return data_frame([r._record() for r in self.results], "Comparison.to_pandas")

  def notes(self) -> list[str]:
    out = ["Times and energies are roofline estimates from published chip figures "
           "(jaxgreen.chips), not measurements."]
    if any(isinstance(r.pod.per_device.fpo, float) and not r.pod.per_device.fpo.is_integer()
           for r in self.results):
      out.append("~: a per-device mean, rounded: an all-reduce's n-1 ADDs per element are "
                 "shared by its n devices; x devices is exact.")
    if not self.same_global_fpo:
      out.append("WARNING: the global FPO differs between targets: the jaxpr depends on "
                 "the target (e.g. a shard_map over a different mesh).")
    out += [f"{spec}: unavailable: {why}" for spec, why in self.unavailable.items()]
    for r in self.results:
      for n in (r.roofline.notes if r.roofline else ()):
        out.append(f"{r.target}: {n}")
      # One line per kind of caveat: instruction names would repeat it per instance.
      seen: dict[str, int] = {}
      for n in r.pod.notes:
        key = _INSTANCE.sub("", n)
        seen[key] = seen.get(key, 0) + 1
      out += [f"{r.target}: {k}" + (f" ({c} instructions)" if c > 1 else "")
              for k, c in seen.items()]
    return list(dict.fromkeys(out))

  def to_dict(self) -> dict[str, Any]:
    out = {"name": self.name, "same_global_fpo": self.same_global_fpo,
           "targets": [r.to_dict() for r in self.results],
           "unavailable": dict(self.unavailable), "notes": self.notes()}
    if self.by_module and self.results:
      out["by_module"] = self.modules().to_dict()
    return out

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), default=json_default, **kw)

  def plot(self, path: str | None = None, metrics: Sequence[str] = ("step_s", "energy_j",
                                                                    "fpo_per_joule")):
    """A bar chart, one panel per metric, one bar per target (needs the ``[plot]`` extra).

    Args:
      path: where to save the figure (PNG, SVG, PDF by extension); None: only return it.
      metrics: keys of ``PLOT_METRICS``.

    Returns:
      The matplotlib ``Figure``.
    """
    return plot_comparison(self, path, metrics)


def rows(results: Sequence[TargetResult]) -> list[tuple[str, list[str]]]:
  rows: list[tuple[str, list[str]]] = []

  def row(label: str, f: Callable[[TargetResult], str]) -> None:
    rows.append((label, [f(r) for r in results]))

  row("chip", lambda r: r.roofline.chip if r.roofline else "no figures")
  row("devices (mesh)", lambda r: f"{r.pod.devices} ("
      + " x ".join(f"{k}={v}" for k, v in r.mesh_shape.items()) + ")")
  row("global FPO (jaxpr)", lambda r: number(r.global_fpo))
  row("compiled FPO / device", lambda r: number(r.pod.per_device.fpo))
  row("compiled FPO x devices", lambda r: number(r.pod.compiled_global_fpo))
  row("redundancy", lambda r: "unavailable" if r.pod.redundancy is None
      else f"{r.pod.redundancy:.3f}")
  row("HBM bytes / device", lambda r: quantity(r.pod.hbm_bytes, "B"))
  row("XLA bytes accessed / dev", lambda r: quantity(getattr(r.pod.xla, "bytes_accessed", None),
                                                 "B"))
  row("peak memory / device", lambda r: quantity(r.pod.memory.peak_bytes, "B"))
  for kind in KINDS:
    if any(kind in r.pod.collectives for r in results):
      def cell(r, kind=kind):
        c = r.pod.collectives.get(kind)
        return "-" if c is None else f"{c.count:g} x, {quantity(c.sent_bytes, 'B')} sent"
      row(f"  {kind}", cell)
  row("collective bytes sent / dev", lambda r: quantity(r.pod.sent_bytes, "B"))
  row("matmul dtype (peak used)", lambda r: r.roofline.dtype if r.roofline else r.pod.dtype)
  row("arithmetic intensity", lambda r: "unavailable" if not r.roofline
      or r.roofline.intensity is None else f"{r.roofline.intensity:.1f} FLOP/B")
  row("compute time (est.)", lambda r: seconds(r.roofline.compute_s if r.roofline else None))
  row("memory time (est.)", lambda r: seconds(r.roofline.memory_s if r.roofline else None))
  row("collective time (est.)", lambda r: seconds(r.roofline.collective_s if r.roofline
                                                else None))
  row("step time (est.)", lambda r: seconds(r.roofline.step_s if r.roofline else None)
      + (f", {r.roofline.bound}-bound" if r.roofline and r.roofline.step_s else ""))
  row("XLA optimal_seconds", lambda r: seconds(getattr(r.pod.xla, "optimal_seconds", None)))
  row("energy / step (estimate)", lambda r: quantity(r.energy_j, "J"))
  row("FPO per joule (estimate)", lambda r: quantity(r.fpo_per_joule))
  if any(r.measured_step_s is not None for r in results):
    row("measured step", lambda r: seconds(r.measured_step_s))
    row("MFU", lambda r: "unavailable" if r.mfu is None else f"{100 * r.mfu:.1f}%")
  row("count s / compile s", lambda r: f"{r.pod.count_s:.2f} / {r.pod.compile_s:.2f}")
  return rows


def plot_comparison(cmp: Comparison, path: str | None = None,
                    metrics: Sequence[str] = ("step_s", "energy_j", "fpo_per_joule")):
  """A bar chart of ``cmp``, one panel per metric (see :meth:`Comparison.plot`)."""
  bad = [m for m in metrics if m not in PLOT_METRICS]
  if bad:
    raise ValueError(f"plot(metrics={list(metrics)!r}): unknown {bad}; use "
                     f"{', '.join(PLOT_METRICS)}")
  try:
    import matplotlib  # noqa: F401 - fails first where matplotlib is missing

    from jaxgreen._src._figure import Figure  # not pyplot: the user's backend is left alone
  except ImportError:
    raise ImportError("Comparison.plot needs matplotlib: pip install 'jaxgreen[plot]'"
                      ) from None
  fig = Figure(figsize=(4 * len(metrics), 3.4))
  axes = fig.subplots(1, len(metrics), squeeze=False)
  names = [r.target for r in cmp.results]
  for ax, key in zip(axes[0], metrics, strict=True):
    label, get = PLOT_METRICS[key]
    vals = [get(r) for r in cmp.results]
    ax.bar(names, [v if v is not None else 0 for v in vals], color="#4c956c")
    for i, v in enumerate(vals):
      if v is None:
        ax.text(i, 0, "unavailable", ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_title(label, fontsize=9)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
  title = f"{cmp.name}: " if cmp.name else ""
  fig.suptitle(f"{title}global FPO {number(cmp.results[0].global_fpo)} (estimates)",
               fontsize=9)
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
  return fig


def print_report(cmp: Comparison, *, fmt: str = "table", plot: str | None = None,
                 file: IO[str] | None = None) -> None:
  """Prints a :class:`Comparison` as ``"table"``, ``"markdown"`` or ``"json"``.

  Args:
    cmp: the comparison.
    fmt: output format.
    plot: also save a bar plot to this path (needs the ``[plot]`` extra); of the
      per-module redundancy when the comparison has module figures.
    file: where to print (default stdout).
  """
  out = file or sys.stdout
  if fmt == "json":
    out.write(cmp.to_json(indent=2) + "\n")
  elif fmt == "markdown":
    out.write(cmp.markdown() + "\n")
    if cmp.by_module and cmp.results:
      out.write("\n" + cmp.modules().markdown() + "\n")
  elif fmt == "table":
    if cmp.name:
      out.write(f"{cmp.name}\n\n")
    out.write(cmp.table() + "\n")
    if cmp.by_module and cmp.results:
      out.write("\nBy module\n\n" + cmp.modules().table() + "\n")
  else:
    raise ValueError(f"print_report(fmt={fmt!r}): use 'table', 'markdown' or 'json'")
  if plot:
    if cmp.by_module and cmp.results:
      cmp.modules().plot(plot)
    else:
      cmp.plot(plot)
    if fmt != "json":
      out.write(f"plot saved to {plot}\n")
