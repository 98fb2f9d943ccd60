"""The bar plot of a :class:`~jaxgreen._src.comparison.modules.ModuleReport`.

A ``matplotlib.figure.Figure`` is built directly: pyplot, and so the user's backend and
open figures, are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
  from jaxgreen._src.comparison.modules import ModuleReport, ModuleRow

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
