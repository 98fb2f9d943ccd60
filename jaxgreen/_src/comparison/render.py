"""How a :class:`~jaxgreen._src.comparison.Comparison` reads: table rows, JSON, plot, report.

Example:
  >>> seconds(0.0123), seconds(None), quantity(2.5e9, "B")
  ('12.3 ms', 'unavailable', '2.50 GB')
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from jaxgreen._src.pods import KINDS
from jaxgreen._src.report import human, number

if TYPE_CHECKING:
  from jaxgreen._src.comparison.results import Comparison, TargetResult

# Metrics a bar plot can show: key -> (label, getter of a TargetResult).
PLOT_METRICS: dict[str, tuple[str, Callable[[Any], float | None]]] = {
    "step_s": ("estimated step time (s)", lambda r: r.roofline.step_s if r.roofline else None),
    "energy_j": ("estimated energy per step (J)", lambda r: r.energy_j),
    "fpo_per_joule": ("FPO per joule (estimate)", lambda r: r.fpo_per_joule),
    "per_device_fpo": ("compiled FPO per device", lambda r: r.pod.per_device.fpo),
    "sent_bytes": ("collective bytes sent per device", lambda r: r.pod.sent_bytes),
}


def quantity(v: float | None, unit: str = "") -> str:
  """``v`` in ``unit`` to three significant figures, with an SI prefix from 1000 up."""
  if v is None:
    return "unavailable"
  return human(v, unit) if abs(v) >= 1000 else (f"{v:.3g} {unit}".rstrip())


def seconds(v: float | None) -> str:
  """A duration in s, ms, us or ns, to three significant figures."""
  if v is None:
    return "unavailable"
  for scale, u in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
    if v >= scale:
      return f"{v / scale:.3g} {u}"
  return f"{v / 1e-9:.3g} ns"


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


def json_default(o: Any):
  """JSON for what ``json.dumps`` cannot write: a non-finite float is null."""
  if isinstance(o, float) and not math.isfinite(o):
    return None
  if dataclasses.is_dataclass(o) and not isinstance(o, type):
    return dataclasses.asdict(o)
  return str(o)


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
